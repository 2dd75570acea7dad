"""`driftmart import`: load a batch-scoring job's files into the warehouse.

Files are CSV, Parquet or JSON lines (flat records, or records whose features sit under `"input"`),
each optionally gzip-compressed; columns are found by the spec's names, exactly as written. Columns
the spec does not name are ignored (and listed). A reference set, inference logs and labels are
checked completely before anything is written; a problem is one error naming the file, the column
and the first bad row (for JSON lines: the line). Then the reference is registered (a reference
already registered is recognised by its content) and the rows are loaded in one transaction: an
import either lands whole or not at all. Importing the same file twice adds nothing: rows are keyed
by (model, id).

Files of any size are read in chunks of `CHUNK_ROWS` rows, so an import's memory does not grow with
its files. A first pass reads and checks every chunk of every file and keeps the checked rows of the
logs and labels in a staging folder inside the home (`<home>/tmp/import-*`, removed when the import
ends; about 250 bytes per row of 22 features). The checks of a file run chunk by chunk in the order a
whole-file check runs them, and the error raised at the end of the file is the one the whole file at
once would give: the first failing check, at its first bad row, numbered in the file (CSV rows and
lines, Parquet rows, JSON lines with their blank lines, JSON array records). Ids are checked for
duplicates over the whole file in a scratch DuckDB database that spills to the staging folder. Only
when every file passed is the reference registered and are the staged chunks loaded, one chunk at a
time, in the one transaction. The reference is kept whole (the registry stores it as one frame). A
JSON array (rather than JSON lines) is parsed whole: give big files as JSON lines or Parquet.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import gzip
import io
import json
import shutil
import tempfile
import warnings
import zlib
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml import registry
from ml.errors import DriftmartError
from ml.spec import ModelSpec
from warehouse.connection import apply_settings, duckdb_threads, warehouse_writer
from warehouse.home import Home
from warehouse.ingest import (
    NEW_REQUESTS,
    feature_maps_sql,
    id_text,
    json_object_sql,
    label_text,
    segment_map_sql,
    sync_registry,
    sync_spec,
    utc_now,
)

# Rows read, checked and loaded at a time. About 100 MB of Python objects per chunk of 22 features
# (and as much again in DuckDB while it is inserted); lower it in tests to exercise many chunks.
CHUNK_ROWS = 250_000
# The scratch database that finds duplicate ids over a whole file spills to disk past this.
SCRATCH_MEMORY_LIMIT = "1GB"
NULL_TOKENS = ["", "NA", "N/A", "NULL", "null", "NaN", "nan", "None"]
GZIP_MAGIC = b"\x1f\x8b"
# File name endings (before an optional .gz) and the layout each is read as.
LAYOUTS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
JSON_LAYOUTS = ("jsonl", "json_array")
# A JSON record's keys whose object value holds the features (as prediction logs often nest them):
# its keys are read as if they were at the top level, beside the id, timestamp and prediction.
JSON_CONTAINERS = ("input", "inputs", "features", "input_features")


class ImportFileError(DriftmartError):
    """An input file that cannot be imported; the message names the file, column and row."""


@dataclass(frozen=True)
class ImportResult:
    model_version: int
    reference_is_new: bool
    n_reference_rows: int
    n_log_rows_read: int
    n_log_rows_loaded: int
    n_label_rows_read: int
    n_label_rows_changed: int
    n_non_finite_as_missing: int
    # Per file given: the columns the spec does not name, in the file's order (not loaded).
    ignored_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class _Source:
    """What reading a file learned that messages need: where the chunk being checked starts, how rows
    map to lines, which JSON keys some records lack, and which columns the checks ignored."""

    layout: str  # csv | tsv | parquet | jsonl (one record per line) | json_array (a JSON array)
    offset: int = 0  # the file's row (from 0) at which the chunk being checked starts
    n_rows: int = 0  # rows read so far
    # The file's columns in order; for JSON, every key of the records read so far.
    columns: dict[str, None] = field(default_factory=dict)
    blank_lines: list[int] = field(default_factory=list)  # jsonl: the blank lines skipped so far
    absent: dict[str, int] = field(default_factory=dict)  # jsonl/json: key → first row without it
    containers: tuple[str, ...] = ()  # jsonl/json: the keys features were nested under
    ignored: tuple[str, ...] = ()


# Keyed by str(path); each read of a file replaces its entry.
_SOURCES: dict[str, _Source] = {}


def _layout(path: Path) -> str:
    name = path.name.lower()
    stem = name[: -len(".gz")] if name.endswith(".gz") else name
    suffix = Path(stem).suffix
    if suffix not in LAYOUTS:
        shown = suffix + (".gz" if stem != name else "")
        raise ImportFileError(
            f"{path}: unknown file type {shown!r} (expected .csv, .tsv, .parquet, .jsonl, .ndjson or "
            ".json, optionally gzip-compressed as .gz)"
        )
    return LAYOUTS[suffix]


def _open(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed if it is gzip (recognised by its content, not its name)."""
    with path.open("rb") as probe:
        compressed = probe.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else path.open("rb")


def _chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """A CSV, Parquet or JSON-lines file (each may be gzip-compressed) in chunks of at most
    `chunk_rows` rows, each indexed from 0; `_SOURCES[str(path)]` tells where the chunk starts.
    CSV cells are read as text and JSON values as they are (object columns): the spec types them,
    nothing is guessed."""
    if not path.exists():
        raise ImportFileError(f"{path}: no such file")
    source = _Source(_layout(path))
    _SOURCES[str(path)] = source
    try:
        with _open(path) as handle:
            if source.layout == "parquet":
                chunks = _parquet_chunks(path, handle, chunk_rows)
            elif source.layout in ("csv", "tsv"):
                chunks = _csv_chunks(path, handle, "\t" if source.layout == "tsv" else ",", chunk_rows)
            else:
                chunks = _json_chunks(path, handle, chunk_rows, source)
            for frame in chunks:
                if len(frame) == 0:
                    continue
                if source.layout not in JSON_LAYOUTS and not source.columns:
                    source.columns = dict.fromkeys(str(column) for column in frame.columns)
                frame.index = pd.RangeIndex(len(frame))
                source.offset = source.n_rows
                source.n_rows += len(frame)
                yield frame
    except ImportFileError:
        raise
    except (ValueError, OSError, EOFError, zlib.error, csv.Error, pd.errors.ParserWarning) as error:
        raise ImportFileError(f"{path}: cannot read: {error}") from None


