"""Publishing: after a successful build, readers get a consistent copy of what they query.

`<home>/published/driftmart.duckdb` holds what readers use, under the warehouse's own names: the
marts and the intermediate tables counted per window (their size grows with windows × features,
not with rows), the small raw tables (the spec, the registry, the landing bookkeeping, the
quarantine), and the raw logs the marts' questions join: `raw.inference_log`, `raw.labels` and
`raw.reference_rows`. Row-level built tables (those with a `request_id` column, one row per
prediction or more) stay with the build: readers join the raw logs instead.

**What a publish costs does not grow with history.** The small tables are copied each time. The
row-level raw tables are not: each publish appends only what is new since the last one to immutable
Parquet part files, and the copy defines `raw.<table>` as a view over the explicit list of parts it
covers:

- `published/raw/inference_log/part-<first>-<last>-<id>.parquet`, `published/raw/labels/…`: the
  rows whose `ingest_seq` is above the last publish's watermark (`ingest_seq` comes from one
  sequence, so no clock step can hide a row). A label replaced by a later one is a new row with a
  higher `ingest_seq`; the earlier row, already exported, is listed in a `superseded-….parquet` part
  and `raw.labels` leaves it out, so the view holds exactly the raw store's rows.
- `published/raw/reference_rows/part-g<generation>-<id>.parquet`: the (model_name, model_version)
  reference sets not exported yet (the sets are counted only when the table's row count changed).

Each part is written to a hidden temporary file beside it, fsynced and renamed, and never rewritten.
A reader keeps the copy it opened (an open connection keeps its inode), and that copy names only
the parts that existed when it was published, so it never sees newer rows.

**History changed under the parts.** Before appending, the publish checks that the rows it
exported are still the raw store's, reading nothing that grows with history: the same columns and
types; `count(*)` (row group metadata) equal to the rows exported, less those that newer rows of
the same key replaced; the rows at two ingest numbers exported before (the oldest still there and
the newest) still there under the same key, or replaced; the ingest sequence not behind the
watermark. The rows above the watermark are a scan of the new row groups only (DuckDB skips those
whose `ingest_seq` statistics lie below it). Anything else (rows deleted by hand or by a retention,
a table rebuilt by an upgrade of the raw layout or numbered anew, parts missing on disk) re-exports
that table whole. So does a table whose superseded rows outnumber half its live ones, which keeps
replaced labels from piling up (amortised, still a cost per new row). Not detected: an in-place
`update` that keeps a row's key and number (nothing in driftmart makes one). A table without
usable sequence numbers is copied into the file whole, as everything was before.

**Compaction.** When a table has more than `MAX_SMALL_PARTS` parts below `COMPACT_BELOW_ROWS` rows,
those parts are merged into one: a bounded amount of work, whatever the history. Files no copy
references any longer (merged parts, the parts of a table re-exported whole, leftovers of a killed
publish) are deleted only once at least `KEEP_GENERATIONS` newer copies are in place *and*
`RETAIN_SECONDS` (a day) have passed, so a reader that opened an older copy keeps reading it
meanwhile; a connection held open for longer than that after a merge may lose the parts its copy
names (it reconnects to the newest copy). Without merges, no part is ever deleted.

**Where the views look for their files.** A view names each part by its path under `published/`,
joined to a directory chosen when the query runs:
`coalesce(getvariable('driftmart_published_dir'), '<absolute published dir at publish time>')`.
Absolute by default, because DuckDB resolves relative paths against the reader's working directory
(or its `file_search_path`), not against the database file: a relative path would break the README's
BI tools (DBeaver, Metabase, Superset, the DuckDB CLI and Python, each started wherever), while the
absolute path works for every reader that sees the home where the writer does, which includes the
compose services (all mount the home at `/data`). A reader that sees the home somewhere else (a
Docker volume read from the host, a home copied or moved, a container mounting it at another path)
sets one variable, `SET VARIABLE driftmart_published_dir = '/where/it/is/published'`, and the same
file reads its parts there. The next publish writes the home's new absolute path. (Variables
need DuckDB 1.1 or newer in the reader; the marts, which are tables in the file, read anywhere.)

The bookkeeping of the parts lives in the copy itself (table `_driftmart.publish_state`, one JSON
row), so a copy and the parts it names can never disagree, and a publish that fails or is killed
midway leaves the previous copy, its state and its parts untouched (its own new parts are removed,
or become unreferenced files that a later publish deletes).

Beside the copy:

- `status.json`: when it was published (UTC), by which Dagster run, the row count of every raw
  and mart table (the raw logs' from the parts' bookkeeping, checked against the files' footers),
  and `exported_rows`: the rows this publish wrote to parts, per table (none when nothing arrived).
  The exporter reads it for the time since the last successful run. Written last, also
  atomically, so it never names a copy that is not in place yet.
- `parquet/<schema>.<table>.parquet` for every mart, when env `DRIFTMART_PUBLISH_PARQUET` is
  `1`/`true` (or `publish(..., parquet=True)`): for tools that prefer files. Each file is written
  beside its destination and renamed; each is complete, but a reader that opens several files while
  a publish is renaming them may mix two publishes: compare their `status.json` `published_at`, or
  read the DuckDB copy when tables must agree.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from warehouse.connection import connect_writer
from warehouse.files import fsync_directory, fsync_file, write_atomic
from warehouse.home import WAREHOUSE_FILE, Home
from warehouse.targets import STEP_TABLES, quote_identifier, resolve_target, sql_string

logger = logging.getLogger(__name__)

STATUS_FILE = "status.json"
PARQUET_DIR = "parquet"
PARQUET_ENV = "DRIFTMART_PUBLISH_PARQUET"
PUBLISHED_MODE = 0o644  # BI tools often run as another user; mkstemp creates files 0600
TEMPORARY_PREFIX = ".driftmart-"

RAW_DIR = "raw"  # published/raw/<table>/: the parts of the row-level raw tables
LOCATION_VARIABLE = "driftmart_published_dir"
STATE_SCHEMA = "_driftmart"
STATE_TABLE = f"{STATE_SCHEMA}.publish_state"
STATE_FORMAT = 1
# Row-level raw tables exported by ingest sequence, with the key a newer row replaces an older by.
SEQUENCED_TABLES = {"inference_log": ("model_name", "request_id"), "labels": ("model_name", "request_id")}
SEQUENCE_COLUMN = "ingest_seq"
# Row-level raw tables exported by whole sets of rows that only ever arrive together.
SET_TABLES = {"reference_rows": ("model_name", "model_version")}
# A built table with one of these columns has (at least) one row per prediction: not published.
ROW_LEVEL_COLUMNS = frozenset({"request_id"})

COMPACT_BELOW_ROWS = 1_000_000
MAX_SMALL_PARTS = 16
KEEP_GENERATIONS = 2
RETAIN_SECONDS = 24 * 3600.0
SYSTEM_SCHEMAS = ("information_schema", "pg_catalog")


def parquet_enabled() -> bool:
    return os.environ.get(PARQUET_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def status_path(home: Home) -> Path:
    return home.published_dir / STATUS_FILE


def parquet_dir(home: Home) -> Path:
    return home.published_dir / PARQUET_DIR


def parts_dir(home: Home) -> Path:
    return home.published_dir / RAW_DIR


def read_status(home: Home) -> dict[str, Any] | None:
    """The last publish's status, or None when nothing (or an older driftmart's copy without it) is there."""
    try:
        return json.loads(status_path(home).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_row_level(columns: Iterable[str]) -> bool:
    """Whether a built table with these columns has one row per prediction (or more): such tables
    grow with history and are not published (readers join the raw logs instead)."""
    return not ROW_LEVEL_COLUMNS.isdisjoint(column.lower() for column in columns)


def read_state(home: Home) -> dict[str, Any] | None:
    """The parts bookkeeping of the copy in place, or None (nothing published, an older driftmart's
    copy, or a copy that cannot be opened)."""
    if not home.published.exists():
        return None
    try:
        # Attached to a connection of its own: `duckdb.connect(path)` would hand back a database this
        # process still has open under that path, which may be an older copy.
        with duckdb.connect() as connection:
            connection.execute(f"attach {sql_string(home.published)} as published (read_only)")
            found = connection.execute(
                "select count(*) from information_schema.tables "
                "where table_catalog = 'published' and table_schema = ? and table_name = ?",
                [STATE_SCHEMA, STATE_TABLE.split(".")[1]],
            ).fetchall()[0][0]
            if not found:
                return None
            (text,) = connection.execute(f"select state from published.{STATE_TABLE}").fetchall()[0]
    except (duckdb.Error, IndexError):
        return None
    try:
        state = json.loads(text)
    except json.JSONDecodeError:
        return None
    return state if state.get("format") == STATE_FORMAT else None


def _temporary_beside(directory: Path, suffix: str) -> Path:
    handle, name = tempfile.mkstemp(dir=directory, prefix=TEMPORARY_PREFIX, suffix=suffix)
    os.close(handle)
    return Path(name)


def _name(schema: str, table: str, catalog: str | None = None) -> str:
    parts = [catalog] if catalog else []
    return ".".join(quote_identifier(part) for part in [*parts, schema, table])


def _export_parquet(connection: duckdb.DuckDBPyConnection, directory: Path, tables: list[str]) -> list[Path]:
    """Each mart to a temporary file beside its destination; returns the temporary files, in order."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        temporary = _temporary_beside(directory, ".parquet")
        written.append(temporary)
        schema, name = table.split(".")
        connection.execute(
            f"copy (select * from {_name(schema, name)}) to {sql_string(temporary)} (format parquet)"
        )
        fsync_file(temporary)
    return written


