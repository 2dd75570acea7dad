"""Connections to the warehouse: one serialised writer, read-only readers of the published copy.

DuckDB allows one writer process per file (docs/architecture.md §4). Every step that writes the warehouse
(ingest, dbt build, publish) holds an exclusive `flock` on `<home>/.warehouse.lock`, so two runs
queue instead of failing with DuckDB's lock error; a wait longer than `timeout` (env
DRIFTMART_LOCK_TIMEOUT, default 900 s) is a clear error naming the lock and the process holding it.

DuckDB's own limits are set on every connection (the writer and the published copy's readers; the
dbt process gets the same values through the same variables, orchestration/dbt_setup.py):

- `threads` — env DRIFTMART_DUCKDB_THREADS; default the CPUs this process may run on
  (`os.sched_getaffinity`, else `os.cpu_count()`).
- `memory_limit` — env DRIFTMART_DUCKDB_MEMORY_LIMIT, any DuckDB size ("4GB", "512MiB", "25%");
  default a quarter of the machine's memory (or of its cgroup limit), at most 4 GB. DuckDB's own
  default (80 % of RAM) leaves too little for the Python side of an import or the next process on a
  shared machine; past the limit DuckDB spills joins, sorts and group-bys to disk instead of growing.
  Exact quantiles (the reference deciles, the windows' quartiles) cannot spill: they hold every value
  of the windows being recounted, 8 bytes each (a first run over 5 windows x 1M rows x 20 numeric
  features needs about 2 GB of it). Raise the limit for bigger first runs.
- `temp_directory` — where DuckDB spills what does not fit: inside the home
  (`<home>/tmp/duckdb-writer` for the writer, `<home>/tmp/duckdb-reader-<pid>` for readers, so two
  processes never share spill files), not `.tmp` in the working directory.
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
THREADS_ENV = "DRIFTMART_DUCKDB_THREADS"
MEMORY_LIMIT_ENV = "DRIFTMART_DUCKDB_MEMORY_LIMIT"
MEMORY_SHARE = 0.25  # of the machine's memory, by default ...
MEMORY_CAP = 4 * 1000**3  # ... at most 4 GB (DuckDB's "GB" is 1000^3 bytes)
# A container's memory limit (cgroup v2, then v1): lower than the machine's memory when set.
CGROUP_MEMORY_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


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


def duckdb_threads() -> int:
    """DuckDB's worker threads: env DRIFTMART_DUCKDB_THREADS, default the CPUs this process may use."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise DriftmartError(f"{THREADS_ENV}={value!r} is not a positive number of threads")
        return threads
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _machine_memory() -> int | None:
    """Bytes of memory this process may use: the machine's, or its cgroup's limit if lower."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        total = None
    for limit_file in CGROUP_MEMORY_LIMITS:
        try:
            limit = int(limit_file.read_text().strip())
        except (OSError, ValueError):  # absent, or "max": no limit
            continue
        total = limit if total is None else min(total, limit)
    return total if total and total > 0 else None


def duckdb_memory_limit() -> str:
    """DuckDB's memory limit: env DRIFTMART_DUCKDB_MEMORY_LIMIT (a DuckDB size: "4GB", "25%"),
    default a quarter of the machine's memory, at most 4 GB."""
    value = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if value:
        return value
    total = _machine_memory()
    if total is None:
        return f"{MEMORY_SHARE:.0%}"
    return f"{max(min(int(total * MEMORY_SHARE), MEMORY_CAP) // 1000**2, 64)}MB"


def duckdb_settings(home: Home, role: str = "writer") -> dict[str, str]:
    """The DuckDB settings of a connection to the home's warehouse (`role`: writer | reader)."""
    spill = f"duckdb-{role}" if role == "writer" else f"duckdb-{role}-{os.getpid()}"
    return {
        "threads": str(duckdb_threads()),
        "memory_limit": duckdb_memory_limit(),
        "temp_directory": str(home.root / "tmp" / spill),
    }


def apply_settings(connection: duckdb.DuckDBPyConnection, settings: dict[str, str]) -> None:
    """SET each setting (after connecting: a connect-time config would make DuckDB refuse a second
    connection to the same file in this process with different settings). A bad value from the
    environment is one clear error naming its variable."""
    sources = {"threads": THREADS_ENV, "memory_limit": MEMORY_LIMIT_ENV}
    for name, value in settings.items():
        try:
            connection.execute(f"set {name} = '{value.replace(chr(39), chr(39) * 2)}'")
        except duckdb.Error as error:
            source = f" (from {sources[name]})" if name in sources and os.environ.get(sources[name]) else ""
            raise DriftmartError(f"DuckDB setting {name} = {value!r}{source} is not valid: {error}") from None


def _connect(path: Path, settings: dict[str, str], read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to `path` with driftmart's DuckDB settings, closed again if one is refused."""
    connection = duckdb.connect(str(path), read_only=read_only)
    try:
        apply_settings(connection, settings)
    except BaseException:
        connection.close()
        raise
    return connection


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
    connection = _connect(home.warehouse, duckdb_settings(home, "writer"))
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
    return _connect(home.published, duckdb_settings(home, "reader"), read_only=True)
