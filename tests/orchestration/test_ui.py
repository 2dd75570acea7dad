"""`driftmart ui`: the real Dagster webserver on a home, read over GraphQL and in a real browser."""

import shutil
import subprocess
import time

import httpx
import pytest

from tests.conftest import IN_CI
from tests.services import free_port, stop_process_group, wait_until_answering
from tests.test_cli import DRIFTMART
from warehouse.home import Home

pytestmark = pytest.mark.slow
ASSET_NODES = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"


@pytest.fixture(scope="module")
def ui_home(tmp_path_factory, built_home):
    """A copy of the shared home: the UI's daemon runs the sensors, which may start runs that write."""
    root = tmp_path_factory.mktemp("ui") / "home"
    shutil.copytree(built_home.root, root)
    return Home.resolve(root)


@pytest.fixture(scope="module")
def ui(ui_home):
    port = free_port()
    process = subprocess.Popen(
        [DRIFTMART, "--home", str(ui_home.root), "ui", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, nodes = time.monotonic() + 120, None
        while time.monotonic() < deadline and nodes is None:
            try:
                response = httpx.post(f"{base}/graphql", json={"query": ASSET_NODES}, timeout=5)
                nodes = response.json()["data"]["assetNodes"]
            except (httpx.TransportError, KeyError, TypeError, ValueError):
                assert process.poll() is None, "driftmart ui exited"
                time.sleep(1)
        assert nodes is not None, "the Dagster UI did not answer within 120 s"
        yield base, nodes
    finally:
        stop_process_group(process)


def test_asset_graph_shows_raw_logs_to_the_champion(ui, ui_home):
    _, nodes = ui
    parents = {
        "/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]} for n in nodes
    }
    chain = [
        ("landing/inference_segments", "raw/inference_log"),
        ("raw/inference_log", "staging/stg_raw__inference_logs"),
        ("marts/fct_feature_drift", "published/driftmart_duckdb"),
        ("marts/fct_feature_drift", "reports/evidently_drift"),
        ("marts/fct_dataset_drift", "model/challenger"),
        ("model/challenger", "model/champion"),
    ]
    for parent, child in chain:
        assert parent in parents[child], (parent, child)
    assert (ui_home.dagster_home / "dagster.yaml").exists()


def test_runs_of_the_cli_are_in_the_ui(ui):
    base, _ = ui
    query = "{ runsOrError { ... on Runs { results { jobName status } } } }"
    runs = httpx.post(f"{base}/graphql", json={"query": query}, timeout=10).json()["data"]["runsOrError"][
        "results"
    ]
    assert {"jobName": "driftmart_pipeline", "status": "SUCCESS"} in runs


def test_asset_graph_page_renders_in_chromium_without_console_errors(ui, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if IN_CI:
            pytest.fail("chromium is required in CI (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    base, _ = ui
    screenshot = tmp_path / "asset-graph.png"
    completed = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1600,1000",
            "--virtual-time-budget=20000",
            f"--screenshot={screenshot}",
            f"{base}/asset-groups",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
    console_errors = [
        line
        for line in completed.stderr.splitlines()
        if "CONSOLE" in line and ("Error" in line or "error" in line)
    ]
    assert console_errors == [], console_errors


def _descendants(pid: int) -> set[int]:
    """Every live process started, directly or not, by `pid` (read from /proc)."""
    from pathlib import Path

    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("stop_signal", ["SIGTERM", "SIGINT"])
def test_driftmart_ui_from_a_script_stops_on_a_signal_with_everything_it_started(ui_home, stop_signal):
    """Started without job control (SIGINT ignored, as a script's background job), `driftmart ui`
    stops on SIGTERM or SIGINT sent to it alone, and takes the webserver, daemon and code server down."""
    import signal

    port = free_port()
    process = subprocess.Popen(
        [DRIFTMART, "--home", str(ui_home.root), "ui", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        wait_until_answering(
            process,
            f"http://127.0.0.1:{port}/server_info",
            120,
            "the Dagster UI did not answer within 120 s",
            lambda: "driftmart ui exited",
        )
        started = _descendants(process.pid)
        assert started, "driftmart ui started no processes"
        process.send_signal(getattr(signal, stop_signal))
        assert process.wait(timeout=90) == 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in started):
            time.sleep(0.2)
        assert not [pid for pid in started if _alive(pid)], "processes left behind"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2)
    finally:
        stop_process_group(process)
