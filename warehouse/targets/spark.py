"""The `spark` target: dbt builds staging, intermediate and marts on Spark (local mode by default).

No JVM runs in the driftmart process. Spark lives inside the dbt process (dbt-spark's `session`
method, dbt_project/profiles.yml), and the two sides meet through Parquet files under
`<home>/spark/`:

- `raw/<table>/data.parquet`: `sync_raw` exports each raw source table from the home's DuckDB raw
  store. Each export is written to a hidden file beside it (Spark's file listing skips names that
  start with `.` or `_`) and renamed over `data.parquet`, so Spark sees either the old or the new
  complete table, and a re-run after an interruption converges. Timestamps are written as Parquet
  TIMESTAMP with isAdjustedToUTC=true, which Spark reads as `timestamp` (the raw store's naive UTC
  timestamps read as instants in UTC); a naive Parquet timestamp would come back as `timestamp_ntz`.
  dbt's on-run-start hook (macro `register_raw_sources`) registers them as the external tables
  `raw.<table>` that the sources name.
- `warehouse/<schema>.db/<table>/`: the managed Parquet tables dbt builds. `copy_built_tables` reads
  those of the intermediate and mart schemas into the published DuckDB copy with DuckDB's Parquet
  reader (and Hive partition folders `key=value/`, when a table is partitioned).
- `metastore_db/`: the Derby metastore that remembers those tables between dbt runs.

The whole raw table travels on every sync: a Parquet file cannot be appended to, and rewriting it is
what DuckDB does fastest (a million inference rows take about a second). On a real cluster the same
files would sit on shared storage (see the README's "Scaling out").
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import duckdb

from warehouse.files import fsync_directory, fsync_file
from warehouse.home import Home
from warehouse.targets import (
    BUILT_SCHEMAS,
    RAW_SOURCE_TABLES,
    TARGET_ENV,
    Target,
    TargetError,
    quote_identifier,
    raw_store_columns,
    sql_string,
)

RAW_SCHEMA = "raw"
RAW_FILE = "data.parquet"
# Spark's Parquet type → DuckDB type of the published copy (DuckDB reads Spark's files natively;
# Spark writes timestamps as TIMESTAMP_MICROS adjusted to UTC, profiles.yml, which DuckDB reads as
# `timestamp with time zone`: they go back to the naive UTC timestamps every other target has).
SPARK_TIMESTAMP = "TIMESTAMP WITH TIME ZONE"
# Hive partition folder values are text; the partition columns driftmart's models use get their types
# back here (any other partition column stays as DuckDB's Hive type detection reads it).
PARTITION_TYPES = {"model_name": "varchar", "window_start": "timestamp", "window_end": "timestamp"}


def spark_dir(home: Home) -> Path:
    return home.root / "spark"


def raw_dir(home: Home) -> Path:
    return spark_dir(home) / "raw"


def warehouse_dir(home: Home) -> Path:
    """Spark's `spark.sql.warehouse.dir` (dbt_project/profiles.yml): the managed tables."""
    return spark_dir(home) / "warehouse"


