"""Publishing: a consistent read-only copy of the warehouse for BI tools, the exporter and `sql`."""

import dagster as dg

from orchestration import state
from orchestration.assets.dbt import mart_asset_keys
from orchestration.resources import WAREHOUSE_WRITER_POOL, DriftmartResource
from warehouse.connection import writer_lock

PUBLISHED = dg.AssetKey(["published", "driftmart_duckdb"])
# orchestration/assets/multivariate.py's table, spelled out (that module imports the reports asset).
MULTIVARIATE_DRIFT = dg.AssetKey(["marts", "fct_multivariate_drift"])


@dg.asset(
    key=PUBLISHED,
    deps=[*mart_asset_keys(), MULTIVARIATE_DRIFT],
    group_name="published",
    kinds={"duckdb"},
    pool=WAREHOUSE_WRITER_POOL,
)
def published_warehouse(
    context: dg.AssetExecutionContext, driftmart: DriftmartResource
) -> dg.MaterializeResult:
    """`<home>/published/driftmart.duckdb`, replaced atomically after each successful build. A full
    build of this run, now published, becomes the home's build state (orchestration/state.py)."""
    from warehouse.publish import publish

    home = driftmart.home
    with writer_lock(home):
        path = publish(home, run_id=context.run_id)
        try:
            state.after_publish(home, context.run_id)
        except OSError as error:  # the copy is published; only the next run's skip is lost
            context.log.warning(f"build state not recorded ({error})")
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(path)), "bytes": path.stat().st_size}
    )