def _parquet_chunks(path: Path, handle: IO[bytes], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Row groups read a batch at a time, converted as pandas.read_parquet converts them (its
    pandas metadata applied). A gzip-compressed file is decompressed to a temporary file first:
    Parquet is read by seeking."""
    with contextlib.ExitStack() as stack:
        target: Path | IO[bytes] = path
        if isinstance(handle, gzip.GzipFile):
            target = stack.enter_context(tempfile.TemporaryFile())
            shutil.copyfileobj(handle, target, 1 << 20)
            target.seek(0)
        parquet = pq.ParquetFile(target)
        try:
            pending: list[pa.RecordBatch] = []
            count = 0
            for batch in parquet.iter_batches(batch_size=chunk_rows):
                pending.append(batch)
                count += batch.num_rows
                while count >= chunk_rows:
                    table = pa.Table.from_batches(pending)
                    yield table.slice(0, chunk_rows).to_pandas()
                    pending, count = table.slice(chunk_rows).to_batches(), count - chunk_rows
            if count:
                yield pa.Table.from_batches(pending).to_pandas()
        finally:
            parquet.close()


def _csv_chunks(path: Path, handle: IO[bytes], separator: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    header = next(csv.reader(text, delimiter=separator), [])
    duplicated = sorted({column for column in header if header.count(column) > 1})
    if duplicated:  # pandas would rename the second `a` to `a.1`, a name a column can have
        raise ImportFileError(f"{path}: duplicate column(s): {', '.join(duplicated)}")
    text.seek(0)
    with warnings.catch_warnings():
        # A first row longer than the header would silently become the index, or lose its cells.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        reader = pd.read_csv(
            text,
            sep=separator,
            dtype=str,
            keep_default_na=False,
            na_values=NULL_TOKENS,
            index_col=False,
            chunksize=chunk_rows,
        )
    with reader:
        while True:
            with warnings.catch_warnings():  # around each read only: not around the caller's work
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = next(reader, None)
            if frame is None:
                return
            yield frame


def _json_chunks(path: Path, handle: IO[bytes], chunk_rows: int, source: _Source) -> Iterator[pd.DataFrame]:
    """JSON lines (one object per line; blank lines skipped) or one JSON array of objects. Features
    under a container key (`"input"` …) join the record's top-level keys."""
    records: list[dict[str, Any]] = []
    containers: set[str] = set()
    start, line = 0, b""
    for number, line in enumerate(handle, start=1):
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if not line.strip():
            source.blank_lines.append(number)
            continue
        if start == 0 and not records and line.lstrip().startswith(b"["):
            source.layout = "json_array"
            break
        try:
            record = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ImportFileError(f"{path}: line {number} is not JSON: {error}") from None
        records.append(_flat_record(path, f"line {number}", record, containers))
        if len(records) == chunk_rows:
            yield _json_frame(records, start, source, containers)
            start, records = start + len(records), []
    if source.layout == "json_array":
        try:
            document = json.loads(line + handle.read())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ImportFileError(f"{path}: not JSON: {error}") from None
        if not isinstance(document, list):
            raise ImportFileError(f"{path}: expected JSON lines or an array of records")
        records = [
            _flat_record(path, f"record {position + 1}", record, containers)
            for position, record in enumerate(document)
        ]
        del document
        for start in range(0, len(records), chunk_rows):
            yield _json_frame(records[start : start + chunk_rows], start, source, containers)
        return
    if records:
        yield _json_frame(records, start, source, containers)


def _json_frame(
    records: list[dict[str, Any]], start: int, source: _Source, containers: set[str]
) -> pd.DataFrame:
    """One chunk of records as a frame of object columns; the file's keys (in order of first
    appearance) and the first row lacking each key are updated for the file read so far."""
    frame = pd.DataFrame(records, dtype=object)
    seen_before = set(source.columns)
    for column in frame.columns:
        if column not in source.columns:
            source.columns[column] = None
            if start > 0:  # every earlier record lacks it
                source.absent[column] = 0
    # Records mostly share one set of keys: the first record of each distinct set tells which rows
    # lack a key (a missing value, or an error where the column is required).
    key_sets: dict[frozenset[str], int] = {}
    for position, record in enumerate(records):
        key_sets.setdefault(frozenset(record), position)
    chunk_keys = set(frame.columns)
    for keys, position in key_sets.items():  # in order of first position: the first lacking wins
        for key in chunk_keys - keys:
            source.absent.setdefault(key, start + position)
    for key in seen_before - chunk_keys:
        source.absent.setdefault(key, start)
    source.containers = tuple(name for name in JSON_CONTAINERS if name in containers)
    return frame


def _flat_record(path: Path, where: str, record: Any, containers: set[str]) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise ImportFileError(
            f"{path}: {where}: expected a JSON object (a record), got {type(record).__name__}"
        )
    for container in JSON_CONTAINERS:
        inner = record.get(container)
        if isinstance(inner, dict):
            record = dict(record)
            del record[container]
            for key, value in inner.items():
                if key in record:
                    raise ImportFileError(
                        f"{path}: {where}: '{key}' is both at the top level and under '{container}'"
                    )
                record[key] = value
            containers.add(container)
    return record


def _line(blank_lines: list[int], row: int) -> int:
    """The line of JSON lines' row `row` (from 0): the (row + 1)-th line that is not blank."""
    line = row + 1
    while True:
        skipped = bisect.bisect_right(blank_lines, line)
        if line - skipped == row + 1:
            return line
        line = row + 1 + skipped


def _label_at(source: _Source, row: int) -> str:
    """Data rows are counted from 1; for CSV the line number (after the header) is given too, for
    JSON lines the line, for a JSON array the record. `row` is the file's row, from 0."""
    if source.layout == "parquet":
        return f"row {row + 1}"
    if source.layout == "jsonl":
        return f"line {_line(source.blank_lines, row)}"
    if source.layout == "json_array":
        return f"record {row + 1}"
    return f"row {row + 1} (line {row + 2})"


def _row_label(path: Path, position: int) -> str:
    """The label of row `position` of the chunk being checked."""
    source = _SOURCES.get(str(path)) or _Source(_layout(path))
    return _label_at(source, source.offset + position)


def _first_bad(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


class _Stop(Exception):
    """The checks of a chunk end here: this check failed, or an earlier chunk failed a check that
    comes first (so nothing this chunk could still find would be the file's error)."""


class _Checks:
    """A file's checks, run chunk by chunk in `plan` order (the order a whole-file check runs them).
    The error raised at the end is the failing check that comes first in the plan, at its first bad
    row: the same as if the file had been checked at once. Checks that come after a failure already
    found are skipped."""

    def __init__(self, plan: list[Hashable]) -> None:
        self._order = {key: position for position, key in enumerate(dict.fromkeys(plan))}
        self._rank = len(self._order)
        self.error: ImportFileError | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def wants(self, key: Hashable) -> bool:
        return self._order[key] < self._rank

    def run(self, key: Hashable, check: Callable[..., Any], *args: Any) -> Any:
        """`check(*args)`'s result; raises _Stop if the check fails (recorded) or cannot matter."""
        if not self.wants(key):
            raise _Stop
        try:
            return check(*args)
        except ImportFileError as error:
            self.fail(key, error)
            raise _Stop from None

    def fail(self, key: Hashable, error: ImportFileError, *, earlier_row: bool = False) -> None:
        """Record a failure found at the end of the file; `earlier_row`: it is at a row before any
        this check found in the chunks, so it replaces theirs."""
        if self.wants(key) or (earlier_row and self._order[key] == self._rank):
            self._rank, self.error = self._order[key], error

    def raise_first(self) -> None:
        if self.error is not None:
            raise self.error


def _plan(required: list[str], named: list[str], checks: list[Hashable]) -> list[Hashable]:
    """The order of a file's checks: what `_check_columns` checked of the whole file, then `checks`."""
    columns = dict.fromkeys([*required, *named])
    return [("duplicate columns",), ("columns",), ("absent",), *(("nested", c) for c in columns), *checks]


def _no_duplicate_columns(path: Path, frame: pd.DataFrame) -> None:
    columns = [str(column) for column in frame.columns]
    duplicated = sorted({column for column in columns if columns.count(column) > 1})
    if duplicated:
        raise ImportFileError(f"{path}: duplicate column(s): {', '.join(duplicated)}")


def _no_missing_columns(
    path: Path, columns: dict[str, None] | pd.Index, required: list[str], under: str
) -> None:
    missing = [column for column in required if column not in columns]
    if missing:
        raise ImportFileError(f"{path}: missing required column(s): {', '.join(missing)}{under}")


def _no_nested_values(path: Path, frame: pd.DataFrame, column: str) -> None:
    nested = frame[column].map(lambda value: isinstance(value, (dict, list)))
    if nested.any():
        row = _first_bad(nested)
        raise ImportFileError(
            f"{path}: column '{column}': {frame[column].iloc[row]!r} at {_row_label(path, row)} "
            "is not a single value"
        )


def _under(source: _Source) -> str:
    return f" (at the top level or under '{source.containers[0]}')" if source.containers else ""


def _check_chunk_columns(
    path: Path, frame: pd.DataFrame, checks: _Checks, required: list[str], named: list[str]
) -> pd.DataFrame:
    """For one chunk, what `_check_columns` checks of a whole file: CSV and Parquet files have every
    required column and no column twice; JSON values of the columns used are single values. A JSON
    chunk gets every key of the file read so far (and the required ones) as columns, missing values
    where its records lack them, as the whole file's frame would have them."""
    if _SOURCES[str(path)].layout not in JSON_LAYOUTS:
        checks.run(("duplicate columns",), _no_duplicate_columns, path, frame)
        checks.run(("columns",), _no_missing_columns, path, frame.columns, required, "")
        return frame
    missing = [
        column for column in dict.fromkeys([*_SOURCES[str(path)].columns, *required]) if column not in frame
    ]
    if missing:
        absent = pd.DataFrame(np.nan, index=frame.index, columns=missing, dtype=object)
        frame = pd.concat([frame, absent], axis=1)
    for column in [*required, *(column for column in named if column in frame)]:
        checks.run(("nested", column), _no_nested_values, path, frame, column)
    return frame


def _check_file_columns(
    path: Path, checks: _Checks, required: list[str], named: list[str]
) -> tuple[str, ...]:
    """At the end of a file: refuse a file without rows, a JSON file without a required column or
    with a record without it; return the columns the spec does not name, which are ignored."""
    source = _SOURCES[str(path)]
    if source.n_rows == 0 or not source.columns:
        raise ImportFileError(f"{path}: no rows")
    if source.layout in JSON_LAYOUTS:
        try:
            _no_missing_columns(path, source.columns, required, _under(source))
        except ImportFileError as error:
            checks.fail(("columns",), error)
        lacking = [(source.absent[column], column) for column in required if column in source.absent]
        if lacking:
            row, column = min(lacking)
            error = ImportFileError(f"{path}: {_label_at(source, row)} has no '{column}'{_under(source)}")
            checks.fail(("absent",), error)
    known = set(required) | set(named)
    source.ignored = tuple(column for column in source.columns if column not in known)
    return source.ignored


def _numbers(path: Path, frame: pd.DataFrame, column: str) -> tuple[pd.Series, int]:
    """A numeric column as float64; ±inf become missing (counted), text is an error."""
    values = frame[column]
    # A boolean among other values is refused wherever it is: "mixed-integer" too, so that the
    # verdict does not depend on which other values share its chunk.
    if pd.api.types.is_bool_dtype(values) or pd.api.types.infer_dtype(values, skipna=True) in (
        "boolean",
        "mixed",
        "mixed-integer",
    ):
        bad = values.map(lambda value: isinstance(value, (bool, np.bool_)))
        if bad.any():
            row = _first_bad(bad)
            raise ImportFileError(
                f"{path}: column '{column}': {values.iloc[row]!r} at {_row_label(path, row)} is not a number"
            )
    try:
        # numpy's parser is correctly rounded (pd.to_numeric's fast one is not: 0.04097352393619469
        # → …946), so a CSV and a Parquet of the same data give the same numbers.
        converted = values.astype("float64")
    except (TypeError, ValueError):
        bad = values.map(lambda value: not _is_number(value))
        row = _first_bad(bad)
        raise ImportFileError(
            f"{path}: column '{column}': {values.iloc[row]!r} at {_row_label(path, row)} is not a number"
        ) from None
    infinite = np.isinf(converted.to_numpy())
    if infinite.any():
        converted = converted.where(~infinite, np.nan)
    return converted, int(infinite.sum())


def _is_number(value: Any) -> bool:
    """Whether one value converts to a float (missing values do: they become NaN)."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return value is None
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _texts(frame: pd.DataFrame, column: str, *, is_id: bool = False) -> pd.Series:
    """A column as text, vectorised (millions of rows): `label_text` rules for predictions and
    labels (1, 1.0, "1.0" → "1"), `id_text` rules for ids (verbatim strings). JSON values of mixed
    types (numbers, booleans, text) get the same rules one by one."""
    values = frame[column]
    present = values.notna()
    texts = pd.Series(None, index=values.index, dtype=object)
    if pd.api.types.is_bool_dtype(values):
        texts[present] = values[present].map(id_text if is_id else label_text)
    elif pd.api.types.is_integer_dtype(values):  # str(int) is both rules' text of an integer
        texts[present] = values[present].astype(str)
    elif pd.api.types.is_float_dtype(values):
        integral = present & (values % 1 == 0)
        texts[integral] = values[integral].astype("int64").astype(str)
        texts[present & ~integral] = values[present & ~integral].map(repr)
    elif pd.api.types.infer_dtype(values[present], skipna=True) not in ("string", "empty"):
        texts[present] = values[present].map(id_text if is_id else label_text)
    else:
        strings = values[present].astype(str)
        if not is_id:
            strings = strings.str.strip().str.replace(r"^(-?[0-9]+)\.0*$", r"\1", regex=True)
        texts[present] = strings
    return texts


def _timestamps(path: Path, frame: pd.DataFrame, column: str) -> pd.Series:
    values = frame[column]
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values, utc=True)
    else:
        if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
            # JSON: only text is a timestamp (a number such as 20240301 is not read as a date).
            values = values.map(lambda value: value if isinstance(value, (str, datetime)) else None)
        parsed = pd.to_datetime(values.astype("string"), utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna()
    if bad.any():
        row = _first_bad(bad)
        shown = frame[column].iloc[row]
        what = "missing" if pd.isna(shown) else f"{shown!r} is not an ISO-8601 timestamp"
        raise ImportFileError(f"{path}: column '{column}': {what} at {_row_label(path, row)}")
    return parsed.dt.tz_convert(None).astype("datetime64[us]")


def _ids(path: Path, frame: pd.DataFrame, column: str) -> pd.Series:
    """Ids as text; a missing id is an error (duplicates are found over the whole file by
    `_DuplicateIds`)."""
    ids = _texts(frame, column, is_id=True)
    missing = ids.isna()
    if missing.any():
        raise ImportFileError(
            f"{path}: column '{column}': missing id at {_row_label(path, _first_bad(missing))}"
        )
    return ids


class _DuplicateIds:
    """The ids of a file, chunk by chunk, for the duplicate check over the whole file: kept in a
    scratch DuckDB database (in memory up to SCRATCH_MEMORY_LIMIT, then spilled to `spill`), so the
    ids of a file of any size need not fit in memory."""

    def __init__(self, spill: Path) -> None:
        self._spill = spill
        self._connection: duckdb.DuckDBPyConnection | None = None

    def add(self, ids: pd.Series, offset: int) -> None:
        if self._connection is None:
            self._connection = duckdb.connect()
            apply_settings(
                self._connection,
                {
                    "threads": str(duckdb_threads()),
                    "memory_limit": SCRATCH_MEMORY_LIMIT,
                    "temp_directory": str(self._spill),
                },
            )
            self._connection.execute("set preserve_insertion_order = false")
            self._connection.execute("create table ids (id varchar not null, position bigint not null)")
        batch = pa.table(
            {
                "id": pa.array(ids.to_numpy(dtype=object), type=pa.string()),
                "position": pa.array(np.arange(offset, offset + len(ids), dtype=np.int64)),
            }
        )
        self._connection.register("id_batch", batch)
        self._connection.execute("insert into ids select id, position from id_batch")
        self._connection.unregister("id_batch")

    def first(self) -> tuple[str, int, int] | None:
        """(id, its first row, the first row repeating an earlier id) for the first repeat, if any."""
        if self._connection is None:
            return None
        found = self._connection.execute(
            """
            with repeated as (
                select id, min(position) as first from ids group by id having count(*) > 1
            )
            select repeated.id, repeated.first, min(ids.position) as again
            from repeated join ids on ids.id = repeated.id and ids.position > repeated.first
            group by repeated.id, repeated.first
            order by again
            limit 1
            """
        ).fetchone()
        return None if found is None else (found[0], int(found[1]), int(found[2]))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _check_duplicate_ids(path: Path, column: str, checks: _Checks, ids: _DuplicateIds) -> None:
    if not checks.wants(("duplicate id",)):
        return
    found = ids.first()
    if found is not None:
        value, first, again = found
        source = _SOURCES[str(path)]
        checks.fail(
            ("duplicate id",),
            ImportFileError(
                f"{path}: column '{column}': duplicate id {value!r} at {_label_at(source, again)} "
                f"(first seen at {_label_at(source, first)})"
            ),
        )


def _features(spec: ModelSpec, path: Path, frame: pd.DataFrame, checks: _Checks) -> tuple[pd.DataFrame, int]:
    columns, non_finite = {}, 0
    for name, kind in spec.features.items():
        if kind == "numeric":
            columns[name], count = checks.run(("number", name), _numbers, path, frame, name)
            non_finite += count
        else:
            columns[name] = _texts(frame, name, is_id=True)  # categories verbatim
    return pd.DataFrame(columns, index=frame.index), non_finite


def _feature_checks(spec: ModelSpec) -> list[Hashable]:
    return [("number", name) for name, kind in spec.features.items() if kind == "numeric"]


def _probabilities(path: Path, frame: pd.DataFrame, column: str) -> pd.Series:
    values, _ = _numbers(path, frame, column)
    outside = values.notna() & ((values < 0) | (values > 1))
    if outside.any():
        row = _first_bad(outside)
        raise ImportFileError(
            f"{path}: column '{column}': {float(values.iloc[row])!r} at {_row_label(path, row)} "
            "is not a probability in [0, 1]"
        )
    return values


# The columns of a log frame that hold a multiclass model's class probabilities, one per class in
# the spec's order (positional names: the user's own column names can be anything).
CLASS_PROBABILITY_PREFIX = "class_probability__"


def _class_columns(spec: ModelSpec, path: Path, columns: dict[str, None]) -> bool:
    """Whether a multiclass model's probability columns are in the file (`columns`, the whole
    file's): all of them or none (no probabilities logged); some of them is an error."""
    wanted = list(spec.class_probabilities.values())
    present = [column for column in wanted if column in columns]
    if not present:
        return False
    missing = [column for column in wanted if column not in columns]
    if missing:
        raise ImportFileError(
            f"{path}: missing probability column(s) {', '.join(repr(c) for c in missing)}: a multiclass "
            f"file has either every class's probability column of the spec's prediction_proba or none"
        )
    return True


def _check_class_columns(spec: ModelSpec, path: Path, checks: _Checks) -> bool:
    try:
        return _class_columns(spec, path, _SOURCES[str(path)].columns)
    except ImportFileError as error:
        checks.fail(("class columns",), error)
        return False


def _class_checks(spec: ModelSpec) -> list[Hashable]:
    return [("class columns",), *(("class", column) for column in spec.class_probabilities.values())]


def _outcomes(spec: ModelSpec, path: Path, frame: pd.DataFrame, column: str) -> tuple[pd.Series, int]:
    """A prediction or target column as text, checked against the model's task: regression values
    must be numbers (±inf become missing, counted), multiclass values must be classes of the spec's
    prediction_proba mapping; binary values are any text. Returns the texts and the inf count."""
    if spec.task == "regression":
        numbers, non_finite = _numbers(path, frame, column)
        return _texts(pd.DataFrame({column: numbers}), column), non_finite
    texts = _texts(frame, column)
    if spec.task == "multiclass":
        unknown = texts.notna() & ~texts.isin(list(spec.class_probabilities))
        if unknown.any():
            row = _first_bad(unknown)
            classes = ", ".join(repr(label) for label in spec.class_probabilities)
            raise ImportFileError(
                f"{path}: column '{column}': {texts.iloc[row]!r} at {_row_label(path, row)} is not a "
                f"class of the spec's prediction_proba mapping ({classes})"
            )
    return texts, 0


def _check_positive_label(spec: ModelSpec, path: Path, reference: pd.DataFrame) -> None:
    """A binary model's positive_label must be one of the classes its reference predicts or has as
    target: otherwise precision, recall, F1 and the positive rate would silently count nothing."""
    columns = [column for column in (spec.prediction, spec.target) if column and column in reference]
    classes = {label for column in columns for label in reference[column].dropna().unique()}
    if classes and spec.positive_label not in classes:
        shown = ", ".join(repr(label) for label in sorted(classes, key=str)[:10])
        more = f" and {len(classes) - 10} more" if len(classes) > 10 else ""
        named = " / ".join(f"'{column}'" for column in columns)
        raise ImportFileError(
            f"{path}: positive_label {spec.positive_label!r} matches no class of the reference's "
            f"{named} ({shown}{more}): set the spec's positive_label to the positive class"
        )


class _Staging:
    """A folder inside the home for one import's checked rows, chunk by chunk (Arrow IPC files);
    removed when the import ends, whether it landed or not."""

    def __init__(self, home: Home) -> None:
        parent = home.root / "tmp"
        parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="import-", dir=parent))
        self._count = 0

    def write(self, frame: pd.DataFrame) -> Path:
        self._count += 1
        path = self.root / f"{self._count:06d}.arrow"
        table = pa.Table.from_pandas(frame, preserve_index=False)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        return path

    @staticmethod
    def read(path: Path) -> pa.Table:
        with pa.OSFile(str(path), "rb") as source:
            return pa.ipc.open_file(source).read_all()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class _Staged:
    """A checked logs or labels file: its rows staged chunk by chunk."""

    path: Path
    columns: list[str]  # the columns of the whole file's frame: a chunk without some gets them missing
    chunks: list[Path] = field(default_factory=list)
    label_chunks: list[Path] = field(default_factory=list)  # logs: the inline labels, if any
    has_labels: bool = False  # logs: whether the file has the target column
    n_rows: int = 0
    non_finite: int = 0


