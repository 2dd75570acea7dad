"""Connections to the warehouse: one serialised writer, read-only readers of the published copy.

DuckDB allows one writer process per file (DESIGN.md §4). Every step that writes the warehouse
(ingest, dbt build, publish) holds an exclusive `flock` on `<home>/.warehouse.lock`, so two runs
queue instead of failing with DuckDB's lock error; a wait longer than `timeout` (env
DRIFTMART_LOCK_TIMEOUT, default 900 s) is a clear error naming the lock and the process holding it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import duckdb

from ml.errors import DriftmartError
from warehouse import migrate
from warehouse.home import Home

DEFAULT_WRITER_TIMEOUT = 900.0
LOCK_TIMEOUT_ENV = "DRIFTMART_LOCK_TIMEOUT"


class WarehouseBusyError(DriftmartError):
    """Another process has held the warehouse's writer lock for longer than we were told to wait."""


class NothingPublishedError(DriftmartError):
    """No published copy of the warehouse exists yet."""


def raw_schema_sql() -> str:
    return resources.files("warehouse").joinpath("schema.sql").read_text()


def lock_timeout() -> float:
    """Seconds to wait for a busy lock: env DRIFTMART_LOCK_TIMEOUT, default 900."""
    value = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not value:
        return DEFAULT_WRITER_TIMEOUT
    try:
        return max(float(value), 0.0)
    except ValueError:
        raise DriftmartError(f"{LOCK_TIMEOUT_ENV}={value!r} is not a number of seconds") from None


@contextmanager
def _exclusive(
    path: Path, what: str, timeout: float | None, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold an exclusive flock on `path`, waiting up to `timeout` seconds (default lock_timeout()).
    The holder writes its pid into the file, so a waiter can say who it waits for; `on_wait` is told
    once, when the lock is busy."""
    timeout = lock_timeout() if timeout is None else timeout
    with path.open("a+") as lock_file:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                lock_file.seek(0)
                holder = f"pid {lock_file.read().strip() or 'unknown'}"
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        f"{what} is busy: {holder} holds {path}; waited {timeout:.0f} s "
                        f"(set {LOCK_TIMEOUT_ENV} to wait longer)"
                    ) from None
                if on_wait is not None and not told:
                    on_wait(holder)
                    told = True
                time.sleep(0.2)
        try:
            lock_file.truncate(0)
            lock_file.write(str(os.getpid()))
            lock_file.flush()
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


@contextmanager
def writer_lock(home: Home, timeout: float | None = None) -> Iterator[None]:
    """Hold the home's writer lock for one writing step; wait up to `timeout` seconds (default
    lock_timeout()) for another writer to finish."""
    home.ensure()
    with _exclusive(home.writer_lock, f"the warehouse {home.warehouse}", timeout):
        yield


@contextmanager
def run_lock(
    home: Home, timeout: float | None = None, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the home's run lock for a whole `driftmart run` (ingest, build, publish, retrain), so two
    runs on one home queue one after the other instead of interleaving their steps. Steps still
    take `writer_lock`, which runs started from the Dagster UI or its sensors take too."""
    home.ensure()
    with _exclusive(home.root / ".run.lock", f"the driftmart home {home.root}", timeout, on_wait):
        yield


def connect_writer(home: Home) -> duckdb.DuckDBPyConnection:
    """Open the warehouse for writing and make sure the raw schema exists. Hold `writer_lock`."""
    home.ensure()
    connection = duckdb.connect(str(home.warehouse))
    connection.execute("set enable_progress_bar = false")
    connection.execute(raw_schema_sql())
    migrate.upgrade(connection)
    return connection


@contextmanager
def warehouse_writer(home: Home, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
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