def _write_json_atomically(path: Path, content: dict[str, Any]) -> None:
    data = (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()
    write_atomic(path, data, mode=PUBLISHED_MODE)


@dataclass
class _Publication:
    """One publish in progress: the new copy's connection (the warehouse attached as `source`), the
    previous state and the new one, and every file this publish wrote (removed if it fails)."""

    home: Home
    connection: duckdb.DuckDBPyConnection
    previous: dict[str, Any] | None
    generation: int
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    exported_rows: dict[str, int] = field(default_factory=dict)

    def scalar(self, sql: str, parameters: list | None = None) -> Any:
        return self.connection.execute(sql, parameters or []).fetchall()[0][0]

    def path(self, relative: str) -> Path:
        return self.home.published_dir / relative

    def write_part(self, table: str, query: str, parameters: list, stem: str) -> dict[str, Any]:
        """Rows of `query` as a new immutable part of `table`: a temporary file beside it, fsynced,
        renamed to `<stem>-<id>.parquet`. Returns its entry {file, rows}."""
        directory = parts_dir(self.home) / table
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}.parquet"
        self.written.append(temporary)
        self.connection.execute(
            f"copy ({query}) to {sql_string(temporary)} (format parquet, compression snappy)", parameters
        )
        fsync_file(temporary)
        temporary.chmod(PUBLISHED_MODE)
        final = directory / f"{stem}-{uuid.uuid4().hex[:12]}.parquet"
        self.written.append(final)
        os.replace(temporary, final)
        fsync_directory(directory)
        rows = self.scalar(f"select count(*) from read_parquet({sql_string(final)})")
        self.exported_rows[table] = self.exported_rows.get(table, 0) + rows
        return {"file": final.relative_to(self.home.published_dir).as_posix(), "rows": rows}


