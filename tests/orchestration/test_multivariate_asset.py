"""marts.fct_multivariate_drift through the real pipeline: one row per judged window, published."""

import duckdb
import pytest

from orchestration.assets.multivariate import windows_to_compute
from tests.conftest import DRIFT_PLAN

pytestmark = pytest.mark.slow


def test_every_judged_window_gets_a_domain_classifier_verdict(built_home, spec):
    with duckdb.connect(str(built_home.published), read_only=True) as connection:
        judged = connection.execute(
            "select window_start from marts.fct_dataset_drift "
            "where model_name = ? and has_reference and not is_below_min_rows order by 1",
            [spec.model],
        ).fetchall()
        rows = connection.execute(
            "select window_start, method, score, threshold, is_drifted, top_features, n_current, "
            "n_window_rows "
            "from marts.fct_multivariate_drift where model_name = ? order by window_start",
            [spec.model],
        ).fetchall()
    assert [row[0] for row in rows] == [start for (start,) in judged] and rows
    for start, method, score, threshold, is_drifted, top, n_current, n_window_rows in rows:
        assert method == "domain_classifier_roc_auc" and 0.5 < threshold < 0.7
        assert is_drifted == (score > threshold)
        assert n_current == min(n_window_rows, 2000)
        if start < DRIFT_PLAN.drift_start:
            assert not is_drifted, (start, score, threshold)
        else:  # car_value moved from the drift day on
            assert is_drifted and "car_value" in top.split(", "), (start, score, threshold, top)


def test_a_window_is_computed_once_until_its_rows_change(built_home):
    with duckdb.connect(str(built_home.warehouse), read_only=True) as connection:
        assert windows_to_compute(connection, "car_loan") == []
