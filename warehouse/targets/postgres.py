"""The `postgres` target: dbt builds staging, intermediate and marts on a PostgreSQL server.

The server is named by the standard libpq variables `PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE`,
with the same defaults as dbt_project/profiles.yml's `postgres` output, so driftmart and dbt always
talk to the same database. One driftmart home per PostgreSQL database: the sync owns schema `raw`.

Why PostgreSQL does not take the API's writes directly, although it could (many concurrent writers,
no single-writer file lock): the landing files and the home's DuckDB raw store stay the exactly-once
buffer on every target. The API only appends to landing files, so a 200 never depends on the warehouse
being up, and ingest deduplicates in one place; `sync_raw` then mirrors the raw store's source tables
to PostgreSQL. The price is a second copy of the raw rows and one sync per run (incremental: only
rows loaded since the last sync travel, as CSV through `COPY`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse.home import Home
from warehouse.targets import (
    BUILT_SCHEMAS,
    RAW_SOURCE_TABLES,
    Target,
    TargetError,
    quote_identifier,
    raw_store_columns,
    sql_string,
)

RAW_SCHEMA = "raw"
# Tables whose rows only ever arrive or get replaced with a newer `loaded_at` (warehouse/ingest.py,
# warehouse/importer.py): synced incrementally by upsert. The others are small and copied whole.
INCREMENTAL_TABLES = ("inference_log", "labels", "reference_rows")
# Keys the raw store keeps by anti-join rather than by an index (warehouse/schema.sql): PostgreSQL
# still needs them as a primary key, for the incremental upsert.
UNINDEXED_KEYS = {"inference_log": ["model_name", "request_id"]}
CONNECT_TIMEOUT_SECONDS = 10
COPY_BUFFER_BYTES = 1 << 20

# DuckDB raw-store column types → PostgreSQL (warehouse/schema.sql uses only these).
POSTGRES_TYPES = {
    "VARCHAR": "text",
    "DOUBLE": "double precision",
    "FLOAT": "real",
    "TIMESTAMP": "timestamp without time zone",
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
    "DATE": "date",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "SMALLINT": "smallint",
    "BOOLEAN": "boolean",
}
# PostgreSQL built-table column types (information_schema.columns.data_type) → DuckDB.
DUCKDB_TYPES = {
    "double precision": "double",
    "real": "double",
    "bigint": "bigint",
    "integer": "integer",
    "smallint": "smallint",
    "boolean": "boolean",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "date": "date",
    "text": "varchar",
    "character varying": "varchar",
    "character": "varchar",
    "json": "varchar",
    "jsonb": "varchar",
    "uuid": "varchar",
    "interval": "interval",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str


def connection_parameters() -> dict[str, str]:
    """The libpq variables, defaulted like dbt_project/profiles.yml's `postgres` output."""
    return {
        "host": os.environ.get("PGHOST", "localhost"),
        "port": os.environ.get("PGPORT", "5432"),
        "user": os.environ.get("PGUSER", "postgres"),
        "password": os.environ.get("PGPASSWORD", ""),
        "dbname": os.environ.get("PGDATABASE", "driftmart"),
    }


def _where(parameters: dict[str, str]) -> str:
    return (
        f"PGHOST={parameters['host']} PGPORT={parameters['port']} "
        f"PGDATABASE={parameters['dbname']} PGUSER={parameters['user']}"
    )


@contextmanager
def _temporary_csv(home: Home) -> Iterator[Path]:
    """A scratch file inside the home (big syncs need room the system temp folder may not have)."""
    with tempfile.TemporaryDirectory(prefix=".driftmart-sync-", dir=home.root) as directory:
        yield Path(directory) / "rows.csv"


