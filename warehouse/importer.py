"""`driftmart import`: load a batch-scoring job's files into the warehouse.

Files are CSV, Parquet or JSON lines (flat records, or records whose features sit under `"input"`),
each optionally gzip-compressed; columns are found by the spec's names, exactly as written. Columns
the spec does not name are ignored (and listed). A reference set, inference logs and labels are
checked completely before anything is written; a problem is one error naming the file, the column
and the first bad row (for JSON lines: the line). Then the reference is registered (a reference
already registered is recognised by its content) and the rows are loaded in one transaction: an
import either lands whole or not at all. Importing the same file twice adds nothing: rows are keyed
by (model, id).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import warnings
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import duckdb
import numpy as np
import pandas as pd

from ml import registry
from ml.errors import DriftmartError
from ml.spec import ModelSpec
from warehouse.connection import warehouse_writer
from warehouse.home import Home
from warehouse.ingest import (
    feature_maps_sql,
    id_text,
    json_object_sql,
    label_text,
    sync_registry,
    sync_spec,
    utc_now,
)

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
    """What reading a file learned that later messages need: how rows map to lines, which JSON
    keys some records lack, and which columns the checks ignored."""

    layout: str  # csv | tsv | parquet | jsonl (one record per line) | json_array (a JSON array)
    line_numbers: np.ndarray | None = None  # jsonl with blank lines: each row's line
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


def read_table(path: Path) -> pd.DataFrame:
    """A CSV, Parquet or JSON-lines file (each may be gzip-compressed). CSV cells are read as text
    and JSON values as they are (object columns): the spec types them, nothing is guessed."""
    if not path.exists():
        raise ImportFileError(f"{path}: no such file")
    layout = _layout(path)
    source = _Source(layout)
    try:
        with _open(path) as handle:
            if layout == "parquet":
                frame = pd.read_parquet(
                    io.BytesIO(handle.read()) if isinstance(handle, gzip.GzipFile) else path
                )
            elif layout in ("csv", "tsv"):
                frame = _read_csv(path, handle, "\t" if layout == "tsv" else ",")
            else:
                frame, source = _read_json(path, handle)
    except ImportFileError:
        raise
    except (ValueError, OSError, EOFError, zlib.error, csv.Error, pd.errors.ParserWarning) as error:
        raise ImportFileError(f"{path}: cannot read: {error}") from None
    if frame.empty:
        raise ImportFileError(f"{path}: no rows")
    _SOURCES[str(path)] = source
    return frame


def _read_csv(path: Path, handle: IO[bytes], separator: str) -> pd.DataFrame:
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    header = next(csv.reader(text, delimiter=separator), [])
    duplicated = sorted({column for column in header if header.count(column) > 1})
    if duplicated:  # pandas would rename the second `a` to `a.1`, a name a column can have
        raise ImportFileError(f"{path}: duplicate column(s): {', '.join(duplicated)}")
    text.seek(0)
    with warnings.catch_warnings():
        # A first row longer than the header would silently become the index, or lose its cells.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return pd.read_csv(
            text,
            sep=separator,
            dtype=str,
            keep_default_na=False,
            na_values=NULL_TOKENS,
            index_col=False,
        )


def _read_json(path: Path, handle: IO[bytes]) -> tuple[pd.DataFrame, _Source]:
    """JSON lines (one object per line; blank lines skipped) or one JSON array of objects. Features
    under a container key (`"input"` …) join the record's top-level keys."""
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    containers: set[str] = set()
    layout, line = "jsonl", b""
    for number, line in enumerate(handle, start=1):
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if not line.strip():
            continue
        if not records and line.lstrip().startswith(b"["):
            layout = "json_array"
            break
        try:
            record = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ImportFileError(f"{path}: line {number} is not JSON: {error}") from None
        records.append(_flat_record(path, f"line {number}", record, containers))
        lines.append(number)
    if layout == "json_array":
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
    source = _Source(layout, containers=tuple(name for name in JSON_CONTAINERS if name in containers))
    if layout == "jsonl" and lines and lines[-1] != len(lines):
        source.line_numbers = np.asarray(lines)
    # Records mostly share one set of keys: the first record of each distinct set tells which rows
    # lack a key (a missing value, or an error where the column is required).
    key_sets: dict[frozenset[str], int] = {}
    for position, record in enumerate(records):
        key_sets.setdefault(frozenset(record), position)
    every_key = frozenset().union(*key_sets) if key_sets else frozenset()
    for keys, position in key_sets.items():
        for key in every_key - keys:
            source.absent[key] = min(position, source.absent.get(key, position))
    return pd.DataFrame(records, dtype=object), source


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


