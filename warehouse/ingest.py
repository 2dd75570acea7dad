"""Ingest: load landed lines into the raw tables exactly once, and mirror the spec and registry.

Exactly once: `raw.landing_manifest` records, per segment, how many bytes are loaded. New rows, the
quarantined lines and the manifest's new offset are written in one transaction, so an interrupted
ingest leaves no trace and the next one starts from the same offset. Rows are keyed by
(model_name, request_id): a client retry that landed twice is stored once.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ml import registry
from ml.calibration import calibration_segments
from ml.errors import DriftmartError
from ml.spec import ModelSpec, label_text
from warehouse.connection import warehouse_writer
from warehouse.home import Home
from warehouse.landing import STREAMS, list_segments, read_segment
from warehouse.targets import quote_identifier, sql_string

RETENTION_ENV = "DRIFTMART_LANDING_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 7.0


@dataclass
class IngestResult:
    inference_rows: int = 0
    label_rows: int = 0
    duplicates: int = 0
    quarantined: int = 0
    segments_read: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    segments_removed: int = 0


class LineError(ValueError):
    """Why one landed line cannot be loaded."""


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def parse_timestamp(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise LineError(f"{name}: expected an ISO-8601 timestamp string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise LineError(f"{name}: {value!r} is not an ISO-8601 timestamp") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise LineError(f"{name}: expected a non-empty string, got {value!r}")
    return value


def _number_or_none(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LineError(f"{name}: expected a finite number or null, got {value!r}")
    return float(value)


def id_text(value: object) -> str | None:
    """Ids verbatim (leading zeros kept); integral numbers from typed files without a decimal part."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def feature_maps_json(features: dict[str, Any], feature_types: dict[str, str]) -> tuple[str, str]:
    """Check landed feature values against the spec's types; return them as two canonical JSON
    objects, the numeric features' and the categorical features' (the typed maps of raw)."""
    if not isinstance(features, dict):
        raise LineError(f"features: expected an object, got {type(features).__name__}")
    missing = [name for name in feature_types if name not in features]
    if missing:
        raise LineError(f"features: missing {', '.join(missing)}")
    unknown = sorted(set(features) - set(feature_types))
    if unknown:
        raise LineError(f"features: unknown {', '.join(unknown)}")
    for name, kind in feature_types.items():
        value = features[name]
        if kind == "numeric":
            _number_or_none(value, f"feature {name!r}")
        elif value is not None and not isinstance(value, str):
            raise LineError(f"feature {name!r}: expected a string or null, got {value!r}")
    numbers = {name: features[name] for name, kind in feature_types.items() if kind == "numeric"}
    categories = {name: features[name] for name, kind in feature_types.items() if kind != "numeric"}
    return json.dumps(numbers, separators=(",", ":")), json.dumps(categories, separators=(",", ":"))


def segments_json(segments: Any) -> str | None:
    """A prediction's segment columns {column: value} as canonical JSON, each value as label text
    (1, 1.0 and "1" alike, as the importer stores them); None when the line has none."""
    if segments is None:
        return None
    if not isinstance(segments, dict):
        raise LineError(f"segments: expected an object of column: value, got {segments!r}")
    checked = {}
    for name, value in segments.items():
        if isinstance(value, (dict, list)):
            raise LineError(f"segments[{name!r}]: expected text, a number or null, got {value!r}")
        checked[name] = label_text(value)
    return json.dumps(checked, separators=(",", ":"), sort_keys=True)


def probabilities_json(probabilities: Any) -> str | None:
    """A multiclass prediction's {class: probability} as canonical JSON (classes as label text)."""
    if probabilities is None:
        return None
    if not isinstance(probabilities, dict) or not probabilities:
        raise LineError(f"probabilities: expected an object of class: number, got {probabilities!r}")
    checked = {}
    for label, value in probabilities.items():
        checked[label_text(label)] = _number_or_none(value, f"probabilities[{label!r}]")
    return json.dumps(checked, separators=(",", ":"), sort_keys=True)


