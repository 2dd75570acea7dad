"""Performance estimated without labels (CBPE, int_estimated_performance), end to end: a home sends
covariate-shift traffic (car prices rise from day 3; how repayment depends on the inputs does not
change, CBPE's assumption) and the labels of all but its last day, and runs once: every window gets
an estimate, the unlabelled one too, and the labelled ones their realized values beside it.

The estimates are checked against an independent implementation (scikit-learn's isotonic fit on the
published reference rows, numpy's expected confusion matrix and an O(n^2) pairwise AUC), never
against the SQL's own output, and against the realized values: the stated error is
ESTIMATE_ERROR_SIGMAS binomial standard errors of the window's accuracy."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from ml.calibration import calibration_segments
from tests.conftest import DRIFT_PLAN, build_home

ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
# The stated error of CBPE under covariate shift: |estimated - realized accuracy| of a window within
# this many binomial standard errors sqrt(a (1 - a) / n) of the realized accuracy a over n rows.
ESTIMATE_ERROR_SIGMAS = 3.0
# Labels arrive for the first days only: the last window is judged before any of its labels.
LABELLED_DAYS = DRIFT_PLAN.days - 1


def _performance(home) -> pd.DataFrame:
    with duckdb.connect(str(home.published), read_only=True) as connection:
        return connection.execute(
            "select * from marts.fct_model_performance order by window_start, metric_name"
        ).df()


@pytest.fixture(scope="module")
def covariate_home(tmp_path_factory, trained_template, spec):
    """(home, marts.fct_model_performance) after one run; the last day has no labels yet."""
    home = build_home(
        tmp_path_factory.mktemp("cbpe") / "home",
        trained_template,
        spec,
        "covariate_shift",
        labelled_days=LABELLED_DAYS,
    )
    return home, _performance(home)


def _independent_estimates(home, spec) -> pd.DataFrame:
    """CBPE from the published raw rows: isotonic on the reference, expected confusion, pairwise AUC."""
    with duckdb.connect(str(home.published), read_only=True) as connection:
        reference = connection.execute(
            "select probability, label from raw.reference_rows where model_name = ? and model_version = 1",
            [spec.model],
        ).df()
        logs = connection.execute(
            "select scored_at, prediction, probability from raw.inference_log where model_name = ?",
            [spec.model],
        ).df()
    positive = str(spec.positive_label)
    calibrator = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    calibrator.fit(reference["probability"], (reference["label"] == positive).astype(float))
    logs["p"] = calibrator.predict(logs["probability"])
    logs["d"] = (logs["prediction"] == positive).astype(float)
    logs["window_start"] = logs["scored_at"].dt.floor(f"{spec.window_seconds}s")
    rows = []
    for window, group in logs.groupby("window_start"):
        p, d, score = group["p"].to_numpy(), group["d"].to_numpy(), group["probability"].to_numpy()
        tp, fp = (d * p).sum(), (d * (1 - p)).sum()
        fn, tn = ((1 - d) * p).sum(), ((1 - d) * (1 - p)).sum()
        above = (score[:, None] > score[None, :]) + 0.5 * (score[:, None] == score[None, :])
        auc = (p[:, None] * (1 - p)[None, :] * above).sum() / (p.sum() * (1 - p).sum())
        values = {
            "accuracy": (tp + tn) / len(p),
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "roc_auc": auc,
        }
        rows += [
            {"window_start": window, "metric_name": name, "expected": value, "n": len(p)}
            for name, value in values.items()
        ]
    return pd.DataFrame(rows)


def test_estimates_are_there_before_any_label_and_equal_an_independent_cbpe(covariate_home, spec):
    home, performance = covariate_home
    estimated = performance[performance["metric_name"].isin(ESTIMATED_METRICS)]
    assert len(estimated) == DRIFT_PLAN.days * len(ESTIMATED_METRICS)
    assert estimated["estimated_value"].notna().all()
    assert (estimated["estimated_lower"] <= estimated["estimated_value"]).all()
    assert (estimated["estimated_value"] <= estimated["estimated_upper"]).all()
    unlabelled = estimated[estimated["window_start"] >= DRIFT_PLAN.start + pd.Timedelta(days=LABELLED_DAYS)]
    assert len(unlabelled) == len(ESTIMATED_METRICS)
    assert unlabelled["realized_value"].isna().all() and (unlabelled["n_labelled"] == 0).all()

    expected = _independent_estimates(home, spec)
    merged = expected.merge(performance, on=["window_start", "metric_name"], how="left")
    assert len(merged) == len(expected) == len(estimated)
    np.testing.assert_allclose(merged["estimated_value"], merged["expected"], rtol=1e-9, atol=1e-12)
    assert (merged["n_estimated"] == merged["n"]).all()


def test_estimated_accuracy_follows_the_realized_under_covariate_shift(covariate_home):
    _, after = covariate_home
    accuracy = after[(after["metric_name"] == "accuracy") & (after["n_labelled"] > 0)].reset_index(drop=True)
    assert len(accuracy) == LABELLED_DAYS and accuracy["realized_value"].notna().all()
    error = (accuracy["estimated_value"] - accuracy["realized_value"]).abs()
    realized = accuracy["realized_value"]
    standard_error = np.sqrt(realized * (1 - realized) / accuracy["n_labelled"])
    columns = ["window_start", "realized_value", "estimated_value", "estimated_lower", "estimated_upper"]
    print("accuracy per window, |error| / standard error as ratio:")
    print(accuracy.assign(ratio=error / standard_error)[[*columns, "ratio"]].to_string())
    assert (error <= ESTIMATE_ERROR_SIGMAS * standard_error).all()
    # the band holds the realized value
    assert (accuracy["estimated_lower"] <= accuracy["realized_value"]).all()
    assert (accuracy["realized_value"] <= accuracy["estimated_upper"]).all()
    # dearer cars cost the model recall (0.94 on the reference, about 0.88 after day 3): where the
    # estimate flags a decline before the labels, the labels confirm the metric fell
    flagged = after[after["is_estimated_degraded"] & (after["n_labelled"] > 0)]
    assert (flagged["realized_value"] < flagged["reference_value"]).all(), flagged


def test_calibration_segments_reproduce_isotonic_predictions():
    rng = np.random.default_rng(5)
    scores = rng.beta(2, 3, 2000).round(3)  # ties, as real scores have
    outcomes = (rng.random(2000) < scores**1.5).astype(float)
    segments = calibration_segments(scores, outcomes)
    grid = np.concatenate([np.linspace(-0.1, 1.1, 997), scores[:50]])
    clipped = np.clip(grid, segments["score_from"].min(), segments["score_to"].max())
    index = np.searchsorted(segments["score_from"].to_numpy(), clipped, side="right") - 1
    chosen = segments.iloc[index]
    width = (chosen["score_to"] - chosen["score_from"]).to_numpy()
    slope = np.divide(
        (chosen["calibrated_to"] - chosen["calibrated_from"]).to_numpy(),
        width,
        out=np.zeros_like(width),
        where=width > 0,
    )
    calibrated = chosen["calibrated_from"].to_numpy() + (clipped - chosen["score_from"].to_numpy()) * slope
    reference = IsotonicRegression(out_of_bounds="clip").fit(scores, outcomes).predict(grid)
    np.testing.assert_allclose(calibrated, reference, rtol=0, atol=1e-12)
    single = calibration_segments(np.full(10, 0.3), np.r_[np.ones(3), np.zeros(7)])
    assert single[["score_from", "score_to", "calibrated_from", "calibrated_to"]].values.tolist() == [
        [0.3, 0.3, 0.3, 0.3]
    ]


def test_the_dagster_checks_judge_the_latest_window_as_the_mart_does(covariate_home, spec):
    from orchestration.definitions import build_definitions
    from orchestration.instance import instance_for

    home, after = covariate_home
    with instance_for(home) as instance:
        graph = build_definitions(str(home.root)).resolve_asset_graph()
        evaluations = {}
        for check in graph.asset_check_keys:
            record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check]).get(check)
            if record is not None and record.evaluation is not None:
                evaluations[check.name] = record.evaluation
    judged = after[after["estimated_threshold"].notna() & (after["n_estimated"] >= spec.min_window_rows)]
    latest = judged[judged["window_start"] == judged["window_start"].max()]
    estimated = evaluations["performance_estimated_latest_window"]
    assert estimated.passed == (not latest["is_estimated_degraded"].any())
    assert estimated.metadata["window_start"].value == latest["window_start"].max().isoformat()
    assert estimated.metadata["degraded_metrics"].value == sorted(
        latest.loc[latest["is_estimated_degraded"], "metric_name"]
    )
    assert evaluations["performance_latest_labelled_window"].passed == (not latest["is_degraded"].any())
