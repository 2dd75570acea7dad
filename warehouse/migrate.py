"""Upgrades of a home's raw tables made by an older driftmart, run when the writer opens it.

Feature values used to be stored as one JSON text column `features`; they are typed maps now
(`feature_numbers`, `feature_categories`: see schema.sql). A home that still has the JSON column
gets its maps filled from it, with each model's feature types from raw.model_features, and the
column dropped, in one transaction: the upgrade happens once, whole or not at all. The tables dbt
built from the old layout are dropped with it, so the next run rebuilds them from raw.

raw.inference_log used to have a primary key on (model_name, request_id); its writers now keep the
pair unique by an anti-join, which bulk-loads about four times faster than maintaining the index.
A home with the key gets the table rewritten without it (same columns, defaults and rows), once.
"""

from __future__ import annotations

import re

import duckdb

from warehouse.targets import BUILT_SCHEMAS

LEGACY_TABLES = ("inference_log", "reference_rows")


def _has_column(connection: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    return bool(
        connection.execute(
            "select count(*) from information_schema.columns "
            "where table_schema = 'raw' and table_name = ? and column_name = ?",
            [table, column],
        ).fetchall()[0][0]
    )


def _fill_maps_sql(table: str, key: str) -> str:
    """The maps of every row of `table` from its JSON `features`, by the model's feature types;
    `key` is the table's row key beside model_name."""
    pointer = "'/' || replace(replace(features.feature_name, '~', '~0'), '/', '~1')"
    value = f"json_extract_string(rows.features, {pointer})"
    number = f"try_cast({value} as double)"
    return f"""
        update raw.{table} as target
        set feature_numbers = maps.feature_numbers, feature_categories = maps.feature_categories
        from (
            select
                rows.model_name,
                {", ".join(f"rows.{column}" for column in key)},
                map_from_entries(
                    coalesce(list(struct_pack(k := features.feature_name,
                        v := case when isfinite({number}) then {number} end))
                        filter (where features.feature_type = 'numeric'), [])
                ) as feature_numbers,
                map_from_entries(
                    coalesce(list(struct_pack(k := features.feature_name, v := {value}))
                        filter (where features.feature_type <> 'numeric'), [])
                ) as feature_categories
            from raw.{table} as rows
            inner join raw.model_features as features on rows.model_name = features.model_name
            group by rows.model_name, {", ".join(f"rows.{column}" for column in key)}
        ) as maps
        where target.model_name = maps.model_name
          and {" and ".join(f"target.{column} = maps.{column}" for column in key)}
    """


def _drop_log_key(connection: duckdb.DuckDBPyConnection) -> None:
    """Rewrite raw.inference_log without its primary key, if it has one (DuckDB cannot drop a key)."""
    keyed = connection.execute(
        "select count(*) from duckdb_constraints() where schema_name = 'raw' "
        "and table_name = 'inference_log' and constraint_type = 'PRIMARY KEY'"
    ).fetchall()[0][0]
    if not keyed:
        return
    (ddl,) = connection.execute(
        "select sql from duckdb_tables() where schema_name = 'raw' and table_name = 'inference_log'"
    ).fetchall()[0]
    unkeyed, found = re.subn(r",\s*PRIMARY KEY\s*\([^)]*\)", "", ddl, flags=re.IGNORECASE)
    if found != 1:
        raise RuntimeError(f"cannot read the primary key of raw.inference_log from: {ddl}")
    unkeyed = re.sub(r"TABLE\s+(\S+\.)?inference_log", "TABLE raw.inference_log_unkeyed", unkeyed, count=1)
    connection.execute("begin transaction")
    try:
        connection.execute(unkeyed)
        connection.execute("insert into raw.inference_log_unkeyed select * from raw.inference_log")
        connection.execute("drop table raw.inference_log")
        connection.execute("alter table raw.inference_log_unkeyed rename to inference_log")
        connection.execute("commit")
    except BaseException:
        connection.execute("rollback")
        raise


def upgrade(connection: duckdb.DuckDBPyConnection) -> None:
    """Bring the raw tables of an older home up to date (a no-op on a current home)."""
    _drop_log_key(connection)
    legacy = [table for table in LEGACY_TABLES if _has_column(connection, table, "features")]
    if not legacy:
        return
    keys = {"inference_log": ("request_id",), "reference_rows": ("model_version", "row_number")}
    connection.execute("begin transaction")
    try:
        for table in legacy:
            connection.execute(_fill_maps_sql(table, keys[table]))
            connection.execute(f"alter table raw.{table} drop column features")
        # What dbt built from the old layout is rebuilt from raw by the next run, in full.
        for schema in BUILT_SCHEMAS:
            connection.execute(f"drop schema if exists {schema} cascade")
        connection.execute("commit")
    except BaseException:
        connection.execute("rollback")
        raise
