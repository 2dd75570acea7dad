"""Publishing: status.json, Parquet exports, readable permissions, and no change on failure; the
copy answers like the warehouse, and a publish writes only what is new (raw logs as Parquet parts)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import warehouse.publish as publishing
from orchestration.instance import instance_for
from tests.conftest import DRIFT_PLAN
from tests.observability.conftest import copy_home
from warehouse import queries
from warehouse.home import Home
from warehouse.publish import PARQUET_ENV, parquet_dir, parts_dir, publish, read_state, read_status

pytestmark = pytest.mark.slow


@contextmanager
def open_copy(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A reader of the file at `path` now, as catalog `published` (also the default): a DuckDB of its
    own, so an older copy this process still has open under that path is never handed back."""
    with duckdb.connect() as connection:
        connection.execute(f"attach '{path}' as published (read_only)")
        connection.execute("use published")
        yield connection


def _counts(path) -> dict[str, int]:
    """Rows of every raw and mart table a reader of the copy sees (the raw logs are views)."""
    with open_copy(path) as connection:
        tables = connection.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = 'published' and table_schema in ('raw', 'marts')"
        ).fetchall()
        return {
            f"{schema}.{name}": connection.execute(f"select count(*) from {schema}.{name}").fetchall()[0][0]
            for schema, name in tables
        }


def test_the_pipeline_writes_a_status_with_its_run_and_the_row_counts(built_home):
    status = read_status(built_home)
    assert status is not None
    assert status["published_at"].endswith("+00:00")  # UTC
    assert status["rows"] == _counts(built_home.published)
    assert status["rows"]["marts.fct_feature_drift"] > 0
    with instance_for(built_home) as instance:
        run = instance.get_run_by_id(status["run_id"])
    assert run is not None and run.job_name == "driftmart_pipeline"
    mode = stat.S_IMODE(built_home.published.stat().st_mode)
    assert mode & stat.S_IROTH, oct(mode)  # BI tools may run as another user