def _source_columns(connection: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], list[list[str]]]:
    """(column name, type) of every table of the warehouse, in order, by (schema, table)."""
    columns: dict[tuple[str, str], list[list[str]]] = {}
    for schema, table, name, data_type in connection.execute(
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        "where table_catalog = 'source' order by table_schema, table_name, ordinal_position"
    ).fetchall():
        columns.setdefault((schema, table), []).append([name, data_type])
    return columns


def _files(paths: Iterable[Path]) -> str:
    return "[" + ", ".join(sql_string(path) for path in paths) + "]"


def _live_rows(state: dict[str, Any], file_sql: Callable[[str], str]) -> str:
    """The rows a table's state stands for: its parts, less the superseded rows (replaced labels),
    with each part file written in SQL by `file_sql` (a path here, or the published copy's lookup)."""

    def files(parts: list[dict[str, Any]]) -> str:
        return "[" + ", ".join(file_sql(part["file"]) for part in parts) + "]"

    rows = f"read_parquet({files(state['parts'])})"
    if not state.get("superseded"):
        return f"select * from {rows}"
    condition = " and ".join(
        f"live.{quote_identifier(column)} = superseded.{quote_identifier(column)}"
        for column in [*state["key"], SEQUENCE_COLUMN]
    )
    return (
        f"select live.* from {rows} as live "
        f"anti join read_parquet({files(state['superseded'])}) as superseded on {condition}"
    )


