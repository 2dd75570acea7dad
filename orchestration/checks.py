"""Python asset checks beside the dbt tests: dataset-level drift and degraded realized or estimated
performance (signals: non-blocking) and the landing zone's data quality (a stop: blocking, so nothing is
published from a broken feed)."""

import dagster as dg

from orchestration.automation import judged_windows, performance_windows
from orchestration.resources import DriftmartResource
from warehouse.connection import connect_published, warehouse_writer

# More than this share of a pass's landed lines quarantined means the feed itself is broken.
MAX_QUARANTINE_SHARE = 0.05


@dg.asset_check(
    asset=dg.AssetKey(["marts", "fct_dataset_drift"]),
    name="dataset_drift_latest_window",
    description="The latest window judged against the champion's reference is not dataset-drifted "
    "(share of drifted features below the spec's dataset_drift_share).",
    additional_deps=[dg.AssetKey(["published", "driftmart_duckdb"])],
)
def dataset_drift_latest_window(driftmart: DriftmartResource) -> dg.AssetCheckResult:
    from ml import registry

    home, spec = driftmart.home, driftmart.spec()
    champion = registry.champion_version(home, spec.model)
    with connect_published(home) as connection:
        windows = judged_windows(connection, spec, champion) if champion is not None else []
    if not windows:
        return dg.AssetCheckResult(passed=True, metadata={"note": "no judged window yet"})
    window_start, n_drifted, dataset_drifted = windows[0]
    return dg.AssetCheckResult(
        passed=not dataset_drifted,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "window_start": window_start.isoformat(),
            "n_drifted_features": int(n_drifted),
            "n_features": len(spec.features),
        },
    )


def _latest_performance_result(driftmart: DriftmartResource, *, estimated: bool) -> dg.AssetCheckResult:
    """The newest window the champion served whose realized (or estimated) performance was judged:
    passed unless a metric of it is degraded."""
    from ml import registry

    home, spec = driftmart.home, driftmart.spec()
    champion = registry.champion_version(home, spec.model)
    with connect_published(home) as connection:
        windows = (
            performance_windows(connection, spec, champion, estimated=estimated)
            if champion is not None
            else []
        )
    if not windows:
        note = "no estimated window yet" if estimated else "no window with enough labels yet"
        return dg.AssetCheckResult(passed=True, metadata={"note": note})
    window_start, degraded, metrics = windows[0]
    return dg.AssetCheckResult(
        passed=not degraded,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "window_start": window_start.isoformat(),
            "degraded_metrics": dg.MetadataValue.json(metrics),
        },
    )


@dg.asset_check(
    asset=dg.AssetKey(["marts", "fct_model_performance"]),
    name="performance_latest_labelled_window",
    description="The latest window with enough labels that the champion served performs within its "
    "reference's sampling error (no metric of marts.fct_model_performance is_degraded).",
    additional_deps=[dg.AssetKey(["published", "driftmart_duckdb"])],
)
def performance_latest_labelled_window(driftmart: DriftmartResource) -> dg.AssetCheckResult:
    return _latest_performance_result(driftmart, estimated=False)


@dg.asset_check(
    asset=dg.AssetKey(["marts", "fct_model_performance"]),
    name="performance_estimated_latest_window",
    description="The latest window with enough rows that the champion served is not estimated to "
    "degrade before its labels (no metric of marts.fct_model_performance is_estimated_degraded: "
    "CBPE, binary classifiers with probabilities).",
    additional_deps=[dg.AssetKey(["published", "driftmart_duckdb"])],
)
def performance_estimated_latest_window(driftmart: DriftmartResource) -> dg.AssetCheckResult:
    return _latest_performance_result(driftmart, estimated=True)


@dg.asset_check(
    asset=dg.AssetKey(["raw", "inference_log"]),
    name="landing_quarantine_share",
    blocking=True,
    description=f"At most {MAX_QUARANTINE_SHARE:.0%} of the lines of the segments the latest ingest "
    "touched were quarantined.",
)
def landing_quarantine_share(driftmart: DriftmartResource) -> dg.AssetCheckResult:
    home = driftmart.home
    with warehouse_writer(home) as connection:
        loaded, quarantined = connection.execute(
            """
            select coalesce(sum(lines_loaded), 0), coalesce(sum(lines_quarantined), 0)
            from raw.landing_manifest
            where updated_at = (select max(updated_at) from raw.landing_manifest)
            """
        ).fetchall()[0]
    total = loaded + quarantined
    share = quarantined / total if total else 0.0
    return dg.AssetCheckResult(
        passed=share <= MAX_QUARANTINE_SHARE,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"lines_loaded": int(loaded), "lines_quarantined": int(quarantined), "share": share},
    )
