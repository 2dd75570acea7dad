"""Publishing: after a successful build, readers get a consistent copy of the warehouse.

The copy is written beside its destination, checked by opening it, and renamed over it, so a reader
opens either the old complete file or the new complete file, never a half-written one; an open
reader keeps its old inode and is never blocked (DESIGN.md §4). Beside the copy:

- `status.json`: when it was published (UTC), by which Dagster run, and the row count of every
  table; the exporter reads it for the time since the last successful run. Written last, also
  atomically, so it never names a copy that is not in place yet.
- `parquet/<schema>.<table>.parquet` for every mart, when env `DRIFTMART_PUBLISH_PARQUET` is
  `1`/`true` (or `publish(..., parquet=True)`): for tools that prefer files. Each file is written
  beside its destination and renamed; each is complete, but a reader that opens several files while
  a publish is renaming them may mix two publishes: compare their `status.json` `published_at`, or
  read the DuckDB copy when tables must agree.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from warehouse.files import fsync_directory, fsync_file, write_atomic
from warehouse.home import Home
from warehouse.targets import quote_identifier, resolve_target, sql_string

STATUS_FILE = "status.json"
PARQUET_DIR = "parquet"
PARQUET_ENV = "DRIFTMART_PUBLISH_PARQUET"
PUBLISHED_MODE = 0o644  # BI tools often run as another user; mkstemp creates files 0600


def parquet_enabled() -> bool:
    return os.environ.get(PARQUET_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def status_path(home: Home) -> Path:
    return home.published_dir / STATUS_FILE


def parquet_dir(home: Home) -> Path:
    return home.published_dir / PARQUET_DIR


def read_status(home: Home) -> dict[str, Any] | None:
    """The last publish's status, or None when nothing (or an older driftmart's copy without it) is there."""
    try:
        return json.loads(status_path(home).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _temporary_beside(directory: Path, suffix: str) -> Path:
    handle, name = tempfile.mkstemp(dir=directory, prefix=".driftmart-", suffix=suffix)
    os.close(handle)
    return Path(name)


def _table_rows(connection: duckdb.DuckDBPyConnection) -> dict[str, int]:
    tables = connection.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_type = 'BASE TABLE' and table_schema in ('raw', 'marts') order by 1, 2"
    ).fetchall()
    return {
        f"{schema}.{table}": connection.execute(f'select count(*) from "{schema}"."{table}"').fetchall()[0][0]
        for schema, table in tables
    }


def _export_parquet(connection: duckdb.DuckDBPyConnection, directory: Path, tables: list[str]) -> list[Path]:
    """Each mart to a temporary file beside its destination; returns the temporary files, in order."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        temporary = _temporary_beside(directory, ".parquet")
        written.append(temporary)
        schema, name = table.split(".")
        connection.execute(
            f"copy (select * from {quote_identifier(schema)}.{quote_identifier(name)}) "
            f"to {sql_string(temporary)} (format parquet)"
        )
        fsync_file(temporary)
    return written


def _write_json_atomically(path: Path, content: dict[str, Any]) -> None:
    data = (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()
    write_atomic(path, data, mode=PUBLISHED_MODE)


def publish(home: Home, *, run_id: str | None = None, parquet: bool | None = None) -> Path:
    """Copy the warehouse to `<home>/published/`. Call while holding the writer lock, connections closed.

    `run_id` (the Dagster run, when known) goes into `status.json`; `parquet` defaults to env
    `DRIFTMART_PUBLISH_PARQUET`.
    """
    export_parquet = parquet_enabled() if parquet is None else parquet
    home.published_dir.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_beside(home.published_dir, ".duckdb")
    parquet_files: list[Path] = []
    try:
        shutil.copyfile(home.warehouse, temporary)
        # On postgres and spark the built schemas live on that engine: copy them into the copy.
        target = resolve_target()
        if target.name != "duckdb":
            with duckdb.connect(str(temporary)) as connection:
                target.copy_built_tables(home, connection)
        fsync_file(temporary)
        temporary.chmod(PUBLISHED_MODE)
        # Opening the copy proves it is a whole database before any reader can see it.
        with duckdb.connect(str(temporary), read_only=True) as connection:
            rows = _table_rows(connection)
            marts = [table for table in rows if table.startswith("marts.")]
            if export_parquet:
                parquet_files = _export_parquet(connection, parquet_dir(home), marts)
        os.replace(temporary, home.published)
        for table, written in zip(marts if export_parquet else [], parquet_files, strict=True):
            written.chmod(PUBLISHED_MODE)
            os.replace(written, parquet_dir(home) / f"{table}.parquet")
        fsync_directory(home.published_dir)
    except BaseException:
        temporary.unlink(missing_ok=True)
        for written in parquet_files:
            written.unlink(missing_ok=True)
        raise
    published_at = datetime.now(UTC)
    _write_json_atomically(
        status_path(home),
        {
            "published_at": published_at.isoformat(),
            "published_at_epoch_seconds": published_at.timestamp(),
            "run_id": run_id,
            "database": str(home.published),
            "parquet": sorted(f"{table}.parquet" for table in marts) if export_parquet else [],
            "rows": rows,
        },
    )
    return home.published