class PostgresTarget(Target):
    """dbt on PostgreSQL; the home's DuckDB file stays the raw store (warehouse/targets/__init__.py)."""

    name = "postgres"

    def dbt_environment(self, home: Home) -> dict[str, str]:
        # PGHOST … reach dbt by inheritance; the profile reads them with the same defaults as here.
        return {"DRIFTMART_TARGET": self.name}

    def connect(self):
        """A psycopg2 connection (not in autocommit: the caller commits), session time zone UTC."""
        try:
            import psycopg2
        except ImportError:
            raise TargetError(
                "DRIFTMART_TARGET=postgres needs the postgres extra: pip install 'driftmart[postgres]' "
                "(dbt-postgres and its psycopg2)"
            ) from None

        parameters = connection_parameters()
        try:
            connection = psycopg2.connect(
                **parameters,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                options="-c TimeZone=UTC",
                application_name="driftmart",
            )
        except psycopg2.OperationalError as error:
            reason = " ".join(str(error).split())
            raise TargetError(
                f"the postgres warehouse target is unreachable at {_where(parameters)} "
                f"(DRIFTMART_TARGET=postgres; set the libpq variables): {reason}"
            ) from None
        return connection

    def check_available(self, home: Home) -> None:
        self.connect().close()

    def sync_raw(self, home: Home, raw_store: duckdb.DuckDBPyConnection) -> dict[str, int]:
        """Mirror RAW_SOURCE_TABLES to schema `raw` on PostgreSQL in one transaction (an interrupted
        sync leaves the previous state). The big tables move only the rows loaded after the newest
        `loaded_at` already there, upserted on their primary key; a row-count check afterwards falls
        back to a full copy of a table that drifted apart (e.g. a clock stepped back between loads)."""
        connection = self.connect()
        copied: dict[str, int] = {}
        try:
            with connection, connection.cursor() as cursor, _temporary_csv(home) as scratch:
                # One sync at a time per database, whichever home or process runs it.
                cursor.execute("select pg_advisory_xact_lock(hashtext('driftmart.sync_raw'))")
                cursor.execute(f"create schema if not exists {RAW_SCHEMA}")
                for table in RAW_SOURCE_TABLES:
                    columns, key = _raw_store_layout(raw_store, table)
                    _ensure_table(cursor, table, columns, key)
                    if table in INCREMENTAL_TABLES:
                        copied[table] = _sync_incremental(cursor, raw_store, scratch, table, columns, key)
                    else:
                        copied[table] = _replace(cursor, raw_store, scratch, table, columns)
                    if copied[table]:
                        cursor.execute(f"analyze {RAW_SCHEMA}.{quote_identifier(table)}")
        finally:
            connection.close()
        return copied

    def copy_built_tables(self, home: Home, published: duckdb.DuckDBPyConnection) -> list[str]:
        """Every base table of BUILT_SCHEMAS on PostgreSQL that readers use into `published`, typed,
        replacing any table of the same name; rows travel as CSV (`COPY … TO STDOUT`, then DuckDB's
        `COPY FROM`). Row-level tables (one row per prediction or more: they grow with history) stay
        on PostgreSQL; readers of the copy join the raw logs instead."""
        from warehouse.publish import is_row_level

        connection = self.connect()
        copied = []
        try:
            with connection, connection.cursor() as cursor, _temporary_csv(home) as scratch:
                # Floats as their shortest exact text (the default since PostgreSQL 12; be explicit).
                cursor.execute("set local extra_float_digits = 1")
                for schema, table, columns in _built_tables(cursor):
                    if is_row_level(column.name for column in columns):
                        continue
                    name = f"{quote_identifier(schema)}.{quote_identifier(table)}"
                    select = ", ".join(quote_identifier(column.name) for column in columns)
                    with scratch.open("w", encoding="utf-8", newline="") as rows:
                        cursor.copy_expert(
                            f"copy (select {select} from {name}) to stdout with (format csv)", rows
                        )
                    definition = ", ".join(
                        f"{quote_identifier(column.name)} {column.type}" for column in columns
                    )
                    published.execute(f"create schema if not exists {quote_identifier(schema)}")
                    published.execute(f"create or replace table {name} ({definition})")
                    published.execute(
                        f"copy {name} from {sql_string(scratch)} "
                        "(format csv, header false, auto_detect false, delim ',', quote '\"', escape '\"', "
                        "null '', allow_quoted_nulls false)"
                    )
                    copied.append(f"{schema}.{table}")
        finally:
            connection.close()
        return copied


def _raw_store_layout(raw_store: duckdb.DuckDBPyConnection, table: str) -> tuple[list[Column], list[str]]:
    """The raw-store table's columns (in order, with the columns later `alter table`s added) and key."""
    columns = [
        Column(name, "jsonb" if data_type.startswith("MAP(") else POSTGRES_TYPES.get(data_type, "text"))
        for name, data_type in raw_store_columns(raw_store, table)
    ]
    keys = raw_store.execute(
        "select constraint_column_names from duckdb_constraints() "
        "where schema_name = ? and table_name = ? and constraint_type = 'PRIMARY KEY'",
        [RAW_SCHEMA, table],
    ).fetchall()
    return columns, list(keys[0][0]) if keys else UNINDEXED_KEYS.get(table, [])


def _ensure_table(cursor, table: str, columns: list[Column], key: list[str]) -> None:
    """Create the table like the raw store's, and add columns the raw store gained since."""
    name = f"{RAW_SCHEMA}.{quote_identifier(table)}"
    definition = [f"{quote_identifier(column.name)} {column.type}" for column in columns]
    if key:
        definition.append(f"primary key ({', '.join(quote_identifier(column) for column in key)})")
    cursor.execute(f"create table if not exists {name} ({', '.join(definition)})")
    cursor.execute(
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
        [RAW_SCHEMA, table],
    )
    present = {column for (column,) in cursor.fetchall()}
    # Only for a column really missing: `alter table` locks out readers until the sync commits.
    for column in columns:
        if column.name not in present:
            cursor.execute(f"alter table {name} add column {quote_identifier(column.name)} {column.type}")