def _live_rows_sql(publication: _Publication, state: dict[str, Any]) -> str:
    """The rows a table's state stands for, read from its parts at their paths here."""
    return _live_rows(state, lambda file: sql_string(publication.path(file)))


def _previous_table(publication: _Publication, table: str, mode: str, columns: list[list[str]]):
    """The previous state of `table` if it can be appended to: same mode, columns and parts on disk."""
    previous = (publication.previous or {}).get("tables", {}).get(table)
    if previous is None or previous.get("mode") != mode or previous.get("columns") != columns:
        return None
    files = [part["file"] for part in previous["parts"] + previous.get("superseded", [])]
    if not all(publication.path(file).is_file() for file in files):
        logger.warning("parts of raw.%s are missing under %s: exporting it whole", table, RAW_DIR)
        return None
    return previous


def _sequence_value(publication: _Publication) -> int | None:
    """The raw store's ingest sequence's last value (metadata: no scan), None if it has none."""
    found = publication.connection.execute(
        "select max(last_value) from duckdb_sequences() where database_name = 'source' "
        "and schema_name = 'raw' and sequence_name = ?",
        [SEQUENCE_COLUMN],
    ).fetchall()
    return found[0][0] if found else None


def _sequenced(publication: _Publication, table: str, key: tuple[str, ...], columns: list[list[str]]):
    """The new state of a table exported by ingest sequence, writing the new rows' part (and the
    superseded rows' part); None when the table cannot be exported this way.

    What it reads of the raw store does not grow with history either: `count(*)` (row group
    metadata) and the rows above the watermark (DuckDB skips the row groups whose `ingest_seq`
    statistics lie below it)."""
    source = _name("raw", table, "source")
    seq = quote_identifier(SEQUENCE_COLUMN)
    names = {name for name, _ in columns}
    if SEQUENCE_COLUMN not in names or not set(key) <= names:
        return None
    previous = _previous_table(publication, table, "sequenced", columns)
    sequence = _sequence_value(publication)
    if previous is not None and sequence is not None and sequence < previous["watermark"]:
        logger.warning("the raw store's ingest sequence restarted: exporting raw.%s whole", table)
        previous = None
    key_columns = ", ".join(quote_identifier(column) for column in key)

    def above(bound: int) -> tuple[int, int | None, int | None]:
        return publication.connection.execute(
            f"select count(*), min({seq}), max({seq}) from {source} where {seq} > ?", [bound]
        ).fetchall()[0]

    def key_at(number: int) -> list | None:
        found = publication.connection.execute(
            f"select {key_columns} from {source} where {seq} = ?", [number]
        ).fetchall()
        return list(found[0]) if found else None

    # Rows exported before, looked up by number (a pruned scan): each still there with its key, or
    # replaced by a newer row of its key. Anything else is a raw store rebuilt or edited by hand.
    survivors = []
    for number, probe_key in previous.get("probes", []) if previous else []:
        found = key_at(number)
        if found == probe_key:
            survivors.append([number, probe_key])
            continue
        condition = " and ".join(f"{quote_identifier(column)} = ?" for column in key)
        (newer,) = publication.connection.execute(
            f"select count(*) from {source} where {seq} > ? and {condition}",
            [previous["watermark"], *probe_key],
        ).fetchall()[0]
        if found is not None or not newer:
            logger.warning("raw.%s is not the table exported before: exporting it whole", table)
            previous, survivors = None, []
            break
    watermark = previous["watermark"] if previous else 0

    (total,) = publication.connection.execute(f"select count(*) from {source}").fetchall()[0]
    new_rows, first, newest = above(watermark)
    old_rows = total - new_rows
    superseded = list(previous.get("superseded", [])) if previous else []
    superseded_rows = previous.get("superseded_rows", 0) if previous else 0
    if previous is not None and old_rows != previous["live_rows"]:
        # Rows exported before are gone: replaced by newer rows of the same key, or deleted.
        replaced = (
            f"select {', '.join(f'live.{quote_identifier(column)}' for column in [*key, SEQUENCE_COLUMN])} "
            f"from ({_live_rows_sql(publication, previous)}) as live "
            f"semi join (select {key_columns} from {source} where {seq} > ?) as newer using ({key_columns})"
        )
        (n_replaced,) = publication.connection.execute(
            f"select count(*) from ({replaced})", [watermark]
        ).fetchall()[0]
        if previous["live_rows"] - n_replaced != old_rows:
            logger.warning("rows of raw.%s were deleted since the last publish: exporting it whole", table)
            previous = None
        elif (superseded_rows + n_replaced) * 2 > total:
            previous = None  # more replaced rows than live ones: start afresh, without them
        else:
            part = publication.write_part(
                table, replaced, [watermark], f"superseded-{watermark + 1:012d}-{newest:012d}"
            )
            superseded.append({**part, "first": watermark + 1, "last": newest})
            superseded_rows += n_replaced
    if previous is None:  # the whole table, as one part
        (unnumbered,) = publication.connection.execute(
            f"select count(*) from {source} where {seq} is null"
        ).fetchall()[0]
        if unnumbered:
            logger.warning("raw.%s has rows without %s: copying it whole", table, SEQUENCE_COLUMN)
            return None
        _, first, newest = above(0) if total else (0, 0, 0)
        first, newest = first or 0, newest or 0
        probes = [[number, key_at(number)] for number in sorted({first, newest}) if total]
        part = publication.write_part(
            table, f"select * from {source}", [], f"part-{first:012d}-{newest:012d}"
        )
        return _compacted(
            publication,
            table,
            {
                "mode": "sequenced",
                "key": list(key),
                "columns": columns,
                "watermark": newest,
                "live_rows": total,
                "parts": [{**part, "first": first, "last": newest}],
                "superseded": [],
                "superseded_rows": 0,
                "probes": probes,
            },
        )
    parts = list(previous["parts"])
    if new_rows:
        part = publication.write_part(
            table, f"select * from {source} where {seq} > ?", [watermark], f"part-{first:012d}-{newest:012d}"
        )
        parts.append({**part, "first": first, "last": newest})
    # Checked next time: the oldest row still here and the newest one.
    probes = survivors[:1] + ([[newest, key_at(newest)]] if new_rows else survivors[1:2])
    return _compacted(
        publication,
        table,
        {
            "mode": "sequenced",
            "key": list(key),
            "columns": columns,
            "watermark": max(newest or 0, watermark),
            "live_rows": total,
            "parts": parts,
            "superseded": superseded,
            "superseded_rows": superseded_rows,
            "probes": probes,
        },
    )