def test_parquet_exports_of_the_marts_on_request(built_home, tmp_path, monkeypatch):
    home = copy_home(built_home, tmp_path / "home")
    monkeypatch.setenv(PARQUET_ENV, "1")
    publish(home, run_id="manual")
    status = read_status(home)
    assert status["run_id"] == "manual"
    marts = sorted(table for table in status["rows"] if table.startswith("marts."))
    assert status["parquet"] == [f"{table}.parquet" for table in marts]
    assert sorted(path.name for path in parquet_dir(home).iterdir()) == status["parquet"]
    with duckdb.connect(str(home.published), read_only=True) as connection:
        expected = connection.execute(
            "select * from marts.fct_feature_drift order by model_name, feature_name, window_start"
        ).df()
    exported = pd.read_parquet(parquet_dir(home) / "marts.fct_feature_drift.parquet")
    exported = exported.sort_values(["model_name", "feature_name", "window_start"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(exported, expected, check_dtype=False)
    assert not list(home.published_dir.rglob(".driftmart-*"))  # no temporary files left behind

    monkeypatch.delenv(PARQUET_ENV)
    publish(home)  # off by default: the files stay as they were, the status lists none
    assert read_status(home)["parquet"] == []


def test_a_failed_publish_leaves_the_previous_copy_in_place(built_home, tmp_path):
    home = copy_home(built_home, tmp_path / "home")
    before = home.published.read_bytes()
    status_before = read_status(home)
    home.warehouse.write_bytes(b"a half-written warehouse" * 1000)
    with pytest.raises(duckdb.Error):
        publish(home, run_id="broken")
    assert home.published.read_bytes() == before
    assert read_status(home) == status_before
    assert not list(home.published_dir.rglob(".driftmart-*"))


# --- What readers see: the copy answers like the warehouse --------------------------------------


def _parts(home: Home) -> dict[str, tuple[int, int, int]]:
    """Every Parquet part under published/raw/: (inode, mtime in ns, size), to tell any rewrite."""
    return {
        path.relative_to(home.published_dir).as_posix(): (
            path.stat().st_ino,
            path.stat().st_mtime_ns,
            path.stat().st_size,
        )
        for path in parts_dir(home).rglob("*.parquet")
    }


def _rows_in(path: Path) -> int:
    with duckdb.connect() as connection:
        return connection.execute(f"select count(*) from read_parquet('{path}')").fetchall()[0][0]


def _add_rows(home: Home, n: int, prefix: str) -> None:
    """`n` new predictions and their labels in the raw store, numbered like an ingest numbers them
    (the next ingest_seq); the rows are copies of existing ones under new request ids."""
    with duckdb.connect(str(home.warehouse)) as connection:
        for table in ("inference_log", "labels"):
            connection.execute(
                f"insert into raw.{table} by name select * exclude (ingest_seq) "
                f"replace ('{prefix}' || request_id as request_id) "
                f"from raw.{table} where request_id not like 'new%' order by request_id limit {n}"
            )


def _replace_labels(home: Home, where: str) -> int:
    """Replace the labels chosen by `where` with the other class, as a corrected label arrives."""
    with duckdb.connect(str(home.warehouse)) as connection:
        (n,) = connection.execute(f"select count(*) from raw.labels where {where}").fetchall()[0]
        connection.execute(
            f"insert or replace into raw.labels by name "
            f"select * replace (case when label = '1' then '0' else '1' end as label, "
            f"nextval('raw.ingest_seq') as ingest_seq) from raw.labels where {where}"
        )
    return n


def _differences(home: Home) -> list[str]:
    """What a reader of the copy sees differently from the warehouse: every raw table, mart and
    published intermediate table, by columns (names and types, in order) and by rows."""
    problems = []
    with open_copy(home.published) as connection:
        connection.execute(f"attach '{home.warehouse}' as warehouse (read_only)")

        def columns(catalog: str, schema: str, table: str) -> list[tuple[str, str]]:
            return connection.execute(
                "select column_name, data_type from information_schema.columns where table_catalog = ? "
                "and table_schema = ? and table_name = ? order by ordinal_position",
                [catalog, schema, table],
            ).fetchall()

        def tables(catalog: str) -> list[tuple[str, str, str]]:
            return connection.execute(
                "select table_schema, table_name, table_type from information_schema.tables "
                "where table_catalog = ? and table_schema in ('raw', 'intermediate', 'marts')",
                [catalog],
            ).fetchall()

        published = {(schema, table) for schema, table, _ in tables("published")}
        # every raw table and mart, and the intermediate tables (dbt's views are rebuilt where they can)
        expected = [
            (schema, table)
            for schema, table, kind in tables("warehouse")
            if schema != "intermediate" or kind == "BASE TABLE"
        ]
        for schema, table in expected:
            if schema == "intermediate" and any(
                name == "request_id" for name, _ in columns("warehouse", schema, table)
            ):
                continue  # row-level: not published (readers join the raw logs)
            if (schema, table) not in published:
                problems.append(f"{schema}.{table} is not published")
                continue
            if columns("published", schema, table) != columns("warehouse", schema, table):
                problems.append(f"{schema}.{table}: columns differ")
                continue
            for left, right in (("published", "warehouse"), ("warehouse", "published")):
                (extra,) = connection.execute(
                    f"select count(*) from (select * from {left}.{schema}.{table} "
                    f"except all select * from {right}.{schema}.{table})"
                ).fetchall()[0]
                if extra:
                    problems.append(f"{schema}.{table}: {extra} rows in {left} and not in {right}")
    return problems


JOIN_MARTS_AND_LOGS = """
    select drift.model_name, drift.window_start, drift.n_current, count(logs.request_id) as n_logs,
           count(labels.label) as n_labelled, list(logs.probability order by logs.request_id) as p,
           count(*) filter (where labels.label = logs.prediction) as n_right
    from marts.fct_dataset_drift as drift
    left join raw.inference_log as logs
        on logs.model_name = drift.model_name and logs.scored_at >= drift.window_start
       and logs.scored_at < drift.window_end
    left join raw.labels as labels
        on labels.model_name = logs.model_name and labels.request_id = logs.request_id
    group by all order by all
"""


def _answers(connection: duckdb.DuckDBPyConnection, spec) -> dict[str, object]:
    """What the reports, retraining and BI ask of a copy: marts joined with the raw logs, and the
    production rows of a window and the labelled rows as pandas frames."""
    start = DRIFT_PLAN.start + timedelta(days=DRIFT_PLAN.drift_day)
    return {
        "join": connection.execute(JOIN_MARTS_AND_LOGS).fetchall(),
        "window": queries.window_rows(connection, spec, start, start + timedelta(days=1)),
        "labelled": queries.labelled_rows(connection, spec, 500),
    }


def _assert_same_answers(home: Home, spec) -> None:
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        expected = _answers(connection, spec)
    with open_copy(home.published) as connection:
        actual = _answers(connection, spec)
    assert actual["join"] == expected["join"]
    assert len(actual["window"]) > 0 and len(actual["labelled"]) > 0
    pd.testing.assert_frame_equal(actual["window"], expected["window"])
    pd.testing.assert_frame_equal(actual["labelled"], expected["labelled"])


def test_the_copy_holds_what_readers_query_with_the_warehouse_columns_and_rows(built_home, spec):
    assert _differences(built_home) == []
    _assert_same_answers(built_home, spec)
    with open_copy(built_home.published) as connection:
        kinds = dict(
            connection.execute(
                "select table_name, table_type from information_schema.tables "
                "where table_catalog = 'published' and table_schema = 'raw'"
            ).fetchall()
        )
        # the raw logs: views over Parquet parts under published/raw/, not tables in the file
        assert {kinds[t] for t in ("inference_log", "labels", "reference_rows")} == {"VIEW"}
        row_level = connection.execute(
            "select count(*) from information_schema.columns where table_catalog = 'published' "
            "and table_schema in ('intermediate', 'marts') and column_name = 'request_id' and table_name in "
            "(select table_name from information_schema.tables where table_type = 'BASE TABLE')"
        ).fetchall()[0][0]
    assert row_level == 0  # no table with a row per prediction is copied
    state = read_state(built_home)
    for table in ("inference_log", "labels", "reference_rows"):
        for part in state["tables"][table]["parts"]:
            assert (built_home.published_dir / part["file"]).is_file()
            assert stat.S_IMODE((built_home.published_dir / part["file"]).stat().st_mode) & stat.S_IROTH


def test_a_publish_writes_only_the_new_rows_and_never_rewrites_a_part(built_home, tmp_path, spec):
    home = copy_home(built_home, tmp_path / "home")
    publish(home)
    before = _parts(home)
    size = home.published.stat().st_size
    publish(home)  # nothing new: no part written, none touched, the file the same size
    assert _parts(home) == before
    assert read_status(home)["exported_rows"] == {}
    assert home.published.stat().st_size == size

    _add_rows(home, 37, "new-a-")
    publish(home, run_id="more")
    after = _parts(home)
    assert {name: after[name] for name in before} == before  # every old part untouched
    new = sorted(set(after) - set(before))
    assert [name.split("/")[1] for name in new] == ["inference_log", "labels"]  # one part each
    assert [_rows_in(home.published_dir / name) for name in new] == [37, 37]
    assert read_status(home)["exported_rows"] == {"inference_log": 37, "labels": 37}
    assert read_status(home)["rows"] == _counts(home.published)
    assert _differences(home) == []
    _assert_same_answers(home, spec)

    # Much more history, then a publish with nothing new: it writes what it wrote before the
    # history grew (a DuckDB file of the small tables, no part), so its cost does not grow with it.
    _add_rows(home, 1500, "new-b-")
    publish(home)
    history = _parts(home)
    publish(home)
    assert _parts(home) == history
    assert read_status(home)["exported_rows"] == {}
    assert abs(home.published.stat().st_size - size) <= 256 * 1024  # DuckDB grows by blocks


def test_a_label_replaced_between_publishes_appears_replaced(built_home, tmp_path, spec):
    home = copy_home(built_home, tmp_path / "home")
    publish(home)
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        (request,) = connection.execute("select min(request_id) from raw.labels").fetchall()[0]
    n_labels = _counts(home.published)["raw.labels"]
    before = _parts(home)
    assert _replace_labels(home, f"request_id = '{request}'") == 1
    publish(home)
    assert {name: _parts(home)[name] for name in before} == before
    with open_copy(home.published) as connection:
        rows = connection.execute(
            "select label, ingest_seq from raw.labels where request_id = ?", [request]
        ).fetchall()
        (n,) = connection.execute("select count(*) from raw.labels").fetchall()[0]
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        truth = connection.execute(
            "select label, ingest_seq from raw.labels where request_id = ?", [request]
        ).fetchall()
    assert rows == truth and n == n_labels  # the new label only, no duplicate
    state = read_state(home)["tables"]["labels"]
    assert state["superseded_rows"] == 1 and len(state["superseded"]) == 1
    assert _replace_labels(home, f"request_id = '{request}'") == 1  # and corrected once more
    publish(home)
    assert _differences(home) == []
    _assert_same_answers(home, spec)

    # Most labels replaced (a labels file imported again): the table is exported afresh, whole.
    replaced = _replace_labels(home, "request_id <> ''")
    assert replaced == n_labels
    publish(home)
    state = read_state(home)["tables"]["labels"]
    assert len(state["parts"]) == 1 and state["superseded"] == []
    assert _differences(home) == []


def test_rows_deleted_or_a_changed_layout_in_the_raw_store_re_export_the_table(built_home, tmp_path):
    home = copy_home(built_home, tmp_path / "home")
    publish(home)
    with duckdb.connect(str(home.warehouse)) as connection:  # e.g. a retention, or a hand-made fix
        connection.execute(
            "delete from raw.inference_log "
            "where request_id in (select min(request_id) from raw.inference_log)"
        )
    _add_rows(home, 5, "new-a-")
    publish(home)
    assert _differences(home) == []
    assert len(read_state(home)["tables"]["inference_log"]["parts"]) == 1  # exported whole, once

    with duckdb.connect(str(home.warehouse)) as connection:  # an upgrade of the raw layout
        connection.execute("alter table raw.inference_log add column extra varchar default 'x'")
        connection.execute("alter table raw.reference_rows add column extra integer default 7")
    publish(home)
    assert _differences(home) == []
    with open_copy(home.published) as connection:
        assert connection.execute("select distinct extra from raw.inference_log").fetchall() == [("x",)]
        assert connection.execute("select distinct extra from raw.reference_rows").fetchall() == [(7,)]

    with duckdb.connect(str(home.warehouse)) as connection:  # a reference set removed
        connection.execute("delete from raw.reference_rows where row_number = 0")
    publish(home)
    assert _differences(home) == []

    for part in read_state(home)["tables"]["labels"]["parts"]:  # a part deleted on disk
        (home.published_dir / part["file"]).unlink()
    with pytest.raises(duckdb.IOException), open_copy(home.published) as connection:
        connection.execute("select count(*) from raw.labels").fetchall()
    publish(home)
    assert _differences(home) == []


def test_a_raw_store_numbered_anew_is_re_exported(built_home, tmp_path):
    """The same rows under other ingest numbers (a raw store rebuilt from the landing files, say):
    the counts agree, the rows at the numbers exported before do not."""
    home = copy_home(built_home, tmp_path / "home")
    publish(home)
    with duckdb.connect(str(home.warehouse)) as connection:
        (logs,) = connection.execute("select count(*) from raw.inference_log").fetchall()[0]
        (labels,) = connection.execute("select count(*) from raw.labels").fetchall()[0]
        connection.execute(f"update raw.labels set ingest_seq = ingest_seq - {logs}")
        connection.execute(f"update raw.inference_log set ingest_seq = ingest_seq + {labels}")
    publish(home)
    assert _differences(home) == []
    for table in ("inference_log", "labels"):
        assert len(read_state(home)["tables"][table]["parts"]) == 1
    _add_rows(home, 3, "new-a-")
    publish(home)
    assert read_status(home)["exported_rows"] == {"inference_log": 3, "labels": 3}
    assert _differences(home) == []


def test_a_new_reference_set_is_one_new_part(built_home, tmp_path):
    home = copy_home(built_home, tmp_path / "home")
    publish(home)
    before = _parts(home)
    with duckdb.connect(str(home.warehouse)) as connection:  # a retrained version's reference rows
        connection.execute(
            "insert into raw.reference_rows by name select * replace (99 as model_version) "
            "from raw.reference_rows where model_version = 1"
        )
        (n,) = connection.execute(
            "select count(*) from raw.reference_rows where model_version = 99"
        ).fetchall()[0]
    publish(home)
    after = _parts(home)
    assert {name: after[name] for name in before} == before
    (new,) = set(after) - set(before)
    assert new.startswith("raw/reference_rows/") and _rows_in(home.published_dir / new) == n
    assert _differences(home) == []


def test_a_publish_failing_midway_leaves_the_previous_copy_and_its_parts_working(
    built_home, tmp_path, monkeypatch
):
    home = copy_home(built_home, tmp_path / "home")
    publish(home)
    before, copy, status = _parts(home), home.published.read_bytes(), read_status(home)
    counts = _counts(home.published)
    _add_rows(home, 11, "new-a-")

    def broken(connection):  # after the new rows' parts are written
        assert len(_parts(home)) > len(before)
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(publishing, "_copy_built", broken)
    with pytest.raises(RuntimeError, match="disk is full"):
        publish(home, run_id="broken")
    assert home.published.read_bytes() == copy and read_status(home) == status
    assert _parts(home) == before  # its own new parts removed
    assert _counts(home.published) == counts  # the previous copy reads whole
    assert not list(home.published_dir.rglob(".driftmart-*"))

    monkeypatch.undo()
    publish(home)
    assert read_status(home)["exported_rows"] == {"inference_log": 11, "labels": 11}
    assert _differences(home) == []


def test_leftovers_of_a_killed_publish_are_cleaned_up(built_home, tmp_path, monkeypatch):
    home = copy_home(built_home, tmp_path / "home")
    publish(home)
    leftover = home.published_dir / ".driftmart-killed"
    leftover.mkdir()
    (leftover / "driftmart.duckdb").write_bytes(b"half a copy")
    orphan = parts_dir(home) / "inference_log" / "part-000000000001-000000000009-killed.parquet"
    orphan.write_bytes(b"a part no copy names")
    (parts_dir(home) / "labels" / ".driftmart-partial.parquet").write_bytes(b"half a part")
    monkeypatch.setattr(publishing, "RETAIN_SECONDS", 0.0)
    publish(home)
    assert not list(home.published_dir.rglob(".driftmart-*"))
    assert orphan.exists()  # not named by any copy, but only deleted like any retired file:
    for _ in range(publishing.KEEP_GENERATIONS):
        publish(home)
    assert not orphan.exists()
    assert _differences(home) == []


def _named(home: Home) -> set[str]:
    """The part files the copy in place names."""
    return {
        part["file"]
        for table in read_state(home)["tables"].values()
        for part in table["parts"] + table.get("superseded", [])
    }


def test_compaction_merges_small_parts_and_older_copies_keep_reading(built_home, tmp_path, monkeypatch):
    home = copy_home(built_home, tmp_path / "home")
    monkeypatch.setattr(publishing, "MAX_SMALL_PARTS", 2)
    monkeypatch.setattr(publishing, "RETAIN_SECONDS", 0.0)
    publish(home)
    _add_rows(home, 3, "new-a-")
    publish(home)
    assert len(read_state(home)["tables"]["inference_log"]["parts"]) == 2
    before = _named(home)
    with duckdb.connect() as reader:  # opened before the compaction, kept open
        reader.execute(f"attach '{home.published}' as old (read_only)")
        (old_rows,) = reader.execute("select count(*) from old.raw.inference_log").fetchall()[0]
        _add_rows(home, 4, "new-b-")
        publish(home)  # three small parts: merged into one
        parts = read_state(home)["tables"]["inference_log"]["parts"]
        assert len(parts) == 1 and parts[0]["rows"] == old_rows + 4
        # on disk: what the new copy names, and what the previous one named (kept for its readers);
        # the new rows' own part, merged in the same publish and named by no copy, is gone
        assert set(_parts(home)) == _named(home) | before
        assert reader.execute("select count(*) from old.raw.inference_log").fetchall()[0][0] == old_rows
        publish(home)  # one newer copy: the merged-away parts are still kept
        assert reader.execute("select count(*) from old.raw.inference_log").fetchall()[0][0] == old_rows
    for _ in range(publishing.KEEP_GENERATIONS):
        publish(home)
    assert set(_parts(home)) == _named(home)  # the merged-away parts are gone, every named one is there
    assert _differences(home) == []


# --- Other engines: their built tables readers use, the raw logs from the raw store ---------------


def test_on_another_engine_the_copy_takes_its_built_tables_and_the_raw_store_logs(
    built_home, tmp_path, monkeypatch
):
    from warehouse.targets import Target

    class Engine(Target):
        name = "postgres"

        def copy_built_tables(self, home, published):
            published.execute("create schema marts; create table marts.fct_from_engine as select 1 as n")
            return ["marts.fct_from_engine"]

    home = copy_home(built_home, tmp_path / "home")
    monkeypatch.setattr(publishing, "resolve_target", lambda: Engine())
    _add_rows(home, 9, "new-a-")
    publish(home)
    with open_copy(home.published) as connection:
        schemas = dict(
            connection.execute(
                "select table_schema, list(table_name order by table_name) from information_schema.tables "
                "where table_catalog = 'published' and table_schema not in ('raw', '_driftmart') group by 1"
            ).fetchall()
        )
    # The DuckDB build that ran in this raw store earlier does not linger: the engine's tables, and
    # the tables the Dagster steps write in the raw store (STEP_TABLES) on every target.
    assert schemas == {"marts": ["fct_from_engine", "fct_multivariate_drift"]}
    assert read_status(home)["exported_rows"] == {"inference_log": 9, "labels": 9}
    assert [problem for problem in _differences(home) if problem.startswith("raw.")] == []


def test_spark_leaves_its_row_level_tables_out_of_the_copy(home: Home, tmp_path):
    from warehouse.targets.spark import SparkTarget, warehouse_dir

    for schema, table, select in (
        ("marts", "fct_example", "select 1::bigint as n_rows, 'm' as model_name"),
        ("intermediate", "int_per_prediction", "select 'r1' as request_id, 'x' as feature_name"),
    ):
        folder = warehouse_dir(home) / f"{schema}.db" / table
        folder.mkdir(parents=True)
        with duckdb.connect() as writer:
            writer.execute(f"copy ({select}) to '{folder / 'part-00000.parquet'}' (format parquet)")
    with duckdb.connect(str(tmp_path / "published.duckdb")) as published:
        assert SparkTarget().copy_built_tables(home, published) == ["marts.fct_example"]


def test_postgres_leaves_its_row_level_tables_out_of_the_copy(
    postgres_server, home: Home, tmp_path, monkeypatch
):
    import psycopg2

    from warehouse.targets.postgres import PostgresTarget

    server = postgres_server
    admin = psycopg2.connect(
        host=server["PGHOST"], port=server["PGPORT"], user=server["PGUSER"], dbname=server["PGDATABASE"]
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("drop database if exists driftmart_publish")
        cursor.execute("create database driftmart_publish")
    admin.close()
    for name, value in {**postgres_server, "PGDATABASE": "driftmart_publish"}.items():
        monkeypatch.setenv(name, value)
    with PostgresTarget().connect() as connection, connection.cursor() as cursor:
        cursor.execute(
            "create schema marts; create schema intermediate; "
            "create table marts.fct_example (model_name text, n_rows bigint); "
            "insert into marts.fct_example values ('m', 3); "
            "create table intermediate.int_per_prediction (model_name text, request_id text, x real); "
            "insert into intermediate.int_per_prediction values ('m', 'r1', 1.5)"
        )
    with duckdb.connect(str(tmp_path / "published.duckdb")) as published:
        assert PostgresTarget().copy_built_tables(home, published) == ["marts.fct_example"]
        assert published.execute("select * from marts.fct_example").fetchall() == [("m", 3)]


def _write_then_die(warehouse: Path) -> None:
    import os

    connection = duckdb.connect(str(warehouse))
    connection.execute("set wal_autocheckpoint = '1TB'")
    connection.execute("delete from raw.quarantine where false")
    connection.execute("create table raw.wal_probe as select 42 as answer")
    os._exit(0)  # no checkpoint, no close: the change lives in the WAL only


def test_publish_checkpoints_a_leftover_wal_so_the_copy_needs_none(built_home, tmp_path):
    import multiprocessing

    home = copy_home(built_home, tmp_path / "home")
    process = multiprocessing.get_context("fork").Process(target=_write_then_die, args=(home.warehouse,))
    process.start()
    process.join(60)
    wal = home.warehouse.with_name(home.warehouse.name + ".wal")
    assert wal.exists() and wal.stat().st_size > 0
    publish(home)
    assert not wal.exists() or wal.stat().st_size == 0
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        assert connection.execute("select answer from raw.wal_probe").fetchone() == (42,)
