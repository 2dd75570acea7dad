"""The `driftmart` console script as users run it: real processes, real files."""

import csv
import io
import json
import os
import shutil
import subprocess

import duckdb
import pytest

from tests.conftest import DRIFT_PLAN, REPO, parse_grids
from tests.services import DRIFTMART


def driftmart(*args: str, home=None, timeout: float = 600, env=None) -> subprocess.CompletedProcess:
    """The real console script in a subprocess; `env` adds to (or overrides) this process's environment."""
    command = [DRIFTMART, *(["--home", str(home.root)] if home is not None else []), *args]
    environment = {**os.environ, **env} if env else None
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, env=environment
    )


def test_train_registers_versions_and_mirrors_them_in_the_warehouse(home):
    first = driftmart("train", home=home)
    assert first.returncode == 0, first.stderr
    assert "registered car_loan v1 (champion)" in first.stdout
    second = driftmart("train", "--seed", "1", home=home)
    assert "registered car_loan v2 (challenger)" in second.stdout
    import duckdb

    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        rows = connection.execute(
            "select model_version, trigger, status from raw.model_registry order by 1"
        ).fetchall()
    assert rows == [(1, "initial", "champion"), (2, "manual", "challenger")]


def test_user_mistakes_are_one_clear_line_and_exit_2(home, tmp_path):
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text(
        (REPO / "ml/specs/car_loan.yaml").read_text().replace("car_value: numeric", "car_value: money")
    )
    for args, message in [
        (("train", "--spec", str(bad_spec)), "feature 'car_value' has unknown type 'money'"),
        (("train", "--spec", str(bad_spec).replace("bad", "absent")), "cannot read spec"),
        (("train", "--data", str(tmp_path / "none.csv")), "no such file"),
        (("sql", "select 1"), "nothing published yet"),
        (("demo", "--scenario", "chaos"), "unknown scenario 'chaos'"),
    ]:
        completed = driftmart(*args, home=home)
        assert completed.returncode == 2, (args, completed.stderr)
        assert completed.stderr.startswith("driftmart: ") and message in completed.stderr, completed.stderr
        assert "Traceback" not in completed.stderr
        assert len(completed.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_sql_reads_the_published_copy_in_three_formats(built_home):
    query = (
        "select feature_name, psi, is_drifted from marts.fct_feature_drift "
        "where feature_name = 'car_value' order by window_start"
    )
    table = driftmart("sql", query, home=built_home)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["feature_name", "psi", "is_drifted"]
    rows = list(
        csv.DictReader(io.StringIO(driftmart("sql", query, "--format", "csv", home=built_home).stdout))
    )
    assert [row["is_drifted"] for row in rows] == ["False"] * 3 + ["True"] * 3
    records = json.loads(driftmart("sql", query, "--format", "json", home=built_home).stdout)
    assert [record["is_drifted"] for record in records] == [False] * 3 + [True] * 3
    assert records[-1]["psi"] == pytest.approx(float(rows[-1]["psi"]), rel=1e-5)
    failed = driftmart("sql", "select * from marts.no_such_table", home=built_home)
    assert failed.returncode == 2 and "query failed" in failed.stderr
    refused = driftmart("sql", "create table marts.x as select 1", home=built_home)
    assert refused.returncode == 2 and "read-only" in refused.stderr


@pytest.mark.slow
def test_sql_csv_and_json_print_floats_that_round_trip_exactly(built_home):
    query = "select psi, js_distance, wasserstein_normed from marts.fct_feature_drift order by all"
    with duckdb.connect(str(built_home.published), read_only=True) as connection:
        expected = connection.execute(query).fetchall()
    assert any(value is not None and value != round(value, 6) for row in expected for value in row)
    rows = list(csv.reader(io.StringIO(driftmart("sql", query, "--format", "csv", home=built_home).stdout)))
    assert [tuple(float(cell) if cell else None for cell in row) for row in rows[1:]] == expected
    records = json.loads(driftmart("sql", query, "--format", "json", home=built_home).stdout)
    assert [
        (record["psi"], record["js_distance"], record["wasserstein_normed"]) for record in records
    ] == expected
    first = next(value for row in expected for value in row if value is not None)
    assert f"{first:.6g}" in driftmart("sql", query, home=built_home).stdout  # only `table` rounds


@pytest.mark.slow
def test_run_exits_1_on_drift_and_retrains_like_the_sensor(built_home, tmp_path):
    from warehouse.home import Home

    home = Home.resolve(tmp_path / "copy")
    shutil.copytree(built_home.root, home.root)
    detect = driftmart("run", "--no-retrain", home=home)
    assert detect.returncode == 1, detect.stderr
    assert "car_loan: all windows" in detect.stdout  # the first `run` on this home
    ((header, rows),) = parse_grids(detect.stdout)
    assert len(rows) == DRIFT_PLAN.days
    for day, cells in enumerate(rows):
        drifted = {name for name, value in cells.items() if value.endswith("*") and name in header[2:-2]}
        assert drifted == ({"car_value"} if day >= DRIFT_PLAN.drift_day else set()), cells
    assert "retrain:" not in detect.stdout

    retrain = driftmart("run", home=home)
    assert retrain.returncode == 1, retrain.stderr
    assert "no new rows; the latest window" in retrain.stdout
    assert "retrain: features drifted in 3 consecutive windows" in retrain.stdout
    assert "retrain: challenger v2 champion: challenger roc_auc" in retrain.stdout
    versions = driftmart(
        "sql",
        "select model_version, status from marts.dim_model_versions order by 1",
        "--format",
        "csv",
        home=home,
    )
    assert versions.stdout.splitlines()[1:] == ["1,retired", "2,champion"]


@pytest.mark.slow
def test_run_exits_1_when_late_labels_show_degraded_performance_without_input_drift(
    calm_home, tmp_path, spec
):
    """No input drift, no new predictions: corrected labels for an old window make its realized
    performance fall past its threshold, and the next `run` judges that window again and exits 1."""
    from datetime import timedelta

    from fastapi.testclient import TestClient

    from ml.serving.app import create_app
    from warehouse.home import Home

    home = Home.resolve(tmp_path / "copy")
    shutil.copytree(calm_home.root, home.root)
    first = driftmart("run", "--no-retrain", home=home)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "performance degraded" not in first.stdout
    day = DRIFT_PLAN.start + timedelta(days=2)
    with duckdb.connect(str(home.published), read_only=True) as connection:
        labels = connection.execute(
            "select labels.request_id, labels.label from raw.labels as labels "
            "inner join raw.inference_log as logs using (model_name, request_id) "
            "where logs.scored_at >= ? and logs.scored_at < ?",
            [day, day + timedelta(days=1)],
        ).fetchall()
    assert len(labels) >= spec.min_window_rows
    with TestClient(create_app(home, spec)) as client:  # the truth, corrected: every label flipped
        flipped = [{"request_id": request_id, "label": 1 - int(label)} for request_id, label in labels]
        assert client.post("/feedback", json=flipped).status_code == 200
    late = driftmart("run", "--no-retrain", home=home)
    assert late.returncode == 1, late.stdout + late.stderr
    assert "no new rows; the latest window and the windows with new labels" in late.stdout
    assert late.stdout.rstrip().endswith("performance degraded (exit 1)")
    degraded = [line.split() for line in late.stdout.splitlines() if line.startswith(f"{day:%Y-%m-%d} ")]
    assert {"accuracy", "roc_auc"} <= {fields[1] for fields in degraded}, late.stdout


def test_a_build_out_of_duckdb_memory_says_which_variable_to_raise(home, monkeypatch):
    from orchestration.cli import _memory_hint

    monkeypatch.setenv("DRIFTMART_DUCKDB_MEMORY_LIMIT", "1GB")
    home.dbt_logs.mkdir(parents=True, exist_ok=True)
    log = home.dbt_logs / "last_run.log"
    log.write_text("Runtime Error in model fct_feature_statistics\n  Compilation Error: no such column\n")
    assert _memory_hint(home) == ""
    log.write_text("Runtime Error in model fct_feature_statistics\n  Out of Memory Error: failed to pin\n")
    hint = _memory_hint(home)
    assert "DuckDB ran out of its memory limit (1GB)" in hint
    assert "raise DRIFTMART_DUCKDB_MEMORY_LIMIT" in hint
