"""The expected values pasted into the dbt unit tests are checked here against independent
numpy/scipy/scikit-learn (and exact, tests/dbt/unit_test_expected_statistics.py) computations on
the unit tests' own inputs: dbt compares the SQL's output with them exactly, this checks that they
are right. The chi-squared p-value's paths, beyond the unit tests' cells, are checked on the SQL of
int_window_drift_statistics_computed itself, as dbt compiled it for the session's built home.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.dbt import driftmart_dbt_helpers as helpers
from tests.dbt import unit_test_expected_statistics as statistics_script
from tests.dbt.driftmart_dbt_helpers import DBT_PROJECT_DIR

MARTS = DBT_PROJECT_DIR / "models" / "marts"


def _unit_test(path: Path, name: str) -> dict[str, Any]:
    tests = yaml.safe_load(path.read_text())["unit_tests"]
    (test,) = [t for t in tests if t["name"] == name]
    return test


def _given(test: dict[str, Any], ref: str) -> list[dict[str, Any]]:
    (given,) = [g for g in test["given"] if g["input"] == f"ref('{ref}')"]
    return given["rows"]


def _assert_close(actual: Any, expected: Any, where: str) -> None:
    if expected is None or actual is None:
        assert actual is None and expected is None, f"{where}: {actual!r} != {expected!r}"
    else:
        close = math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-15)
        assert close, f"{where}: {actual!r} != {expected!r}"


def test_statistics_unit_tests_yaml_is_what_the_script_renders():
    assert statistics_script.YAML_PATH.read_text() == statistics_script.render_yaml()


def _statistics_yaml_rows() -> list[dict[str, Any]]:
    tests = yaml.safe_load(statistics_script.YAML_PATH.read_text())["unit_tests"]
    assert [test["model"] for test in tests] == [statistics_script.MODEL] * 2
    return [row for test in tests for row in test["expect"]["rows"]]


def test_statistics_yaml_values_are_independent_or_the_sqls_within_1e_12_of_the_exact_value():
    """Every js_distance / chi2_p_value of the YAML, read back as YAML: numpy/scipy's double or the
    exact one, bit for bit, but for the SQL_DOUBLES cells; all within 1e-12 relative of the exact value."""
    rows = _statistics_yaml_rows()
    cells = {**statistics_script.EVERY_STATISTIC, **statistics_script.CHI2_P_VALUES}
    assert sorted((row["feature_name"], row["window_start"]) for row in rows) == sorted(cells)
    checked = set()
    for row in rows:
        feature, window = row["feature_name"], row["window_start"]
        reference, current = (
            statistics_script._padded(feature, counts) for counts in cells[(feature, window)]
        )
        numpy_values = helpers.drift_statistics(
            statistics_script.feature_bins(feature), np.array(reference), np.array(current)
        )
        assert row["chi2_df"] == numpy_values["chi2_df"], (feature, window)
        if row["chi2_df"] >= 1:
            _assert_close(row["chi2_statistic"], numpy_values["chi2_statistic"], f"{feature} {window} chi2")
        exact = statistics_script.exact_values(feature, window, row["chi2_statistic"], row["chi2_df"])
        for column in statistics_script.EXACT_COLUMNS:
            key = (feature, window, column)
            if column == "chi2_p_value" and row["chi2_df"] < 1:
                assert row[column] is None, key
                continue
            assert math.isclose(row[column], exact[column], rel_tol=1e-12, abs_tol=0.0), (key, row[column])
            if key in statistics_script.SQL_DOUBLES:
                assert row[column] == statistics_script.SQL_DOUBLES[key], key
            else:
                assert row[column] in (numpy_values[column], exact[column]), (key, row[column])
            checked.add(key)
    assert set(statistics_script.SQL_DOUBLES) <= checked
    # the SQL's own doubles: only where nothing else fits (the 7th, k9 js_distance, differs from
    # numpy in the last bit and from the exact value in the 15th digit)
    assert len(statistics_script.SQL_DOUBLES) <= 7


def test_chi2_p_value_fixtures_cover_both_closed_forms_and_underflow():
    rows = statistics_script.expected_rows(statistics_script.CHI2_P_VALUES)
    degrees = {row["chi2_df"] % 2 for row in rows}
    assert degrees == {0, 1}
    half_chi2 = [row["chi2_statistic"] / 2 for row in rows if row["chi2_df"] % 2 == 1]
    assert min(half_chi2) < 4 <= max(half_chi2)  # the erfc series and the trapezoid sum
    assert any(row["chi2_p_value"] == 0.0 for row in rows)
    assert any(0 < row["chi2_p_value"] < 1e-12 for row in rows)


def _performance_windows(test: dict[str, Any]) -> tuple[dict, dict[str, list], dict[str, dict[str, Any]]]:
    """(labels by key, the inference rows per window day, the expected rows per (day, metric)) of a
    fct_model_performance unit test, whose expected rows are long (one per window and metric)."""
    labels = {(r["model_name"], r["request_id"]): r["label"] for r in _given(test, "stg_raw__labels")}
    windows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _given(test, "stg_raw__inference_logs"):
        windows[row["scored_at"][:10]].append(row)
    expected: dict[str, dict[str, Any]] = defaultdict(dict)
    for row in test["expect"]["rows"]:
        assert row["metric_name"] not in expected[row["window_start"]], row
        expected[row["window_start"]][row["metric_name"]] = row
    assert set(expected) == set(windows)
    return labels, windows, expected


def _assert_window_rows(expected: dict[str, Any], task: str, computed: dict[str, Any], where: str) -> None:
    """Every metric of the task, once; the window columns repeated on each; values as computed."""
    from ml.spec import PERFORMANCE_METRICS

    assert list(expected) == list(PERFORMANCE_METRICS[task]), where
    for metric, row in expected.items():
        assert row["task"] == task, where
        for column in ("n_predictions", "n_labelled", "label_coverage", "positive_rate_actual"):
            _assert_close(row[column], computed[column], f"{where} {metric} {column}")
        _assert_close(row["realized_value"], computed[metric], f"{where} {metric}")


def test_model_performance_binary_expectations_match_sklearn():
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    test = _unit_test(MARTS / "performance" / "_performance__unit_tests.yml", "fct_model_performance_binary")
    positive = _given(test, "stg_raw__monitored_models")[0]["positive_label"]
    labels, windows, expected = _performance_windows(test)
    for window, rows in windows.items():
        keys = [(r["model_name"], r["request_id"]) for r in rows]
        labelled = [(r, labels[key]) for r, key in zip(rows, keys, strict=True) if key in labels]
        truth = [label == positive for _, label in labelled]
        predicted = [r["prediction"] == positive for r, _ in labelled]
        pairs = zip(labelled, truth, strict=True)
        scored = [(t, r["probability"]) for (r, _), t in pairs if r["probability"] is not None]
        computed = {
            "n_predictions": len(rows),
            "n_labelled": len(labelled),
            "label_coverage": len(labelled) / len(rows),
            "positive_rate_actual": float(np.mean(truth)) if labelled else None,
            "accuracy": accuracy_score([lab for _, lab in labelled], [r["prediction"] for r, _ in labelled])
            if labelled
            else None,
            "precision": precision_score(truth, predicted) if any(predicted) else None,
            "recall": recall_score(truth, predicted) if any(truth) else None,
            "f1": f1_score(truth, predicted) if any(truth) or any(predicted) else None,
            "roc_auc": roc_auc_score([t for t, _ in scored], [p for _, p in scored])
            if len({t for t, _ in scored}) == 2
            else None,
        }
        _assert_window_rows(expected[window], "binary", computed, window)


def test_estimated_performance_expectations_match_numpy_cbpe():
    """int_estimated_performance_cbpe: each row's probability calibrated by np.interp on its
    version's fit (clipped at the ends, as IsotonicRegression.predict), the expected confusion
    matrix and an O(n^2) pairwise expected AUC (ties one half), recomputed from the test's inputs."""
    path = DBT_PROJECT_DIR / "models" / "intermediate" / "performance" / "_performance__unit_tests.yml"
    test = _unit_test(path, "int_estimated_performance_cbpe")
    models = {row["model_name"]: row for row in _given(test, "stg_raw__monitored_models")}
    fits: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(_given(test, "stg_raw__score_calibrations"), key=lambda r: r["segment_index"]):
        fits[(row["model_name"], row["model_version"])].append(row)
    rows = [
        row
        for row in _given(test, "stg_raw__inference_logs")
        if models[row["model_name"]]["task"] == "binary"
        and (row["model_name"], row["model_version"]) in fits
        and row["prediction"] is not None
        and row["probability"] is not None
    ]
    windows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        windows[(row["model_name"], row["scored_at"][:10])].append(row)
    expected = {(r["model_name"], r["window_start"], r["metric_name"]): r for r in test["expect"]["rows"]}
    computed = {}
    for (model, window), members in windows.items():
        p = []
        for row in members:
            fit = fits[(model, row["model_version"])]
            xs = [fit[0]["score_from"]] + [segment["score_to"] for segment in fit]
            ys = [fit[0]["calibrated_from"]] + [segment["calibrated_to"] for segment in fit]
            p.append(np.interp(row["probability"], xs, ys))
        p = np.array(p)
        d = np.array([row["prediction"] == models[model]["positive_label"] for row in members], dtype=float)
        score = np.array([row["probability"] for row in members])
        tp, fp, fn, tn = (d * p).sum(), (d * (1 - p)).sum(), ((1 - d) * p).sum(), ((1 - d) * (1 - p)).sum()
        above = (score[:, None] > score[None, :]) + 0.5 * (score[:, None] == score[None, :])
        values = {
            "accuracy": (tp + tn) / len(p),
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "roc_auc": (p[:, None] * (1 - p)[None, :] * above).sum() / (p.sum() * (1 - p).sum()),
        }
        for metric, value in values.items():
            computed[(model, window, metric)] = (value, len(p))
    assert set(computed) == set(expected)
    for key, (value, n) in computed.items():
        _assert_close(expected[key]["estimated_value"], value, str(key))
        assert expected[key]["n_estimated"] == n, key