def _reference_chunk(
    spec: ModelSpec, path: Path, frame: pd.DataFrame, checks: _Checks
) -> tuple[pd.DataFrame, int]:
    optional = [spec.id, spec.timestamp, spec.prediction, *spec.probability_columns, spec.target]
    frame = _check_chunk_columns(path, frame, checks, _reference_required(spec), [c for c in optional if c])
    reference, non_finite = _features(spec, path, frame, checks)
    for column in _segment_columns(spec):
        reference[column] = _texts(frame, column)
    for column in (spec.prediction, spec.target):
        if column and column in frame:
            reference[column], count = checks.run(("outcome", column), _outcomes, spec, path, frame, column)
            non_finite += count
    if spec.prediction_proba and spec.prediction_proba in frame:
        reference[spec.prediction_proba] = checks.run(
            ("probability",), _probabilities, path, frame, spec.prediction_proba
        )
    for column in spec.class_probabilities.values():
        if column in frame:
            reference[column] = checks.run(("class", column), _probabilities, path, frame, column)
    return reference, non_finite


def _segment_columns(spec: ModelSpec) -> list[str]:
    """The spec's segment columns that are not features (a feature's values are stored anyway)."""
    return [column for column in spec.segments if column not in spec.features]


def _reference_required(spec: ModelSpec) -> list[str]:
    """A reference file's required columns: the features, and the segment columns (segment drift
    compares each segment's windows with the same segment of the reference)."""
    return [*spec.features, *_segment_columns(spec)]


