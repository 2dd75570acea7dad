"""DRIFTMART_TARGET=postgres (issue 7): the raw sync, the marts built on PostgreSQL 15 equal DuckDB's,
re-runs, `driftmart sql`, dbt's unit tests there, and a clear error when the server is unreachable.

A throwaway cluster (tests/services.py) serves the session; each test module's data lives in a
database of its own in it. Without PostgreSQL's server binaries these tests skip, or fail when CI=true.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from orchestration.assets.dbt import DBT_PROJECT_DIR, dbt_executable
from tests.crossdb.parity import PARITY_MARTS, build_parity_case, import_batch, mart_differences, read_mart
from tests.services import free_port
from tests.test_cli import driftmart
from warehouse.connection import warehouse_writer
from warehouse.home import Home
from warehouse.targets import RAW_SOURCE_TABLES, TargetError
from warehouse.targets.postgres import PostgresTarget

pytestmark = pytest.mark.slow


def _database(server: dict[str, str], name: str) -> dict[str, str]:
    """A fresh database `name` in the session's cluster; its libpq environment."""
    import psycopg2

    connection = psycopg2.connect(
        host=server["PGHOST"], port=server["PGPORT"], user=server["PGUSER"], dbname=server["PGDATABASE"]
    )
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"drop database if exists {name}")
        cursor.execute(f"create database {name}")
    connection.close()
    return {**server, "PGDATABASE": name}