def java_executable() -> str | None:
    """`$JAVA_HOME/bin/java`, else `java` on PATH, else None (what pyspark's launcher uses)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


class SparkTarget(Target):
    """dbt on Spark; the home's DuckDB file stays the raw store (warehouse/targets/__init__.py)."""

    name = "spark"

    def dbt_environment(self, home: Home) -> dict[str, str]:
        # Local mode talks to itself on the loopback address: no lookup of the machine's host name.
        return {TARGET_ENV: self.name, "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1")}

    def check_available(self, home: Home) -> None:
        missing = [
            package
            for package, module in (("pyspark", "pyspark"), ("dbt-spark[session]", "dbt.adapters.spark"))
            if importlib.util.find_spec(module) is None
        ]
        if missing:
            raise TargetError(
                f"DRIFTMART_TARGET=spark needs {' and '.join(missing)}: install driftmart's `spark` extra "
                "(pip install 'driftmart[spark]')"
            )
        java = java_executable()
        if java is None:
            raise TargetError(
                "DRIFTMART_TARGET=spark needs Java 17 or newer for Spark's local mode: "
                "install a JDK or set JAVA_HOME"
            )
        try:
            completed = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise TargetError(f"DRIFTMART_TARGET=spark: {java} -version failed: {error}") from None
        if completed.returncode != 0:
            raise TargetError(
                f"DRIFTMART_TARGET=spark: {java} -version failed: {completed.stderr.strip()[:300]}"
            )

    def sync_raw(self, home: Home, raw_store: duckdb.DuckDBPyConnection) -> dict[str, int]:
        """Export RAW_SOURCE_TABLES to `<home>/spark/raw/<table>/data.parquet`, each replaced whole and
        atomically; returns the rows written per table."""
        written = {}
        for table in RAW_SOURCE_TABLES:
            columns = raw_store_columns(raw_store, table)
            name = f"{RAW_SCHEMA}.{quote_identifier(table)}"
            select = ", ".join(_export_column(column, data_type) for column, data_type in columns)
            directory = raw_dir(home) / table
            directory.mkdir(parents=True, exist_ok=True)
            temporary = directory / f".{RAW_FILE}.partial"
            raw_store.execute(
                f"copy (select {select} from {name}) to {sql_string(temporary)} "
                "(format parquet, compression zstd)"
            )
            fsync_file(temporary)
            os.replace(temporary, directory / RAW_FILE)
            fsync_directory(directory)
            (written[table],) = raw_store.execute(f"select count(*) from {name}").fetchone()
        return written

    def copy_built_tables(self, home: Home, published: duckdb.DuckDBPyConnection) -> list[str]:
        """Every table Spark built in BUILT_SCHEMAS that readers use into `published`, with the types
        the DuckDB target gives; the copy's BUILT_SCHEMAS hold exactly these tables afterwards (a
        DuckDB build that once ran in this home's raw store does not linger in them). Row-level
        tables (one row per prediction or more: they grow with history) stay with Spark; readers of
        the copy join the raw logs instead."""
        from warehouse.publish import is_row_level

        copied = []
        for schema in BUILT_SCHEMAS:
            published.execute(f"drop schema if exists {quote_identifier(schema)} cascade")
            published.execute(f"create schema {quote_identifier(schema)}")
            schema_dir = warehouse_dir(home) / f"{schema}.db"
            if not schema_dir.is_dir():
                continue
            for table_dir in sorted(schema_dir.iterdir()):
                if not table_dir.is_dir() or table_dir.name.startswith((".", "_")):
                    continue
                files = _data_files(table_dir)
                if not files:
                    # Spark writes no file for an empty partitioned table: nothing to type it by.
                    continue
                name = f"{quote_identifier(schema)}.{quote_identifier(table_dir.name)}"
                paths = ", ".join(sql_string(path) for path in files)
                reader = f"read_parquet([{paths}], hive_partitioning = true, union_by_name = true)"
                columns = published.execute(f"describe select * from {reader}").fetchall()
                if is_row_level(column[0] for column in columns):
                    continue
                select = ", ".join(_import_column(column[0], column[1]) for column in columns)
                published.execute(f"create table {name} as select {select} from {reader}")
                copied.append(f"{schema}.{table_dir.name}")
        return copied


def _export_column(name: str, data_type: str) -> str:
    """A raw-store column as it goes to Parquet for Spark: naive UTC timestamps as UTC instants."""
    if data_type == "TIMESTAMP":
        return f"timezone('UTC', {quote_identifier(name)}) as {quote_identifier(name)}"
    return quote_identifier(name)


def _import_column(name: str, data_type: str) -> str:
    """A column of Spark's files as the DuckDB target has it."""
    if data_type == SPARK_TIMESTAMP:
        return f"timezone('UTC', {quote_identifier(name)}) as {quote_identifier(name)}"
    if name in PARTITION_TYPES:
        return f"cast({quote_identifier(name)} as {PARTITION_TYPES[name]}) as {quote_identifier(name)}"
    return quote_identifier(name)


def _data_files(table_dir: Path) -> list[Path]:
    """The Parquet files of a table folder (Hive partition folders included), hidden files skipped."""
    return sorted(
        path
        for path in table_dir.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in path.relative_to(table_dir).parts)
    )