def prepare_reference(spec: ModelSpec, path: Path, chunk_rows: int | None = None) -> tuple[pd.DataFrame, int]:
    """The reference set checked and typed, as one frame (read in chunks of `chunk_rows`), and the
    count of infinite numbers read as missing."""
    optional = [spec.id, spec.timestamp, spec.prediction, *spec.probability_columns, spec.target]
    named = [column for column in optional if column]
    outcomes = [("outcome", column) for column in dict.fromkeys((spec.prediction, spec.target)) if column]
    checks = _Checks(
        _plan(
            _reference_required(spec),
            named,
            [*_feature_checks(spec), *outcomes, ("probability",), *_class_checks(spec), ("positive label",)],
        )
    )
    chunks, non_finite = [], 0
    for frame in _chunks(path, chunk_rows or CHUNK_ROWS):
        try:
            reference, count = _reference_chunk(spec, path, frame, checks)
        except _Stop:
            continue
        if not checks.failed:
            chunks.append(reference)
            non_finite += count
    _check_file_columns(path, checks, _reference_required(spec), named)
    has_classes = _check_class_columns(spec, path, checks)
    checks.raise_first()
    # The whole file's columns in the order a whole-file read gives them; a JSON chunk without one
    # gets it missing (text columns: None, numbers: NaN).
    columns = _SOURCES[str(path)].columns
    texts = [
        column for column in dict.fromkeys((spec.prediction, spec.target)) if column and column in columns
    ]
    numbers = [spec.prediction_proba] if spec.prediction_proba and spec.prediction_proba in columns else []
    if has_classes:
        numbers += list(spec.class_probabilities.values())
    for reference in chunks:
        for column in [*texts, *numbers]:
            if column not in reference:
                reference[column] = (
                    pd.Series(None, index=reference.index, dtype=object) if column in texts else np.nan
                )
    order = [*spec.features, *_segment_columns(spec), *texts, *numbers]
    whole = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
    del chunks
    whole = whole[order] if list(whole.columns) != order else whole
    if spec.task == "binary":
        _check_positive_label(spec, path, whole)
    return whole, non_finite


