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
    write_task_parity_case,
)
from tests.crossdb.test_postgres_parity import _database
from tests.services import require_service
from warehouse.home import Home
from warehouse.targets import TargetError
from warehouse.targets.spark import SparkTarget

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    return write_task_parity_case(tmp_path_factory.mktemp("task-parity-case"))


@pytest.fixture(scope="module")
def duckdb_task_home(tmp_path_factory, task_files) -> Home:
    return build_task_parity_case(task_files, Home.resolve(tmp_path_factory.mktemp("tasks-duckdb")), "duckdb")


@pytest.fixture(scope="module")
def postgres_task_home(tmp_path_factory, task_files, postgres_server) -> Home:
    environment = _database(postgres_server, "driftmart_tasks")
    home = Home.resolve(tmp_path_factory.mktemp("tasks-postgres"))
    return build_task_parity_case(task_files, home, "postgres", environment)


@pytest.fixture(scope="module")
def spark_task_home(tmp_path_factory, task_files) -> Home:
    home = Home.resolve(tmp_path_factory.mktemp("tasks-spark"))
    try:
        SparkTarget().check_available(home)
        available, reason = True, ""
    except TargetError as error:
        available, reason = False, str(error)
    require_service(available, reason)
    return build_task_parity_case(task_files, home, "spark")


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
def test_task_tables_built_on_spark_equal_duckdb(duckdb_task_home, spark_task_home, table):
    assert mart_differences(duckdb_task_home, spark_task_home, table) == []
    assert len(read_mart(spark_task_home, table)) > 0
