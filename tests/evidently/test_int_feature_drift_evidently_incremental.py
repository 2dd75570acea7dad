"""The incremental path of `int_feature_drift_evidently`: a second `dbt build` after late rows for
the first window and a new third window recomputes exactly the windows whose inputs changed —
for the model_version model the first and the third, for the previous_window model also the second
(its reference, the first window, got rows) — leaves the others untouched, and every window still
matches Evidently run on all the rows loaded so far.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pytest

from tests.evidently import evidently_parity as parity

pytestmark = pytest.mark.slow

FEATURES = {"amount": "numeric", "count": "numeric", "channel": "categorical"}
SECOND_LOADED_AT = datetime(2024, 5, 2)


def _row(rng: np.random.Generator, shift: float) -> dict[str, Any]:
    return {
        "amount": float(rng.lognormal(3.0 + shift, 0.5)),
        "count": int(rng.poisson(4 + 3 * shift)),
        "channel": str(rng.choice(["web", "app", "store"], p=[0.5 - 0.2 * shift, 0.3, 0.2 + 0.2 * shift])),
    }


def _models(first: bool, rng: np.random.Generator) -> list[parity.MonitoredModel]:
    if first:
        reference = {1: [_row(rng, 0.0) for _ in range(800)]}
        windows = [[_row(rng, 0.0) for _ in range(200)], [_row(rng, 0.5) for _ in range(150)]]
        prefix = "a"
    else:
        reference = {}
        windows = [[_row(rng, 1.0) for _ in range(60)], [], [_row(rng, 0.2) for _ in range(120)]]
        prefix = "late"
    return [
        parity.MonitoredModel(
            "ev_versioned", FEATURES, reference_sets=reference, windows=windows, request_prefix=prefix
        ),
        parity.MonitoredModel(
            "ev_rolling", FEATURES, reference_kind="previous_window", windows=windows, request_prefix=prefix
        ),
    ]


def _combined(first: parity.MonitoredModel, second: parity.MonitoredModel) -> parity.MonitoredModel:
    n_windows = max(len(first.windows), len(second.windows))
    windows = [
        (first.windows[i] if i < len(first.windows) else [])
        + (second.windows[i] if i < len(second.windows) else [])
        for i in range(n_windows)
    ]
    return parity.MonitoredModel(
        first.name, first.features, first.reference_kind, reference_sets=first.reference_sets, windows=windows
    )


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rng = np.random.default_rng(502)
    home = tmp_path_factory.mktemp("evidently_incremental_home")
    database = home / "driftmart.duckdb"
    first_load, second_load = _models(True, rng), _models(False, rng)
    parity.write_warehouse(database, first_load)
    parity.build(home)
    before = parity.drift_rows(database)
    first_load_seq = parity.max_ingest_seq(database)  # the second load's rows all come after it
    parity.write_warehouse(database, second_load, loaded_at=SECOND_LOADED_AT, create=False)
    parity.build(home)
    after = parity.drift_rows(database)
    models = [_combined(first, second) for first, second in zip(first_load, second_load, strict=True)]
    return {"before": before, "after": after, "models": models, "first_load_seq": first_load_seq}


@pytest.mark.parametrize(
    ("model_name", "recomputed"),
    [("ev_versioned", {0, 2}), ("ev_rolling", {0, 1, 2})],
)
def test_recomputes_only_windows_whose_inputs_changed(
    builds: dict[str, Any], model_name: str, recomputed: set[int]
) -> None:
    model = next(model for model in builds["models"] if model.name == model_name)
    for index in range(len(model.windows)):
        for feature in FEATURES:
            key = (model_name, feature, model.window_start(index))
            row = builds["after"][key]
            if index in recomputed:
                assert row["max_ingest_seq"] > builds["first_load_seq"], key  # the second load's
            else:
                assert row == builds["before"][key], key


def test_every_window_matches_evidently_after_the_second_build(builds: dict[str, Any]) -> None:
    checked = 0
    for model in builds["models"]:
        for index, current in enumerate(model.windows):
            if model.reference_kind == "model_version":
                reference = model.reference_sets[1]
            else:
                reference = model.windows[index - 1] if index > 0 else None
            for feature, feature_type in FEATURES.items():
                row = builds["after"][(model.name, feature, model.window_start(index))]
                if reference is None:
                    assert row["psi"] is None
                    continue
                expected = parity.evidently_scores(reference, current, feature, feature_type)
                for column, value in expected.items():
                    parity.assert_close(row[column], value, f"{model.name}.{feature}[{index}] {column}")
                    checked += value is not None
    assert checked == 3 * 8 + 2 * 8  # 8 scores per window; rolling window 0 has no reference
