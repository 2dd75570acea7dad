from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ml import registry
from ml.datasets import generate
from ml.spec import FeatureMonitor, RetrainPolicy
from ml.validation import (
    NotEnoughLabelsError,
    ReferenceDrift,
    RetrainFitError,
    split_recent,
    train_challenger,
    validate,
)
from orchestration.gate import judge_reference


def never_asked():
    raise AssertionError("a challenger that loses on the metric is not judged for drift (a dbt run)")


# The drift verdict validate() is given where a test is about the metrics, not the gate's drift check.
NO_DRIFT = ReferenceDrift(
    drifted_features=[], dataset_drifted=False, share_drifted=0.0, dataset_threshold=0.5, features={}
)


def recent_rows(scenario, spec, seed=4):
    frame = generate(scenario, days=8, rows_per_day=300, drift_day=0, seed=seed)
    return frame.assign(**{spec.target: frame[spec.target].astype(str)})


def challenge(trained_home, spec, recent, policy=None, *, judged=False):
    policy = policy or RetrainPolicy()
    champion, champion_meta = registry.load_pipeline(trained_home, spec.model)
    reference = registry.load_reference(trained_home, spec.model, champion_meta.model_version)
    fit_rows, holdout = split_recent(spec, recent, policy)
    challenger = train_challenger(spec, reference, fit_rows, champion=champion)

    def judge():
        return judge_reference(spec, challenger, holdout) if judged else NO_DRIFT

    return validate(spec, champion, 1, challenger, 2, holdout, policy, judge), challenger, holdout


def test_challenger_trained_after_concept_drift_beats_the_champion(trained_home, spec):
    verdict, _, holdout = challenge(trained_home, spec, recent_rows("concept_drift", spec))
    assert verdict.promote, verdict.reason
    assert verdict.challenger["roc_auc"] > verdict.champion["roc_auc"] + 0.05
    assert verdict.n_holdout == len(holdout) == round(2400 * 0.3)


def test_challenger_on_shuffled_labels_is_rejected_with_the_reason(trained_home, spec):
    recent = recent_rows("no_drift", spec)
    recent[spec.target] = np.random.default_rng(0).permutation(recent[spec.target].to_numpy())
    champion, _ = registry.load_pipeline(trained_home, spec.model)
    fit_rows, _ = split_recent(spec, recent, RetrainPolicy())
    clean_holdout = recent_rows("no_drift", spec, seed=9).tail(700)
    reference = registry.load_reference(trained_home, spec.model, 1)
    challenger = train_challenger(spec, reference.head(50), fit_rows, champion=champion)
    policy = RetrainPolicy(promotion_margin=0.01)
    verdict = validate(spec, champion, 1, challenger, 2, clean_holdout, policy, never_asked)
    assert not verdict.promote
    assert "does not beat the champion's" in verdict.reason


@pytest.mark.slow
def test_challenger_reference_follows_the_new_traffic_as_the_drift_engine_judges_it(trained_home, spec):
    verdict, challenger, holdout = challenge(
        trained_home, spec, recent_rows("covariate_shift", spec), judged=True
    )
    assert verdict.challenger_drifted_features == [] and verdict.promote, verdict.reason
    # every feature judged by the spec's own method and threshold
    assert {
        name: FeatureMonitor(judged["method"], judged["threshold"])
        for name, judged in verdict.challenger_drift.items()
    } == spec.monitors
    # The champion's old reference, judged by the same engine, drifts from that traffic in car_value.
    old_reference = registry.load_reference(trained_home, spec.model, 1)
    old = judge_reference(spec, replace(challenger, reference=old_reference), holdout)
    assert "car_value" in old.drifted_features
    assert old.features["car_value"]["score"] >= old.features["car_value"]["threshold"]
    assert verdict.challenger_drift["car_value"]["score"] < old.features["car_value"]["score"]