def _log_chunk(
    spec: ModelSpec, path: Path, frame: pd.DataFrame, checks: _Checks, ids: _DuplicateIds
) -> tuple[pd.DataFrame, pd.DataFrame | None, int]:
    """One chunk of inference logs as raw.inference_log columns (features still wide), and its
    inline labels if the file has the target column."""
    required = _logs_required(spec)
    named = [*spec.probability_columns, spec.target]
    frame = _check_chunk_columns(path, frame, checks, required, [c for c in named if c])
    offset = _SOURCES[str(path)].offset
    features, non_finite = _features(spec, path, frame, checks)
    predictions, count = checks.run(("prediction",), _outcomes, spec, path, frame, spec.prediction)
    non_finite += count
    request_ids = checks.run(("id",), _ids, path, frame, spec.id)
    if checks.wants(("duplicate id",)):
        ids.add(request_ids, offset)
    logs = pd.DataFrame(
        {
            "request_id": request_ids,
            "prediction": predictions,
            "probability": checks.run(("probability",), _probabilities, path, frame, spec.prediction_proba)
            if spec.prediction_proba and spec.prediction_proba in frame
            else np.nan,
            "scored_at": checks.run(("timestamp",), _timestamps, path, frame, spec.timestamp),
        }
    )
    for position, column in enumerate(spec.class_probabilities.values()):
        if column in frame:
            logs[f"{CLASS_PROBABILITY_PREFIX}{position}"] = checks.run(
                ("class", column), _probabilities, path, frame, column
            )
    logs = pd.concat([logs, features.add_prefix("feature__")], axis=1)
    for column in spec.segments:
        logs[f"segment__{column}"] = _texts(frame, column)
    labels = None
    if spec.target and spec.target in frame:
        targets, count = checks.run(("target",), _outcomes, spec, path, frame, spec.target)
        non_finite += count
        present = targets.notna().to_numpy()
        labels = pd.DataFrame(
            {
                "request_id": logs["request_id"].to_numpy()[present],
                "label": targets.to_numpy()[present],
                "position": np.flatnonzero(present) + offset,
            }
        )
    return logs, labels, non_finite