def _sets(publication: _Publication, table: str, key: tuple[str, ...], columns: list[list[str]]):
    """The new state of a table exported by whole sets of rows (a model version's reference rows),
    writing one part for the sets not exported yet; None when the table has no such key."""
    source = _name("raw", table, "source")
    if not set(key) <= {name for name, _ in columns}:
        return None
    key_columns = ", ".join(quote_identifier(column) for column in key)
    previous = _previous_table(publication, table, "sets", columns)
    exported = {tuple(entry[:-1]): entry[-1] for entry in previous["sets"]} if previous else {}
    (total,) = publication.connection.execute(f"select count(*) from {source}").fetchall()[0]
    if previous is not None and total == previous["live_rows"]:
        return previous  # nothing arrived or left (counted from metadata, no scan)
    present = {
        tuple(row[:-1]): row[-1]
        for row in publication.connection.execute(
            f"select {key_columns}, count(*) from {source} group by all"
        ).fetchall()
    }
    if any(present.get(set_key) != rows for set_key, rows in exported.items()):
        logger.warning(
            "sets of raw.%s changed or were deleted since the last publish: exporting it whole", table
        )
        previous, exported = None, {}
    new = sorted((set_key for set_key in present if set_key not in exported), key=str)
    parts = list(previous["parts"]) if previous else []
    if new or previous is None:
        publication.connection.execute(
            f"create or replace temporary table new_sets as select {key_columns} from {source} limit 0"
        )
        if new:
            publication.connection.executemany(
                f"insert into new_sets values ({', '.join('?' for _ in key)})",
                [list(set_key) for set_key in new],
            )
        part = publication.write_part(
            table,
            f"select * from {source} semi join new_sets using ({key_columns})",
            [],
            f"part-g{publication.generation:06d}",
        )
        parts.append({**part, "sets": [[*set_key, present[set_key]] for set_key in new]})
        publication.connection.execute("drop table new_sets")
    return _compacted(
        publication,
        table,
        {
            "mode": "sets",
            "key": list(key),
            "columns": columns,
            "sets": [[*set_key, rows] for set_key, rows in sorted(present.items(), key=str)],
            "live_rows": sum(present.values()),
            "parts": parts,
        },
    )