def test_model_performance_multiclass_expectations_match_sklearn():
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    test = _unit_test(
        MARTS / "performance" / "_performance__unit_tests.yml", "fct_model_performance_multiclass"
    )
    classes = [row["class_label"] for row in _given(test, "stg_raw__model_classes")]
    labels, windows, expected = _performance_windows(test)
    undefined_auc = 0
    for window, rows in windows.items():
        labelled = [(r, labels[key]) for r in rows if (key := (r["model_name"], r["request_id"])) in labels]
        truth = [label for _, label in labelled]
        predicted = [r["prediction"] for r, _ in labelled]
        scored = [
            (label, json.loads(r["probabilities_json"])) for r, label in labelled if r["probabilities_json"]
        ]
        auc = None
        if scored and {label for label, _ in scored} == set(classes):
            auc = roc_auc_score(
                [label for label, _ in scored],
                [[probabilities[c] for c in sorted(classes)] for _, probabilities in scored],
                multi_class="ovr",
                average="macro",
            )
        elif labelled:
            undefined_auc += 1
            with pytest.raises(ValueError):  # scikit-learn refuses a window without every class
                roc_auc_score(
                    [label for label, _ in scored],
                    [[probabilities[c] for c in sorted(classes)] for _, probabilities in scored],
                    multi_class="ovr",
                )
        computed = {
            "n_predictions": len(rows),
            "n_labelled": len(labelled),
            "label_coverage": len(labelled) / len(rows),
            "positive_rate_actual": None,
            "accuracy": accuracy_score(truth, predicted) if labelled else None,
            "macro_precision": precision_score(truth, predicted, average="macro", zero_division=0)
            if labelled
            else None,
            "macro_recall": recall_score(truth, predicted, average="macro", zero_division=0)
            if labelled
            else None,
            "macro_f1": f1_score(truth, predicted, average="macro") if labelled else None,
            "weighted_f1": f1_score(truth, predicted, average="weighted") if labelled else None,
            "roc_auc": auc,
        }
        _assert_window_rows(expected[window], "multiclass", computed, window)
    assert undefined_auc == 1


