"""The retrain decision on hand-written published marts: which windows the champion answers for,
one retrain per drift episode whatever its challenger's verdict, and degraded realized performance
(concept drift) as a trigger of its own."""

from dataclasses import replace
from datetime import datetime, timedelta

import duckdb
import pytest

from ml import registry
from ml.datasets import training_set
from ml.spec import Reference
from ml.train import train_model
from orchestration.automation import retrain_decision

DAY = timedelta(days=1)
START = datetime(2026, 5, 1)


def publish_windows(home, spec, windows, performance=()):
    """Write the published marts the decision reads: `windows` is a list of
    (day index, n drifted features, dataset drifted, reference version, model version logged),
    `performance` one of (day index, labelled rows, roc_auc degraded, serving version)."""
    home.published.unlink(missing_ok=True)
    with duckdb.connect(str(home.published)) as connection:
        connection.execute("create schema marts; create schema raw")
        connection.execute(
            "create table marts.fct_feature_drift (model_name varchar, feature_name varchar, window_start "
            "timestamp, window_end timestamp, reference_version integer, has_reference boolean, "
            "is_below_min_rows boolean, is_drifted boolean)"
        )
        connection.execute(
            "create table marts.fct_dataset_drift (model_name varchar, window_start timestamp, "
            "window_end timestamp, is_dataset_drifted boolean)"
        )
        connection.execute(
            "create table raw.inference_log (model_name varchar, request_id varchar, scored_at timestamp, "
            "model_version integer)"
        )
        connection.execute("create table raw.labels (model_name varchar, request_id varchar, label varchar)")
        connection.execute(
            "create table marts.fct_model_performance (model_name varchar, window_start timestamp, "
            "metric_name varchar, reference_version integer, threshold double, n_labelled bigint, "
            "is_degraded boolean)"
        )
        for day, n_labelled, degraded, version in performance:
            for metric in ("accuracy", "roc_auc"):
                connection.execute(
                    "insert into marts.fct_model_performance values (?, ?, ?, ?, 0.7, ?, ?)",
                    [
                        spec.model,
                        START + day * DAY,
                        metric,
                        version,
                        n_labelled,
                        degraded and metric == "roc_auc",
                    ],
                )
        for day, n_drifted, dataset_drifted, reference_version, model_version in windows:
            start, end = START + day * DAY, START + (day + 1) * DAY
            for index, feature in enumerate(spec.features):
                connection.execute(
                    "insert into marts.fct_feature_drift values (?, ?, ?, ?, ?, true, false, ?)",
                    [spec.model, feature, start, end, reference_version, index < n_drifted],
                )
            connection.execute(
                "insert into marts.fct_dataset_drift values (?, ?, ?, ?)",
                [spec.model, start, end, dataset_drifted],
            )
            for row in range(3):
                request_id = f"{day}-{row}"
                connection.execute(
                    "insert into raw.inference_log values (?, ?, ?, ?)",
                    [spec.model, request_id, start + timedelta(hours=row), model_version],
                )
                connection.execute("insert into raw.labels values (?, ?, '1')", [spec.model, request_id])


def with_policy(spec, kind="model_version"):
    start, end = (START, START + DAY) if kind == "time_range" else (None, None)
    return replace(
        spec,
        reference=Reference(kind=kind, start=start, end=end),
        retrain=replace(spec.retrain, consecutive_warns=2, min_labelled_rows=1),
    )


def register_retrain(home, spec, trigger_window):
    """A challenger registered by a retrain for the drift that `trigger_window` completed."""
    evidence = {"trigger_window": f"{trigger_window:%Y-%m-%dT%H:%M:%S}"}
    trained = train_model(spec, training_set())
    return registry.register(home, spec, trained, trigger="drift", evidence=evidence)


