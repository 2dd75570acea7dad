"""The `spark` target (issue 7): the parity case on Spark local mode gives DuckDB's marts.

Both batches are imported and run through `driftmart run` with DRIFTMART_TARGET=spark (the second
run finds the first run's tables: the frozen reference bins are appended to, DESIGN.md §9), and the
published copy must hold the same marts as the DuckDB build to 1e-9, and the same intermediate and
mart tables with the same columns and types. A Spark `dbt build` costs 80-90 s here, so the home is
built once for the module.
"""

from __future__ import annotations

import duckdb
import pytest

from tests.crossdb.parity import PARITY_MARTS, build_parity_case, mart_differences
from tests.services import require_service
from warehouse.home import Home
from warehouse.targets import BUILT_SCHEMAS, TargetError
from warehouse.targets.spark import SparkTarget

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark_parity_home(tmp_path_factory, parity_files) -> Home:
    home = Home.resolve(tmp_path_factory.mktemp("parity-spark"))
    try:
        SparkTarget().check_available(home)
        available, reason = True, ""
    except TargetError as error:
        available, reason = False, str(error)
    require_service(available, reason)
    return build_parity_case(parity_files, home, "spark")


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
        ["inference_log", "labels", "reference_rows", "model_registry", "monitored_models", "model_features"]
    )
    assert not list((spark / "raw").glob("*/.*"))