def _compacted(publication: _Publication, table: str, state: dict[str, Any]) -> dict[str, Any]:
    """Merge a table's small parts into one when there are more than MAX_SMALL_PARTS of them."""
    for kind in ("parts", "superseded"):
        parts = state.get(kind) or []
        small = [part for part in parts if part["rows"] < COMPACT_BELOW_ROWS]
        if len(small) <= MAX_SMALL_PARTS:
            continue
        files = _files(publication.path(part["file"]) for part in small)
        if state["mode"] == "sequenced":
            first, last = min(part["first"] for part in small), max(part["last"] for part in small)
            stem = f"{'part' if kind == 'parts' else 'superseded'}-{first:012d}-{last:012d}"
            extra = {"first": first, "last": last}
        else:
            stem = f"part-g{publication.generation:06d}"
            extra = {"sets": [entry for part in small for entry in part["sets"]]}
        merged = publication.write_part(table, f"select * from read_parquet({files})", [], stem)
        publication.exported_rows[table] -= merged["rows"]  # rows moved, not new
        state[kind] = [part for part in parts if part not in small] + [{**merged, **extra}]
    return state


def _view_sql(table: str, state: dict[str, Any]) -> str:
    def published_file(file: str) -> str:
        return f"{STATE_SCHEMA}.published_file({sql_string(file)})"

    return f"create view {_name('raw', table)} as {_live_rows(state, published_file)}"


def _export_raw(publication: _Publication) -> set[str]:
    """Export the row-level raw tables as parts (their new states in `publication.tables`) and copy
    the other raw tables whole; returns the names of the tables published as views."""
    connection = publication.connection
    connection.execute("create schema if not exists raw")
    all_columns = _source_columns(connection)
    raw_tables = [
        name
        for (name,) in connection.execute(
            "select table_name from information_schema.tables where table_catalog = 'source' "
            "and table_schema = 'raw' and table_type = 'BASE TABLE' order by 1"
        ).fetchall()
    ]
    for table in raw_tables:
        columns = all_columns[("raw", table)]
        state = None
        if table in SEQUENCED_TABLES:
            state = _sequenced(publication, table, SEQUENCED_TABLES[table], columns)
        elif table in SET_TABLES:
            state = _sets(publication, table, SET_TABLES[table], columns)
        if state is None:
            connection.execute(
                f"create table {_name('raw', table)} as select * from {_name('raw', table, 'source')}"
            )
        else:
            publication.tables[table] = state
    return set(publication.tables)