def _exported(columns: list[Column]) -> str:
    """The select list that sends the raw store's columns as PostgreSQL reads them from CSV: the
    typed feature maps as JSON objects (jsonb there), everything else as it is."""
    return ", ".join(
        f"to_json({quote_identifier(column.name)}) as {quote_identifier(column.name)}"
        if column.type == "jsonb"
        else quote_identifier(column.name)
        for column in columns
    )


def _export(raw_store: duckdb.DuckDBPyConnection, scratch: Path, query: str, parameters: list) -> None:
    raw_store.execute(f"copy ({query}) to {sql_string(scratch)} (format csv, header false)", parameters)


def _copy_in(cursor, scratch: Path, table: str, columns: list[Column]) -> int:
    names = ", ".join(quote_identifier(column.name) for column in columns)
    with scratch.open("r", encoding="utf-8", newline="") as rows:
        cursor.copy_expert(f"copy {table} ({names}) from stdin with (format csv)", rows, COPY_BUFFER_BYTES)
    return cursor.rowcount


def _replace(
    cursor, raw_store: duckdb.DuckDBPyConnection, scratch: Path, table: str, columns: list[Column]
) -> int:
    name = f"{RAW_SCHEMA}.{quote_identifier(table)}"
    _export(raw_store, scratch, f"select {_exported(columns)} from {name}", [])
    cursor.execute(f"delete from {name}")
    return _copy_in(cursor, scratch, name, columns)


def _sync_incremental(
    cursor,
    raw_store: duckdb.DuckDBPyConnection,
    scratch: Path,
    table: str,
    columns: list[Column],
    key: list[str],
) -> int:
    """Upsert the rows loaded after PostgreSQL's newest `loaded_at`; the whole table when it is empty.

    `>` rather than `>=`: one ingest or import stamps all its rows with one `loaded_at` and the sync
    runs after it under the same writer lock, so rows at the newest stamp are already there, and `>=`
    would re-send the whole last batch (for one bulk import, every row) on every run."""
    name = f"{RAW_SCHEMA}.{quote_identifier(table)}"
    names = ", ".join(quote_identifier(column.name) for column in columns)
    cursor.execute(f"select max(loaded_at) from {name}")
    (newest,) = cursor.fetchone()
    if newest is None:  # empty (rows without a stamp cannot exist): copy it whole
        return _replace(cursor, raw_store, scratch, table, columns)
    _export(raw_store, scratch, f"select {_exported(columns)} from {name} where loaded_at > ?", [newest])
    cursor.execute(f"create temporary table staged (like {name}) on commit drop")
    copied = _copy_in(cursor, scratch, "staged", columns)
    updates = ", ".join(
        f"{quote_identifier(column.name)} = excluded.{quote_identifier(column.name)}"
        for column in columns
        if column.name not in key
    )
    conflict = ", ".join(quote_identifier(column) for column in key)
    cursor.execute(
        f"insert into {name} ({names}) select {names} from staged "
        f"on conflict ({conflict}) do update set {updates}"
    )
    cursor.execute("drop table staged")
    (expected,) = raw_store.execute(f"select count(*) from {name}").fetchone()
    cursor.execute(f"select count(*) from {name}")
    if cursor.fetchone()[0] != expected:
        return _replace(cursor, raw_store, scratch, table, columns)
    return copied


def _built_tables(cursor) -> list[tuple[str, str, list[Column]]]:
    """(schema, table, columns with DuckDB types) of every base table dbt built in BUILT_SCHEMAS."""
    cursor.execute(
        """
        select columns.table_schema, columns.table_name, columns.column_name, columns.data_type,
               columns.numeric_precision, columns.numeric_scale
        from information_schema.columns as columns
        inner join information_schema.tables as tables
            on tables.table_schema = columns.table_schema and tables.table_name = columns.table_name
        where tables.table_type = 'BASE TABLE' and columns.table_schema = any(%s)
        order by columns.table_schema, columns.table_name, columns.ordinal_position
        """,
        [list(BUILT_SCHEMAS)],
    )
    tables: dict[tuple[str, str], list[Column]] = {}
    for schema, table, column, data_type, precision, scale in cursor.fetchall():
        tables.setdefault((schema, table), []).append(
            Column(column, _duckdb_type(data_type, precision, scale))
        )
    return [(schema, table, columns) for (schema, table), columns in tables.items()]


def _duckdb_type(data_type: str, precision: int | None, scale: int | None) -> str:
    if data_type == "numeric":
        # A declared numeric(p, s) keeps its exactness; an unconstrained one (e.g. sum of bigints)
        # becomes a double, as DuckDB's own aggregates would give a number, not text.
        if precision is not None and scale is not None and precision <= 38:
            return f"decimal({precision}, {scale})"
        return "double"
    return DUCKDB_TYPES.get(data_type, "varchar")
