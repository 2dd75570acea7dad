"""Tasks end to end (binary, multiclass, regression): `driftmart import` of a reference and seven daily
windows of logs with inline labels, `driftmart run --no-retrain`, and the published marts checked
against an independent implementation (scikit-learn), never against the SQL's own output.

Windows 1-3 are stable; windows 4-7 carry a planted shift of the model's output (the features do not
move): prediction drift must be quiet on the first and fire on the others. One shared home holds
the three models (one build). The importer's task checks (numbers for regression, classes for
multiclass, a positive label that exists for binary) are refusals with a clear message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from ml.spec import PERFORMANCE_METRICS, load_spec
from tests.test_cli import driftmart
from warehouse.home import Home
from warehouse.importer import ImportFileError, import_files

DAYS = 7
STABLE_DAYS = 3  # windows 1-3 stable, 4-7 shifted
ROWS_PER_DAY = 300
REFERENCE_ROWS = 1500
START = datetime(2024, 3, 1)
CLASSES = ("0", "1", "2")
TOLERANCE = {"rel": 1e-9, "abs": 1e-9}


def _features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x1": rng.normal(0.0, 1.0, n),
            "x2": rng.normal(5.0, 2.0, n),
            "region": rng.choice(["north", "south", "east"], n),
        }
    )


def _scored_at(rng: np.random.Generator, day: int, n: int) -> list[str]:
    seconds = np.sort(rng.integers(0, 86400, n))
    return [(START + timedelta(days=day, seconds=int(s))).isoformat() for s in seconds]


def _regression_outputs(rng: np.random.Generator, frame: pd.DataFrame, shifted: bool) -> pd.DataFrame:
    """A predicted price (shifted windows: a biased model, +35) and the true price near it."""
    predicted = (
        200 + 30 * frame["x1"] + 6 * frame["x2"] + rng.normal(0, 5, len(frame)) + (35 if shifted else 0)
    )
    actual = 200 + 30 * frame["x1"] + 6 * frame["x2"] + rng.normal(0, 12, len(frame))
    return pd.DataFrame({"predicted_price": predicted, "price": actual})


def _multiclass_outputs(rng: np.random.Generator, frame: pd.DataFrame, shifted: bool) -> pd.DataFrame:
    """Softmax probabilities of three classes (shifted windows: class 2's score raised), the argmax
    as prediction and a label drawn from the unshifted probabilities."""
    logits = np.column_stack(
        [0.9 * frame["x1"], 0.3 * (frame["x2"] - 5), -0.7 * frame["x1"] + 0.2 * (frame["x2"] - 5)]
    )
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scored = logits + (np.array([0.0, 0.0, 1.6]) if shifted else 0.0)
    probabilities = np.exp(scored) / np.exp(scored).sum(axis=1, keepdims=True)
    labels = [rng.choice(3, p=row) for row in truth]
    outputs = pd.DataFrame({f"p_{c}": probabilities[:, int(c)] for c in CLASSES})
    outputs["segment"] = probabilities.argmax(axis=1)
    outputs["true_segment"] = labels
    return outputs


def _binary_outputs(rng: np.random.Generator, frame: pd.DataFrame, shifted: bool) -> pd.DataFrame:
    score = 1.2 * frame["x1"] - 0.3 * (frame["x2"] - 5) + (1.5 if shifted else 0.0)
    probability = 1 / (1 + np.exp(-score))
    truth = 1 / (1 + np.exp(-(1.2 * frame["x1"] - 0.3 * (frame["x2"] - 5))))
    return pd.DataFrame(
        {
            "score": probability,
            "approved": np.where(probability >= 0.5, "yes", "no"),
            "repaid": np.where(rng.random(len(frame)) < truth, "yes", "no"),
        }
    )


TASKS = {
    "regression": {
        "spec": {
            "model": "house_price",
            "task": "regression",
            "prediction": "predicted_price",
            "target": "price",
        },
        "outputs": _regression_outputs,
    },
    "multiclass": {
        "spec": {
            "model": "segment_model",
            "task": "multiclass",
            "prediction": "segment",
            "target": "true_segment",
            "prediction_proba": {int(c): f"p_{c}" for c in CLASSES},
        },
        "outputs": _multiclass_outputs,
    },
    "binary": {
        "spec": {
            "model": "approval",
            "prediction": "approved",
            "target": "repaid",
            "prediction_proba": "score",
            "positive_label": "yes",
        },
        "outputs": _binary_outputs,
    },
}


def write_task_case(root: Path, task: str, seed: int = 3) -> Path:
    """spec.yaml, reference.csv and logs.csv (7 days, inline labels) of one task's model in `root`."""
    rng = np.random.default_rng(seed)
    case = TASKS[task]
    spec = {
        **case["spec"],
        "timestamp": "scored_at",
        "id": "request_id",
        "window": "1d",
        "features": {"x1": "numeric", "x2": "numeric", "region": "categorical"},
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    features = _features(rng, REFERENCE_ROWS)
    pd.concat([features, case["outputs"](rng, features, False)], axis=1).to_csv(
        root / "reference.csv", index=False
    )
    days = []
    for day in range(DAYS):
        features = _features(rng, ROWS_PER_DAY)
        outputs = case["outputs"](rng, features, day >= STABLE_DAYS)
        ids = pd.DataFrame(
            {
                "request_id": [f"{day}-{i}" for i in range(ROWS_PER_DAY)],
                "scored_at": _scored_at(rng, day, ROWS_PER_DAY),
            }
        )
        days.append(pd.concat([ids, features, outputs], axis=1))
    pd.concat(days, ignore_index=True).to_csv(root / "logs.csv", index=False)
    return root


def import_models(root: Path, tasks: list[str]) -> Home:
    """`driftmart import` of each task's model into one home, then one `driftmart run
    --no-retrain`: its dbt build computes every model's marts."""
    home = Home.resolve(root / "home")
    for task in tasks:
        files = root / task / "files"
        imported = driftmart(
            "import",
            "--spec",
            str(files / "spec.yaml"),
            "--reference",
            str(files / "reference.csv"),
            "--logs",
            str(files / "logs.csv"),
            home=home,
        )
        assert imported.returncode == 0, imported.stdout + imported.stderr
        assert f"logs: {DAYS * ROWS_PER_DAY} rows loaded" in imported.stdout
    spec = root / tasks[-1] / "files" / "spec.yaml"
    run = driftmart("run", "--spec", str(spec), "--no-retrain", home=home, timeout=600)
    assert run.returncode in (0, 1), run.stdout + run.stderr  # 1: drift found (the planted shift)
    return home


@dataclass(frozen=True)
class ModelHome:
    """One model of a shared home: `_query` then sees that model's rows only."""

    home: Home
    model: str


def _query(home: Home | ModelHome, sql: str, parameters: list | None = None) -> list[dict]:
    """`sql` on the published copy; for a ModelHome every table it names shows that model's rows
    only (in-memory views over the attached copy), so each task's checks read the shared home as if
    it held their model alone."""
    model = home.model if isinstance(home, ModelHome) else None
    home = home.home if isinstance(home, ModelHome) else home
    with duckdb.connect() as connection:
        connection.execute(f"attach '{home.published}' as published (read_only)")
        tables = connection.execute(
            "select table_schema, table_name from information_schema.tables where table_catalog = 'published'"
        ).fetchall()
        for schema, table in tables:
            connection.execute(f'create schema if not exists "{schema}"')
            columns = {
                row[0] for row in connection.execute(f'describe published."{schema}"."{table}"').fetchall()
            }
            where = f"where model_name = '{model}'" if model and "model_name" in columns else ""
            connection.execute(
                f'create view "{schema}"."{table}" as select * from published."{schema}"."{table}" {where}'
            )
        cursor = connection.execute(sql, parameters or [])
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _logs_by_day(root: Path) -> dict[int, pd.DataFrame]:
    logs = pd.read_csv(root / "files" / "logs.csv", dtype={"segment": str, "true_segment": str})
    day = (pd.to_datetime(logs["scored_at"]) - START).dt.days
    return {int(d): rows for d, rows in logs.groupby(day)}


@pytest.fixture(scope="module")
def shared_task_home(tmp_path_factory) -> tuple[Path, Home]:
    """Every task's model in one home, built by one run (a dbt build costs ~10-30 s)."""
    root = tmp_path_factory.mktemp("tasks")
    for task in TASKS:
        write_task_case(root / task / "files", task)
    return root, import_models(root, list(TASKS))


@pytest.fixture(params=list(TASKS))
def task_home(request, shared_task_home) -> tuple[str, Path, ModelHome]:
    root, home = shared_task_home
    return request.param, root / request.param, ModelHome(home, TASKS[request.param]["spec"]["model"])


def _sklearn_metrics(task: str, rows: pd.DataFrame) -> dict[str, float]:
    from sklearn import metrics

    if task == "regression":
        y, p = rows["price"].to_numpy(), rows["predicted_price"].to_numpy()
        return {
            "mae": metrics.mean_absolute_error(y, p),
            "rmse": metrics.mean_squared_error(y, p) ** 0.5,
            "mape": metrics.mean_absolute_percentage_error(y, p),
            "r2": metrics.r2_score(y, p),
        }
    if task == "multiclass":
        y, p = rows["true_segment"].to_numpy(), rows["segment"].to_numpy()
        scores = rows[[f"p_{c}" for c in CLASSES]].to_numpy()
        return {
            "accuracy": metrics.accuracy_score(y, p),
            "macro_precision": metrics.precision_score(y, p, average="macro", zero_division=0),
            "macro_recall": metrics.recall_score(y, p, average="macro", zero_division=0),
            "macro_f1": metrics.f1_score(y, p, average="macro"),
            "weighted_f1": metrics.f1_score(y, p, average="weighted"),
            "roc_auc": metrics.roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=CLASSES),
        }
    y, p = (rows["repaid"] == "yes").to_numpy(), (rows["approved"] == "yes").to_numpy()
    return {
        "accuracy": metrics.accuracy_score(y, p),
        "precision": metrics.precision_score(y, p),
        "recall": metrics.recall_score(y, p),
        "f1": metrics.f1_score(y, p),
        "roc_auc": metrics.roc_auc_score(y, rows["score"].to_numpy()),
    }


@pytest.mark.slow
def test_every_realized_metric_equals_scikit_learn_in_every_window(task_home):
    task, root, home = task_home
    rows = _query(home, "select * from marts.fct_model_performance order by window_start, metric_name")
    logs = _logs_by_day(root)
    assert {r["task"] for r in rows} == {task}
    assert len(rows) == DAYS * len(PERFORMANCE_METRICS[task])
    cells: dict[int, dict[str, dict]] = {}
    for row in rows:
        cells.setdefault((row["window_start"] - START).days, {})[row["metric_name"]] = row
    assert sorted(cells) == list(range(DAYS))
    for day, metrics in cells.items():
        assert list(metrics) == sorted(PERFORMANCE_METRICS[task]), day
        expected = _sklearn_metrics(task, logs[day])
        for name, row in metrics.items():
            assert (row["n_predictions"], row["n_labelled"], row["label_coverage"]) == (
                ROWS_PER_DAY,
                ROWS_PER_DAY,
                1.0,
            )
            assert row["window_end"] - row["window_start"] == timedelta(days=1)
            assert row["realized_value"] == pytest.approx(expected[name], **TOLERANCE), (day, name)


@pytest.mark.slow
def test_prediction_drift_is_quiet_on_stable_windows_and_fires_on_the_shifted_ones(task_home):
    task, _, home = task_home
    rows = _query(home, "select * from marts.fct_prediction_drift order by window_start")
    assert [(r["window_start"] - START).days for r in rows] == list(range(DAYS))
    for row in rows:
        day = (row["window_start"] - START).days
        assert row["task"] == task and row["has_reference"] and not row["is_below_min_rows"]
        assert row["is_drifted"] is (day >= STABLE_DAYS), (day, row)
    stable = [r for r in rows if (r["window_start"] - START).days < STABLE_DAYS]
    shifted = [r for r in rows if (r["window_start"] - START).days >= STABLE_DAYS]
    if task == "regression":
        # the predicted value as a numeric pseudo-feature, never as classes
        for row in rows:
            assert row["positive_rate"] is None and row["probability_psi"] is None
            assert row["prediction_ks_statistic"] is not None
            assert row["prediction_wasserstein_normed"] is not None
        assert max(r["prediction_psi"] for r in stable) < 0.2 <= min(r["prediction_psi"] for r in shifted)
        bins = _query(
            home,
            "select distinct feature_type, category from intermediate.int_reference_bins_frozen "
            "where feature_name = '__prediction__'",
        )
        assert bins == [{"feature_type": "numeric", "category": None}]
        (reference,) = _query(
            home, "select avg(try_cast(prediction as double)) as mean from raw.reference_rows"
        )
        assert all(abs(r["mean_prediction"] - reference["mean"]) < 5 for r in stable)
        assert all(r["mean_prediction"] - reference["mean"] > 25 for r in shifted)
    elif task == "multiclass":
        assert max(r["probability_psi"] for r in stable) < 0.2 <= min(r["probability_psi"] for r in shifted)
        # one numeric pseudo-feature per class; the mart shows the class that moved most
        per_class = _query(
            home,
            "select window_start, feature_name, feature_type, psi, ks_statistic "
            "from intermediate.int_window_drift_statistics_computed "
            "where feature_name like '__probability__%' order by window_start, feature_name",
        )
        assert {(c["feature_name"], c["feature_type"]) for c in per_class} == {
            (f"__probability__:{c}", "numeric") for c in CLASSES
        }
        for row in rows:
            cells = [c for c in per_class if c["window_start"] == row["window_start"]]
            assert len(cells) == len(CLASSES)
            largest = max(cells, key=lambda c: c["psi"])
            assert row["probability_psi"] == largest["psi"]
            assert row["probability_psi_class"] == largest["feature_name"].removeprefix("__probability__:")
            assert row["probability_ks_statistic"] == max(c["ks_statistic"] for c in cells)
        # the class whose score was raised moved past the threshold in every shifted window
        raised = [c for c in per_class if c["feature_name"] == "__probability__:2"]
        assert all(c["psi"] >= 0.2 for c in raised if (c["window_start"] - START).days >= STABLE_DAYS)
        for row in rows:
            assert row["positive_rate"] is None and row["mean_probability"] is None
    else:
        assert max(r["probability_psi"] for r in stable) < 0.2 <= min(r["probability_psi"] for r in shifted)
        assert all(r["positive_rate"] is not None for r in rows)
    # the features did not move: the shift is the output's alone
    assert not _query(home, "select * from marts.fct_feature_drift where is_drifted")
    # pseudo-features stay out of the feature marts
    for mart in ("fct_feature_drift", "fct_feature_statistics"):
        names = _query(home, f"select distinct feature_name from marts.{mart} order by 1")
        assert [n["feature_name"] for n in names] == ["region", "x1", "x2"], mart


@pytest.mark.slow
def test_imported_rows_keep_the_task_and_the_class_probabilities(task_home):
    task, root, home = task_home
    (model,) = _query(home, "select task from raw.monitored_models")
    assert model["task"] == task
    logs = pd.read_csv(root / "files" / "logs.csv", dtype=str).set_index("request_id")
    stored = _query(home, "select request_id, prediction, probability, probabilities from raw.inference_log")
    for row in stored[:50]:
        source = logs.loc[row["request_id"]]
        if task == "multiclass":
            assert row["probability"] is None
            assert json.loads(row["probabilities"]) == {c: float(source[f"p_{c}"]) for c in CLASSES}
        else:
            assert row["probabilities"] is None
        if task == "regression":
            assert float(row["prediction"]) == float(source["predicted_price"])
    if task == "multiclass":
        (reference,) = _query(
            home, "select count(*) as n, count(probabilities) as with_probabilities from raw.reference_rows"
        )
        assert reference == {"n": REFERENCE_ROWS, "with_probabilities": REFERENCE_ROWS}


# --- the importer's task checks -----------------------------------------------------------------


@pytest.fixture
def case(tmp_path):
    """A task's files to spoil: (spec, files folder, reference frame, logs frame)."""

    def make(task: str):
        files = write_task_case(tmp_path / task, task)
        reference = pd.read_csv(files / "reference.csv", dtype=str)
        logs = pd.read_csv(files / "logs.csv", dtype=str)
        return load_spec(files / "spec.yaml"), files, reference, logs

    return make


def _refused(home: Home, spec, reference: Path, logs: Path | None, message: str) -> None:
    with pytest.raises(ImportFileError) as refused:
        import_files(home, spec, reference, logs)
    assert message in str(refused.value)
    assert (
        not home.warehouse.exists()
        or not duckdb.connect(str(home.warehouse), read_only=True)
        .execute("select count(*) from raw.inference_log")
        .fetchall()[0][0]
    )


def test_regression_predictions_and_targets_must_be_numbers(case, tmp_path):
    spec, files, reference, logs = case("regression")
    home = Home.resolve(tmp_path / "home").ensure()
    logs.loc[4, "predicted_price"] = "about 200"
    logs.to_csv(files / "bad_logs.csv", index=False)
    _refused(
        home,
        spec,
        files / "reference.csv",
        files / "bad_logs.csv",
        f"{files / 'bad_logs.csv'}: column 'predicted_price': 'about 200' at row 5 (line 6) is not a number",
    )
    logs = pd.read_csv(files / "logs.csv", dtype=str)
    logs.loc[2, "price"] = "n/a?"
    logs.to_csv(files / "bad_targets.csv", index=False)
    _refused(
        home,
        spec,
        files / "reference.csv",
        files / "bad_targets.csv",
        f"{files / 'bad_targets.csv'}: column 'price': 'n/a?' at row 3 (line 4) is not a number",
    )
    reference.loc[0, "price"] = "cheap"
    reference.to_csv(files / "bad_reference.csv", index=False)
    _refused(
        home,
        spec,
        files / "bad_reference.csv",
        None,
        f"{files / 'bad_reference.csv'}: column 'price': 'cheap' at row 1 (line 2) is not a number",
    )


def test_multiclass_classes_must_be_the_specs_and_probabilities_in_0_1(case, tmp_path):
    spec, files, reference, logs = case("multiclass")
    home = Home.resolve(tmp_path / "home").ensure()
    logs.loc[7, "segment"] = "3"
    logs.to_csv(files / "bad_logs.csv", index=False)
    _refused(
        home,
        spec,
        files / "reference.csv",
        files / "bad_logs.csv",
        f"{files / 'bad_logs.csv'}: column 'segment': '3' at row 8 (line 9) is not a class of the spec's "
        "prediction_proba mapping ('0', '1', '2')",
    )
    reference.loc[1, "true_segment"] = "gold"
    reference.to_csv(files / "bad_reference.csv", index=False)
    _refused(
        home,
        spec,
        files / "bad_reference.csv",
        None,
        f"{files / 'bad_reference.csv'}: column 'true_segment': 'gold' at row 2 (line 3) is not a class",
    )
    logs = pd.read_csv(files / "logs.csv", dtype=str)
    logs.loc[0, "p_1"] = "1.5"
    logs.to_csv(files / "bad_probability.csv", index=False)
    _refused(
        home,
        spec,
        files / "reference.csv",
        files / "bad_probability.csv",
        f"{files / 'bad_probability.csv'}: column 'p_1': 1.5 at row 1 (line 2) is not a probability",
    )
    pd.read_csv(files / "logs.csv", dtype=str).drop(columns=["p_2"]).to_csv(
        files / "partial.csv", index=False
    )
    _refused(
        home,
        spec,
        files / "reference.csv",
        files / "partial.csv",
        f"{files / 'partial.csv'}: missing probability column(s) 'p_2'",
    )
    # predictions written as 1.0 are the class "1" (label text), and import
    logs = pd.read_csv(files / "logs.csv", dtype=str)
    logs["segment"] = logs["segment"].str.replace(r"^(\d)$", r"\1.0", regex=True)
    logs.to_csv(files / "floats.csv", index=False)
    result = import_files(home, spec, files / "reference.csv", files / "floats.csv")
    assert result.n_log_rows_loaded == DAYS * ROWS_PER_DAY


def test_binary_positive_label_must_be_a_class_of_the_reference(case, tmp_path):
    spec, files, _, _ = case("binary")
    home = Home.resolve(tmp_path / "home").ensure()
    text = (files / "spec.yaml").read_text().replace("positive_label: 'yes'", "positive_label: '1'")
    assert text != (files / "spec.yaml").read_text()
    (files / "wrong_label.yaml").write_text(text)
    _refused(
        home,
        load_spec(files / "wrong_label.yaml"),
        files / "reference.csv",
        files / "logs.csv",
        f"{files / 'reference.csv'}: positive_label '1' matches no class of the reference's 'approved' / "
        "'repaid' ('no', 'yes'): set the spec's positive_label to the positive class",
    )
    assert import_files(home, spec, files / "reference.csv", files / "logs.csv").n_log_rows_loaded