def _logs_required(spec: ModelSpec) -> list[str]:
    """An inference-log file's required columns: id, timestamp, features, prediction, segments."""
    return [spec.timestamp, spec.id, *spec.features, spec.prediction, *_segment_columns(spec)]


def _check_logs(spec: ModelSpec, path: Path, chunk_rows: int, staging: _Staging) -> _Staged:
    """Check an inference-log file chunk by chunk and stage its rows (and inline labels)."""
    required = _logs_required(spec)
    named = [c for c in [*spec.probability_columns, spec.target] if c]
    checks = _Checks(
        _plan(
            required,
            named,
            [
                *_feature_checks(spec),
                ("prediction",),
                ("id",),
                ("duplicate id",),
                ("probability",),
                ("timestamp",),
                *_class_checks(spec),
                ("target",),
            ],
        )
    )
    staged = _Staged(path, [])
    ids = _DuplicateIds(staging.root / "duckdb")
    try:
        for frame in _chunks(path, chunk_rows):
            try:
                logs, labels, count = _log_chunk(spec, path, frame, checks, ids)
            except _Stop:
                continue
            if checks.failed:  # nothing will be loaded: only the checks go on
                continue
            staged.chunks.append(staging.write(logs))
            if labels is not None and len(labels):
                staged.label_chunks.append(staging.write(labels))
            staged.non_finite += count
        _check_file_columns(path, checks, required, named)
        _check_duplicate_ids(path, spec.id, checks, ids)
    finally:
        ids.close()
    has_classes = _check_class_columns(spec, path, checks)
    checks.raise_first()
    source = _SOURCES[str(path)]
    classes = (
        [f"{CLASS_PROBABILITY_PREFIX}{i}" for i in range(len(spec.class_probabilities))]
        if has_classes
        else []
    )
    staged.columns = [
        "request_id",
        "prediction",
        "probability",
        "scored_at",
        *classes,
        *(f"feature__{name}" for name in spec.features),
        *(f"segment__{name}" for name in spec.segments),
    ]
    staged.has_labels = bool(spec.target and spec.target in source.columns)
    staged.n_rows = source.n_rows
    return staged


