"""The spark target's file side, without a JVM: the raw export Spark reads and the copy of the tables
Spark wrote (warehouse/targets/spark.py). The end-to-end parity is tests/crossdb/test_spark_parity.py."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow.parquet as parquet
import pytest

from warehouse.connection import raw_schema_sql
from warehouse.home import Home
from warehouse.targets import RAW_SOURCE_TABLES, TargetError
from warehouse.targets.spark import SparkTarget, raw_dir, warehouse_dir


@pytest.fixture
def raw_store(home: Home):
    with duckdb.connect(str(home.warehouse)) as connection:
        connection.execute(raw_schema_sql())
        connection.execute(
            "insert into raw.inference_log (model_name, request_id, model_version, feature_numbers, "
            "prediction, probability, scored_at, received_at, loaded_at, source) values "
            "('m', 'r1', 1, map {'x': 1.0}, '1', 0.5, timestamp '2024-03-01 23:30:00', null, "
            "timestamp '2024-03-02 00:00:00', 'file')"
        )
        yield connection


def test_sync_raw_exports_every_source_table_with_utc_timestamps(home: Home, raw_store) -> None:
    written = SparkTarget().sync_raw(home, raw_store)
    assert written == {table: (1 if table == "inference_log" else 0) for table in RAW_SOURCE_TABLES}
    exported = raw_dir(home) / "inference_log" / "data.parquet"
    # isAdjustedToUTC=true: Spark reads `timestamp` (an instant), not `timestamp_ntz`.
    scored_at = parquet.read_schema(exported).field("scored_at").type
    assert (scored_at.unit, scored_at.tz) == ("us", "UTC")
    rows = parquet.read_table(exported).to_pylist()
    assert rows[0]["scored_at"].replace(tzinfo=None) == datetime(2024, 3, 1, 23, 30)


def test_sync_raw_replaces_the_export_whole(home: Home, raw_store) -> None:
    target = SparkTarget()
    target.sync_raw(home, raw_store)
    raw_store.execute("delete from raw.inference_log")
    assert target.sync_raw(home, raw_store)["inference_log"] == 0
    directory = raw_dir(home) / "inference_log"
    assert [path.name for path in directory.iterdir()] == ["data.parquet"]
    assert parquet.read_table(directory / "data.parquet").num_rows == 0


def test_copy_built_tables_restores_duckdb_types(home: Home, tmp_path) -> None:
    """Spark's files (timestamps adjusted to UTC, Hive partition folders) become the DuckDB target's
    naive UTC timestamps; a DuckDB build that once ran in the raw store does not linger."""
    table_dir = warehouse_dir(home) / "marts.db" / "fct_example" / "model_name=m"
    table_dir.mkdir(parents=True)
    with duckdb.connect() as writer:
        writer.execute("set TimeZone = 'UTC'")
        writer.execute(
            f"copy (select 1::bigint as n_rows, timestamptz '2024-03-01 00:00:00+00' as window_start) "
            f"to '{table_dir / 'part-00000.parquet'}' (format parquet)"
        )
    (table_dir / ".part-00000.parquet.crc").write_text("")
    with duckdb.connect(str(tmp_path / "published.duckdb")) as published:
        published.execute("create schema marts; create table marts.stale (x integer)")
        assert SparkTarget().copy_built_tables(home, published) == ["marts.fct_example"]
        assert published.execute("describe marts.fct_example").fetchall() == [
            ("n_rows", "BIGINT", "YES", None, None, None),
            ("window_start", "TIMESTAMP", "YES", None, None, None),
            ("model_name", "VARCHAR", "YES", None, None, None),
        ]
        assert published.execute("select * from marts.fct_example").fetchall() == [
            (1, datetime(2024, 3, 1), "m")
        ]
        tables = published.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        ).fetchall()
        assert tables == [("fct_example",)]


def test_check_available_names_missing_java(home: Home, monkeypatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TargetError, match="Java"):
        SparkTarget().check_available(home)
