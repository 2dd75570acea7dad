"""Column names as real data has them (issue item 5): mixed case, spaces, dots, a leading digit,
non-ASCII, `/` and `~` (JSON-pointer escapes), quotes, a backslash and SQL meant to break out of a
quoted name. One case is imported from CSV and run with the real `driftmart import` + `driftmart
run`; every name must come out exactly as written in the marts, the Prometheus label values and the
Evidently report, and nothing may break or execute (raw.labels is still there, with the labels)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import pytest
import yaml

from ml.datasets import wide_case
from tests.observability.conftest import scrape_text
from tests.test_cli import driftmart
from warehouse.home import Home

pytestmark = pytest.mark.slow

DROP_LABELS = 'x"; drop table raw.labels; --'
FEATURES = {
    "num_00": "Annual Income",  # drifts from day 2 on
    "num_01": "credit.score",
    "num_02": "1st payment",
    "num_03": DROP_LABELS,
    "cat_00": "it's",
    "cat_01": "back\\slash",
    "cat_02": "Größe/Typ ~1 🚗",
}
COLUMNS = {
    "event_time": "Scored At",
    "row_id": "Request.ID",
    "score_label": "Predicted Class",
    "score": "P(yes) 'raw'",
    "outcome": 'label"); drop table raw.inference_log; --',
    **FEATURES,
}
DRIFTED = "Annual Income"
DAYS, ROWS_PER_DAY = 3, 300


def _hostile_case(root: Path) -> tuple[Path, dict]:
    spec, reference, logs = wide_case(
        days=DAYS, rows_per_day=ROWS_PER_DAY, n_numeric=4, n_categorical=3, drift={"num_00": 2}, seed=11
    )
    renamed = {
        **spec,
        "model": "hostile_names",
        **{
            key: COLUMNS[spec[key]] for key in ("timestamp", "id", "prediction", "prediction_proba", "target")
        },
        "features": {COLUMNS[name]: kind for name, kind in spec["features"].items()},
    }
    (root / "spec.yaml").write_text(
        yaml.safe_dump(renamed, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    reference.rename(columns=COLUMNS).to_csv(root / "reference.csv", index=False)
    logs.rename(columns=COLUMNS).to_csv(root / "logs.csv", index=False)  # labels inline
    return root, renamed


@pytest.fixture(scope="module")
def hostile_home(tmp_path_factory) -> tuple[Home, dict, subprocess.CompletedProcess]:
    files, spec = _hostile_case(tmp_path_factory.mktemp("hostile-files"))
    home = Home.resolve(tmp_path_factory.mktemp("hostile-home"))
    spec_path = str(files / "spec.yaml")
    imported = driftmart(
        "import",
        "--spec",
        spec_path,
        "--reference",
        str(files / "reference.csv"),
        "--logs",
        str(files / "logs.csv"),
        home=home,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "ignored" not in imported.stdout  # every column has its name in the spec
    run = driftmart("run", "--spec", spec_path, "--no-retrain", home=home, timeout=900)
    return home, spec, run


def test_the_run_finds_the_planted_drift_and_names_it(hostile_home):
    _, _, run = hostile_home
    assert run.returncode == 1, run.stdout + run.stderr  # 1: drift found, 2 would be an error
    assert DRIFTED in run.stdout


def _published(home: Home) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(home.root / "published" / "driftmart.duckdb"), read_only=True)


def test_nothing_executes_and_the_labels_are_all_there(hostile_home):
    home, _, _ = hostile_home
    for path in (home.warehouse, home.root / "published" / "driftmart.duckdb"):
        with duckdb.connect(str(path), read_only=True) as connection:
            tables = {
                row[0]
                for row in connection.execute(
                    "select table_schema || '.' || table_name from information_schema.tables"
                ).fetchall()
            }
            assert {"raw.labels", "raw.inference_log", "raw.reference_rows"} <= tables
            assert connection.execute(
                "select count(*), count(distinct label) from raw.labels"
            ).fetchall() == [(DAYS * ROWS_PER_DAY, 2)]
            assert connection.execute("select count(*) from raw.inference_log").fetchall() == [
                (DAYS * ROWS_PER_DAY,)
            ]


def test_every_mart_keeps_the_feature_names_exactly(hostile_home):
    home, spec, _ = hostile_home
    with _published(home) as connection:
        for mart in ("marts.fct_feature_drift", "marts.fct_feature_statistics"):
            names = {
                row[0] for row in connection.execute(f"select distinct feature_name from {mart}").fetchall()
            }
            assert names == set(spec["features"]), mart
        keys = connection.execute(
            "select list_concat(map_keys(feature_numbers), map_keys(feature_categories)) "
            "from raw.inference_log limit 1"
        ).fetchone()[0]
        assert set(keys) == set(spec["features"])
        drifted = dict(
            connection.execute(
                "select feature_name, bool_or(is_drifted) from marts.fct_feature_drift "
                "where window_start >= timestamp '2026-02-03' group by feature_name"
            ).fetchall()
        )
        before = connection.execute(
            "select count(*) from marts.fct_feature_drift where feature_name = ? and is_drifted "
            "and window_start < timestamp '2026-02-03'",
            [DRIFTED],
        ).fetchone()[0]
        # Each name found its values: the data has no missing value, and two samples of a feature
        # never give a drift score of exactly 0 (a name read as all-missing on both sides would).
        values = connection.execute(
            "select feature_name, min(drift_score) > 0 from marts.fct_feature_drift group by 1"
        ).fetchall()
        null_shares = connection.execute(
            "select feature_name, max(null_share) from marts.fct_feature_statistics group by 1"
        ).fetchall()
    assert drifted[DRIFTED] is True
    assert before == 0
    assert dict(values) == dict.fromkeys(spec["features"], True)
    assert dict(null_shares) == dict.fromkeys(spec["features"], 0.0)


def test_prometheus_carries_the_names_as_label_values(hostile_home):
    from tests.observability.conftest import parse_samples

    home, spec, _ = hostile_home
    text = scrape_text(home)
    samples = parse_samples(text)
    for metric in ("driftmart_feature_psi", "driftmart_feature_drift_score", "driftmart_feature_drifted"):
        labelled = {dict(labels)["feature"] for labels in samples[metric]}
        assert labelled == set(spec["features"]), metric
    drifted = {
        dict(labels)["feature"]: value for labels, value in samples["driftmart_feature_drifted"].items()
    }
    assert drifted[DRIFTED] == 1.0
    assert 'feature="back\\\\slash"' in text  # escaped by the exposition format, not mangled
    assert 'feature="x\\"; drop table raw.labels; --"' in text


def _columns(value) -> set[str]:
    """Every value under a "column" key anywhere in a JSON document."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "column" and isinstance(item, str):
                found.add(item)
            found |= _columns(item)
    elif isinstance(value, list):
        for item in value:
            found |= _columns(item)
    return found


def test_the_evidently_report_mentions_every_name(hostile_home):
    home, spec, _ = hostile_home
    (summary,) = (home.root / "reports" / spec["model"]).glob("*/summary.json")
    report = json.loads(summary.read_text())
    assert [column["column"] for column in report["features"]] == list(spec["features"])
    outputs = {column["column"] for column in report["outputs"]}
    assert {spec["prediction"], spec["prediction_proba"]} <= outputs
    full = json.loads((summary.parent / "report.json").read_text())
    assert set(spec["features"]) <= _columns(full)
    html = (summary.parent / "report.html").read_text()
    for name in spec["features"]:
        assert json.dumps(name)[1:-1] in html or name in html, name
