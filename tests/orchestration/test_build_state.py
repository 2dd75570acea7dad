"""Selection by state (orchestration/state.py): a `driftmart run` with nothing new neither starts
Dagster nor dbt, nor imports Evidently, and says what a build would have said; new rows build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration import state
from tests.crossdb.parity import PARITY_MARTS, import_batch, mart_differences
from warehouse.home import Home
from warehouse.publish import read_status

# `driftmart run` in a subprocess that also says which heavy modules it imported.
RUN_AND_REPORT_MODULES = """
import json, sys
from orchestration.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
modules = {name: name in sys.modules for name in ("dagster", "dagster_dbt", "evidently")}
print("MODULES " + json.dumps(modules))
sys.exit(code)
"""


def run(home: Home, files: Path, *extra: str) -> tuple[int, str, dict[str, bool]]:
    """(exit code, stdout without the module line, heavy modules imported) of `driftmart run`."""
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN_AND_REPORT_MODULES,
            "--home",
            str(home.root),
            "run",
            "--spec",
            str(files / "spec.yaml"),
            "--no-retrain",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    lines = completed.stdout.splitlines()
    assert lines and lines[-1].startswith("MODULES "), completed.stdout + completed.stderr
    assert completed.returncode in (0, 1), completed.stdout + completed.stderr
    return completed.returncode, "\n".join(lines[:-1]), json.loads(lines[-1].removeprefix("MODULES "))


def dagster_runs(home: Home) -> list:
    from orchestration.instance import instance_for

    with instance_for(home) as instance:
        return list(instance.get_runs())


def last_run_log(home: Home) -> str:
    return (home.dbt_logs / "last_run.log").read_text()


@pytest.mark.slow
def test_a_run_with_nothing_new_skips_the_build_and_says_what_a_build_says(
    tmp_path, parity_files, duckdb_parity_home
):
    home = Home.resolve(tmp_path / "home")
    import_batch(parity_files, home, 1)
    run(home, parity_files)
    assert last_run_log(home).startswith("dbt build: no successful build recorded")
    recorded = json.loads(state.state_path(home).read_text())
    assert recorded["run_id"] == read_status(home)["run_id"] == dagster_runs(home)[0].run_id
    assert set(recorded["inputs"]["raw"]) >= {"inference_log", "labels", "model_registry"}

    # Nothing new: no Dagster run, no dbt, no Evidently; the copy is republished (the exporter's
    # time since the last success restarts) from the same build.
    published_before = read_status(home)["published_at"]
    skipped_code, skipped_output, modules = run(home, parity_files)
    assert last_run_log(home).startswith("dbt build skipped: nothing changed since the build of run")
    assert len(dagster_runs(home)) == 1
    assert modules == {"dagster": False, "dagster_dbt": False, "evidently": False}
    status = read_status(home)
    assert status["run_id"] == recorded["run_id"] and status["published_at"] > published_before
    assert "no new rows; the latest window" in skipped_output

    # The same pass built for real: the same exit code and output. The Evidently report of the
    # latest window has the same inputs, so Evidently is not imported there either.
    state.forget(home)
    rebuilt_code, rebuilt_output, modules = run(home, parity_files)
    assert last_run_log(home).startswith("dbt build: no successful build recorded")
    assert len(dagster_runs(home)) == 2
    assert modules["dagster"] and not modules["evidently"]
    assert (rebuilt_code, rebuilt_output) == (skipped_code, skipped_output)

    # New rows: a build, whose marts are those of a home fed both batches one run after the other.
    import_batch(parity_files, home, 2)
    run(home, parity_files)
    assert last_run_log(home).startswith("dbt build: raw rows changed")
    assert len(dagster_runs(home)) == 3
    for table in PARITY_MARTS:
        assert mart_differences(duckdb_parity_home, home, table) == []

    # --full-refresh always builds.
    run(home, parity_files, "--full-refresh")
    assert last_run_log(home).startswith("dbt build: --full-refresh")
    assert len(dagster_runs(home)) == 4


def test_a_project_that_reads_the_clock_is_found(tmp_path):
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: p\n")
    (project / "models" / "a.sql").write_text("-- counted as it is now (once)\nselect 1 as x\n")
    (project / "models" / "a.yml").write_text(
        "models:\n  - name: a\n    description: frozen from its rows as they are now (delete+insert)\n"
        "    data_tests:\n      - expression: x > 0\n"
    )
    assert state.wall_clock_references(project) == []  # prose and comments are not SQL that runs
    (project / "models" / "a.yml").write_text("models:\n  - name: a\n    config:\n      where: day < now()\n")
    assert state.wall_clock_references(project) == ["models/a.yml: now("]
    (project / "models" / "a.yml").unlink()
    before = state.project_inputs({}, project)
    (project / "models" / "b.sql").write_text("select current_timestamp as built_at\n")
    assert state.wall_clock_references(project) == ["models/b.sql: current_timestamp"]
    assert state.project_inputs({}, project)["project"] != before["project"]


def test_the_environment_dbt_reads_is_part_of_the_inputs_and_never_written_in_clear(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "profiles.yml").write_text("password: \"{{ env_var('PGPASSWORD', '') }}\"\n")
    first = state.project_inputs({"PGPASSWORD": "secret-1"}, project)
    second = state.project_inputs({"PGPASSWORD": "secret-2"}, project)
    assert first["environment"] != second["environment"]
    assert state.project_inputs({"PGPASSWORD": "secret-1", "UNRELATED": "x"}, project) == first
    assert "secret-1" not in json.dumps(first)