def parse_inference_line(line: bytes, specs: dict[str, dict[str, str]]) -> dict[str, Any]:
    record = _json_object(line)
    model_name = _text(record, "model")
    if model_name not in specs:
        raise LineError(f"model: {model_name!r} has no spec in this warehouse")
    version = record.get("model_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise LineError(f"model_version: expected an integer, got {version!r}")
    numbers, categories = feature_maps_json(record.get("features"), specs[model_name])
    return {
        "model_name": model_name,
        "request_id": _text(record, "request_id"),
        "model_version": version,
        "feature_numbers": numbers,
        "feature_categories": categories,
        "segment_values": segments_json(record.get("segments")),
        "prediction": label_text(record.get("prediction")),
        "probability": _number_or_none(record.get("probability"), "probability"),
        "probabilities": probabilities_json(record.get("probabilities")),
        "scored_at": parse_timestamp(record.get("scored_at"), "scored_at"),
        "received_at": parse_timestamp(record.get("received_at"), "received_at")
        if record.get("received_at") is not None
        else None,
    }


def parse_feedback_line(line: bytes, specs: dict[str, dict[str, str]]) -> dict[str, Any]:
    record = _json_object(line)
    model_name = _text(record, "model")
    if model_name not in specs:
        raise LineError(f"model: {model_name!r} has no spec in this warehouse")
    label = label_text(record.get("label"))
    if label is None:
        raise LineError("label: missing")
    return {
        "model_name": model_name,
        "request_id": _text(record, "request_id"),
        "label": label,
        "labelled_at": parse_timestamp(record.get("received_at"), "received_at")
        if record.get("received_at") is not None
        else None,
    }


def _json_object(line: bytes) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LineError(f"not valid JSON: {error}") from None
    if not isinstance(record, dict):
        raise LineError(f"expected a JSON object, got {type(record).__name__}")
    return record


PARSERS = {"inference": parse_inference_line, "feedback": parse_feedback_line}


def sync_spec(connection: duckdb.DuckDBPyConnection, spec: ModelSpec, loaded_at: datetime) -> None:
    """Mirror the spec into raw.monitored_models, raw.model_features and raw.model_segments."""
    connection.execute(
        """
        insert or replace into raw.monitored_models (
            model_name, window_seconds, min_window_rows, reference_kind, reference_start_at,
            reference_end_at, statistics, dataset_drift_share, positive_label, spec, loaded_at, task
        ) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        [
            spec.model,
            spec.window_seconds,
            spec.min_window_rows,
            spec.reference.kind,
            spec.reference.start,
            spec.reference.end,
            spec.statistics,
            spec.thresholds["dataset_drift_share"],
            spec.positive_label,
            json.dumps(spec.to_dict()),
            loaded_at,
            spec.task,
        ],
    )
    connection.execute("delete from raw.model_features where model_name = ?", [spec.model])
    connection.executemany(
        "insert into raw.model_features values (?, ?, ?, ?, ?, ?, ?)",
        [
            [
                spec.model,
                name,
                kind,
                position,
                spec.monitor(name).method,
                spec.monitor(name).threshold,
                loaded_at,
            ]
            for position, (name, kind) in enumerate(spec.features.items())
        ],
    )
    connection.execute("delete from raw.model_segments where model_name = ?", [spec.model])
    options = spec.segment_drift
    if spec.segments:
        connection.executemany(
            "insert into raw.model_segments values (?, ?, ?, ?, ?, ?, ?)",
            [
                [spec.model, name, position, options.top_k, options.min_rows, options.fdr, loaded_at]
                for position, name in enumerate(spec.segments)
            ],
        )


def sync_registry(
    connection: duckdb.DuckDBPyConnection, home: Home, spec: ModelSpec, loaded_at: datetime
) -> int:
    """Mirror the on-disk registry; each version's reference rows are loaded once. Returns new versions."""
    loaded_versions = {
        version
        for (version,) in connection.execute(
            "select distinct model_version from raw.reference_rows where model_name = ?",
            [spec.model],
        ).fetchall()
    }
    new_versions = 0
    for version in registry.list_versions(home, spec.model):
        connection.execute(
            """
            insert or replace into raw.model_registry (
                model_name, model_version, created_at, trigger, status, artifact_sha256, metrics,
                spec_fingerprint, n_training_rows, n_reference_rows, loaded_at, validation,
                decision_reason, decided_at, history, estimator
            ) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                version.model_name,
                version.model_version,
                datetime.fromisoformat(version.created_at),
                version.trigger,
                version.status,
                version.artifact_sha256,
                json.dumps(version.metrics),
                version.spec_fingerprint,
                version.n_training_rows,
                version.n_reference_rows,
                loaded_at,
                json.dumps(version.validation) if version.validation else None,
                version.reason or None,
                datetime.fromisoformat(version.decided_at),
                json.dumps(version.history),
                version.estimator or None,
            ],
        )
        if version.model_version in loaded_versions:
            continue
        reference = registry.load_reference(home, spec.model, version.model_version)
        _insert_reference_rows(connection, spec, reference, version.model_version, loaded_at)
        loaded_versions.add(version.model_version)
        new_versions += 1
    sync_calibrations(connection, spec, loaded_versions, loaded_at)
    return new_versions


def sync_calibrations(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, versions: set[int], loaded_at: datetime
) -> int:
    """Fit the score calibration (ml/calibration.py) of every version of a binary model among
    `versions` (those with reference rows loaded) that has none yet and whose reference holds
    labelled probabilities: a version's calibration is fitted once, from raw.reference_rows (so
    homes loaded before calibrations existed get theirs too). Reads no reference row when every
    version is calibrated. Returns the versions calibrated."""
    if spec.task != "binary":
        return 0
    calibrated = {
        version
        for (version,) in connection.execute(
            "select distinct model_version from raw.score_calibration where model_name = ?", [spec.model]
        ).fetchall()
    }
    missing = sorted(versions - calibrated)
    if not missing:
        return 0
    rows = connection.execute(
        f"""
        select rows.model_version, rows.probability,
               case when rows.label = models.positive_label then 1.0 else 0.0 end as is_positive
        from raw.reference_rows as rows
        inner join raw.monitored_models as models on rows.model_name = models.model_name
        where rows.model_name = ? and rows.label is not null and isfinite(rows.probability)
            and rows.model_version in ({", ".join(str(int(version)) for version in missing)})
        """,
        [spec.model],
    ).df()
    for version, group in rows.groupby("model_version", sort=True):
        segments = calibration_segments(group["probability"].to_numpy(), group["is_positive"].to_numpy())
        segments.insert(0, "model_version", int(version))
        connection.register("calibration_batch", segments)
        connection.execute(
            """
            insert into raw.score_calibration by name
            select ? as model_name, model_version, segment, score_from, score_to,
                   calibrated_from, calibrated_to, ? as loaded_at
            from calibration_batch
            """,
            [spec.model, loaded_at],
        )
        connection.unregister("calibration_batch")
    return rows["model_version"].nunique()


def mirror_model(home: Home, spec: ModelSpec) -> None:
    """Mirror the spec and the registry into the warehouse now (e.g. right after training)."""
    with warehouse_writer(home) as connection:
        loaded_at = utc_now()
        sync_spec(connection, spec, loaded_at)
        sync_registry(connection, home, spec, loaded_at)


def json_object_sql(
    keys: Iterable[str], column_prefix: str = "", columns: Iterable[str] | None = None
) -> str:
    """DuckDB builds a JSON object (fast for millions of rows; NaN/None become JSON null): each key
    from the column `column_prefix + key` (or the matching name of `columns`). Keys and columns
    are the user's own names, so both are quoted: a name can hold quotes, backslashes or SQL."""
    keys = list(keys)
    names = list(columns) if columns is not None else [column_prefix + key for key in keys]
    pairs = ", ".join(
        f"{sql_string(key)}, {quote_identifier(name)}" for key, name in zip(keys, names, strict=True)
    )
    return f"json_object({pairs})"


def _map_sql(names: list[str], values: list[str], sql_type: str) -> str:
    """A typed map {name: value} from SQL value expressions (names are the user's own: quoted
    literals)."""
    if not names:
        return f"cast(map() as map(varchar, {sql_type}))"
    if all(names) and len({name.casefold() for name in names}) == len(names):
        # A struct cast to a map: the same map, built about 8 times faster than by map(keys,
        # values). Struct field names must be non-empty and differ in more than case.
        fields = ", ".join(f"{sql_string(name)}: {value}" for name, value in zip(names, values, strict=True))
        return f"cast({{{fields}}} as map(varchar, {sql_type}))"
    keys = ", ".join(sql_string(name) for name in names)
    return f"map([{keys}], [{', '.join(values)}])"


def feature_maps_sql(features: dict[str, str], column_prefix: str = "") -> str:
    """DuckDB builds the typed feature maps of raw (vectorised, fast for millions of rows) from the
    columns `column_prefix + name`: `... as feature_numbers, ... as feature_categories`. Numbers
    that are not finite (NaN, ±inf) and text that is not a number become NULL; categories are text.
    Names are the user's own, so keys are quoted literals and columns quoted identifiers."""
    numeric = [name for name, kind in features.items() if kind == "numeric"]
    categorical = [name for name, kind in features.items() if kind != "numeric"]
    numbers = [f"try_cast({quote_identifier(column_prefix + name)} as double)" for name in numeric]
    numbers = [f"case when isfinite({value}) then {value} end" for value in numbers]
    categories = [f"cast({quote_identifier(column_prefix + name)} as varchar)" for name in categorical]
    return (
        f"{_map_sql(numeric, numbers, 'double')} as feature_numbers, "
        f"{_map_sql(categorical, categories, 'varchar')} as feature_categories"
    )


def segment_map_sql(segments: tuple[str, ...], columns: set[str], column_prefix: str = "") -> str:
    """`... as segment_values`: the spec's segment columns as a text map, from the columns
    `column_prefix + name` (already label text); a column the rows lack is NULL in the map, and a
    spec without segments stores NULL."""
    if not segments:
        return "cast(null as map(varchar, varchar)) as segment_values"
    values = [
        f"cast({quote_identifier(column_prefix + name)} as varchar)"
        if column_prefix + name in columns
        else "cast(null as varchar)"
        for name in segments
    ]
    return f"{_map_sql(list(segments), values, 'varchar')} as segment_values"


def segment_texts(frame: pd.DataFrame, segments: tuple[str, ...]) -> pd.DataFrame:
    """The segment columns `frame` has, as label text (1, 1.0 and "1" alike), named `segment__<name>`."""
    return pd.DataFrame(
        {
            f"segment__{name}": frame[name].map(label_text).astype(object)
            for name in segments
            if name in frame
        },
        index=frame.index,
    )


def _insert_reference_rows(
    connection: duckdb.DuckDBPyConnection,
    spec: ModelSpec,
    reference: pd.DataFrame,
    version: int,
    loaded_at: datetime,
) -> None:
    proba_column = spec.prediction_proba or "probability"
    batch = reference[list(spec.features)].add_prefix("feature__")
    batch["row_number"] = np.arange(len(reference), dtype=np.int32)
    batch["prediction"] = reference[spec.prediction].map(label_text) if spec.prediction in reference else None
    batch["probability"] = reference[proba_column].astype(float) if proba_column in reference else np.nan
    batch["label"] = (
        reference[spec.target].map(label_text) if spec.target and spec.target in reference else None
    )
    batch = batch.astype({"prediction": object, "label": object, "probability": float})
    for column, values in segment_texts(reference, spec.segments).items():
        batch[column] = values
    class_columns = [f"class__{position}" for position in range(len(spec.class_probabilities))]
    has_probabilities = bool(class_columns) and all(
        column in reference for column in spec.class_probabilities.values()
    )
    if has_probabilities:
        for name, column in zip(class_columns, spec.class_probabilities.values(), strict=True):
            batch[name] = reference[column].astype(float)
    probabilities = (
        json_object_sql(spec.class_probabilities, columns=class_columns) if has_probabilities else "null"
    )
    connection.register("reference_batch", batch)
    connection.execute(
        f"""
        insert into raw.reference_rows by name
        select ? as model_name, ? as model_version, row_number,
               {feature_maps_sql(spec.features, "feature__")},
               {segment_map_sql(spec.segments, set(batch.columns), "segment__")}, prediction,
               probability, label, ? as loaded_at, {probabilities} as probabilities
        from reference_batch
        """,
        [spec.model, version, loaded_at],
    )
    connection.unregister("reference_batch")


def _known_specs(connection: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    specs: dict[str, dict[str, str]] = {}
    for model_name, feature_name, feature_type in connection.execute(
        "select model_name, feature_name, feature_type from raw.model_features "
        "order by model_name, feature_position"
    ).fetchall():
        specs.setdefault(model_name, {})[feature_name] = feature_type
    return specs


# Rows of `rows` whose (model_name, request_id) raw.inference_log does not hold yet: its uniqueness
# (schema.sql), kept by every writer.
NEW_REQUESTS = """not exists (
    select 1 from raw.inference_log as logged
    where logged.model_name = {rows}.model_name and logged.request_id = {rows}.request_id
)"""

INSERT_SQL = {
    # Requests the table already holds (a client's retry) are left out by the anti-join; the
    # batch itself holds each request once (drop_duplicates below).
    "inference": f"""
        insert into raw.inference_log
        by name
        select model_name, request_id, model_version,
               from_json(feature_numbers, '"MAP(VARCHAR, DOUBLE)"') as feature_numbers,
               from_json(feature_categories, '"MAP(VARCHAR, VARCHAR)"') as feature_categories,
               from_json(cast(segment_values as varchar), '"MAP(VARCHAR, VARCHAR)"') as segment_values,
               prediction, probability, scored_at, received_at, ? as loaded_at, source, probabilities
        from batch
        where {NEW_REQUESTS.format(rows="batch")}
    """,
    # A later label for the same request replaces the earlier one (corrections win); the replacing
    # row takes a new ingest_seq explicitly (insert or replace would keep the replaced row's).
    "feedback": """
        insert or replace into raw.labels by name
        select model_name, request_id, label, labelled_at, ? as loaded_at, source,
               nextval('raw.ingest_seq') as ingest_seq
        from batch
    """,
}
COLUMNS = {
    "inference": [
        "model_name",
        "request_id",
        "model_version",
        "feature_numbers",
        "feature_categories",
        "segment_values",
        "prediction",
        "probability",
        "scored_at",
        "received_at",
        "source",
        "probabilities",
    ],
    "feedback": ["model_name", "request_id", "label", "labelled_at", "source"],
}
TABLES = {"inference": "raw.inference_log", "feedback": "raw.labels"}


def _ingest_segment(
    connection: duckdb.DuckDBPyConnection,
    home: Home,
    stream: str,
    segment: Path,
    specs: dict[str, dict[str, str]],
    loaded_at: datetime,
    result: IngestResult,
) -> None:
    name = str(segment.relative_to(home.landing))
    manifest = connection.execute(
        "select bytes_loaded, lines_loaded, lines_quarantined, is_complete "
        "from raw.landing_manifest where segment = ?",
        [name],
    ).fetchall()
    offset, lines_loaded, lines_quarantined, is_complete = manifest[0] if manifest else (0, 0, 0, False)
    if is_complete:
        return
    read = read_segment(segment, offset)
    if not read.lines and read.torn_tail is None and not read.is_finished:
        return
    rows, quarantine = [], []
    for line_offset, line in read.lines:
        try:
            row = PARSERS[stream](line, specs)
        except LineError as error:
            quarantine.append((name, line_offset, str(error), line.decode("utf-8", "replace")))
            continue
        row["source"] = name
        rows.append(row)
    if read.torn_tail is not None:
        reason = "torn line: the segment ends without a newline (its writer stopped mid-write)"
        quarantine.append((name, read.end_offset, reason, read.torn_tail.decode("utf-8", "replace")))
    end_offset = read.end_offset + (len(read.torn_tail) if read.torn_tail is not None else 0)

    connection.execute("begin transaction")
    try:
        inserted = 0
        if rows:
            keep = "first" if stream == "inference" else "last"
            batch = pd.DataFrame(rows, columns=COLUMNS[stream]).drop_duplicates(
                ["model_name", "request_id"], keep=keep
            )
            before = connection.execute(f"select count(*) from {TABLES[stream]}").fetchall()[0][0]
            connection.register("batch", batch)
            connection.execute(INSERT_SQL[stream], [loaded_at])
            connection.unregister("batch")
            after = connection.execute(f"select count(*) from {TABLES[stream]}").fetchall()[0][0]
            inserted = after - before
            if stream == "inference":
                result.duplicates += len(rows) - inserted
        if quarantine:
            connection.executemany(
                "insert or ignore into raw.quarantine values (?, ?, ?, ?, ?)",
                [[*entry, loaded_at] for entry in quarantine],
            )
        connection.execute(
            "insert or replace into raw.landing_manifest values (?, ?, ?, ?, ?, ?, ?)",
            [
                name,
                stream,
                end_offset,
                lines_loaded + len(rows),
                lines_quarantined + len(quarantine),
                read.is_finished,
                loaded_at,
            ],
        )
        connection.execute("commit")
    except BaseException:
        connection.execute("rollback")
        raise
    if stream == "inference":
        result.inference_rows += inserted
    else:
        result.label_rows += len(rows)
    result.quarantined += len(quarantine)
    for _, _, reason, _ in quarantine:
        kind = reason.split(":", 1)[0]
        result.quarantine_reasons[kind] = result.quarantine_reasons.get(kind, 0) + 1
    result.segments_read += 1


def ingest(connection: duckdb.DuckDBPyConnection, home: Home, spec: ModelSpec) -> IngestResult:
    """Sync spec and registry, then load every landed line not loaded before. Hold the writer lock."""
    loaded_at = utc_now()
    sync_spec(connection, spec, loaded_at)
    sync_registry(connection, home, spec, loaded_at)
    specs = _known_specs(connection)
    result = IngestResult()
    for stream in STREAMS:
        for segment in list_segments(home.landing, stream):
            _ingest_segment(connection, home, stream, segment, specs, loaded_at, result)
    result.segments_removed = _remove_expired_segments(connection, home)
    return result


def landing_retention_days() -> float:
    """How long a fully ingested landing segment is kept: env DRIFTMART_LANDING_RETENTION_DAYS."""
    value = os.environ.get(RETENTION_ENV, "").strip()
    try:
        days = float(value) if value else DEFAULT_RETENTION_DAYS
    except ValueError:
        raise DriftmartError(f"{RETENTION_ENV}={value!r} is not a number of days") from None
    if days < 0:
        raise DriftmartError(f"{RETENTION_ENV}={value!r} must be 0 or more days")
    return days


def _remove_expired_segments(connection: duckdb.DuckDBPyConnection, home: Home) -> int:
    """Delete the segments the manifest records as complete (every line loaded or quarantined, the
    writer gone) whose file was last written more than the retention ago; the manifest row stays,
    so nothing is read twice. Segments still written to, or not fully read, are never touched."""
    cutoff = time.time() - landing_retention_days() * 86400
    removed = 0
    complete = connection.execute("select segment from raw.landing_manifest where is_complete").fetchall()
    for (name,) in complete:
        path = home.landing / name
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
