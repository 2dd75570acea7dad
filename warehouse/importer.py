"""`driftmart import`: load a batch-scoring job's files (CSV or Parquet) into the warehouse.

A reference set, inference logs and labels are checked completely before anything is written; a
problem is one error naming the file, the column and the first bad row. Then the reference is
registered (a reference already registered is recognised by its content) and the rows are loaded in
one transaction: an import either lands whole or not at all. Importing the same file twice adds
nothing: rows are keyed by (model, id).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ml import registry
from ml.errors import DriftmartError
from ml.spec import ModelSpec
from warehouse.connection import warehouse_writer
from warehouse.home import Home
from warehouse.ingest import id_text, json_object_sql, label_text, sync_registry, sync_spec, utc_now

NULL_TOKENS = ["", "NA", "N/A", "NULL", "null", "NaN", "nan", "None"]


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


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file; CSV cells are read as text and typed by the spec, not guessed."""
    if not path.exists():
        raise ImportFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt") or suffix.endswith("csv"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=NULL_TOKENS)
        else:
            raise ImportFileError(f"{path}: unknown file type {suffix!r} (expected .csv or .parquet)")
    except (ValueError, OSError) as error:
        raise ImportFileError(f"{path}: cannot read: {error}") from None
    if frame.empty:
        raise ImportFileError(f"{path}: no rows")
    return frame


def _row_label(path: Path, position: int) -> str:
    """Data rows are counted from 1; for CSV the line number (after the header) is given too."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return f"row {position + 1}"
    return f"row {position + 1} (line {position + 2})"


def _first_bad(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def _check_columns(path: Path, frame: pd.DataFrame, required: list[str], optional: list[str]) -> None:
    columns = [str(column) for column in frame.columns]
    duplicated = sorted({column for column in columns if columns.count(column) > 1})
    if duplicated:
        raise ImportFileError(f"{path}: duplicate column(s): {', '.join(duplicated)}")
    missing = [column for column in required if column not in columns]
    if missing:
        raise ImportFileError(f"{path}: missing required column(s): {', '.join(missing)}")
    unknown = [column for column in columns if column not in required and column not in optional]
    if unknown:
        expected = ", ".join(required + [column for column in optional if column])
        raise ImportFileError(f"{path}: unknown column(s): {', '.join(unknown)} (expected: {expected})")


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
        parsed = pd.to_numeric(values, errors="coerce")
        row = _first_bad(values.notna() & parsed.isna())
        raise ImportFileError(
            f"{path}: column '{column}': {values.iloc[row]!r} at {_row_label(path, row)} is not a number"
        ) from None
    infinite = np.isinf(converted.to_numpy())
    return converted.where(~infinite, np.nan), int(infinite.sum())


def _texts(frame: pd.DataFrame, column: str, *, is_id: bool = False) -> pd.Series:
    """A column as text, vectorised (millions of rows): `label_text` rules for predictions and
    labels (1, 1.0, "1.0" → "1"), `id_text` rules for ids (verbatim strings)."""
    values = frame[column]
    present = values.notna()
    texts = pd.Series(None, index=values.index, dtype=object)
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_integer_dtype(values):
        texts[present] = values[present].map(id_text if is_id else label_text)
    elif pd.api.types.is_float_dtype(values):
        integral = present & (values % 1 == 0)
        texts[integral] = values[integral].astype("int64").astype(str)
        texts[present & ~integral] = values[present & ~integral].map(repr)
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
        parsed = pd.to_datetime(values.astype("string"), utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna()
    if bad.any():
        row = _first_bad(bad)
        shown = values.iloc[row]
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
            f"{path}: column '{column}': {values.iloc[row]!r} at {_row_label(path, row)} "
            "is not a probability in [0, 1]"
        )
    return values


def prepare_reference(spec: ModelSpec, path: Path) -> tuple[pd.DataFrame, int]:
    frame = read_table(path)
    optional = [spec.id, spec.timestamp, spec.prediction, spec.prediction_proba, spec.target]
    _check_columns(path, frame, list(spec.features), [column for column in optional if column])
    reference, non_finite = _features(spec, path, frame)
    if spec.prediction in frame:
        reference[spec.prediction] = _texts(frame, spec.prediction)
    if spec.prediction_proba and spec.prediction_proba in frame:
        reference[spec.prediction_proba] = _probabilities(path, frame, spec.prediction_proba)
    if spec.target in frame:
        reference[spec.target] = _texts(frame, spec.target)
    return reference.reset_index(drop=True), non_finite


def prepare_logs(spec: ModelSpec, path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, int]:
    """Inference logs as raw.inference_log columns (features still wide), and inline labels if any."""
    frame = read_table(path)
    required = [spec.timestamp, spec.id, *spec.features, spec.prediction]
    _check_columns(path, frame, required, [spec.prediction_proba or "", spec.target])
    features, non_finite = _features(spec, path, frame)
    logs = pd.DataFrame(
        {
            "request_id": _ids(path, frame, spec.id),
            "prediction": _texts(frame, spec.prediction),
            "probability": _probabilities(path, frame, spec.prediction_proba)
            if spec.prediction_proba and spec.prediction_proba in frame
            else np.nan,
            "scored_at": _timestamps(path, frame, spec.timestamp),
        }
    )
    logs = pd.concat([logs, features.add_prefix("feature__")], axis=1)
    labels = None
    if spec.target in frame:
        labels = pd.DataFrame({"request_id": logs["request_id"], "label": _texts(frame, spec.target)})
        labels = labels[labels["label"].notna()]
    return logs, labels, non_finite


def prepare_labels(spec: ModelSpec, path: Path) -> pd.DataFrame:
    frame = read_table(path)
    _check_columns(path, frame, [spec.id, spec.target], [spec.timestamp])
    labels = pd.DataFrame({"request_id": _ids(path, frame, spec.id), "label": _texts(frame, spec.target)})
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
    connection.register("import_logs", logs)
    connection.execute(
        f"""
        insert or ignore into raw.inference_log by name
        select ? as model_name, request_id, ? as model_version,
               {json_object_sql(spec.features, "feature__")} as features, prediction, probability,
               scored_at, ? as loaded_at, ? as source
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
        insert or replace into raw.labels
        select ?, request_id, label, labelled_at, ?, ? from import_labels
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
    reference_frame, non_finite = prepare_reference(spec, reference)
    log_frame, inline_labels, log_non_finite = prepare_logs(spec, logs) if logs else (None, None, 0)
    label_frames = [
        frame
        for frame in (inline_labels, prepare_labels(spec, labels) if labels else None)
        if frame is not None
    ]
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
    )
