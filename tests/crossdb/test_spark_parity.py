"""The `spark` target (issue 7): the parity case on Spark local mode gives DuckDB's marts.

Both batches are imported and then built by one `driftmart run` with DRIFTMART_TARGET=spark, and the
published copy must hold the same marts to 1e-9 as the DuckDB build, which ran once per batch
(incrementally), and the same intermediate and mart tables with the same columns and types. On
Parquet, Spark rebuilds the window-keyed models as tables on every run anyway
(macros/cross_db/incremental_by_key_config.sql), so a second Spark run would add minutes and little
coverage. A Spark `dbt build` costs minutes here, so one home is built for the session
(tests/conftest.py `spark_parity_home`): it holds tests/crossdb/test_task_parity.py's models too.
"""

from __future__ import annotations

import duckdb
import pytest

from tests.crossdb.parity import PARITY_MARTS, mart_differences
from warehouse.home import Home
from warehouse.targets import BUILT_SCHEMAS

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("table", PARITY_MARTS)
def test_marts_match_duckdb(duckdb_parity_home: Home, spark_parity_home: Home, table: str) -> None:
    assert mart_differences(duckdb_parity_home, spark_parity_home, table) == []


def _built_columns(home: Home) -> dict[str, list[tuple[str, str]]]:
    with duckdb.connect(str(home.published), read_only=True) as connection:
        rows = connection.execute(
            "select columns.table_schema || '.' || columns.table_name, column_name, data_type "
            "from information_schema.columns as columns "
            "inner join information_schema.tables as tables using (table_schema, table_name) "
            "where table_type = 'BASE TABLE' and columns.table_schema in (select unnest(?)) "
            "order by 1, ordinal_position",
            [list(BUILT_SCHEMAS)],
        ).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        tables.setdefault(table, []).append((column, data_type))
    return tables


def test_published_tables_have_duckdb_columns_and_types(
    duckdb_parity_home: Home, spark_parity_home: Home
) -> None:
    """BI tools and the exporter read the published copy the same way on every target."""
    assert _built_columns(spark_parity_home) == _built_columns(duckdb_parity_home)


def test_spark_state_stays_in_the_home(spark_parity_home: Home) -> None:
    """Tables, metastore and Derby's log live under <home>/spark, and no export is left half-written."""
    spark = spark_parity_home.root / "spark"
    assert (spark / "metastore_db").is_dir()
    assert (spark / "derby.log").exists()
    assert sorted(path.name for path in (spark / "raw").iterdir()) == sorted(
        [
            "inference_log",
            "labels",
            "reference_rows",
            "score_calibration",
            "model_registry",
            "monitored_models",
            "model_features",
            "model_segments",
        ]
    )
    assert not list((spark / "raw").glob("*/.*"))
