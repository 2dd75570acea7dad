"""`int_feature_drift_evidently` against Evidently 0.7.23 itself, to 1e-9 relative (1e-12 absolute).

One warehouse, built once for the module (`dbt build --select +int_feature_drift_evidently`):
- `ev_versioned` (statistics evidently, reference kind model_version): a 10,000-row reference set
  and five windows — like the reference, drifted, tiny (7 rows, one feature all missing), outside
  the reference's range, and 6,384 rows (2^14 rows with the reference);
- `ev_rolling` (evidently, previous_window): the same rows, each window judged against the one
  before (the first has no reference: NULL);
- `bins_only` (statistics reference_bins): the same rows again, absent from the model.

Features, one per case: floats (> 20 distinct reference values: Sturges bins), integers (> 20
distinct, int64 at Evidently's side), integers with a missing value (float64 there), exactly 20
distinct values (one bin per value), a few values with values only on one side, NaN / ±inf / null /
missing key, a bimodal reference (Sturges bins empty on both sides and on one), a reference with
one far outlier (a share of exactly 1e-4: the min_nonzero / 1e6 fill), categories only in current
/ only in reference, and a categorical with a single category.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.evidently import evidently_parity as parity

pytestmark = pytest.mark.slow

FEATURES = {
    "float_wide": "numeric",
    "int_wide": "numeric",
    "int_wide_with_missing": "numeric",
    "twenty_values": "numeric",
    "few_values": "numeric",
    "non_finite": "numeric",
    "bimodal": "numeric",
    "one_outlier": "numeric",
    "all_missing_late": "numeric",
    "category_shift": "categorical",
    "single_category": "categorical",
}
N_REFERENCE = 10_000


def _row(rng: np.random.Generator, regime: str, index: int) -> dict[str, Any]:
    """One request's features. regime: reference, like_reference, drifted, outside."""
    shift = {"reference": 0.0, "like_reference": 0.0, "drifted": 1.0, "outside": 5.0}[regime]
    row: dict[str, Any] = {
        "float_wide": float(rng.normal(50.0 + 6.0 * shift, 10.0)),
        "int_wide": int(rng.integers(0, 61) + 8 * shift),
        "int_wide_with_missing": int(rng.integers(0, 61) + 8 * shift),
        "twenty_values": float(rng.integers(0, 20) * 0.25 + (0.25 if regime == "drifted" else 0.0)),
        "few_values": float(
            rng.choice([0.5, 1.5, 2.5, 3.5]) if regime != "drifted" else rng.choice([1.5, 2.5, 12.5])
        ),
        "non_finite": float(rng.normal(shift, 1.0)),
        "bimodal": float(rng.normal(0.0, 1.0) if rng.random() < 0.5 else rng.normal(100.0, 1.0)),
        "one_outlier": float(rng.normal(0.3 * shift, 1.0)),
        "all_missing_late": float(rng.normal(shift, 1.0)),
        "category_shift": str(rng.choice(["a", "b", "c"] if regime == "reference" else ["a", "b", "d"])),
        "single_category": "only",
    }
    if regime == "outside":
        row["bimodal"] = float(rng.uniform(40.0, 60.0))
        row["category_shift"] = "e"
    draw = rng.random()
    if draw < 0.02:
        row["non_finite"] = float("nan")
    elif draw < 0.04:
        row["non_finite"] = float("inf") if draw < 0.03 else float("-inf")
    elif draw < 0.05:
        row["non_finite"] = None
    elif draw < 0.06:
        row["non_finite"] = parity.MISSING
    if rng.random() < 0.03:
        row["category_shift"] = None
    if regime == "reference" and index == 0:
        row["int_wide_with_missing"] = None  # float64 at Evidently's side, same integers
        row["one_outlier"] = 50.0  # alone in its Sturges bin: share 1 / 10,000 = 1e-4
    return row