def _copy_built(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """The DuckDB target's built tables (every schema but raw), row-level tables left out."""
    copied = []
    columns = _source_columns(connection)
    tables = connection.execute(
        "select table_schema, table_name from information_schema.tables where table_catalog = 'source' "
        "and table_type = 'BASE TABLE' and table_schema not in ('raw', ?, ?) order by 1, 2",
        list(SYSTEM_SCHEMAS),
    ).fetchall()
    for schema, table in tables:
        if is_row_level(name for name, _ in columns[(schema, table)]):
            continue
        connection.execute(f"create schema if not exists {quote_identifier(schema)}")
        connection.execute(
            f"create table {_name(schema, table)} as select * from {_name(schema, table, 'source')}"
        )
        copied.append(f"{schema}.{table}")
    return copied


def _copy_step_tables(connection: duckdb.DuckDBPyConnection) -> None:
    """STEP_TABLES (written in the raw store by a Dagster step) into the copy of a non-DuckDB target."""
    present = {
        f"{schema}.{table}"
        for schema, table in connection.execute(
            "select table_schema, table_name from information_schema.tables where table_catalog = 'source'"
        ).fetchall()
    }
    for table in STEP_TABLES:
        if table in present:
            schema, name = table.split(".")
            connection.execute(f"create schema if not exists {quote_identifier(schema)}")
            source = _name(schema, name, "source")
            connection.execute(f"create or replace table {_name(schema, name)} as select * from {source}")


def _copy_views(connection: duckdb.DuckDBPyConnection, skip: set[tuple[str, str]]) -> None:
    """The warehouse's views (dbt's staging models), each where its inputs were published; a view
    over a table left out (a row-level one) is left out too."""
    pending = connection.execute(
        "select schema_name, view_name, sql from duckdb_views() where database_name = 'source' "
        "and not internal and schema_name not in (?, ?) order by 1, 2",
        list(SYSTEM_SCHEMAS),
    ).fetchall()
    pending = [view for view in pending if (view[0], view[1]) not in skip]
    while pending:  # views over views: repeat while another one can be created
        failed = []
        for schema, name, sql in pending:
            try:
                connection.execute(f"create schema if not exists {quote_identifier(schema)}")
                connection.execute(sql)
            except duckdb.Error:
                failed.append((schema, name, sql))
        if len(failed) == len(pending):
            for schema, name, _ in failed:
                logger.info("view %s.%s is not published: what it reads is not", schema, name)
            return
        pending = failed


def _create_raw_views(publication: _Publication) -> None:
    """`raw.<table>` over its parts, each file found through `_driftmart.published_file(name)`."""
    connection, home = publication.connection, publication.home
    connection.execute(f"create schema if not exists {STATE_SCHEMA}")
    directory = f"coalesce(getvariable({sql_string(LOCATION_VARIABLE)}), {sql_string(home.published_dir)})"
    connection.execute(
        f"create or replace macro {STATE_SCHEMA}.published_file(name) as {directory} || '/' || name"
    )
    for table, state in publication.tables.items():
        connection.execute(_view_sql(table, state))


def _write_state(publication: _Publication, retired: list[dict[str, Any]]) -> dict[str, Any]:
    state = {
        "format": STATE_FORMAT,
        "generation": publication.generation,
        "published_dir": str(publication.home.published_dir),
        "tables": publication.tables,
        "retired": retired,
    }
    publication.connection.execute(f"create table {STATE_TABLE} (state varchar)")
    publication.connection.execute(
        f"insert into {STATE_TABLE} values (?)", [json.dumps(state, sort_keys=True)]
    )
    return state


def _referenced(state: dict[str, Any] | None) -> set[str]:
    if not state:
        return set()
    return {
        part["file"]
        for table in state.get("tables", {}).values()
        for part in table.get("parts", []) + table.get("superseded", [])
    }


def _retirement(publication: _Publication):
    """(files still retained, files to delete once the new copy is in place). A file no longer
    referenced is retired now; it is deleted when KEEP_GENERATIONS newer copies exist and
    RETAIN_SECONDS have passed. A part this publish wrote and then merged goes at once: no copy
    ever named it."""
    home, generation, now = publication.home, publication.generation, time.time()
    referenced = _referenced({"tables": publication.tables})
    retired = {entry["file"]: entry for entry in (publication.previous or {}).get("retired", [])}
    delete = []
    root = parts_dir(home)
    on_disk = sorted(path for path in root.rglob("*") if path.is_file()) if root.is_dir() else []
    for path in on_disk:
        relative = path.relative_to(home.published_dir).as_posix()
        if relative in referenced or relative in retired:
            continue
        if path in publication.written:
            delete.append(path)
        else:
            retired[relative] = {"file": relative, "generation": generation, "at": now}
    kept = []
    for relative, entry in sorted(retired.items()):
        if relative in referenced:
            continue
        if generation - entry["generation"] >= KEEP_GENERATIONS and now - entry["at"] >= RETAIN_SECONDS:
            delete.append(home.published_dir / relative)
        elif (home.published_dir / relative).exists():
            kept.append(entry)
    return kept, delete


def _table_rows(connection: duckdb.DuckDBPyConnection, states: dict[str, Any]) -> dict[str, int]:
    """Rows of every raw and mart table of the new copy: the raw logs' from their state."""
    tables = connection.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema in ('raw', 'marts') order by 1, 2"
    ).fetchall()
    rows = {}
    for schema, table in tables:
        if schema == "raw" and table in states:
            rows[f"{schema}.{table}"] = states[table]["live_rows"]
        else:
            rows[f"{schema}.{table}"] = connection.execute(
                f"select count(*) from {_name(schema, table)}"
            ).fetchall()[0][0]
    return rows