@pytest.mark.slow
def test_the_gate_judges_with_the_specs_methods_thresholds_and_dataset_share(trained_home, spec):
    _, challenger, holdout = challenge(trained_home, spec, recent_rows("covariate_shift", spec))
    old_reference = registry.load_reference(trained_home, spec.model, 1)
    stale = replace(challenger, reference=old_reference)
    # car_value judged by Wasserstein with a threshold nothing reaches, one drifted feature a dataset drift
    monitors = {**spec.monitors, "car_value": FeatureMonitor("wasserstein_normed", 1e9)}
    strict = replace(spec, monitors=monitors, thresholds={**spec.thresholds, "dataset_drift_share": 1e-9})
    judged = judge_reference(strict, stale, holdout)
    assert judged.features["car_value"]["method"] == "wasserstein_normed"
    assert judged.features["car_value"]["threshold"] == 1e9
    assert "car_value" not in judged.drifted_features
    assert judged.dataset_drifted == bool(judged.drifted_features)
    policy = RetrainPolicy(promotion_margin=-1.0)  # any challenger beats the champion on the metric
    champion, _ = registry.load_pipeline(trained_home, spec.model)
    drifting = judge_reference(spec, stale, holdout)
    assert drifting.dataset_drifted == (drifting.share_drifted >= spec.thresholds["dataset_drift_share"])
    verdict = validate(spec, champion, 1, stale, 2, holdout, policy, lambda: drifting)
    assert verdict.promote == (not drifting.dataset_drifted)
    if drifting.dataset_drifted:
        assert verdict.reason.startswith("the challenger's reference still drifts from recent traffic in")


def test_too_few_labels_is_a_clear_error(spec):
    with pytest.raises(NotEnoughLabelsError, match="retraining needs at least 200"):
        split_recent(spec, recent_rows("no_drift", spec).head(50), RetrainPolicy())


def test_lifecycle_promote_reject_rollback_is_recorded(trained_home, spec):
    verdict, challenger, _ = challenge(trained_home, spec, recent_rows("concept_drift", spec))
    version = registry.register(trained_home, spec, challenger, trigger="drift", actor="test")
    registry.record_validation(trained_home, spec.model, version.model_version, verdict.to_dict())
    registry.promote(trained_home, spec.model, version.model_version, actor="test", reason=verdict.reason)
    assert registry.champion_version(trained_home, spec.model) == 2
    versions = {v.model_version: v for v in registry.list_versions(trained_home, spec.model)}
    assert (versions[1].status, versions[2].status) == ("retired", "champion")
    assert [event["event"] for event in versions[2].history] == ["registered", "promoted"]
    assert versions[2].validation["challenger_version"] == 2
    rolled = registry.rollback(trained_home, spec.model, actor="operator")
    assert rolled.model_version == 1 and registry.champion_version(trained_home, spec.model) == 1
    assert registry.get_version(trained_home, spec.model, 2).status == "retired"
    assert "rollback (from v2)" in registry.get_version(trained_home, spec.model, 1).reason
    third = registry.register(trained_home, spec, challenger, trigger="drift", actor="test")
    rejected = registry.reject(trained_home, spec.model, third.model_version, actor="test", reason="worse")
    assert (rejected.status, rejected.reason) == ("rejected", "worse")


def test_rollback_without_a_previous_champion_is_refused(trained_home, spec):
    with pytest.raises(registry.RegistryError, match="nothing to roll back to"):
        registry.rollback(trained_home, spec.model, actor="operator")