def _models() -> list[parity.MonitoredModel]:
    rng = np.random.default_rng(20240401)
    reference = [_row(rng, "reference", index) for index in range(N_REFERENCE)]
    windows = [
        [_row(rng, "like_reference", index) for index in range(400)],
        [_row(rng, "drifted", index) for index in range(300)],
        [_row(rng, "drifted", index) for index in range(7)],
        [_row(rng, "outside", index) for index in range(250)],
        # 10,000 + 6,384 = 2^14 rows: log2(n) is exact, ceil(range / (range / 15)) decides 15 or 16
        [_row(rng, "like_reference", index) for index in range(16_384 - N_REFERENCE)],
    ]
    for row in windows[2]:
        row["all_missing_late"] = None  # Evidently refuses an empty column: NULL statistics
    return [
        parity.MonitoredModel("ev_versioned", FEATURES, reference_sets={1: reference}, windows=windows),
        parity.MonitoredModel(
            "ev_rolling", FEATURES, reference_kind="previous_window", reference_sets={}, windows=windows
        ),
        parity.MonitoredModel(
            "bins_only", FEATURES, statistics="reference_bins", reference_sets={1: reference}, windows=windows
        ),
    ]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    assert parity.DBT_EXECUTABLE.exists(), f"dbt not found next to {parity.sys.executable}"
    home = tmp_path_factory.mktemp("evidently_home")
    database = home / "driftmart.duckdb"
    models = _models()
    parity.write_warehouse(database, models)
    seconds = parity.build(home)
    return {"models": models, "rows": parity.drift_rows(database), "seconds": seconds, "home": home}


def _cases(models: list[parity.MonitoredModel]):
    """(model, feature, feature_type, window_start, reference rows or None, current rows)."""
    for model in models:
        if model.statistics != "evidently":
            continue
        for index, current in enumerate(model.windows):
            if model.reference_kind == "model_version":
                reference = model.reference_sets[1]
            else:
                reference = model.windows[index - 1] if index > 0 else None
            for feature, feature_type in model.features.items():
                yield model, feature, feature_type, model.window_start(index), reference, current


def test_one_row_per_evidently_model_feature_and_window(warehouse: dict[str, Any]) -> None:
    expected = {
        (model.name, feature, start) for model, feature, _, start, _, _ in _cases(warehouse["models"])
    }
    rows = set(warehouse["rows"])
    # bins_only (statistics reference_bins) is left out; pseudo-features (`__prediction__` …) of
    # the unpivoted rows may come in addition to the spec's features.
    assert {key for key in rows if not key[1].startswith("__")} == expected
    assert {key[0] for key in rows} == {"ev_versioned", "ev_rolling"}


def test_matches_evidently(warehouse: dict[str, Any]) -> None:
    rows = warehouse["rows"]
    print(f"dbt build --select {parity.SELECTION}: {warehouse['seconds']:.1f} s")
    checked = 0
    for model, feature, feature_type, start, reference, current in _cases(warehouse["models"]):
        row = rows[(model.name, feature, start)]
        where = f"{model.name}.{feature} @ {start:%Y-%m-%d}"
        if reference is None:
            assert row["psi"] is None and row["js_distance"] is None and row["n_reference"] == 0, where
            continue
        expected = parity.evidently_scores(reference, current, feature, feature_type)
        for column, value in expected.items():
            parity.assert_close(row[column], value, f"{where} {column}")
            checked += value is not None
    assert checked > 150


def test_cases_cover_both_binnings_and_both_fills(warehouse: dict[str, Any]) -> None:
    """The fixture really exercises what it claims (guards against a silently easier fixture)."""
    rows = {key: row for key, row in warehouse["rows"].items() if key[0] == "ev_versioned"}
    by_feature: dict[str, list[dict[str, Any]]] = {}
    for (_, feature, _), row in rows.items():
        by_feature.setdefault(feature, []).append(row)
    assert all(row["is_sturges_binned"] for row in by_feature["float_wide"])
    assert not any(row["is_sturges_binned"] for row in by_feature["twenty_values"])
    assert all(row["is_integer_valued"] for row in by_feature["int_wide"])
    assert not any(row["is_integer_valued"] for row in by_feature["int_wide_with_missing"])
    assert all(row["psi"] is None for row in by_feature["all_missing_late"] if row["n_current"] == 0)
    assert all(row["psi"] == 0 and row["js_distance"] == 0 for row in by_feature["single_category"])
