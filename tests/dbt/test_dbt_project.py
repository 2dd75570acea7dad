"""The dbt project on a generated warehouse: schemas, frozen bins, PSI against numpy, the drift
check, and the incremental path (late rows and a new window re-count only their windows).

One module-scoped warehouse, built twice: a first `dbt build` on a fresh DRIFTMART_HOME (unit
tests included), then a second after loading late and new rows. Each build costs ~8-10 s.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.dbt import driftmart_dbt_helpers as helpers

pytestmark = pytest.mark.slow

LATE_WINDOW = datetime(2024, 3, 2)
NEW_WINDOW = datetime(2024, 3, 6)


def _snapshot(database: Path) -> dict[str, Any]:
    return {
        "feature_drift": helpers.query(
            database, "select * from marts.fct_feature_drift order by feature_name, window_start"
        ),
        "bin_counts": helpers.query(
            database,
            "select * from intermediate.int_window_bin_counts_aggregated "
            "order by feature_name, window_start, bin_id",
        ),
        "bins": helpers.query(
            database,
            "select * from intermediate.int_reference_bins_frozen "
            "order by model_version, feature_name, bin_id",
        ),
        "drift_failures": helpers.query(
            database,
            "select model_name, feature_name, window_start "
            "from intermediate.psi_below_threshold_fct_feature_drift_psi__threshold "
            "order by feature_name, window_start",
        ),
        "schemas": {
            row["schema_name"]
            for row in helpers.query(
                database,
                "select distinct table_schema as schema_name from information_schema.tables "
                "where table_catalog = 'driftmart'",
            )
        },
        "all_schemas": {
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

    build_1, seconds_1 = helpers.run_dbt(home, "build")
    assert build_1.returncode == 0, build_1.stdout[-5000:] + build_1.stderr[-2000:]
    state = {"results_1": helpers.run_results(home), "seconds_1": seconds_1}
    state["before"] = _snapshot(database)

    helpers.insert_fixture(database, second)
    build_2, seconds_2 = helpers.run_dbt(home, "build")
    assert build_2.returncode == 0, build_2.stdout[-5000:] + build_2.stderr[-2000:]
    state.update(results_2=helpers.run_results(home), seconds_2=seconds_2)
    state["after"] = _snapshot(database)

    state["first"], state["second"] = first, second
    state["expected_before"] = helpers.expected_feature_drift(first.reference_rows, first.inference_rows)
    # Version 1's bins are frozen: the reference row added later must not count.
    state["expected_after"] = helpers.expected_feature_drift(
        first.reference_rows, first.inference_rows + second.inference_rows
    )
    return state


def _assert_matches_numpy(rows: list[dict[str, Any]], expected: dict) -> None:
    assert {(row["feature_name"], row["window_start"]) for row in rows} == set(expected)
    for row in rows:
        cell = expected[(row["feature_name"], row["window_start"])]
        where = f"{row['feature_name']} @ {row['window_start']:%Y-%m-%d}"
        assert row["model_name"] == helpers.MODEL
        assert row["feature_type"] == cell["feature_type"], where
        assert row["reference_version"] == cell["reference_version"], where
        assert row["window_end"] == cell["window_end"], where
        assert row["n_reference"] == cell["n_reference"], where
        assert row["n_current"] == cell["n_current"], where
        assert row["psi"] == pytest.approx(cell["psi"], abs=1e-9, rel=0), where
        assert row["drift_method"] == "psi"
        assert row["drift_score"] == row["psi"]
        assert row["threshold"] == helpers.PSI_THRESHOLD
        assert row["is_drifted"] is cell["is_drifted"], where


@pytest.mark.parametrize("build", ["results_1", "results_2"])
def test_every_node_passes_and_only_the_drift_check_warns(warehouse, build):
    statuses = {result["unique_id"]: result["status"] for result in warehouse[build]}
    unit_tests = [uid for uid in statuses if uid.startswith("unit_test.")]
    assert len(unit_tests) >= 8
    not_ok = {uid: status for uid, status in statuses.items() if status not in ("pass", "success")}
    assert len(not_ok) == 1, not_ok
    ((unique_id, status),) = not_ok.items()
    assert unique_id.startswith("test.driftmart.psi_below_threshold_fct_feature_drift_psi")
    assert status == "warn"


def test_schemas_are_exactly_raw_staging_intermediate_marts(warehouse):
    for state in ("before", "after"):
        assert warehouse[state]["schemas"] == {"raw", "staging", "intermediate", "marts"}
        builtin = {"main", "information_schema", "pg_catalog"}
        assert warehouse[state]["all_schemas"] - builtin == {"raw", "staging", "intermediate", "marts"}


def test_frozen_bins_are_the_reference_deciles_and_categories(warehouse):
    catalogue = helpers.reference_bins(warehouse["first"].reference_rows)
    bins = warehouse["before"]["bins"]
    for (version, feature), expected in catalogue.items():
        rows = [b for b in bins if b["model_version"] == version and b["feature_name"] == feature]
        assert [b["bin_id"] for b in rows] == list(range(1, expected.n_bins + 1))
        assert rows[-1]["bin_label"] == "__null__"
        if expected.feature_type == "numeric":
            lower = [b["lower_bound"] for b in rows[1:-1]]
            upper = [b["upper_bound"] for b in rows[:-2]]
            np.testing.assert_allclose(lower, expected.edges, rtol=1e-12, atol=0)
            np.testing.assert_allclose(upper, expected.edges, rtol=1e-12, atol=0)
            assert rows[0]["lower_bound"] is None and rows[-2]["upper_bound"] is None
        else:
            assert [b["category"] for b in rows[:-2]] == expected.categories
            assert rows[-2]["bin_label"] == "__unseen__"
        assert sum(b["n_reference_rows_in_bin"] for b in rows) == rows[0]["n_reference"]


def test_every_bin_appears_in_every_window(warehouse):
    bins_per_version = {}
    for b in warehouse["after"]["bins"]:
        bins_per_version[b["model_version"]] = bins_per_version.get(b["model_version"], 0) + 1
    per_window: dict[datetime, list[dict[str, Any]]] = {}
    for row in warehouse["after"]["bin_counts"]:
        per_window.setdefault(row["window_start"], []).append(row)
    assert len(per_window) == 6
    for rows in per_window.values():
        assert len(rows) == bins_per_version[rows[0]["reference_version"]]
    assert any(row["n_rows"] == 0 for row in warehouse["after"]["bin_counts"])


def test_psi_matches_numpy_for_every_cell(warehouse):
    _assert_matches_numpy(warehouse["before"]["feature_drift"], warehouse["expected_before"])


def test_planted_drift_is_found_and_nothing_else(warehouse):
    drifted = {
        (row["feature_name"], row["window_start"].day)
        for row in warehouse["before"]["feature_drift"]
        if row["is_drifted"]
    }
    assert drifted == {
        ("car_value", 3),
        ("car_value", 4),
        ("car_value", 5),
        ("salary_range", 4),
        ("salary_range", 5),
    }


def test_drift_check_stores_exactly_the_drifted_rows(warehouse):
    failures = [(row["feature_name"], row["window_start"]) for row in warehouse["before"]["drift_failures"]]
    drifted = [
        (row["feature_name"], row["window_start"])
        for row in warehouse["before"]["feature_drift"]
        if row["is_drifted"]
    ]
    assert failures == drifted


def test_incremental_build_recounts_only_late_and_new_windows(warehouse):
    changed = {LATE_WINDOW, NEW_WINDOW}
    before = [r for r in warehouse["before"]["bin_counts"] if r["window_start"] not in changed]
    after = [r for r in warehouse["after"]["bin_counts"] if r["window_start"] not in changed]
    assert after == before
    late = [r for r in warehouse["after"]["bin_counts"] if r["window_start"] in changed]
    assert {r["max_loaded_at"] for r in late} == {datetime(2024, 3, 7, 1, 0, 0)}

    drift_before = [r for r in warehouse["before"]["feature_drift"] if r["window_start"] not in changed]
    drift_after = [r for r in warehouse["after"]["feature_drift"] if r["window_start"] not in changed]
    assert drift_after == drift_before
    late_before = {
        (r["feature_name"], r["window_start"]): r["n_current"]
        for r in warehouse["before"]["feature_drift"]
        if r["window_start"] == LATE_WINDOW
    }
    assert all(
        r["n_current"] == late_before[(r["feature_name"], r["window_start"])] + 40
        for r in warehouse["after"]["feature_drift"]
        if r["window_start"] == LATE_WINDOW
    )


def test_incremental_build_numbers_match_numpy(warehouse):
    _assert_matches_numpy(warehouse["after"]["feature_drift"], warehouse["expected_after"])


def test_reference_bins_stay_frozen(warehouse):
    assert warehouse["after"]["bins"] == warehouse["before"]["bins"]


def test_window_counts_match_numpy(warehouse):
    expected = warehouse["expected_after"]
    for row in warehouse["after"]["bin_counts"]:
        cell = expected[(row["feature_name"], row["window_start"])]
        assert row["n_rows"] == cell["current_counts"][row["bin_id"] - 1]
