"""Tasks across warehouse targets: a multiclass and a regression model (tests/test_tasks.py's
cases, checked there against scikit-learn on DuckDB) built on PostgreSQL and on Spark give DuckDB's
pseudo-feature statistics, prediction drift and long performance mart (floats to 1e-9 relative).
This is where the task-specific SQL runs on the other engines: the spec's classes read from JSON
(macros/cross_db/json_object_keys.sql), each class's probability from the probabilities JSON, the
numeric prediction of a regression model, and the metrics of each task.
"""

from __future__ import annotations

import pytest

from tests.crossdb.parity import (
    TASK_PARITY_TABLES,
    build_task_parity_case,
    mart_differences,
    read_mart,
)
from tests.crossdb.test_postgres_parity import _database
from warehouse.home import Home

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def duckdb_task_home(tmp_path_factory, task_parity_files) -> Home:
    return build_task_parity_case(
        task_parity_files, Home.resolve(tmp_path_factory.mktemp("tasks-duckdb")), "duckdb"
    )


@pytest.fixture(scope="module")
def postgres_task_home(tmp_path_factory, task_parity_files, postgres_server) -> Home:
    environment = _database(postgres_server, "driftmart_tasks")
    home = Home.resolve(tmp_path_factory.mktemp("tasks-postgres"))
    return build_task_parity_case(task_parity_files, home, "postgres", environment)


def test_the_duckdb_build_has_every_task(duckdb_task_home):
    performance = read_mart(duckdb_task_home, "marts.fct_model_performance")
    assert set(performance["task"]) == {"multiclass", "regression"}
    assert performance["realized_value"].notna().all()
    statistics = read_mart(duckdb_task_home, "intermediate.int_window_drift_statistics_computed")
    pseudo = set(statistics.loc[statistics["feature_name"].str.startswith("__"), "feature_name"])
    assert pseudo == {"__prediction__", "__probability__:0", "__probability__:1", "__probability__:2"}


@pytest.mark.parametrize("table", TASK_PARITY_TABLES)
def test_task_tables_built_on_postgres_equal_duckdb(duckdb_task_home, postgres_task_home, table):
    assert mart_differences(duckdb_task_home, postgres_task_home, table) == []
    assert len(read_mart(postgres_task_home, table)) > 0


@pytest.mark.parametrize("table", TASK_PARITY_TABLES)
def test_task_tables_built_on_spark_equal_duckdb(duckdb_task_home, spark_parity_home, table):
    assert mart_differences(duckdb_task_home, spark_parity_home, table) == []
    assert set(read_mart(spark_parity_home, table)["model_name"]) >= set(
        read_mart(duckdb_task_home, table)["model_name"]
    )
