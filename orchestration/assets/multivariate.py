"""Multivariate drift per window (ml/multivariate.py: a domain classifier), as the table
`marts.fct_multivariate_drift`, written after the dbt build and published with the marts.

Every judged window (a reference and at least min_window_rows rows, as the drift marts say) gets
one row per model; a window is computed again only when its row count or its reference changed.
Each side is a sample of at most `max_rows` rows, drawn in SQL (warehouse/queries.py), so the cost
per window is bounded whatever its size. On the duckdb target only: with postgres or spark the marts
it reads live in the engine until the publish, so the step says so and leaves the table empty (the
published copy has the same tables and columns on every target).
"""

from datetime import UTC, datetime

import dagster as dg
import duckdb

from orchestration.assets.reports import reference_sample
from orchestration.resources import WAREHOUSE_WRITER_POOL, DriftmartResource
from warehouse.connection import warehouse_writer
from warehouse.queries import window_rows
from warehouse.targets import MULTIVARIATE_DRIFT_TABLE, target_name

MULTIVARIATE_DRIFT = dg.AssetKey(["marts", "fct_multivariate_drift"])
TABLE = MULTIVARIATE_DRIFT_TABLE
TABLE_DDL = f"""
create schema if not exists marts;
create table if not exists {TABLE} (
    model_name varchar not null,
    window_start timestamp not null,
    window_end timestamp not null,
    method varchar not null,
    score double not null,
    threshold double not null,
    is_drifted boolean not null,
    top_features varchar not null,
    n_reference bigint not null,
    n_current bigint not null,
    n_window_rows bigint not null,
    reference_id varchar,
    computed_at timestamp not null
)
"""


class MultivariateDriftConfig(dg.Config):
    max_rows: int = 2_000  # rows per side at most, sampled in SQL
    seed: int = 0


def windows_to_compute(connection: duckdb.DuckDBPyConnection, model: str) -> list[tuple]:
    """The judged windows without a result for their current rows and reference:
    (window_start, window_end, n_rows, reference_id, reference_version)."""
    return connection.execute(
        f"""
        with judged as (
            select dataset.window_start, dataset.window_end, dataset.n_current,
                   max(features.reference_id) as reference_id,
                   max(features.reference_version) as reference_version
            from marts.fct_dataset_drift as dataset
            inner join marts.fct_feature_drift as features
                on features.model_name = dataset.model_name and features.window_start = dataset.window_start
            where dataset.model_name = $model and dataset.has_reference and not dataset.is_below_min_rows
            group by all
        )
        select judged.* from judged
        left join {TABLE} as done
            on done.model_name = $model and done.window_start = judged.window_start
            and done.n_window_rows = judged.n_current
            and done.reference_id is not distinct from judged.reference_id
        where done.model_name is null
        order by judged.window_start
        """,
        {"model": model},
    ).fetchall()


@dg.asset(
    key=MULTIVARIATE_DRIFT,
    deps=[dg.AssetKey(["marts", "fct_dataset_drift"]), dg.AssetKey(["marts", "fct_feature_drift"])],
    group_name="marts",
    kinds={"scikitlearn", "duckdb"},
    pool=WAREHOUSE_WRITER_POOL,
)
def multivariate_drift(
    context: dg.AssetExecutionContext, config: MultivariateDriftConfig, driftmart: DriftmartResource
) -> dg.MaterializeResult:
    """A domain classifier per judged window: can the window's rows be told from the reference's,
    all features at once? Drifted when its cross-validated ROC AUC is above the band of no drift."""
    from ml.multivariate import domain_classifier_drift

    home, spec = driftmart.home, driftmart.spec()
    if target_name() != "duckdb":
        # The marts it reads are in the engine until the publish copies them: not in the raw store.
        message = (
            f"multivariate drift is computed on the duckdb target only (DRIFTMART_TARGET={target_name()})"
        )
        context.log.warning(message)
        with warehouse_writer(home) as connection:
            connection.execute(TABLE_DDL)
            connection.execute(f"delete from {TABLE}")  # nothing computed on this target: none shown
        return dg.MaterializeResult(metadata={"skipped": message})
    computed = []
    with warehouse_writer(home) as connection:
        connection.execute(TABLE_DDL)
        for start, end, n_rows, reference_id, reference_version in windows_to_compute(connection, spec.model):
            current = window_rows(connection, spec, start, end, max_rows=config.max_rows, seed=config.seed)
            reference, _ = reference_sample(
                connection, spec, reference_id, reference_version, max_rows=config.max_rows, seed=config.seed
            )
            if min(len(current), len(reference)) < 10:
                context.log.warning(
                    f"{spec.model} {start:%Y-%m-%d %H:%M}: too few rows for a domain classifier"
                )
                continue
            drift = domain_classifier_drift(spec, reference, current, seed=config.seed)
            connection.execute("begin transaction")
            connection.execute(
                f"delete from {TABLE} where model_name = ? and window_start = ?", [spec.model, start]
            )
            connection.execute(
                f"insert into {TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    spec.model,
                    start,
                    end,
                    drift.method,
                    drift.score,
                    drift.threshold,
                    drift.is_drifted,
                    ", ".join(drift.top_features),
                    drift.n_reference,
                    drift.n_current,
                    n_rows,
                    reference_id,
                    datetime.now(UTC).replace(tzinfo=None),
                ],
            )
            connection.execute("commit")
            computed.append((start, drift))
    drifted = [f"{start:%Y-%m-%d %H:%M}" for start, drift in computed if drift.is_drifted]
    context.log.info(
        f"{spec.model}: {len(computed)} window(s) judged, multivariate drift in {drifted or 'none'}"
    )
    return dg.MaterializeResult(
        metadata={
            "windows_computed": len(computed),
            "windows_drifted": dg.MetadataValue.json(drifted),
            "max_rows": config.max_rows,
            "seed": config.seed,
        }
    )
