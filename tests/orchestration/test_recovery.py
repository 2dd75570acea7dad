"""Recovery and concurrency of `driftmart run` (issue 6): a run killed in the middle of its dbt build
leaves the published copy at the last good state, and the next run reaches exactly the state of an
uninterrupted one; two runs at once queue; a lock held too long is a clear error, never corruption."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from orchestration.dbt_setup import dbt_target_path
from tests.crossdb.parity import PARITY_MARTS, import_batch, mart_differences, read_mart, run_case
from tests.test_cli import DRIFTMART, driftmart
from warehouse.connection import run_lock, writer_lock
from warehouse.home import Home
from warehouse.publish import read_status

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def after_first_batch(tmp_path_factory, parity_files) -> Home:
    """The parity case's first batch imported and run, and the second batch imported, not run yet."""
    home = Home.resolve(tmp_path_factory.mktemp("recovery") / "home")
    import_batch(parity_files, home, 1)
    run_case(parity_files, home)
    import_batch(parity_files, home, 2)
    return home


def copy_of(home: Home, destination: Path) -> Home:
    shutil.copytree(home.root, destination)
    return Home.resolve(destination)


def run_command(home: Home, files: Path) -> list[str]:
    return [DRIFTMART, "--home", str(home.root), "run", "--spec", str(files / "spec.yaml"), "--no-retrain"]


def session_processes(session_id: int) -> list[str]:
    """Command lines of the live processes in a session (the run and its dbt subprocess)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[3]) == session_id:
            found.append(command)
    return found


def _models_built_since(dbt_log: Path, offset: int) -> bool:
    """Whether dbt logged a model's result past `offset` of its JSON log."""
    if not dbt_log.exists():
        return False
    with dbt_log.open("rb") as log:
        log.seek(offset)
        return any(b'"name": "LogModelResult"' in line for line in log)


def assert_equal_marts(expected: Home, actual: Home) -> None:
    for table in PARITY_MARTS:
        assert mart_differences(expected, actual, table) == []


def test_kill_during_dbt_build_keeps_the_last_good_copy_and_a_rerun_converges(
    tmp_path, after_first_batch, parity_files, duckdb_parity_home
):
    home = copy_of(after_first_batch, tmp_path / "home")
    status_before = read_status(home)
    marts_before = {table: read_mart(home, table) for table in PARITY_MARTS}
    dbt_log = dbt_target_path(home) / "dbt.log"  # dagster-dbt logs dbt's JSON events to its target folder
    logged_before = dbt_log.stat().st_size if dbt_log.exists() else 0
    run = subprocess.Popen(
        run_command(home, parity_files),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(" build" in command and "dbt" in command for command in session_processes(run.pid)):
            assert run.poll() is None, "the run ended before its dbt build started"
            assert time.monotonic() < deadline, "no dbt build started"
            time.sleep(0.05)
        # Kill once this build has written a model (dbt logged its result) and before it ends.
        while not _models_built_since(dbt_log, logged_before):
            assert run.poll() is None, "the run ended before its dbt build wrote a model"
            assert time.monotonic() < deadline, "the dbt build wrote no model"
            time.sleep(0.02)
        assert run.poll() is None, "the run ended before it could be killed mid-build"
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    time.sleep(0.5)  # the killed dbt child lets go of its file handles
    assert read_status(home) == status_before, "a killed run must not publish"
    for table, frame in marts_before.items():
        assert read_mart(home, table).equals(frame), f"{table} changed in the published copy"

    run_case(parity_files, home)
    assert_equal_marts(duckdb_parity_home, home)
    assert read_status(home)["published_at"] != status_before["published_at"]


def test_two_runs_at_once_queue_and_reach_the_same_state(
    tmp_path, after_first_batch, parity_files, duckdb_parity_home
):
    home = copy_of(after_first_batch, tmp_path / "home")
    command = run_command(home, parity_files)
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [process.communicate(timeout=600) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [1, 1], outputs
    assert "waiting for it to finish" in outputs[1][1]
    assert_equal_marts(duckdb_parity_home, home)
    status = read_status(home)
    assert status["rows"]["raw.inference_log"] == read_status(duckdb_parity_home)["rows"]["raw.inference_log"]


def test_a_lock_held_too_long_is_a_clear_error_naming_the_holder(home):
    environment = {"DRIFTMART_LOCK_TIMEOUT": "1"}
    with run_lock(home):
        busy = driftmart("run", home=home, env=environment)
    assert busy.returncode == 2
    assert "waiting for it to finish" in busy.stderr
    assert f"pid {os.getpid()} holds {home.root / '.run.lock'}" in busy.stderr
    assert "DRIFTMART_LOCK_TIMEOUT" in busy.stderr
    with writer_lock(home):
        blocked = driftmart("train", home=home, env=environment)
    assert blocked.returncode == 2, blocked.stdout
    assert f"the warehouse {home.warehouse} is busy: pid {os.getpid()}" in blocked.stderr
    assert "Traceback" not in busy.stderr + blocked.stderr
