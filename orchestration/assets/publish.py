"""Publishing: a consistent read-only copy of the warehouse for BI tools, the exporter and `sql`."""

import dagster as dg

from orchestration.assets.dbt import mart_asset_keys
from orchestration.resources import WAREHOUSE_WRITER_POOL, DriftmartResource
from warehouse.connection import writer_lock
from warehouse.publish import publish

PUBLISHED = dg.AssetKey(["published", "driftmart_duckdb"])


@dg.asset(
    key=PUBLISHED,
    deps=mart_asset_keys(),
    group_name="published",
    kinds={"duckdb"},
    pool=WAREHOUSE_WRITER_POOL,
)
def published_warehouse(
    context: dg.AssetExecutionContext, driftmart: DriftmartResource
) -> dg.MaterializeResult:
    """`<home>/published/driftmart.duckdb`, replaced atomically after each successful build."""
    home = driftmart.home
    with writer_lock(home):
        path = publish(home, run_id=context.run_id)
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(path)), "bytes": path.stat().st_size}
    )
