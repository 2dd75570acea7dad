"""The dbt project on a generated warehouse: schemas, frozen bins, every drift statistic and verdict
against an independent numpy/scipy implementation, the drift checks, the other marts, and the
incremental path (late rows and new windows re-count only their windows, and for a rolling
reference the window after them).

Three models, one per reference kind: car_loan (model_version), churn (time_range) and fraud
(previous_window). One module-scoped warehouse, built twice: a first `dbt build` on a fresh
DRIFTMART_HOME (unit tests included), then a second after loading late and new rows. Each build
costs ~10 s.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.dbt import driftmart_dbt_helpers as helpers

pytestmark = pytest.mark.slow

STATISTICS = (
    "n_reference",
    "psi",
    "js_distance",
    "kl_divergence",
    "hellinger",
    "l_infinity",
    "ks_statistic",
    "wasserstein_normed",
    "chi2_statistic",
    "chi2_p_value",
)
DRIFT_CHECKS = (
    "test.driftmart.feature_drift_not_detected_fct_feature_drift_",
    "test.driftmart.dataset_drift_not_detected_fct_dataset_drift_",
    "test.driftmart.prediction_drift_not_detected_fct_prediction_drift_",
    "test.driftmart.performance_not_degraded_fct_model_performance_",
)
# (model, window day in March 2024) that the second load touches, directly or through a reference.
RECOUNTED = {
    ("car_loan", 2),  # late rows
    ("car_loan", 6),  # new window
    # churn: late rows inside its time-range reference, so the reference is frozen again and every
    # churn window is recounted against it (see recounted() below)
    ("fraud", 3),  # late rows
    ("fraud", 4),  # its previous-window reference (day 3) got late rows
    ("fraud", 7),  # new window
}


def _table(database: Path, name: str, order: str) -> list[dict[str, Any]]:
    return helpers.query(database, f"select * from {name} order by {order}")


def _snapshot(database: Path) -> dict[str, Any]:
    return {
        "feature_drift": _table(
            database, "marts.fct_feature_drift", "model_name, feature_name, window_start"
        ),
        "dataset_drift": _table(database, "marts.fct_dataset_drift", "model_name, window_start"),
        "prediction_drift": _table(database, "marts.fct_prediction_drift", "model_name, window_start"),
        "feature_statistics": _table(
            database, "marts.fct_feature_statistics", "model_name, feature_name, window_start"
        ),
        "model_performance": _table(
            database, "marts.fct_model_performance", "model_name, window_start, metric_name"
        ),
        "model_versions": _table(database, "marts.dim_model_versions", "model_name, model_version"),
        "bin_counts": _table(
            database,
            "intermediate.int_window_bin_counts_aggregated",
            "model_name, feature_name, window_start, bin_id",
        ),
        "bins": _table(
            database,
            "intermediate.int_reference_bins_frozen",
            "model_name, reference_id, feature_name, bin_id",
        ),
        "window_references": _table(
            database, "intermediate.int_window_references", "model_name, window_start"
        ),
        "failures": {
            name: helpers.query(database, f"select * from intermediate.{name.split('.')[-1]}")
            for name in DRIFT_CHECKS
        },
        "schemas": {
            row["schema_name"]
            for row in helpers.query(
                database,
                "select schema_name from information_schema.schemata where catalog_name = 'driftmart'",
            )
        },
    }


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    assert helpers.DBT_EXECUTABLE.exists(), f"dbt not found next to {helpers.sys.executable}"
    home = tmp_path_factory.mktemp("driftmart_home")
    database = home / "driftmart.duckdb"
    first, second = helpers.first_load(), helpers.second_load()
    helpers.create_raw_tables(database)
    helpers.insert_fixture(database, first)
    # raw numbers every loaded row in order: the second load's rows all come after this one
    first_load_seq = helpers.query(database, "select max(ingest_seq) as seq from raw.inference_log")[0]["seq"]

    build_1, seconds_1 = helpers.run_dbt(home, "build")
    assert build_1.returncode == 0, build_1.stdout[-5000:] + build_1.stderr[-2000:]
    state = {
        "results_1": helpers.run_results(home),
        "seconds_1": seconds_1,
        "database": database,
        "first_load_seq": first_load_seq,
    }
    state["before"] = _snapshot(database)

    helpers.insert_fixture(database, second)
    build_2, seconds_2 = helpers.run_dbt(home, "build")
    assert build_2.returncode == 0, build_2.stdout[-5000:] + build_2.stderr[-2000:]
    state.update(results_2=helpers.run_results(home), seconds_2=seconds_2)
    state["after"] = _snapshot(database)

    state["expected_before"] = helpers.expected_marts([first])
    state["expected_after"] = helpers.expected_marts([first, first + second])
    print(f"\ndbt build: first {seconds_1:.1f} s, incremental {seconds_2:.1f} s")
    return state


def _close(actual: Any, expected: Any, where: str, *, p_value: bool = False) -> None:
    if expected is None or actual is None:
        assert actual is None and expected is None, f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, bool) or isinstance(actual, bool):
        assert actual is expected, f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, float) or isinstance(actual, float):
        if p_value and expected <= 1e-12:
            assert actual <= 1e-11, f"{where}: {actual!r} != {expected!r}"
        else:
            assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12), (
                f"{where}: {actual!r} != {expected!r}"
            )
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def _assert_rows_match(rows: list[dict[str, Any]], expected: dict, key: tuple[str, ...]) -> None:
    assert {tuple(row[k] for k in key) for row in rows} == set(expected)
    for row in rows:
        cell = expected[tuple(row[k] for k in key)]
        for column, value in cell.items():
            if column in ("statistics",):
                continue
            _close(row[column], value, f"{[row[k] for k in key]} {column}")


def _assert_feature_drift_matches(rows: list[dict[str, Any]], expected: dict) -> None:
    _assert_rows_match(rows, expected, ("model_name", "feature_name", "window_start"))
    for row in rows:
        cell = expected[(row["model_name"], row["feature_name"], row["window_start"])]
        where = f"{row['model_name']}.{row['feature_name']} @ {row['window_start']:%Y-%m-%d}"
        assert row["statistics_method"] == "reference_bins"
        statistics = cell["statistics"]
        for column in STATISTICS:
            value = None if statistics is None else statistics[column]
            _close(row[column], value, f"{where} {column}", p_value=column == "chi2_p_value")
        if statistics is not None:
            method_value = statistics[row["drift_method"]]
            _close(row["drift_score"], method_value, f"{where} drift_score")


@pytest.mark.parametrize("build", ["results_1", "results_2"])
def test_every_node_passes_and_only_the_drift_checks_warn(warehouse, build):
    # exposures are documentation (dashboards, the retrain asset): dbt reports them as no-op
    statuses = {
        result["unique_id"]: result["status"]
        for result in warehouse[build]
        if not result["unique_id"].startswith("exposure.")
    }
    unit_tests = [uid for uid in statuses if uid.startswith("unit_test.")]
    assert len([uid for uid in unit_tests if ".int_feature_drift_evidently." not in uid]) >= 24
    not_ok = {uid: status for uid, status in statuses.items() if status not in ("pass", "success")}
    assert {".".join(uid.split(".")[:3]) for uid in not_ok} == set(DRIFT_CHECKS), not_ok
    assert set(not_ok.values()) == {"warn"}


def test_schemas_are_exactly_raw_staging_intermediate_marts(warehouse):
    builtin = {"main", "information_schema", "pg_catalog"}
    for state in ("before", "after"):
        assert warehouse[state]["schemas"] - builtin == {"raw", "staging", "intermediate", "marts"}


def test_window_references_follow_each_kind(warehouse):
    references = {
        (row["model_name"], row["window_start"].day): row for row in warehouse["after"]["window_references"]
    }
    assert references[("car_loan", 1)]["reference_id"] == "model_version:1"
    assert references[("car_loan", 4)]["reference_id"] == "model_version:2"  # spans the retrain
    assert references[("car_loan", 4)]["reference_version"] == 2
    assert {row["reference_id"] for key, row in references.items() if key[0] == "churn"} == {
        "time_range:2024-03-01T00:00:00/2024-03-03T00:00:00"
    }
    assert references[("fraud", 1)]["reference_id"] is None
    assert references[("fraud", 4)]["reference_id"] == "window:2024-03-03T00:00:00"
    assert references[("fraud", 4)]["reference_window_start"] == datetime(2024, 3, 3)
    # its reference's late rows (the second load) move its watermark, past its own rows'
    late_reference_rows = helpers.query(
        warehouse["database"],
        "select max(ingest_seq) as seq from raw.inference_log "
        "where model_name = 'fraud' and scored_at >= '2024-03-03' and scored_at < '2024-03-04'",
    )[0]["seq"]
    assert late_reference_rows > warehouse["first_load_seq"]
    assert references[("fraud", 4)]["max_ingest_seq"] == late_reference_rows
    assert all(row["reference_version"] is None for key, row in references.items() if key[0] != "car_loan")


def test_frozen_bins_are_the_reference_deciles_and_categories(warehouse):
    frozen = warehouse["expected_after"]["frozen"]
    bins = warehouse["after"]["bins"]
    assert {(b["model_name"], b["reference_id"], b["feature_name"]) for b in bins} == set(frozen)
    for (model, reference_id, feature), reference in frozen.items():
        expected = reference.bins
        rows = [
            b
            for b in bins
            if (b["model_name"], b["reference_id"], b["feature_name"]) == (model, reference_id, feature)
        ]
        where = f"{model} {reference_id} {feature}"
        assert [b["bin_id"] for b in rows] == list(range(1, expected.n_bins + 1)), where
        assert rows[-1]["bin_label"] == "__null__"
        assert [b["n_reference_rows_in_bin"] for b in rows] == list(reference.counts), where
        if expected.feature_type == "numeric":
            np.testing.assert_allclose([b["lower_bound"] for b in rows[1:-1]], expected.edges, rtol=1e-12)
            np.testing.assert_allclose([b["upper_bound"] for b in rows[:-2]], expected.edges, rtol=1e-12)
            assert rows[0]["lower_bound"] is None and rows[-2]["upper_bound"] is None
            _close(rows[0]["reference_std"], expected.std, f"{where} std")
            _close(rows[0]["reference_min"], expected.minimum, f"{where} min")
            _close(rows[0]["reference_max"], expected.maximum, f"{where} max")
        else:
            assert [b["category"] for b in rows[:-2]] == expected.categories, where
            assert rows[-2]["bin_label"] == "__unseen__"


def test_every_bin_appears_in_every_window(warehouse):
    n_bins = {}
    for b in warehouse["after"]["bins"]:
        key = (b["model_name"], b["reference_id"], b["feature_name"])
        n_bins[key] = n_bins.get(key, 0) + 1
    per_cell: dict[tuple, list[dict[str, Any]]] = {}
    for row in warehouse["after"]["bin_counts"]:
        per_cell.setdefault((row["model_name"], row["feature_name"], row["window_start"]), []).append(row)
    for (model, feature, _), rows in per_cell.items():
        assert len(rows) == n_bins[(model, rows[0]["reference_id"], feature)]
    assert any(row["n_rows"] == 0 for row in warehouse["after"]["bin_counts"])


def test_every_statistic_matches_numpy_for_every_cell(warehouse):
    _assert_feature_drift_matches(
        warehouse["before"]["feature_drift"], warehouse["expected_before"]["feature_drift"]
    )


def test_incremental_build_numbers_match_numpy(warehouse):
    _assert_feature_drift_matches(
        warehouse["after"]["feature_drift"], warehouse["expected_after"]["feature_drift"]
    )


def test_statistics_stay_in_their_ranges(warehouse):
    for row in warehouse["after"]["feature_drift"]:
        if not row["has_reference"]:
            assert all(row[column] is None for column in STATISTICS)
            continue
        assert 0 <= row["js_distance"] <= math.sqrt(math.log(2))
        assert 0 <= row["hellinger"] <= 1
        assert 0 <= row["chi2_p_value"] <= 1
        numeric = row["feature_type"] == "numeric"
        assert (row["l_infinity"] is None) is numeric
        assert (row["ks_statistic"] is None) is not numeric
        assert (row["wasserstein_normed"] is None) is not numeric


def test_planted_drift_is_found_and_nothing_else(warehouse):
    drifted = {
        (row["model_name"], row["feature_name"], row["window_start"].day)
        for row in warehouse["before"]["feature_drift"]
        if row["is_drifted"]
    }
    assert drifted == {
        ("car_loan", "car_value", 3),
        ("car_loan", "car_value", 4),
        ("car_loan", "salary_range", 4),
        ("churn", "tenure", 4),
        ("churn", "tenure", 5),
        ("churn", "plan", 4),
        ("churn", "plan", 5),
        ("churn", "spend", 5),
        ("fraud", "amount", 4),  # the step, against day 3
        ("fraud", "merchant", 4),
    }


def test_windows_below_min_rows_or_without_reference_are_not_judged(warehouse):
    rows = {
        (r["model_name"], r["feature_name"], r["window_start"].day): r
        for r in warehouse["before"]["feature_drift"]
    }
    small = rows[("car_loan", "car_value", 5)]
    assert small["is_below_min_rows"] and small["n_current"] == 60
    assert small["drift_score"] > small["threshold"] and not small["is_drifted"]  # shown, not judged
    first = rows[("fraud", "amount", 1)]
    assert not first["has_reference"] and first["reference_id"] is None and not first["is_drifted"]
    assert first["n_current"] == 150


def test_drift_checks_store_exactly_the_drifted_rows(warehouse):
    for state in ("before", "after"):
        failures = warehouse[state]["failures"]
        key = ("model_name", "feature_name", "window_start")
        assert sorted(tuple(r[k] for k in key) for r in failures[DRIFT_CHECKS[0]]) == sorted(
            tuple(r[k] for k in key) for r in warehouse[state]["feature_drift"] if r["is_drifted"]
        )
        key = ("model_name", "window_start")
        assert sorted(tuple(r[k] for k in key) for r in failures[DRIFT_CHECKS[1]]) == sorted(
            tuple(r[k] for k in key) for r in warehouse[state]["dataset_drift"] if r["is_dataset_drifted"]
        )
        assert sorted(tuple(r[k] for k in key) for r in failures[DRIFT_CHECKS[2]]) == sorted(
            tuple(r[k] for k in key) for r in warehouse[state]["prediction_drift"] if r["is_drifted"]
        )
        key = ("model_name", "window_start", "metric_name")
        expected = warehouse[f"expected_{state}"]["model_performance"]
        degraded = [cell_key for cell_key, cell in expected.items() if cell["is_degraded"]]
        concept_window = helpers.FIRST_WINDOW + timedelta(days=helpers.CONCEPT_DRIFT_WINDOW)
        assert ("car_loan", concept_window, "accuracy") in degraded  # the planted concept drift
        assert sorted(tuple(r[k] for k in key) for r in failures[DRIFT_CHECKS[3]]) == sorted(degraded)


@pytest.mark.parametrize("state", ["before", "after"])
def test_dataset_drift_matches_numpy(warehouse, state):
    expected = warehouse[f"expected_{state}"]["dataset_drift"]
    _assert_rows_match(warehouse[state]["dataset_drift"], expected, ("model_name", "window_start"))
    assert any(cell["is_dataset_drifted"] for cell in expected.values())


@pytest.mark.parametrize("state", ["before", "after"])
def test_prediction_drift_matches_numpy(warehouse, state):
    expected = warehouse[f"expected_{state}"]["prediction_drift"]
    _assert_rows_match(warehouse[state]["prediction_drift"], expected, ("model_name", "window_start"))
    drifted = {(m, w.day) for (m, w), cell in expected.items() if cell["is_drifted"]}
    assert ("car_loan", 3) in drifted and ("car_loan", 1) not in drifted


@pytest.mark.parametrize("state", ["before", "after"])
def test_feature_statistics_match_numpy(warehouse, state):
    expected = warehouse[f"expected_{state}"]["feature_statistics"]
    rows = [
        {k: v for k, v in row.items() if k != "max_ingest_seq"}
        for row in warehouse[state]["feature_statistics"]
    ]
    _assert_rows_match(rows, expected, ("model_name", "feature_name", "window_start"))
    unseen = {(r["model_name"], r["feature_name"], r["window_start"].day): r["n_unseen"] for r in rows}
    assert unseen[("car_loan", "salary_range", 4)] > 0  # the new category very_high
    assert unseen[("car_loan", "salary_range", 1)] == 0


@pytest.mark.parametrize("state", ["before", "after"])
def test_model_performance_matches_sklearn(warehouse, state):
    expected = warehouse[f"expected_{state}"]["model_performance"]
    rows = warehouse[state]["model_performance"]
    _assert_rows_match(rows, expected, ("model_name", "window_start", "metric_name"))
    assert any(
        cell["realized_value"] is not None
        for (model_name, _, metric), cell in expected.items()
        if model_name == "churn" and metric == "roc_auc"
    )


def test_model_versions_come_from_the_registry(warehouse):
    expected = warehouse["expected_after"]["model_versions"]
    _assert_rows_match(warehouse["after"]["model_versions"], expected, ("model_name", "model_version"))


def recounted(warehouse) -> set[tuple[str, int]]:
    """RECOUNTED plus every churn window: its time-range reference got late rows."""
    churn = {(r["model_name"], r["window_start"].day) for r in warehouse["after"]["bin_counts"]}
    return RECOUNTED | {key for key in churn if key[0] == "churn"}


def test_incremental_build_recounts_only_touched_windows(warehouse):
    expected = recounted(warehouse)

    def untouched(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rows if (r["model_name"], r["window_start"].day) not in expected]

    def same(after_rows: list[dict[str, Any]], before_rows: list[dict[str, Any]]) -> None:
        # Marts rebuilt in full may differ in the last bit of a double: the engine's summation
        # order depends on the table's size (see int_window_drift_statistics_computed).
        assert len(after_rows) == len(before_rows)
        for new, old in zip(after_rows, before_rows, strict=True):
            assert new.keys() == old.keys()
            for column, value in old.items():
                _close(new[column], value, f"{old['model_name']} {old['window_start']} {column}")

    before, after = warehouse["before"], warehouse["after"]
    assert untouched(after["bin_counts"]) == untouched(before["bin_counts"])  # not recounted at all
    assert untouched(after["feature_statistics"]) == untouched(before["feature_statistics"])
    same(untouched(after["feature_drift"]), untouched(before["feature_drift"]))
    touched = [r for r in after["bin_counts"] if (r["model_name"], r["window_start"].day) in expected]
    assert {(r["model_name"], r["window_start"].day) for r in touched} == expected
    assert len({key for key in expected if key[0] == "churn"}) > 1
    assert all(r["max_ingest_seq"] > warehouse["first_load_seq"] for r in touched)  # the second load's


def test_late_rows_recount_their_window_and_the_rolling_next_one(warehouse):
    def cells(state: str) -> dict[tuple, dict[str, Any]]:
        return {
            (r["model_name"], r["feature_name"], r["window_start"].day): r
            for r in warehouse[state]["feature_drift"]
        }

    before, after = cells("before"), cells("after")
    assert (
        after[("car_loan", "car_value", 2)]["n_current"]
        == before[("car_loan", "car_value", 2)]["n_current"] + 40
    )
    # previous_window: day 3 got 50 late rows; day 4 is judged against day 3, so its reference grew.
    assert after[("fraud", "amount", 3)]["n_current"] == 200
    assert after[("fraud", "amount", 4)]["n_reference"] == 200
    assert before[("fraud", "amount", 4)]["n_reference"] == 150
    assert after[("fraud", "amount", 4)]["psi"] != before[("fraud", "amount", 4)]["psi"]
    # time_range: late rows inside the range count in day 1's window and in the reference, frozen
    # again from the range's rows as they are now (as a build of all rows at once would).
    assert after[("churn", "plan", 1)]["n_current"] == 180
    assert {r["n_reference"] for k, r in before.items() if k[0] == "churn"} == {300}
    assert {r["n_reference"] for k, r in after.items() if k[0] == "churn"} == {330}


def test_reference_bins_stay_frozen_unless_their_rows_changed(warehouse):
    # production-row references whose rows got late rows: frozen again from their rows now
    refrozen = {
        ("churn", "time_range:2024-03-01T00:00:00/2024-03-03T00:00:00"),
        ("fraud", "window:2024-03-03T00:00:00"),
    }

    def kept(bins: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [b for b in bins if (b["model_name"], b["reference_id"]) not in refrozen]

    before = warehouse["before"]["bins"]
    after = warehouse["after"]["bins"]
    # every other reference (the model versions' above all) is exactly as frozen before
    assert [b for b in kept(after) if b in before] == kept(before)
    added = {(b["model_name"], b["reference_id"]) for b in kept(after) if b not in before}
    assert added == {("fraud", "window:2024-03-06T00:00:00")}  # the reference of the new day 7
    for b in after:
        if (b["model_name"], b["reference_id"]) in refrozen:
            assert b["reference_max_ingest_seq"] > warehouse["first_load_seq"], b
    assert {(b["model_name"], b["reference_id"]) for b in after} >= refrozen