def test_model_performance_regression_expectations_match_sklearn():
    from sklearn.metrics import (
        mean_absolute_error,
        mean_absolute_percentage_error,
        mean_squared_error,
        r2_score,
    )

    test = _unit_test(
        MARTS / "performance" / "_performance__unit_tests.yml", "fct_model_performance_regression"
    )
    labels, windows, expected = _performance_windows(test)

    def number(text: str) -> float | None:
        try:
            value = float(text)
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    for window, rows in windows.items():
        labelled = [(r, labels[key]) for r in rows if (key := (r["model_name"], r["request_id"])) in labels]
        pairs = [(number(label), number(r["prediction"])) for r, label in labelled]
        pairs = [(y, p) for y, p in pairs if y is not None and p is not None]
        y, p = [y for y, _ in pairs], [p for _, p in pairs]
        computed = {
            "n_predictions": len(rows),
            "n_labelled": len(labelled),
            "label_coverage": len(labelled) / len(rows),
            "positive_rate_actual": None,
            "mae": mean_absolute_error(y, p) if pairs else None,
            "rmse": mean_squared_error(y, p) ** 0.5 if pairs else None,
            "mape": mean_absolute_percentage_error(y, p) if pairs else None,
            "r2": r2_score(y, p) if len(pairs) >= 2 else None,
        }
        _assert_window_rows(expected[window], "regression", computed, window)


