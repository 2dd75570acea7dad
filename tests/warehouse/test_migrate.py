"""Upgrading a home an older driftmart made: raw.inference_log loses its primary-key index, keeps
its rows and defaults, and stays unique through its writers."""

import duckdb

from warehouse.connection import warehouse_writer
from warehouse.home import Home

KEYED_LOG = """
create schema if not exists raw;
create sequence if not exists raw.ingest_seq;
create table raw.inference_log (
    model_name varchar not null,
    request_id varchar not null,
    model_version integer,
    feature_numbers map(varchar, double),
    feature_categories map(varchar, varchar),
    prediction varchar,
    probability double,
    scored_at timestamp not null,
    received_at timestamp,
    loaded_at timestamp not null,
    source varchar not null,
    primary key (model_name, request_id)
);
alter table raw.inference_log add column ingest_seq bigint default nextval('raw.ingest_seq');
insert into raw.inference_log
    (model_name, request_id, model_version, feature_numbers, scored_at, loaded_at, source)
values ('m', 'r1', 1, map {'x': 1.5}, '2026-01-01 10:00', '2026-01-01 10:01', 'landing/a'),
       ('m', 'r2', 1, map {'x': 2.5}, '2026-01-01 11:00', '2026-01-01 11:01', 'landing/a');
"""


COLUMNS = "model_name, request_id, model_version, feature_numbers, scored_at, loaded_at, source, ingest_seq"


def primary_keys(connection) -> int:
    return connection.execute(
        "select count(*) from duckdb_constraints() where schema_name = 'raw' "
        "and table_name = 'inference_log' and constraint_type = 'PRIMARY KEY'"
    ).fetchall()[0][0]


def test_a_keyed_log_table_is_rewritten_without_the_key_and_keeps_rows_and_defaults(tmp_path):
    home = Home.resolve(tmp_path / "home").ensure()
    with duckdb.connect(str(home.warehouse)) as connection:
        connection.execute(KEYED_LOG)
        before = connection.execute(f"select {COLUMNS} from raw.inference_log order by request_id").fetchall()
        assert primary_keys(connection) == 1
    with warehouse_writer(home) as connection:
        assert primary_keys(connection) == 0
        after = connection.execute(f"select {COLUMNS} from raw.inference_log order by request_id").fetchall()
        assert after == before
        connection.execute(
            "insert into raw.inference_log (model_name, request_id, scored_at, loaded_at, source) "
            "values ('m', 'r3', '2026-01-01 12:00', '2026-01-01 12:01', 'landing/b')"
        )
        sequence = connection.execute(
            "select ingest_seq from raw.inference_log order by request_id"
        ).fetchall()
        assert [seq for (seq,) in sequence] == sorted(seq for (seq,) in sequence) and sequence[2][0] > 2
    with warehouse_writer(home) as connection:  # a current home: opening it again changes nothing
        assert connection.execute("select count(*) from raw.inference_log").fetchall()[0][0] == 3