def more_trees(champion, features, labels):
    """A `retrain.fit` function for the test below: the user's own training code."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [("preprocess", champion.steps[0][1]), ("forest", RandomForestClassifier(20, random_state=0))]
    ).fit(features, labels)


def test_the_challenger_is_the_champions_estimator_refit_with_the_champions_class_type(trained_home, spec):
    champion, _ = registry.load_pipeline(trained_home, spec.model)
    _, challenger, holdout = challenge(trained_home, spec, recent_rows("concept_drift", spec))
    final, champion_final = challenger.pipeline.steps[-1][1], champion.steps[-1][1]
    assert type(final) is type(champion_final) and final.get_params() == champion_final.get_params()
    assert final is not champion_final
    # labels come from the warehouse as text ("1"); the challenger still answers ints, as v1 did
    assert challenger.pipeline.classes_.tolist() == [0, 1] and challenger.pipeline.classes_.dtype.kind == "i"
    assert isinstance(challenger.pipeline.predict(holdout[list(spec.features)])[0], np.integer)


def test_retrain_fit_names_the_users_own_training_function(trained_home, spec):
    from dataclasses import replace

    custom = replace(spec, retrain=replace(spec.retrain, fit="tests.ml.test_validation:more_trees"))
    champion, _ = registry.load_pipeline(trained_home, spec.model)
    fit_rows, _ = split_recent(custom, recent_rows("concept_drift", spec), custom.retrain)
    reference = registry.load_reference(trained_home, spec.model, 1)
    challenger = train_challenger(custom, reference, fit_rows, champion=champion)
    assert type(challenger.pipeline.steps[-1][1]).__name__ == "RandomForestClassifier"
    assert challenger.pipeline.classes_.dtype.kind == "i"
    broken = replace(spec, retrain=replace(spec.retrain, fit="tests.ml.no_such_module:fit"))
    with pytest.raises(RetrainFitError, match=r"cannot import tests\.ml\.no_such_module"):
        train_challenger(broken, reference, fit_rows, champion=champion)


def test_a_regression_challenger_wins_by_a_lower_rmse(tmp_path):
    from sklearn.linear_model import Ridge

    from ml.spec import parse_spec
    from ml.train import train_model

    spec = parse_spec(
        {
            "model": "prices",
            "timestamp": "at",
            "id": "id",
            "prediction": "price_hat",
            "target": "price",
            "task": "regression",
            "features": {"size": "numeric", "city": "categorical"},
        }
    )
    rng = np.random.default_rng(1)

    def rows(n, slope, start):
        size = rng.uniform(20, 200, n)
        city = rng.choice(["a", "b"], n)
        return pd.DataFrame(
            {
                "id": [f"r{start + i}" for i in range(n)],
                "at": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n), unit="min"),
                "size": size,
                "city": city,
                "price": slope * size + 100 * (city == "b") + rng.normal(0, 10, n),
            }
        )

    trained = train_model(spec, rows(500, 3.0, 0))
    assert isinstance(trained.pipeline.steps[-1][1], Ridge) and {"rmse", "mae", "r2"} <= set(trained.metrics)
    recent = rows(600, 5.0, 1000).assign(price=lambda frame: frame["price"].map(repr))  # text, as stored
    fit_rows, holdout = split_recent(spec, recent, spec.retrain)
    challenger = train_challenger(spec, trained.reference, fit_rows, champion=trained.pipeline)
    verdict = validate(spec, trained.pipeline, 1, challenger, 2, holdout, spec.retrain, lambda: NO_DRIFT)
    assert verdict.metric == "rmse" and verdict.challenger["rmse"] < verdict.champion["rmse"]
    assert verdict.promote and "lower is better" in verdict.reason


def test_the_challengers_reference_keeps_the_segment_columns_of_its_rows(trained_home, spec):
    """A retrain's reference set is recent labelled rows: their segment columns (spec `segments`,
    not model inputs) stay with them, so segment drift has a reference after the retrain."""
    segmented = replace(spec, segments=("branch",))
    champion, _ = registry.load_pipeline(trained_home, spec.model)
    recent = recent_rows("concept_drift", spec)
    recent["branch"] = np.where(np.arange(len(recent)) % 3 == 0, "north", "south")
    fit_rows, _ = split_recent(segmented, recent, segmented.retrain)
    reference = registry.load_reference(trained_home, spec.model, 1)
    challenger = train_challenger(segmented, reference, fit_rows, champion=champion)
    kept = challenger.reference.set_index(spec.id)["branch"]
    by_id = recent.set_index(spec.id)["branch"]
    assert len(kept) > 0 and (kept == by_id.loc[kept.index]).all()
    assert "branch" not in challenger.pipeline.feature_names_in_