def _query(environment: dict[str, str], sql: str) -> list[tuple]:
    import psycopg2

    with (
        psycopg2.connect(
            host=environment["PGHOST"],
            port=environment["PGPORT"],
            user=environment["PGUSER"],
            dbname=environment["PGDATABASE"],
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
        rows = cursor.fetchall()
    connection.close()
    return rows


@pytest.fixture(scope="module")
def postgres_parity(tmp_path_factory, parity_files, postgres_server) -> tuple[Home, dict[str, str]]:
    """The parity case imported and run in two batches with DRIFTMART_TARGET=postgres."""
    environment = _database(postgres_server, "driftmart_parity")
    home = Home.resolve(tmp_path_factory.mktemp("parity-postgres"))
    build_parity_case(parity_files, home, "postgres", environment)
    return home, {"DRIFTMART_TARGET": "postgres", **environment}


@pytest.mark.parametrize("mart", PARITY_MARTS)
def test_marts_built_on_postgres_equal_duckdb(duckdb_parity_home, postgres_parity, mart):
    home, _ = postgres_parity
    assert mart_differences(duckdb_parity_home, home, mart) == []
    assert len(read_mart(home, mart)) > 0


def test_published_copy_holds_the_engines_tables_and_the_raw_store(postgres_parity):
    home, environment = postgres_parity
    built = {
        f"{schema}.{table}"
        for schema, table in _query(
            environment,
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('intermediate', 'marts') and table_type = 'BASE TABLE'",
        )
    }
    with duckdb.connect(str(home.published), read_only=True) as published:
        tables = {
            f"{schema}.{table}"
            for schema, table in published.execute(
                # the raw logs are views over the published Parquet parts (warehouse/publish.py)
                "select table_schema, table_name from information_schema.tables "
                "where table_type in ('BASE TABLE', 'VIEW')"
            ).fetchall()
        }
        (window_counts,) = published.execute(
            "select count(*) from intermediate.int_window_bin_counts_aggregated"
        ).fetchall()
    assert built <= tables
    assert {f"raw.{table}" for table in RAW_SOURCE_TABLES} <= tables
    assert window_counts[0] > 0
    status = json.loads((home.published_dir / "status.json").read_text())
    assert status["rows"]["marts.fct_feature_drift"] > 0


def test_rerun_without_new_rows_changes_nothing(parity_files, postgres_parity):
    home, environment = postgres_parity
    raw_counts = "select " + ", ".join(f"(select count(*) from raw.{table})" for table in RAW_SOURCE_TABLES)
    before = {mart: read_mart(home, mart) for mart in PARITY_MARTS}
    raw_before = _query(environment, raw_counts)
    run = driftmart(
        "run", "--spec", str(parity_files / "spec.yaml"), "--no-retrain", home=home, env=environment
    )
    assert run.returncode in (0, 1), run.stderr
    assert "no new rows" in run.stdout
    assert _query(environment, raw_counts) == raw_before
    for mart in PARITY_MARTS:
        after = read_mart(home, mart)
        assert after.equals(before[mart]), mart


def test_sql_answers_from_the_published_copy_even_with_the_server_away(postgres_parity):
    home, environment = postgres_parity
    with duckdb.connect(str(home.published), read_only=True) as published:
        (expected,) = published.execute("select count(*) from marts.fct_feature_drift").fetchall()[0]
    away = {**environment, "PGPORT": str(free_port())}
    for env in (environment, away):
        answered = driftmart(
            "sql", "select count(*) as n from marts.fct_feature_drift", "--format", "json", home=home, env=env
        )
        assert answered.returncode == 0, answered.stderr
        assert json.loads(answered.stdout) == [{"n": expected}]


def test_dbt_unit_tests_pass_on_postgres(postgres_parity, tmp_path):
    home, environment = postgres_parity
    completed = subprocess.run(
        [
            dbt_executable(),
            "test",
            "--select",
            "resource_type:unit_test",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(tmp_path / "target"),
        ],
        env={
            **os.environ,
            **environment,
            "DRIFTMART_HOME": str(home.root),
            "DBT_LOG_PATH": str(tmp_path / "logs"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-4000:]
    assert " ERROR=0 " in completed.stdout and " PASS=" in completed.stdout


def test_unreachable_postgres_is_one_clear_line_and_exit_2(parity_files, tmp_path):
    home = Home.resolve(tmp_path / "home")
    port = str(free_port())  # nothing listens there
    secret = "pg-password-never-printed"
    env = {
        "DRIFTMART_TARGET": "postgres",
        "PGHOST": "127.0.0.1",
        "PGPORT": port,
        "PGDATABASE": "nowhere",
        "PGPASSWORD": secret,
    }
    run = driftmart("run", "--spec", str(parity_files / "spec.yaml"), home=home, env=env)
    assert run.returncode == 2
    assert secret not in run.stdout + run.stderr
    assert run.stderr.startswith("driftmart: the postgres warehouse target is unreachable")
    assert f"PGHOST=127.0.0.1 PGPORT={port} PGDATABASE=nowhere" in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def _raw_store_rows(home: Home, table: str) -> list[tuple]:
    with duckdb.connect(str(home.warehouse), read_only=True) as raw_store:
        return raw_store.execute(f"select * from raw.{table} order by 1, 2, 3").fetchall()


def _postgres_raw(environment: dict[str, str]) -> dict[str, list[tuple]]:
    return {
        table: _query(environment, f"select * from raw.{table} order by 1, 2, 3")
        for table in RAW_SOURCE_TABLES
    }


def _raw_columns(home: Home) -> dict[str, list[str]]:
    with duckdb.connect(str(home.warehouse), read_only=True) as raw_store:
        return {
            table: [column for (column, *_) in raw_store.execute(f"describe raw.{table}").fetchall()]
            for table in RAW_SOURCE_TABLES
        }


def _raw_rows(environment: dict[str, str], table: str, columns: dict[str, list[str]]) -> list[tuple]:
    """PostgreSQL's copy of a raw table, its columns in the raw store's order."""
    return _query(environment, f"select {', '.join(columns[table])} from raw.{table} order by 1, 2, 3")


def test_sync_raw_copies_once_moves_only_new_rows_and_is_all_or_nothing(
    parity_files, postgres_server, tmp_path, monkeypatch
):
    environment = _database(postgres_server, "driftmart_sync")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    home = Home.resolve(tmp_path / "home")
    target = PostgresTarget()
    import_batch(parity_files, home, 1)
    columns = _raw_columns(home)
    with warehouse_writer(home) as raw_store:
        first = target.sync_raw(home, raw_store)
        again = target.sync_raw(home, raw_store)
    first_logs = len(_raw_store_rows(home, "inference_log"))
    assert first["inference_log"] == first_logs > 0 and first["labels"] == first_logs
    assert first["reference_rows"] == len(_raw_store_rows(home, "reference_rows")) > 0
    assert again["inference_log"] == again["labels"] == again["reference_rows"] == 0
    for table in RAW_SOURCE_TABLES:
        assert _raw_rows(environment, table, columns) == _raw_store_rows(home, table), table

    # As if PostgreSQL had been synced by a driftmart from before schema.sql's `add column`s.
    _query(
        environment, "alter table raw.model_registry drop column history, drop column decided_at; select 1"
    )
    # Batch 2 and a corrected label of batch 1: only those rows travel, by upsert.
    import_batch(parity_files, home, 2)
    with warehouse_writer(home) as raw_store:
        raw_store.execute(
            "update raw.labels set label = 'corrected', loaded_at = ? "
            "where request_id = (select min(request_id) from raw.labels)",
            [datetime.now(UTC).replace(tzinfo=None)],
        )
        before_interrupted = _postgres_raw(environment)

        # A sync that fails half-way leaves PostgreSQL as it was.
        from warehouse.targets import postgres

        copy_in = postgres._copy_in

        def fail_on_labels(cursor, scratch, table, columns):
            if columns[2].name == "label":  # raw.labels (inference_log, synced before it, succeeded)
                raise RuntimeError("interrupted")
            return copy_in(cursor, scratch, table, columns)

        monkeypatch.setattr(postgres, "_copy_in", fail_on_labels)
        with pytest.raises(RuntimeError, match="interrupted"):
            target.sync_raw(home, raw_store)
        monkeypatch.setattr(postgres, "_copy_in", copy_in)
        assert _postgres_raw(environment) == before_interrupted

        second = target.sync_raw(home, raw_store)
    second_logs = len(_raw_store_rows(home, "inference_log")) - first_logs
    assert second["inference_log"] == second_logs > 0
    assert second["labels"] == second_logs + 1
    for table in RAW_SOURCE_TABLES:
        assert _raw_rows(environment, table, columns) == _raw_store_rows(home, table), table
    assert _query(environment, "select count(*) from raw.labels where label = 'corrected'") == [(1,)]


def test_built_tables_reach_the_published_copy_typed(postgres_server, tmp_path, monkeypatch):
    environment = _database(postgres_server, "driftmart_types")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    _query(
        environment,
        """
        create schema marts;
        create schema intermediate;
        create table marts.example (
            name text, note varchar(20), n bigint, k integer, share double precision, ratio real,
            total numeric, price numeric(10, 2), is_flag boolean, at_time timestamp, on_day date
        );
        insert into marts.example values
            ('a', '', 9007199254740993, 1, 0.1, 0.5, 12, 3.25, true, '2024-01-01 00:00:00.5', '2024-01-01'),
            (null, null, null, null, 'NaN', '-Infinity', null, null, null, null, null),
            (E'line\\nbreak, "quoted"', 'x', -1, -2, 1e-300, 1, 1.5, -0.01, false,
             '1999-12-31 23:59:59', '2000-02-29');
        create view marts.example_view as select * from marts.example;
        create table intermediate.empty (x double precision);
        select 1;
        """,
    )
    home = Home.resolve(tmp_path / "home").ensure()
    with duckdb.connect(str(tmp_path / "published.duckdb")) as published:
        published.execute("create schema marts")
        published.execute("create table marts.example as select 1 as stale")
        copied = PostgresTarget().copy_built_tables(home, published)
        types = dict(
            published.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'marts' and table_name = 'example'"
            ).fetchall()
        )
        rows = published.execute("select * from marts.example order by k desc nulls last").fetchall()
        (empty,) = published.execute("select count(*) from intermediate.empty").fetchall()
    assert sorted(copied) == ["intermediate.empty", "marts.example"]
    assert types == {
        "name": "VARCHAR",
        "note": "VARCHAR",
        "n": "BIGINT",
        "k": "INTEGER",
        "share": "DOUBLE",
        "ratio": "DOUBLE",
        "total": "DOUBLE",
        "price": "DECIMAL(10,2)",
        "is_flag": "BOOLEAN",
        "at_time": "TIMESTAMP",
        "on_day": "DATE",
    }
    assert rows[0][:3] == ("a", "", 9007199254740993) and rows[0][4] == 0.1
    assert rows[1][0] == 'line\nbreak, "quoted"' and rows[1][5] == 1.0 and rows[1][4] == 1e-300
    assert rows[2][:4] == (None, None, None, None) and rows[2][5] == float("-inf")
    assert empty == (0,)


def test_check_available_names_the_server(monkeypatch):
    port = str(free_port())
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", port)
    monkeypatch.setenv("PGDATABASE", "somewhere")
    with pytest.raises(TargetError, match=f"PGHOST=127.0.0.1 PGPORT={port} PGDATABASE=somewhere"):
        PostgresTarget().check_available(Home.resolve(Path("unused")))
