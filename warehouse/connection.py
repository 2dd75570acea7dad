"""Connections to the warehouse: one serialised writer, read-only readers of the published copy.

DuckDB allows one writer process per file (DESIGN.md §4). Every step that writes the warehouse
(ingest, dbt build, publish) holds an exclusive `flock` on `<home>/.warehouse.lock`, so two runs
queue instead of failing with DuckDB's lock error; a wait longer than `timeout` is a clear error.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

import duckdb

from ml.errors import DriftmartError
from warehouse.home import Home

DEFAULT_WRITER_TIMEOUT = 900.0


class WarehouseBusyError(DriftmartError):
    """Another process has held the warehouse's writer lock for longer than we were told to wait."""


class NothingPublishedError(DriftmartError):
    """No published copy of the warehouse exists yet."""


def raw_schema_sql() -> str:
    return resources.files("warehouse").joinpath("schema.sql").read_text()


@contextmanager
def writer_lock(home: Home, timeout: float = DEFAULT_WRITER_TIMEOUT) -> Iterator[None]:
    """Hold the home's writer lock; wait up to `timeout` seconds for another writer to finish."""
    home.ensure()
    with home.writer_lock.open("a") as lock_file:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        f"another driftmart process is writing {home.warehouse} "
                        f"(waited {timeout:.0f} s for {home.writer_lock})"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def connect_writer(home: Home) -> duckdb.DuckDBPyConnection:
    """Open the warehouse for writing and make sure the raw schema exists. Hold `writer_lock`."""
    home.ensure()
    connection = duckdb.connect(str(home.warehouse))
    connection.execute("set enable_progress_bar = false")
    connection.execute(raw_schema_sql())
    return connection


@contextmanager
def warehouse_writer(
    home: Home, timeout: float = DEFAULT_WRITER_TIMEOUT
) -> Iterator[duckdb.DuckDBPyConnection]:
    with writer_lock(home, timeout):
        connection = connect_writer(home)
        try:
            yield connection
        finally:
            connection.close()


def connect_published(home: Home) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published copy: never blocks, and is never blocked by, a run."""
    if not home.published.exists():
        raise NothingPublishedError(
            f"nothing published yet at {home.published}: run `driftmart run` (or `driftmart demo`) first"
        )
    return duckdb.connect(str(home.published), read_only=True)
