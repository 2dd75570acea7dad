"""The drift engine end to end through the contracts: a spec, `driftmart import`, `driftmart run`,
and the marts of docs/architecture.md §3.3 read from the published copy."""

import duckdb
import pytest
import yaml

from ml.datasets import wide_case
from ml.spec import PERFORMANCE_METRICS
from tests.test_cli import driftmart
from warehouse.home import Home

pytestmark = pytest.mark.slow

DAYS = 10
PLANTED = {"num_03": 4, "num_07": 2, "cat_05": 6}


def write_case(root, drift, seed):
    spec, reference, logs = wide_case(days=DAYS, rows_per_day=500, drift=drift, seed=seed)
    root.mkdir(parents=True)
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    reference.to_parquet(root / "reference.parquet", index=False)
    logs.drop(columns=["outcome"]).to_csv(root / "logs.csv", index=False)
    logs[["row_id", "outcome"]].to_csv(root / "labels.csv", index=False)
    return spec


def import_case(files, home):
    """`driftmart import` of a case written by write_case."""
    return driftmart(
        "import",
        "--spec",
        str(files / "spec.yaml"),
        "--reference",
        str(files / "reference.parquet"),
        "--logs",
        str(files / "logs.csv"),
        "--labels",
        str(files / "labels.csv"),
        home=home,
    )


def import_and_run(tmp_path, name, drift, seed):
    root = tmp_path / name
    spec = write_case(root / "files", drift, seed)
    home = Home.resolve(root / "home")
    files = root / "files"
    imported = import_case(files, home)
    assert imported.returncode == 0, imported.stderr
    assert "logs: 5000 rows loaded" in imported.stdout
    run = driftmart("run", "--spec", str(files / "spec.yaml"), home=home)
    return spec, home, imported, run


@pytest.fixture(scope="module")
def drifted(tmp_path_factory):
    return import_and_run(tmp_path_factory.mktemp("engine"), "drifted", PLANTED, seed=11)


def test_run_exits_1_and_is_drifted_is_exact_in_every_cell(drifted):
    spec, home, _, run = drifted
    assert run.returncode == 1, run.stdout + run.stderr
    assert "drift found" in run.stdout
    with duckdb.connect(str(home.published), read_only=True) as connection:
        rows = connection.execute(
            "select feature_name, window_start, n_current, is_drifted, is_below_min_rows "
            "from marts.fct_feature_drift order by window_start, feature_name"
        ).fetchall()
        first_window = connection.execute("select min(window_start) from marts.fct_feature_drift").fetchall()[
            0
        ][0]
    assert len(rows) == len(spec["features"]) * DAYS
    for feature, window_start, n_current, is_drifted, below in rows:
        day = (window_start - first_window).days
        planted = feature in PLANTED and day >= PLANTED[feature]
        assert (is_drifted, n_current, below) == (planted, 500, False), (feature, day)


def test_dataset_drift_and_other_marts_follow(drifted):
    _, home, _, _ = drifted
    with duckdb.connect(str(home.published), read_only=True) as connection:
        dataset = connection.execute(
            "select n_features, n_drifted, share_drifted, is_dataset_drifted from marts.fct_dataset_drift "
            "order by window_start"
        ).fetchall()
        performance = connection.execute(
            "select count(distinct window_start), min(n_labelled), "
            "max(case when metric_name = 'roc_auc' then realized_value end), count(*), "
            "count(distinct metric_name) from marts.fct_model_performance"
        ).fetchall()[0]
        versions = connection.execute(
            "select model_version, trigger, status from marts.dim_model_versions"
        ).fetchall()
    expected_drifted = [sum(day >= start for start in PLANTED.values()) for day in range(DAYS)]
    assert [row[1] for row in dataset] == expected_drifted
    assert all(row[0] == 20 and row[2] == pytest.approx(row[1] / 20) and not row[3] for row in dataset)
    assert performance[:2] == (DAYS, 500)
    assert 0.5 < performance[2] <= 1.0
    # long: one row per window and binary metric
    assert performance[3:] == (DAYS * len(PERFORMANCE_METRICS["binary"]), len(PERFORMANCE_METRICS["binary"]))
    assert versions == [(1, "import", "external")]


def test_a_second_run_without_new_rows_reports_the_latest_window(drifted):
    _, home, _, _ = drifted
    files = home.root.parent / "files"
    again = driftmart("run", "--spec", str(files / "spec.yaml"), home=home)
    assert again.returncode == 1
    assert "no new rows; the latest window" in again.stdout


def test_import_twice_changes_nothing(drifted):
    _, home, _, _ = drifted
    files = home.root.parent / "files"
    repeat = import_case(files, home)
    assert repeat.returncode == 0
    assert "already registered as wide_model v1" in repeat.stdout
    assert "logs: 0 rows loaded, 5000 already in the warehouse" in repeat.stdout
    assert "0 new or changed" in repeat.stdout


def test_no_drift_scenario_exits_0_without_false_alarms(tmp_path):
    _, home, _, run = import_and_run(tmp_path, "calm", {}, seed=12)
    assert run.returncode == 0, run.stdout + run.stderr
    with duckdb.connect(str(home.published), read_only=True) as connection:
        assert connection.execute(
            "select count(*) from marts.fct_feature_drift where is_drifted"
        ).fetchall() == [(0,)]
        assert connection.execute("select count(*) from marts.fct_feature_drift").fetchall() == [(20 * DAYS,)]