def test_feature_statistics_expectations_match_numpy():
    test = _unit_test(
        MARTS / "quality" / "_quality__unit_tests.yml", "fct_feature_statistics_numeric_and_categorical"
    )
    references = {r["window_start"]: r["reference_id"] for r in _given(test, "int_window_references")}
    bins = _given(test, "int_reference_bins_frozen")
    categories = {b["category"] for b in bins if b["category"] is not None}
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in _given(test, "int_inference_feature_values_unpivoted"):
        if not row["feature_name"].startswith("__"):
            cells[(row["feature_name"], row["window_start"])].append(row)
    expected = {(row["feature_name"], row["window_start"]): row for row in test["expect"]["rows"]}
    assert set(expected) == set(cells)
    for (feature, window), rows in cells.items():
        numeric = rows[0]["feature_type"] == "numeric"
        values = [r.get("value_number" if numeric else "value_category") for r in rows]
        present = [v for v in values if v is not None]
        numbers = np.array(present, dtype=float) if numeric and present else None
        computed = {
            "n_rows": len(values),
            "n_null": len(values) - len(present),
            "null_share": (len(values) - len(present)) / len(values),
            "n_distinct": len(set(present)),
            "mean": None if numbers is None else float(numbers.mean()),
            "std": None if numbers is None else float(numbers.std(ddof=0)),
            "min": None if numbers is None else float(numbers.min()),
            "max": None if numbers is None else float(numbers.max()),
            "p25": None if numbers is None else float(np.quantile(numbers, 0.25)),
            "p50": None if numbers is None else float(np.quantile(numbers, 0.5)),
            "p75": None if numbers is None else float(np.quantile(numbers, 0.75)),
            "n_unseen": None
            if numeric or references[window] is None
            else sum(v not in categories for v in present),
        }
        for column, value in computed.items():
            _assert_close(expected[(feature, window)][column], value, f"{feature} {window} {column}")


P_VALUE_DFS = (1, 2, 3, 4, 9, 10, 51, 200)
P_VALUE_XS = (1e-6, 0.3, 2.0, 7.9, 8.0, 8.1, 20.0, 60.0, 150.0, 400.0, 1400.0)
REFERENCE_ROWS = 10**6  # per category: x = 2 t^2 / REFERENCE_ROWS when t rows move between two
STATISTICS_SQL = Path(
    "compiled", "driftmart", "models", "intermediate", "drift", "int_window_drift_statistics_computed.sql"
)


