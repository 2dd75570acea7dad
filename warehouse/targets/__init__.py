"""The engine dbt builds the marts on (docs/architecture.md §3.1): `duckdb` (default), `postgres` or `spark`.

Chosen by env `DRIFTMART_TARGET`. Every target keeps the home's DuckDB file as its **raw store**: the
API's landing zone and `driftmart import` load into it exactly once (warehouse/ingest.py,
warehouse/importer.py), whichever engine builds the marts. On `postgres` and `spark`:

1. `sync_raw` copies the raw tables that the dbt sources read from the raw store to the engine
   (idempotent: a re-run after an interruption converges to the same tables);
2. dbt builds staging, intermediate and marts on the engine (`dbt_environment` selects the profile's
   output of the same name);
3. `copy_built_tables` copies the engine's intermediate and mart tables into the published DuckDB
   copy, so the exporter, `driftmart sql`, the reports and BI tools read one file on every target.

On `duckdb` all three are no-ops: dbt builds in the raw store's own file.
"""

from __future__ import annotations

import os

import duckdb

from ml.errors import DriftmartError
from warehouse.home import Home

TARGET_ENV = "DRIFTMART_TARGET"
TARGETS = ("duckdb", "postgres", "spark")

# The raw tables dbt reads as sources (dbt_project/models/staging/raw/_raw__sources.yml); the ingest
# bookkeeping tables (landing_manifest, quarantine) stay in the raw store.
RAW_SOURCE_TABLES = (
    "inference_log",
    "labels",
    "reference_rows",
    "score_calibration",
    "model_registry",
    "monitored_models",
    "model_features",
    "model_segments",
)
# Schemas dbt builds tables in that the published copy carries over from a non-DuckDB engine.
BUILT_SCHEMAS = ("intermediate", "marts")
# Tables a Dagster step writes in the raw store between the build and the publish (not dbt models):
# the publish copies them beside the engine's tables on every target.
MULTIVARIATE_DRIFT_TABLE = "marts.fct_multivariate_drift"  # orchestration/assets/multivariate.py
STEP_TABLES = (MULTIVARIATE_DRIFT_TABLE,)


class TargetError(DriftmartError):
    """The warehouse target is unknown, not installed or unreachable."""


def quote_identifier(identifier: str) -> str:
    """A SQL identifier in double quotes (DuckDB and PostgreSQL)."""
    return '"' + identifier.replace('"', '""') + '"'


def sql_string(text: object) -> str:
    """A SQL string literal, e.g. of a file path for DuckDB's COPY or read_parquet."""
    return "'" + str(text).replace("'", "''") + "'"


def raw_store_columns(raw_store: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(column name, DuckDB type) of raw.`table` in the raw store, in order, including the columns
    later `alter table`s added; a clear error when the table is missing."""
    columns = raw_store.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'raw' and table_name = ? order by ordinal_position",
        [table],
    ).fetchall()
    if not columns:
        raise TargetError(f"raw.{table} is missing from the raw store: run `driftmart run` first")
    return columns


class Target:
    """DuckDB: dbt builds in the raw store itself, so there is nothing to copy either way."""

    name = "duckdb"

    def dbt_environment(self, home: Home) -> dict[str, str]:
        """Environment for the dbt process beside DRIFTMART_HOME (the profile's output is `name`)."""
        return {TARGET_ENV: self.name}

    def check_available(self, home: Home) -> None:
        """Raise TargetError naming what is missing when the engine cannot be reached."""

    def sync_raw(self, home: Home, raw_store: duckdb.DuckDBPyConnection) -> dict[str, int]:
        """Copy the raw source tables to the engine; returns the rows copied per table."""
        return {}

    def copy_built_tables(self, home: Home, published: duckdb.DuckDBPyConnection) -> list[str]:
        """Create the engine's intermediate and mart tables in `published` (a writable DuckDB copy of
        the raw store); returns the `schema.table` names copied."""
        return []


def target_name() -> str:
    name = os.environ.get(TARGET_ENV, "").strip().lower() or "duckdb"
    if name not in TARGETS:
        raise TargetError(f"{TARGET_ENV}={name!r} is not a warehouse target: use one of {', '.join(TARGETS)}")
    return name


def resolve_target(name: str | None = None) -> Target:
    """The target named, else `$DRIFTMART_TARGET`, else DuckDB."""
    chosen = name or target_name()
    if chosen == "duckdb":
        return Target()
    if chosen == "postgres":
        from warehouse.targets.postgres import PostgresTarget

        return PostgresTarget()
    if chosen == "spark":
        from warehouse.targets.spark import SparkTarget

        return SparkTarget()
    raise TargetError(f"{TARGET_ENV}={chosen!r} is not a warehouse target: use one of {', '.join(TARGETS)}")