def _check_labels(spec: ModelSpec, path: Path, chunk_rows: int, staging: _Staging) -> _Staged:
    """Check a labels file (id, target, optional timestamp) chunk by chunk and stage its rows."""
    if spec.target is None:
        raise ImportFileError(f"{path}: the spec names no target column, so there are no labels to import")
    required, named = [spec.id, spec.target], [spec.timestamp]
    checks = _Checks(
        _plan(required, named, [("target",), ("id",), ("duplicate id",), ("label missing",), ("timestamp",)])
    )
    staged = _Staged(path, ["request_id", "label", "position"])
    ids = _DuplicateIds(staging.root / "duckdb")
    try:
        for frame in _chunks(path, chunk_rows):
            try:
                frame = _check_chunk_columns(path, frame, checks, required, named)
                offset = _SOURCES[str(path)].offset
                targets, _ = checks.run(("target",), _outcomes, spec, path, frame, spec.target)
                request_ids = checks.run(("id",), _ids, path, frame, spec.id)
                if checks.wants(("duplicate id",)):
                    ids.add(request_ids, offset)
                checks.run(("label missing",), _no_missing_labels, path, spec.target, targets)
                labels = pd.DataFrame(
                    {
                        "request_id": request_ids,
                        "label": targets,
                        "position": np.arange(offset, offset + len(frame), dtype=np.int64),
                    }
                )
                if spec.timestamp in frame:
                    labels["labelled_at"] = checks.run(
                        ("timestamp",), _timestamps, path, frame, spec.timestamp
                    )
            except _Stop:
                continue
            if not checks.failed:
                staged.chunks.append(staging.write(labels))
        _check_file_columns(path, checks, required, named)
        _check_duplicate_ids(path, spec.id, checks, ids)
    finally:
        ids.close()
    source = _SOURCES[str(path)]
    if (
        source.layout in JSON_LAYOUTS
        and spec.timestamp in source.columns
        and source.absent.get(spec.timestamp) == 0
    ):
        # The first record lacks the timestamp that later ones have (perhaps only past its chunk):
        # a missing timestamp at the first row, before any other.
        checks.fail(
            ("timestamp",),
            ImportFileError(f"{path}: column '{spec.timestamp}': missing at {_label_at(source, 0)}"),
            earlier_row=True,
        )
    checks.raise_first()
    staged.n_rows = source.n_rows
    return staged


def _no_missing_labels(path: Path, column: str, targets: pd.Series) -> None:
    missing = targets.isna()
    if missing.any():
        raise ImportFileError(
            f"{path}: column '{column}': missing label at {_row_label(path, _first_bad(missing))}"
        )


def _load_logs(connection: duckdb.DuckDBPyConnection, spec: ModelSpec, staged: _Staged, version: int) -> int:
    """Insert the staged log chunks, one at a time; returns the rows new to the warehouse."""
    loaded = 0
    for path in staged.chunks:
        # Arrow straight into DuckDB: no pandas round trip of the text columns.
        logs = _Staging.read(path)
        if logs.column_names != staged.columns:  # a JSON chunk without a column the file has
            logs = pa.table(
                {
                    column: logs[column] if column in logs.column_names else pa.nulls(len(logs))
                    for column in staged.columns
                }
            )
        loaded += _insert_logs(connection, spec, logs, version, str(staged.path))
        del logs
    return loaded


