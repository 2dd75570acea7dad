"""Expected PSI values of the dbt unit test `fct_feature_drift_psi_from_bin_counts`.

Run `python tests/dbt/unit_test_expected_psi.py` to reproduce the numbers pasted into
dbt_project/models/marts/drift/_drift__models.yml. The fixture counts below are the unit test's
inputs; the computation is independent of the SQL: shares floored at epsilon, natural log.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-4  # var drift_share_epsilon

# (feature, window): (reference counts per bin, current counts per bin), bins in bin_id order.
FIXTURE: dict[tuple[str, str], tuple[list[int], list[int]]] = {
    # numeric: [-inf, 1), [1, 2), [2, +inf), __null__; the current window has NULLs the reference lacks
    ("car_value", "2024-01-01"): ([30, 40, 30, 0], [10, 20, 60, 10]),
    # the same feature in a window where every value is NULL
    ("car_value", "2024-01-02"): ([30, 40, 30, 0], [0, 0, 0, 50]),
    # categorical: a, b, __unseen__, __null__; half of the window is an unseen category
    ("salary_range", "2024-01-01"): ([50, 50, 0, 0], [20, 30, 50, 0]),
    # the same shares as the reference: PSI exactly 0
    ("salary_range", "2024-01-02"): ([50, 50, 0, 0], [25, 25, 0, 0]),
}


def psi(reference_counts: list[int], current_counts: list[int], epsilon: float = EPSILON) -> float:
    reference = np.asarray(reference_counts, dtype=np.float64)
    current = np.asarray(current_counts, dtype=np.float64)
    p_ref = np.maximum(reference / reference.sum(), epsilon)
    p_cur = np.maximum(current / current.sum(), epsilon)
    return float(np.sum((p_cur - p_ref) * np.log(p_cur / p_ref)))


if __name__ == "__main__":
    for (feature, window), (reference_counts, current_counts) in FIXTURE.items():
        value = psi(reference_counts, current_counts)
        print(f"{feature:>14} {window}: psi = {value!r}  drifted (>= 0.2): {value >= 0.2}")
