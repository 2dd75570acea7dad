"""numpy's integer clamp of the Sturges width, against Evidently itself.

`np.histogram_bin_edges(a, bins="sturges")` raises the width to 1 when `a` has an integer dtype and
`range / (log2(n) + 1) < 1`. With more than 20 distinct whole numbers in the reference, that needs
more than 2^19 rows in reference and window together: here 300,000 + 300,000 rows of whole numbers
0..20 (range 20 < log2(600,000) + 1 = 20.19). The same numbers come twice:
- `int_clamped`: never missing, so pandas gives Evidently int64 columns: width 1, 20 bins;
- `int_as_float`: one current row without the key, so pandas gives float64: no clamp, 21 bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.evidently import evidently_parity as parity

pytestmark = pytest.mark.slow

N_ROWS = 300_000
FEATURES = {"int_clamped": "numeric", "int_as_float": "numeric"}


def _rows(rng: np.random.Generator, probabilities: np.ndarray) -> list[dict[str, Any]]:
    values = rng.choice(21, size=N_ROWS, p=probabilities)
    return [{"int_clamped": int(value), "int_as_float": int(value)} for value in values]


@pytest.fixture(scope="module")
def clamp_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rng = np.random.default_rng(2**19)
    uniform = np.full(21, 1 / 21)
    tilted = np.linspace(1.0, 2.0, 21) / np.linspace(1.0, 2.0, 21).sum()
    reference, current = _rows(rng, uniform), _rows(rng, tilted)
    current[0]["int_as_float"] = parity.MISSING
    model = parity.MonitoredModel("ev_large", FEATURES, reference_sets={1: reference}, windows=[current])
    home = tmp_path_factory.mktemp("evidently_clamp_home")
    parity.write_warehouse(home / "driftmart.duckdb", [model])
    seconds = parity.build(home)
    rows = parity.drift_rows(home / "driftmart.duckdb")
    return {"model": model, "rows": rows, "seconds": seconds, "reference": reference, "current": current}


@pytest.mark.parametrize(
    ("feature", "n_bins", "is_integer_valued"), [("int_clamped", 20, True), ("int_as_float", 21, False)]
)
def test_integer_clamp_matches_evidently(
    clamp_case: dict[str, Any], feature: str, n_bins: int, is_integer_valued: bool
) -> None:
    model = clamp_case["model"]
    row = clamp_case["rows"][(model.name, feature, model.window_start(0))]
    assert (row["n_bins"], row["is_integer_valued"], row["is_sturges_binned"]) == (
        n_bins,
        is_integer_valued,
        True,
    )
    expected = parity.evidently_scores(clamp_case["reference"], clamp_case["current"], feature, "numeric")
    for column, value in expected.items():
        parity.assert_close(row[column], value, f"{feature} {column}")
