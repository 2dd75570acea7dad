"""`make demo`, the README's first command, end to end: real server, real dbt build, real Dagster run."""

import os
import subprocess
import time

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def parse_grid(output: str) -> tuple[list[str], list[list[str]]]:
    lines = output.splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("window "))
    header = lines[header_at].split()
    rows = []
    for line in lines[header_at + 2 :]:
        if not line.strip():
            break
        rows.append(line.split())
    return header, rows


def test_make_demo_runs_the_whole_flow_and_shows_the_planted_drift(tmp_path):
    home = tmp_path / "demo-home"
    started = time.monotonic()
    completed = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=REPO,
        env={**os.environ, "DRIFTMART_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    output = completed.stdout
    print(f"make demo took {elapsed:.0f} s")
    for step in range(1, 7):
        assert f"[{step}/6]" in output
    assert "starting the model API on http://127.0.0.1:" in output
    header, rows = parse_grid(output)
    assert header[:2] == ["window", "rows"]
    assert len(rows) == 14
    for day, row in enumerate(rows):
        cells = dict(zip(header, row, strict=True))
        assert cells["rows"] == "400"
        drifted = {name for name, value in cells.items() if value.endswith("*")}
        assert drifted == ({"car_value"} if day >= 7 else set()), (day, cells)
    assert str(home / "published" / "driftmart.duckdb") in output
    assert (home / "driftmart.duckdb").exists()

    # the "where to look next" commands work as printed
    query = subprocess.run(
        [
            str(REPO / ".venv/bin/driftmart"),
            "--home",
            str(home),
            "sql",
            "select count(*) as n from raw.inference_log",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert query.returncode == 0 and query.stdout.split()[-1] == str(14 * 400)
    labels = subprocess.run(
        [
            str(REPO / ".venv/bin/driftmart"),
            "--home",
            str(home),
            "sql",
            "select count(*) from raw.labels",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert labels.stdout.splitlines()[-1] == str(14 * 400)


def test_demo_refuses_a_home_it_did_not_create_and_resets_its_own(tmp_path):
    from orchestration.demo import DEMO_MARKER, DemoError, prepare_home
    from warehouse.home import Home

    foreign = Home.resolve(tmp_path / "foreign").ensure()
    (foreign.root / "driftmart.duckdb").write_bytes(b"precious")
    with pytest.raises(DemoError, match="holds data that the demo did not create"):
        prepare_home(foreign)
    assert (foreign.root / "driftmart.duckdb").read_bytes() == b"precious"

    own = Home.resolve(tmp_path / "own")
    prepare_home(own)
    (own.root / "leftover.txt").write_text("old run")
    prepare_home(own)
    assert not (own.root / "leftover.txt").exists()
    assert (own.root / DEMO_MARKER).exists()
