"""The domain classifier: fires on a shift no single feature shows, stays quiet on stable samples."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ml.multivariate import auc_threshold, domain_classifier_drift
from ml.spec import load_spec

FEATURES = {"x": "numeric", "y": "numeric", "noise": "numeric", "segment": "categorical"}


@pytest.fixture(scope="module")
def spec():
    return replace(load_spec(), features=FEATURES)


def sample(rng: np.random.Generator, n: int, correlation: float) -> pd.DataFrame:
    """x and y standard normal with the given correlation; the other features independent."""
    x = rng.normal(size=n)
    y = correlation * x + np.sqrt(1 - correlation**2) * rng.normal(size=n)
    return pd.DataFrame(
        {
            "x": x,
            "y": y,
            "noise": rng.normal(size=n),
            "segment": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]),
        }
    )


def test_a_change_in_correlation_alone_is_found(spec):
    rng = np.random.default_rng(0)
    reference, current = sample(rng, 3000, 0.8), sample(rng, 3000, -0.8)
    # no feature moved on its own: the two-sample K-S test sees nothing in x or y
    for name in ("x", "y"):
        assert stats.ks_2samp(reference[name], current[name]).pvalue > 0.01
    drift = domain_classifier_drift(spec, reference, current)
    assert drift.is_drifted and drift.score > 0.75, drift
    assert set(drift.top_features[:2]) == {"x", "y"}
    assert (drift.n_reference, drift.n_current) == (3000, 3000)


def test_stable_samples_stay_quiet(spec):
    false_alarms = 0
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        drift = domain_classifier_drift(spec, sample(rng, 1000, 0.8), sample(rng, 1000, 0.8), seed=seed)
        assert abs(drift.score - 0.5) < 0.07, drift
        assert drift.top_features == [] or drift.is_drifted
        false_alarms += drift.is_drifted
    assert false_alarms == 0


def test_the_threshold_is_the_null_band_of_the_auc():
    # Hanley-McNeil: the variance of a Mann-Whitney AUC of 0.5 is (n1 + n2 + 1) / (12 n1 n2)
    n1, n2 = 1000, 4000
    sigma = np.sqrt((n1 + n2 + 1) / (12 * n1 * n2))
    assert auc_threshold(n1, n2) == pytest.approx(0.5 + 4 * sigma)
    assert auc_threshold(10**7, 10**7) == pytest.approx(0.52)  # the minimum margin for huge samples
    # the band itself: AUCs of random scores spread as sigma says
    rng = np.random.default_rng(1)
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.zeros(n1), np.ones(n2)]
    aucs = [roc_auc_score(labels, rng.random(n1 + n2)) for _ in range(400)]
    assert np.std(aucs) == pytest.approx(sigma, rel=0.15)


def test_too_few_rows_is_a_clear_error(spec):
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="at least 10 rows a side, got 5 reference"):
        domain_classifier_drift(spec, sample(rng, 5, 0.0), sample(rng, 100, 0.0))


def test_a_category_with_more_values_than_the_classifier_takes_is_judged(spec):
    rng = np.random.default_rng(3)
    reference, current = sample(rng, 600, 0.0), sample(rng, 600, 0.0)
    reference["segment"] = [f"s{i}" for i in rng.integers(0, 1000, 600)]  # ~450 distinct values a side
    current["segment"] = [f"s{i}" for i in rng.integers(0, 1000, 600)]
    drift = domain_classifier_drift(spec, reference, current)
    assert not drift.is_drifted, drift