def _row_label(path: Path, position: int) -> str:
    """Data rows are counted from 1; for CSV the line number (after the header) is given too, for
    JSON lines the line, for a JSON array the record."""
    source = _SOURCES.get(str(path))
    layout = source.layout if source else _layout(path)
    if layout == "parquet":
        return f"row {position + 1}"
    if layout == "jsonl":
        numbers = source.line_numbers if source else None
        return f"line {int(numbers[position]) if numbers is not None else position + 1}"
    if layout == "json_array":
        return f"record {position + 1}"
    return f"row {position + 1} (line {position + 2})"


def _first_bad(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def _check_columns(
    path: Path, frame: pd.DataFrame, required: list[str], optional: list[str | None]
) -> list[str]:
    """Refuse a file without a required column (or, in JSON, a record without it) or with a used
    column holding JSON objects; return the columns the spec does not name, which are ignored."""
    columns = [str(column) for column in frame.columns]
    duplicated = sorted({column for column in columns if columns.count(column) > 1})
    if duplicated:
        raise ImportFileError(f"{path}: duplicate column(s): {', '.join(duplicated)}")
    named = [column for column in optional if column]
    source = _SOURCES.get(str(path))
    under = f" (at the top level or under '{source.containers[0]}')" if source and source.containers else ""
    missing = [column for column in required if column not in columns]
    if missing:
        raise ImportFileError(f"{path}: missing required column(s): {', '.join(missing)}{under}")
    if source and source.layout in ("jsonl", "json_array"):
        lacking = [(source.absent[column], column) for column in required if column in source.absent]
        if lacking:
            row, column = min(lacking)
            raise ImportFileError(f"{path}: {_row_label(path, row)} has no '{column}'{under}")
        for column in [*required, *(column for column in named if column in frame)]:
            nested = frame[column].map(lambda value: isinstance(value, (dict, list)))
            if nested.any():
                row = _first_bad(nested)
                raise ImportFileError(
                    f"{path}: column '{column}': {frame[column].iloc[row]!r} at {_row_label(path, row)} "
                    "is not a single value"
                )
    known = set(required) | set(named)
    ignored = [column for column in columns if column not in known]
    if source:
        source.ignored = tuple(ignored)
    return ignored


def _numbers(path: Path, frame: pd.DataFrame, column: str) -> tuple[pd.Series, int]:
    """A numeric column as float64; ±inf become missing (counted), text is an error."""
    values = frame[column]
    if pd.api.types.is_bool_dtype(values) or pd.api.types.infer_dtype(values, skipna=True) in (
        "boolean",
        "mixed",
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
    return converted.where(~infinite, np.nan), int(infinite.sum())


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
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_integer_dtype(values):
        texts[present] = values[present].map(id_text if is_id else label_text)
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
    ids = _texts(frame, column, is_id=True)
    missing = ids.isna()
    if missing.any():
        raise ImportFileError(
            f"{path}: column '{column}': missing id at {_row_label(path, _first_bad(missing))}"
        )
    duplicated = ids.duplicated()
    if duplicated.any():
        row = _first_bad(duplicated)
        first = int(np.flatnonzero((ids == ids.iloc[row]).to_numpy())[0])
        raise ImportFileError(
            f"{path}: column '{column}': duplicate id {ids.iloc[row]!r} at {_row_label(path, row)} "
            f"(first seen at {_row_label(path, first)})"
        )
    return ids


def _features(spec: ModelSpec, path: Path, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    columns, non_finite = {}, 0
    for name, kind in spec.features.items():
        if kind == "numeric":
            columns[name], count = _numbers(path, frame, name)
            non_finite += count
        else:
            columns[name] = _texts(frame, name, is_id=True)  # categories verbatim
    return pd.DataFrame(columns, index=frame.index), non_finite


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


def _class_probabilities(spec: ModelSpec, path: Path, frame: pd.DataFrame) -> dict[str, pd.Series]:
    """A multiclass model's probability columns present in the file, {column: probabilities in [0, 1]}:
    all of them or none (an empty dict: no probabilities logged)."""
    columns = list(spec.class_probabilities.values())
    present = [column for column in columns if column in frame]
    if not present:
        return {}
    missing = [column for column in columns if column not in frame]
    if missing:
        raise ImportFileError(
            f"{path}: missing probability column(s) {', '.join(repr(c) for c in missing)}: a multiclass "
            f"file has either every class's probability column of the spec's prediction_proba or none"
        )
    return {column: _probabilities(path, frame, column) for column in columns}


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


def prepare_reference(spec: ModelSpec, path: Path) -> tuple[pd.DataFrame, int]:
    frame = read_table(path)
    optional = [spec.id, spec.timestamp, spec.prediction, *spec.probability_columns, spec.target]
    _check_columns(path, frame, list(spec.features), [column for column in optional if column])
    reference, non_finite = _features(spec, path, frame)
    for column in (spec.prediction, spec.target):
        if column and column in frame:
            reference[column], count = _outcomes(spec, path, frame, column)
            non_finite += count
    if spec.prediction_proba and spec.prediction_proba in frame:
        reference[spec.prediction_proba] = _probabilities(path, frame, spec.prediction_proba)
    for column, probabilities in _class_probabilities(spec, path, frame).items():
        reference[column] = probabilities
    if spec.task == "binary":
        _check_positive_label(spec, path, reference)
    return reference.reset_index(drop=True), non_finite


def prepare_logs(spec: ModelSpec, path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, int]:
    """Inference logs as raw.inference_log columns (features still wide), and inline labels if any."""
    frame = read_table(path)
    required = [spec.timestamp, spec.id, *spec.features, spec.prediction]
    _check_columns(path, frame, required, [*spec.probability_columns, spec.target, *spec.segments])
    features, non_finite = _features(spec, path, frame)
    predictions, count = _outcomes(spec, path, frame, spec.prediction)
    non_finite += count
    logs = pd.DataFrame(
        {
            "request_id": _ids(path, frame, spec.id),
            "prediction": predictions,
            "probability": _probabilities(path, frame, spec.prediction_proba)
            if spec.prediction_proba and spec.prediction_proba in frame
            else np.nan,
            "scored_at": _timestamps(path, frame, spec.timestamp),
        }
    )
    class_probabilities = _class_probabilities(spec, path, frame).values()
    for position, probabilities in enumerate(class_probabilities):
        logs[f"{CLASS_PROBABILITY_PREFIX}{position}"] = probabilities
    logs = pd.concat([logs, features.add_prefix("feature__")], axis=1)
    labels = None
    if spec.target and spec.target in frame:
        targets, count = _outcomes(spec, path, frame, spec.target)
        non_finite += count
        labels = pd.DataFrame({"request_id": logs["request_id"], "label": targets})
        labels = labels[labels["label"].notna()]
    return logs, labels, non_finite


def prepare_labels(spec: ModelSpec, path: Path) -> pd.DataFrame:
    if spec.target is None:
        raise ImportFileError(f"{path}: the spec names no target column, so there are no labels to import")
    frame = read_table(path)
    _check_columns(path, frame, [spec.id, spec.target], [spec.timestamp])
    targets, _ = _outcomes(spec, path, frame, spec.target)  # numbers or classes, by task
    labels = pd.DataFrame({"request_id": _ids(path, frame, spec.id), "label": targets})
    missing = labels["label"].isna()
    if missing.any():
        raise ImportFileError(
            f"{path}: column '{spec.target}': missing label at {_row_label(path, _first_bad(missing))}"
        )
    if spec.timestamp in frame:
        labels["labelled_at"] = _timestamps(path, frame, spec.timestamp)
    return labels


def _insert_logs(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, logs: pd.DataFrame, version: int, source: str
) -> int:
    before = connection.execute("select count(*) from raw.inference_log").fetchall()[0][0]
    # multiclass: every class's probability as one JSON object {"<class>": p}; else NULL
    class_columns = [f"{CLASS_PROBABILITY_PREFIX}{i}" for i in range(len(spec.class_probabilities))]
    probabilities = (
        json_object_sql(spec.class_probabilities, columns=class_columns)
        if class_columns and all(column in logs for column in class_columns)
        else "null"
    )
    connection.register("import_logs", logs)
    connection.execute(
        f"""
        insert or ignore into raw.inference_log by name
        select ? as model_name, request_id, ? as model_version,
               {feature_maps_sql(spec.features, "feature__")}, prediction, probability,
               {probabilities} as probabilities, scored_at, ? as loaded_at, ? as source
        from import_logs
        """,
        [spec.model, version, utc_now(), source],
    )
    connection.unregister("import_logs")
    return connection.execute("select count(*) from raw.inference_log").fetchall()[0][0] - before


def _upsert_labels(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, labels: pd.DataFrame, source: str
) -> int:
    if "labelled_at" not in labels:
        labels = labels.assign(labelled_at=pd.NaT)
    connection.register("import_labels", labels)
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
    connection.unregister("import_labels")
    return changed


def import_files(
    home: Home,
    spec: ModelSpec,
    reference: Path,
    logs: Path | None = None,
    labels: Path | None = None,
) -> ImportResult:
    """Check every file, then register the reference and load logs and labels in one transaction."""
    files = [path for path in (reference, logs, labels) if path is not None]
    try:
        reference_frame, non_finite = prepare_reference(spec, reference)
        log_frame, inline_labels, log_non_finite = prepare_logs(spec, logs) if logs else (None, None, 0)
        label_frames = [
            frame
            for frame in (inline_labels, prepare_labels(spec, labels) if labels else None)
            if frame is not None
        ]
        ignored = {
            str(path): _SOURCES[str(path)].ignored
            for path in files
            if str(path) in _SOURCES and _SOURCES[str(path)].ignored
        }
    finally:
        for path in files:  # what reading learned serves this import's messages only
            _SOURCES.pop(str(path), None)
    label_frame = (
        pd.concat(label_frames, ignore_index=True).drop_duplicates("request_id", keep="last")
        if label_frames
        else None
    )

    version, is_new = registry.register_external(home, spec, reference_frame)
    loaded = changed = 0
    with warehouse_writer(home) as connection:
        connection.execute("begin transaction")
        try:
            loaded_at = utc_now()
            sync_spec(connection, spec, loaded_at)
            sync_registry(connection, home, spec, loaded_at)
            if log_frame is not None:
                loaded = _insert_logs(connection, spec, log_frame, version.model_version, str(logs))
            if label_frame is not None:
                changed = _upsert_labels(connection, spec, label_frame, str(labels or logs))
            connection.execute("commit")
        except BaseException:
            connection.execute("rollback")
            raise
    return ImportResult(
        model_version=version.model_version,
        reference_is_new=is_new,
        n_reference_rows=len(reference_frame),
        n_log_rows_read=0 if log_frame is None else len(log_frame),
        n_log_rows_loaded=loaded,
        n_label_rows_read=0 if label_frame is None else len(label_frame),
        n_label_rows_changed=changed,
        n_non_finite_as_missing=non_finite + log_non_finite,
        ignored_columns=ignored,
    )