@pytest.mark.parametrize("kind", ["previous_window", "time_range"])
def test_a_model_without_reference_versions_retrains_on_the_drift_of_its_own_windows(
    trained_home, spec, kind
):
    spec = with_policy(spec, kind)
    # Windows judged against the previous window (or a time range) carry no reference version.
    publish_windows(
        trained_home, spec, [(1, 0, False, None, 1), (2, 1, False, None, 1), (3, 1, False, None, None)]
    )
    decision = retrain_decision(trained_home, spec)
    assert decision.needed, decision.reason
    # the streak began on day 2 and the second drifted window (day 3) completed it
    assert (decision.drift_started_at, decision.trigger_window) == (START + 2 * DAY, START + 3 * DAY)
    # Windows whose predictions another version made are not the champion's to answer for.
    publish_windows(
        trained_home, spec, [(1, 0, False, None, 1), (2, 1, False, None, 7), (3, 1, False, None, 7)]
    )
    assert not retrain_decision(trained_home, spec).needed


def test_a_rejected_challenger_ends_the_retrains_of_its_episode(trained_home, spec):
    spec = with_policy(spec)
    drifted = [(day, 3, True, 1, 1) for day in (1, 2)]
    publish_windows(trained_home, spec, drifted)
    first = retrain_decision(trained_home, spec)
    assert first.needed and first.trigger_window == START + 2 * DAY, first.reason
    challenger = register_retrain(trained_home, spec, first.trigger_window)
    registry.reject(trained_home, spec.model, challenger.model_version, actor="test", reason="worse")
    # Each new dataset-drifted window of the same streak is the same episode: no second retrain.
    publish_windows(trained_home, spec, [*drifted, (3, 3, True, 1, 1), (4, 3, True, 1, 1)])
    again = retrain_decision(trained_home, spec)
    assert not again.needed
    assert again.reason.startswith("already retrained for the drift since 2026-05-02 00:00 (v2, rejected)")
    # A window without drift ends the episode: the next drift is a new one.
    publish_windows(
        trained_home, spec, [*drifted, (3, 3, True, 1, 1), (4, 0, False, 1, 1), (5, 3, True, 1, 1)]
    )
    later = retrain_decision(trained_home, spec)
    assert later.needed and later.drift_started_at == START + 5 * DAY, later.reason


def test_after_a_promotion_only_windows_judged_against_the_new_champion_count(trained_home, spec):
    spec = with_policy(spec)
    challenger = register_retrain(trained_home, spec, START + 2 * DAY)
    registry.promote(trained_home, spec.model, challenger.model_version, actor="test", reason="better")
    publish_windows(trained_home, spec, [(1, 3, True, 1, 1), (2, 3, True, 1, 1), (3, 0, False, 2, 2)])
    assert not retrain_decision(trained_home, spec).needed
    publish_windows(trained_home, spec, [(1, 3, True, 1, 1), (2, 3, True, 1, 1), (3, 3, True, 2, 2)])
    decision = retrain_decision(trained_home, spec)
    assert decision.needed and decision.drift_started_at == START + 3 * DAY, decision.reason


def test_degraded_performance_retrains_without_input_drift(trained_home, spec):
    spec = with_policy(spec)
    calm = [(day, 0, False, 1, 1) for day in range(1, 5)]
    # Days 2 and 3 degraded; day 4 still waits for its labels: it neither extends nor ends the streak.
    performance = [(1, 500, False, 1), (2, 500, True, 1), (3, 500, True, 1), (4, 0, False, 1)]
    publish_windows(trained_home, spec, calm, performance)
    decision = retrain_decision(trained_home, spec)
    assert decision.needed and decision.signal == "performance", decision.reason
    assert (decision.drift_started_at, decision.trigger_window) == (START + 2 * DAY, START + 3 * DAY)
    assert decision.reason.startswith("realized performance degraded (roc_auc) in 2 consecutive")
    # One degraded window is not a streak: a judged window within its threshold ends it.
    publish_windows(trained_home, spec, calm, [(1, 500, True, 1), (2, 500, False, 1), (3, 500, True, 1)])
    single = retrain_decision(trained_home, spec)
    assert (
        not single.needed and "performance degraded in 1 consecutive labelled windows of 2" in single.reason
    )
    # Too few labelled rows to judge, or windows another version served: not the champion's to answer for.
    few = spec.min_window_rows - 1
    publish_windows(trained_home, spec, calm, [(2, few, True, 1), (3, few, True, 1)])
    assert not retrain_decision(trained_home, spec).needed
    publish_windows(trained_home, spec, calm, [(2, 500, True, 7), (3, 500, True, 7)])
    assert not retrain_decision(trained_home, spec).needed