@pytest.fixture(scope="module")
def sql_p_values(built_home) -> dict[tuple[int, float], dict[str, Any]]:
    """int_window_drift_statistics_computed's SQL, as dbt compiled it for the built home, on a
    categorical feature of df + 1 equal reference categories per df, one window per x, where t rows
    of the window moved from the first category to the second (x = 2 t^2 / REFERENCE_ROWS)."""
    import duckdb

    from orchestration.dbt_setup import dbt_target_path

    sql = (dbt_target_path(built_home) / STATISTICS_SQL).read_text()
    counts, bins, cells = [], [], {}
    windows = {x: f"2024-01-{day:02d}" for day, x in enumerate(P_VALUE_XS, start=1)}
    references = [("m", "model_version:1", window) for window in windows.values()]
    for df in P_VALUE_DFS:
        feature = f"k{df}"
        labels = [f"v{i}" for i in range(1, df + 2)] + ["__unseen__", "__null__"]
        for bin_id, label in enumerate(labels, start=1):
            bins.append(("m", "model_version:1", feature, "categorical", bin_id, label))
        for x, window in windows.items():
            moved = max(1, round(math.sqrt(x * REFERENCE_ROWS / 2)))
            current = [REFERENCE_ROWS + moved, REFERENCE_ROWS - moved] + [REFERENCE_ROWS] * (df - 1) + [0, 0]
            reference = [REFERENCE_ROWS] * (df + 1) + [0, 0]
            for bin_id, (n_rows, n_reference) in enumerate(zip(current, reference, strict=True), start=1):
                counts.append(("m", "model_version:1", feature, bin_id, n_rows, n_reference, window))
            cells[(feature, window)] = (df, x, 2 * moved**2 / REFERENCE_ROWS)
    with duckdb.connect() as connection:
        connection.execute("attach ':memory:' as driftmart")
        connection.execute("create schema driftmart.intermediate")
        connection.execute(
            "create table driftmart.intermediate.int_window_bin_counts_aggregated (model_name varchar, "
            "reference_id varchar, feature_name varchar, bin_id integer, n_rows bigint, "
            "n_reference_rows bigint, window_start timestamp, window_end timestamp)"
        )
        connection.executemany(
            "insert into driftmart.intermediate.int_window_bin_counts_aggregated "
            "values (?, ?, ?, ?, ?, ?, ?::timestamp, ?::timestamp + interval 1 day)",
            [(*row, row[-1]) for row in counts],
        )
        connection.execute(
            "create table driftmart.intermediate.int_window_references "
            "(model_name varchar, reference_id varchar, window_start timestamp)"
        )
        connection.executemany(
            "insert into driftmart.intermediate.int_window_references values (?, ?, ?)", references
        )
        connection.execute(
            "create table driftmart.intermediate.int_reference_bins_frozen (model_name varchar, "
            "reference_id varchar, feature_name varchar, feature_type varchar, bin_id integer, "
            "bin_label varchar, lower_bound double, upper_bound double, reference_std double, "
            "reference_min double, reference_max double)"
        )
        connection.executemany(
            "insert into driftmart.intermediate.int_reference_bins_frozen "
            "values (?, ?, ?, ?, ?, ?, null, null, null, null, null)",
            bins,
        )
        cursor = connection.execute(
            f"select feature_name, strftime(window_start, '%Y-%m-%d') as window_start, chi2_statistic, "
            f"chi2_p_value, chi2_df from ({sql}) as model_output"
        )
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    assert len(rows) == len(cells)
    return {
        cells[(row["feature_name"], row["window_start"])][:2]: {
            **row,
            "exact_chi2": cells[(row["feature_name"], row["window_start"])][2],
        }
        for row in rows
    }


@pytest.mark.parametrize("df", P_VALUE_DFS)
def test_sql_p_value_agrees_with_scipy_on_every_path(sql_p_values, df):
    """The SQL's p-value (closed forms, erfc series / trapezoid sum) against scipy.stats.chi2.sf of
    its own statistic, at small and large x on both sides of the series' switch at x / 2 = 4."""
    from scipy import stats

    for x in P_VALUE_XS:
        row = sql_p_values[(df, x)]
        assert row["chi2_df"] == df, row
        assert math.isclose(row["chi2_statistic"], row["exact_chi2"], rel_tol=1e-12), row
        expected = stats.chi2.sf(row["chi2_statistic"], df)
        if expected > 1e-300:
            assert math.isclose(row["chi2_p_value"], expected, rel_tol=1e-9), (df, x, row, expected)
        else:
            assert row["chi2_p_value"] < 1e-290, (df, x, row)