def _check(connection: duckdb.DuckDBPyConnection, home: Home, states: dict[str, Any]) -> None:
    """Every part the copy names is a whole Parquet file with the rows its state says, and every
    view binds (DuckDB reads the files' footers only)."""
    for table, state in states.items():
        parts = state["parts"] + state.get("superseded", [])
        expected = {(home.published_dir / part["file"]).as_posix(): part["rows"] for part in parts}
        found = dict(
            connection.execute(
                f"select file_name, num_rows from parquet_file_metadata({_files(map(Path, expected))})"
            ).fetchall()
        )
        if found != expected:
            raise duckdb.IOException(
                f"the parts of raw.{table} do not hold the rows published: {found} != {expected}"
            )
        connection.execute(f"select * from {_name('raw', table)} limit 0").fetchall()


def _remove_leftovers(home: Home) -> None:
    """Temporary files and folders of a publish that was killed (only publish makes them, under the
    writer lock, so none belongs to a publish still running)."""
    for path in sorted(home.published_dir.rglob(f"{TEMPORARY_PREFIX}*"), reverse=True):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _checkpoint_warehouse(home: Home) -> None:
    """Fold the writer's WAL (left by a process that died, or by dbt) into the warehouse file, so the
    copy is read from the file alone and a WAL never has to be replayed by a read-only attach."""
    if home.warehouse.exists():
        with connect_writer(home) as connection:
            connection.execute("checkpoint")


def publish(home: Home, *, run_id: str | None = None, parquet: bool | None = None) -> Path:
    """Publish what readers use to `<home>/published/`. Call while holding the writer lock,
    connections closed.

    `run_id` (the Dagster run, when known) goes into `status.json`; `parquet` defaults to env
    `DRIFTMART_PUBLISH_PARQUET`.
    """
    export_parquet = parquet_enabled() if parquet is None else parquet
    home.published_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(home)
    _checkpoint_warehouse(home)
    previous = read_state(home)
    generation = (previous or {}).get("generation", 0) + 1
    # The new copy is built as `driftmart.duckdb` in a hidden folder beside its destination: the
    # same catalog name as the warehouse, so dbt's views (which name it) bind in it.
    building = Path(tempfile.mkdtemp(dir=home.published_dir, prefix=TEMPORARY_PREFIX))
    temporary = building / WAREHOUSE_FILE
    parquet_files: list[Path] = []
    publication: _Publication | None = None
    in_place = False
    try:
        target = resolve_target()
        with duckdb.connect(str(temporary)) as connection:
            connection.execute("set enable_progress_bar = false")
            connection.execute(f"attach {sql_string(home.warehouse)} as source (read_only)")
            publication = _Publication(home, connection, previous, generation)
            views = _export_raw(publication)
            _create_raw_views(publication)
            if target.name == "duckdb":
                _copy_built(connection)
                _copy_views(connection, {("raw", table) for table in views})
            else:
                # On postgres and spark the built schemas live on that engine: copy them into the copy.
                target.copy_built_tables(home, connection)
                _copy_step_tables(connection)
            retired, delete = _retirement(publication)
            state = _write_state(publication, retired)
            connection.execute("detach source")
            connection.execute("checkpoint")
        fsync_file(temporary)
        temporary.chmod(PUBLISHED_MODE)
        # Opening the copy proves it is a whole database before any reader can see it.
        with duckdb.connect(str(temporary), read_only=True) as connection:
            _check(connection, home, state["tables"])
            rows = _table_rows(connection, state["tables"])
            marts = [table for table in rows if table.startswith("marts.")]
            if export_parquet:
                parquet_files = _export_parquet(connection, parquet_dir(home), marts)
        os.replace(temporary, home.published)
        in_place = True  # from here on, readers may open the copy: its parts stay whatever happens
        for table, written in zip(marts if export_parquet else [], parquet_files, strict=True):
            written.chmod(PUBLISHED_MODE)
            os.replace(written, parquet_dir(home) / f"{table}.parquet")
        fsync_directory(home.published_dir)
    except BaseException:
        for written in parquet_files + (publication.written if publication and not in_place else []):
            written.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    for path in delete:  # files no copy that may still be open references
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            logger.warning("cannot delete %s: %s", path, error)
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
            "exported_rows": publication.exported_rows,
        },
    )
    return home.published
