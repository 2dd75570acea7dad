"""The retraining loop as assets: drift → challenger (trained and validated) → champion (promoted
or rejected, and so deployed: the API follows the registry's champion without a restart)."""

import dagster as dg

from orchestration.automation import retrain_decision
from orchestration.resources import DriftmartResource
from warehouse.connection import connect_published

# orchestration/assets/publish.py's key: importing that module would read the dbt manifest.
PUBLISHED = dg.AssetKey(["published", "driftmart_duckdb"])

CHALLENGER = dg.AssetKey(["model", "challenger"])
CHAMPION = dg.AssetKey(["model", "champion"])


@dg.asset(
    key=CHALLENGER,
    deps=[
        dg.AssetKey(["marts", "fct_feature_drift"]),
        dg.AssetKey(["marts", "fct_dataset_drift"]),
        PUBLISHED,
    ],
    group_name="model",
    kinds={"scikitlearn"},
)
def challenger_model(context: dg.AssetExecutionContext, driftmart: DriftmartResource) -> dg.MaterializeResult:
    """Refit the champion's estimator on its reference plus the labelled rows since the drift began
    (the most recent ones when run by hand), and validate it against the champion on the newest."""
    # The model layer (scikit-learn, skops) is imported by the steps that train, not by the definitions.
    from ml import registry
    from ml.validation import split_recent, train_challenger, validate
    from orchestration.gate import judge_reference
    from warehouse.queries import labelled_rows

    home, spec = driftmart.home, driftmart.spec()
    policy = spec.retrain
    decision = retrain_decision(home, spec)
    champion_pipeline, champion = registry.load_pipeline(home, spec.model)
    with connect_published(home) as connection:
        labelled = labelled_rows(connection, spec, policy.max_training_rows, since=decision.drift_started_at)
    fit_rows, holdout = split_recent(spec, labelled, policy)
    reference = registry.load_reference(home, spec.model, champion.model_version)
    # The champion's own estimator refit (clone, or the spec's retrain.fit): its type and
    # hyperparameters survive the retrain.
    challenger = train_challenger(spec, reference, fit_rows, champion=champion_pipeline)
    evidence = {"reason": decision.reason}
    if decision.signal is not None:
        evidence["signal"] = decision.signal  # input_drift, or performance (concept drift)
    if decision.trigger_window is not None:
        evidence["trigger_window"] = f"{decision.trigger_window:%Y-%m-%dT%H:%M:%S}"
    if decision.drift_started_at is not None:
        evidence["drift_started_at"] = f"{decision.drift_started_at:%Y-%m-%dT%H:%M:%S}"
    version = registry.register(
        home,
        spec,
        challenger,
        trigger="drift" if decision.needed else "manual",
        actor=f"dagster run {context.run_id}",
        evidence=evidence,
    )
    verdict = validate(
        spec,
        champion_pipeline,
        champion.model_version,
        challenger,
        version.model_version,
        holdout,
        policy,
        lambda: judge_reference(spec, challenger, holdout),
    )
    registry.record_validation(home, spec.model, version.model_version, verdict.to_dict())
    context.log.info(f"challenger v{version.model_version}: {verdict.reason}")
    rows = [
        f"| {metric} | {verdict.champion[metric]:.4f} | {verdict.challenger.get(metric, float('nan')):.4f} |"
        for metric in verdict.champion
    ]
    return dg.MaterializeResult(
        metadata={
            "challenger_version": version.model_version,
            "champion_version": champion.model_version,
            "estimator": version.estimator,
            "trigger": decision.reason,
            "n_training_rows": verdict.n_training_rows,
            "n_holdout": verdict.n_holdout,
            "verdict": "promote" if verdict.promote else "reject",
            "reason": verdict.reason,
            "validation": dg.MetadataValue.md(
                "| metric | champion | challenger |\n|---|---|---|\n" + "\n".join(rows)
            ),
        }
    )


@dg.asset(key=CHAMPION, deps=[CHALLENGER], group_name="model", kinds={"scikitlearn"})
def champion_model(context: dg.AssetExecutionContext, driftmart: DriftmartResource) -> dg.MaterializeResult:
    """Promote the validated challenger if it won (the API switches to it within a second; the old
    champion is kept for `driftmart rollback`), else mark it rejected with the reason."""
    from ml import registry

    home, spec = driftmart.home, driftmart.spec()
    pending = [
        version
        for version in registry.list_versions(home, spec.model)
        if version.status == "challenger" and version.validation
    ]
    actor = f"dagster run {context.run_id}"
    if not pending:
        champion = registry.champion_version(home, spec.model)
        return dg.MaterializeResult(
            metadata={"champion_version": champion, "decision": "no validated challenger"}
        )
    challenger = pending[-1]
    verdict = challenger.validation
    if verdict["promote"]:
        registry.promote(
            home,
            spec.model,
            challenger.model_version,
            actor=actor,
            reason=verdict["reason"],
            evidence=verdict,
        )
        decision = "promoted"
    else:
        registry.reject(
            home,
            spec.model,
            challenger.model_version,
            actor=actor,
            reason=verdict["reason"],
            evidence=verdict,
        )
        decision = "rejected"
    context.log.info(f"v{challenger.model_version} {decision}: {verdict['reason']}")
    return dg.MaterializeResult(
        metadata={
            "champion_version": registry.champion_version(home, spec.model),
            "challenger_version": challenger.model_version,
            "decision": decision,
            "reason": verdict["reason"],
        }
    )