def _insert_logs(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, logs: pa.Table, version: int, source: str
) -> int:
    before = connection.execute("select count(*) from raw.inference_log").fetchall()[0][0]
    # multiclass: every class's probability as one JSON object {"<class>": p}; else NULL
    class_columns = [f"{CLASS_PROBABILITY_PREFIX}{i}" for i in range(len(spec.class_probabilities))]
    probabilities = (
        json_object_sql(spec.class_probabilities, columns=class_columns)
        if class_columns and all(column in logs.column_names for column in class_columns)
        else "null"
    )
    connection.register("import_logs", logs)
    connection.execute(
        f"""
        insert into raw.inference_log by name
        select model_name, request_id, ? as model_version,
               {feature_maps_sql(spec.features, "feature__")},
               {segment_map_sql(spec.segments, set(logs.column_names), "segment__")}, prediction, probability,
               {probabilities} as probabilities, scored_at, ? as loaded_at, ? as source
        from (select ? as model_name, * from import_logs) as import_logs
        where {NEW_REQUESTS.format(rows="import_logs")}
        """,
        [version, utc_now(), source, spec.model],
    )
    connection.unregister("import_logs")
    return connection.execute("select count(*) from raw.inference_log").fetchall()[0][0] - before


def _stage_labels(connection: duckdb.DuckDBPyConnection, parts: list[list[Path]]) -> int:
    """The staged label chunks of each source (the logs' inline labels, then the labels file) as the
    temporary table import_labels, one row per request: where both sources label a request, the
    labels file wins. Rows keep the sources' order. Returns the row count."""
    connection.execute(
        "create or replace temp table import_labels_staged "
        "(request_id varchar, label varchar, labelled_at timestamp, priority integer, position bigint)"
    )
    for priority, paths in enumerate(parts):
        for path in paths:
            batch = _Staging.read(path)
            labelled_at = "labelled_at" if "labelled_at" in batch.column_names else "null"
            connection.register("label_batch", batch)
            connection.execute(
                "insert into import_labels_staged "
                f"select request_id, label, {labelled_at}, {priority}, position from label_batch"
            )
            connection.unregister("label_batch")
    sources = sum(1 for paths in parts if paths)
    latest = (
        "qualify row_number() over (partition by request_id order by priority desc, position desc) = 1"
        if sources > 1
        else ""
    )
    connection.execute(
        f"""
        create or replace temp table import_labels as
        select request_id, label, labelled_at from import_labels_staged
        {latest}
        order by priority, position
        """
    )
    connection.execute("drop table import_labels_staged")
    return connection.execute("select count(*) from import_labels").fetchall()[0][0]


def _upsert_labels(connection: duckdb.DuckDBPyConnection, spec: ModelSpec, source: str) -> int:
    """Upsert the temporary table import_labels into raw.labels; returns the rows new or changed."""
    changed = connection.execute(
        """
        select count(*) from import_labels
        left join raw.labels as existing
            on existing.model_name = ? and existing.request_id = import_labels.request_id
        where existing.label is distinct from import_labels.label
        """,
        [spec.model],
    ).fetchall()[0][0]
    connection.execute(
        """
        insert or replace into raw.labels by name
        select ? as model_name, request_id, label, labelled_at, ? as loaded_at, ? as source,
               nextval('raw.ingest_seq') as ingest_seq
        from import_labels
        """,
        [spec.model, utc_now(), source],
    )
    connection.execute("drop table import_labels")
    return changed


def import_files(
    home: Home,
    spec: ModelSpec,
    reference: Path,
    logs: Path | None = None,
    labels: Path | None = None,
    *,
    chunk_rows: int | None = None,
) -> ImportResult:
    """Check every file, then register the reference and load logs and labels in one transaction.
    Files are read `chunk_rows` rows at a time (default CHUNK_ROWS)."""
    chunk_rows = chunk_rows or CHUNK_ROWS
    files = [path for path in (reference, logs, labels) if path is not None]
    staging = _Staging(home)
    try:
        try:
            reference_frame, non_finite = prepare_reference(spec, reference, chunk_rows)
            checked_logs = _check_logs(spec, logs, chunk_rows, staging) if logs else None
            checked_labels = _check_labels(spec, labels, chunk_rows, staging) if labels else None
            ignored = {
                str(path): _SOURCES[str(path)].ignored
                for path in files
                if str(path) in _SOURCES and _SOURCES[str(path)].ignored
            }
        finally:
            for path in files:  # what reading learned serves this import's messages only
                _SOURCES.pop(str(path), None)
        label_parts = [
            *([checked_logs.label_chunks] if checked_logs and checked_logs.has_labels else []),
            *([checked_labels.chunks] if checked_labels else []),
        ]

        version, is_new = registry.register_external(home, spec, reference_frame)
        n_reference_rows = len(reference_frame)
        del reference_frame  # the registry has it; the loading pass needs the memory
        loaded = changed = n_labels = 0
        with warehouse_writer(home) as connection:
            connection.execute("begin transaction")
            try:
                loaded_at = utc_now()
                sync_spec(connection, spec, loaded_at)
                sync_registry(connection, home, spec, loaded_at)
                if checked_logs is not None:
                    loaded = _load_logs(connection, spec, checked_logs, version.model_version)
                if label_parts:
                    n_labels = _stage_labels(connection, label_parts)
                    changed = _upsert_labels(connection, spec, str(labels or logs))
                connection.execute("commit")
            except BaseException:
                connection.execute("rollback")
                raise
    finally:
        staging.remove()
    return ImportResult(
        model_version=version.model_version,
        reference_is_new=is_new,
        n_reference_rows=n_reference_rows,
        n_log_rows_read=0 if checked_logs is None else checked_logs.n_rows,
        n_log_rows_loaded=loaded,
        n_label_rows_read=n_labels,
        n_label_rows_changed=changed,
        n_non_finite_as_missing=non_finite + (checked_logs.non_finite if checked_logs else 0),
        ignored_columns=ignored,
    )
