"""Ingest: landed API logs and the model registry into the raw warehouse tables."""

import dagster as dg

from orchestration.resources import WAREHOUSE_WRITER_POOL, DriftmartResource
from warehouse.connection import warehouse_writer
from warehouse.targets import resolve_target

LANDED_INFERENCE = dg.AssetKey(["landing", "inference_segments"])
LANDED_FEEDBACK = dg.AssetKey(["landing", "feedback_segments"])
REGISTRY_FILES = dg.AssetKey(["models", "registry_files"])

external_sources = [
    dg.AssetSpec(
        LANDED_INFERENCE,
        description="JSON-lines segments the model API appends every answered prediction to.",
        group_name="landing",
        kinds={"file"},
    ),
    dg.AssetSpec(
        LANDED_FEEDBACK,
        description="JSON-lines segments of delayed ground truth sent to the API's /feedback.",
        group_name="landing",
        kinds={"file"},
    ),
    dg.AssetSpec(
        REGISTRY_FILES,
        description="The on-disk model registry: artifacts, metadata and reference sets per version.",
        group_name="landing",
        kinds={"file"},
    ),
]

RAW_TABLES = {
    "inference_log": ("One row per logged prediction.", [LANDED_INFERENCE]),
    "labels": ("Delayed ground truth per request.", [LANDED_FEEDBACK]),
    "reference_rows": ("Reference set of each model version.", [REGISTRY_FILES]),
    "score_calibration": (
        "Isotonic calibration of each binary version's scores, fitted on its reference set (CBPE).",
        [REGISTRY_FILES],
    ),
    "model_registry": ("Every model version with its metrics and status.", [REGISTRY_FILES]),
    "monitored_models": ("The monitoring spec of each model (window, thresholds).", []),
    "model_features": ("The features of each model and their types, from the spec.", []),
    "model_segments": ("The log columns each model's segment drift is computed over, from the spec.", []),
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", table], description=description, deps=deps, group_name="raw", kinds={"duckdb"})
        for table, (description, deps) in RAW_TABLES.items()
    ],
    pool=WAREHOUSE_WRITER_POOL,
)
def raw_tables(context: dg.AssetExecutionContext, driftmart: DriftmartResource):
    """Load every landed line not loaded before (exactly once) and mirror the spec and registry."""
    from warehouse.ingest import ingest  # the model registry (skops, scikit-learn): only in this step

    home, spec = driftmart.home, driftmart.spec()
    target = resolve_target()
    with warehouse_writer(home) as connection:
        result = ingest(connection, home, spec)
        # On postgres and spark, dbt reads the raw tables on that engine: copy them there.
        synced = target.sync_raw(home, connection)
        totals = dict(
            connection.execute(
                "select 'inference_log', count(*) from raw.inference_log "
                "union all select 'labels', count(*) from raw.labels "
                "union all select 'quarantine', count(*) from raw.quarantine"
            ).fetchall()
        )
    context.log.info(
        f"ingested {result.inference_rows} predictions, {result.label_rows} labels, "
        f"{result.duplicates} duplicates skipped, {result.quarantined} lines quarantined"
    )
    if synced:
        context.log.info(f"copied raw tables to the {target.name} target: {synced}")
    for table in RAW_TABLES:
        metadata = {}
        if table == "inference_log":
            metadata = {
                "rows_loaded": result.inference_rows,
                "duplicates_skipped": result.duplicates,
                "lines_quarantined": result.quarantined,
                "quarantine_total": totals["quarantine"],
                "dagster/row_count": totals["inference_log"],
            }
        elif table == "labels":
            metadata = {"rows_loaded": result.label_rows, "dagster/row_count": totals["labels"]}
        yield dg.MaterializeResult(asset_key=["raw", table], metadata=metadata)
