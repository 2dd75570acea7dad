"""Reads of the published warehouse as pandas frames in the spec's own column names: what the
Evidently reports and retraining consume. All take a (read-only) connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from ml.spec import ModelSpec
from warehouse.targets import quote_identifier, sql_string


def _feature_columns(spec: ModelSpec, table: str) -> str:
    """The spec's features out of the typed maps of a raw table, under the user's own names: the
    key is a quoted literal and the alias a quoted identifier, whatever the name holds."""
    columns = []
    for name, kind in spec.features.items():
        column = "feature_numbers" if kind == "numeric" else "feature_categories"
        columns.append(f"{table}.{column}[{sql_string(name)}] as {quote_identifier(name)}")
    return ",\n".join(columns)


def _segment_columns(spec: ModelSpec, table: str) -> str:
    """`, <segment> as "<column>"` for each segment column of the spec that is not a feature."""
    return "".join(
        f",\n{table}.segment_values[{sql_string(name)}] as {quote_identifier(name)}"
        for name in spec.segments
        if name not in spec.features
    )


def _as(expression: str, name: str | None) -> str:
    """`expression as "name"`, or nothing when the spec has no such column (e.g. no target)."""
    return f", {expression} as {quote_identifier(name)}" if name else ""


def labelled_rows(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, limit: int, since: datetime | None = None
) -> pd.DataFrame:
    """The `limit` most recent labelled production rows (scored at or after `since`, if given):
    id, timestamp, features, segment columns, target."""
    return connection.execute(
        f"""
        select logs.request_id as {quote_identifier(spec.id)},
               logs.scored_at as {quote_identifier(spec.timestamp)},
               {_feature_columns(spec, "logs")}
               {_segment_columns(spec, "logs")}
               {_as("labels.label", spec.label_column)}
        from raw.inference_log as logs
        inner join raw.labels as labels
            on labels.model_name = logs.model_name and labels.request_id = logs.request_id
        where logs.model_name = ? and logs.scored_at >= ?
        order by logs.scored_at desc, logs.request_id
        limit ?
        """,
        [spec.model, since or datetime(1, 1, 1), limit],
    ).df()


def labelled_count(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, since: datetime | None = None
) -> int:
    """How many production rows of the model scored at or after `since` have a label: what a
    retrain could train and validate on (`labelled_rows` reads at most `limit` of them)."""
    (count,) = connection.execute(
        """
        select count(*)
        from raw.inference_log as logs
        inner join raw.labels as labels
            on labels.model_name = logs.model_name and labels.request_id = logs.request_id
        where logs.model_name = ? and logs.scored_at >= ?
        """,
        [spec.model, since or datetime(1, 1, 1)],
    ).fetchone()
    return count


@dataclass(frozen=True)
class RowsSummary:
    """How many rows a report's side holds in the warehouse and the newest load among them, read
    without loading the rows: what tells a report of the same window that late rows arrived."""

    n_rows: int
    newest: str  # max ingest_seq of the rows (and of their labels), or max loaded_at: as text


def _sampled(order_key: str, max_rows: int | None, seed: int) -> str:
    """`order by ... limit N` choosing `max_rows` rows by a seeded hash of `order_key` (deterministic:
    the same rows and seed give the same sample, and a late row enters it only by its own hash);
    DuckDB keeps only the N smallest keys (a top-N), so memory does not grow with the rows."""
    if max_rows is None:
        return ""
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    return f"order by hash({order_key} || {sql_string(f':{seed}')}), {order_key} limit {int(max_rows)}"


def window_rows(
    connection: duckdb.DuckDBPyConnection,
    spec: ModelSpec,
    window_start: datetime,
    window_end: datetime,
    *,
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The production rows scored in [window_start, window_end), with prediction, probability and
    the label where one arrived. With `max_rows`, at most that many of them, sampled in SQL by a
    seeded hash of the request id (`_sampled`): the window is never read whole into memory."""
    proba = spec.prediction_proba or "probability"
    return connection.execute(
        f"""
        with logs as (
            select * from raw.inference_log
            where model_name = ? and scored_at >= ? and scored_at < ?
            {_sampled("request_id", max_rows, seed)}
        )
        select logs.request_id as {quote_identifier(spec.id)},
               logs.scored_at as {quote_identifier(spec.timestamp)},
               {_feature_columns(spec, "logs")},
               logs.prediction as {quote_identifier(spec.prediction)}
               {_as("logs.probability", proba)}
               {_as("labels.label", spec.target)}
        from logs
        left join raw.labels as labels
            on labels.model_name = logs.model_name and labels.request_id = logs.request_id
        order by logs.scored_at, logs.request_id
        """,
        [spec.model, window_start, window_end],
    ).df()


def window_summary(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, window_start: datetime, window_end: datetime
) -> RowsSummary:
    """The rows scored in [window_start, window_end) and the newest `ingest_seq` of them and of
    their labels (a late row or a late label raises it), counted in SQL."""
    n_rows, newest_row, newest_label = connection.execute(
        """
        select count(*), max(logs.ingest_seq), max(labels.ingest_seq)
        from raw.inference_log as logs
        left join raw.labels as labels
            on labels.model_name = logs.model_name and labels.request_id = logs.request_id
        where logs.model_name = ? and logs.scored_at >= ? and logs.scored_at < ?
        """,
        [spec.model, window_start, window_end],
    ).fetchone()
    return RowsSummary(n_rows=int(n_rows), newest=f"{newest_row}/{newest_label}")


def reference_rows(
    connection: duckdb.DuckDBPyConnection,
    spec: ModelSpec,
    model_version: int,
    *,
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """A model version's reference set: features, prediction, probability and label. With
    `max_rows`, at most that many rows, sampled in SQL by a seeded hash of the row number."""
    proba = spec.prediction_proba or "probability"
    return connection.execute(
        f"""
        with reference_rows as (
            select * from raw.reference_rows
            where model_name = ? and model_version = ?
            {_sampled("row_number::varchar", max_rows, seed)}
        )
        select {_feature_columns(spec, "reference_rows")},
               prediction as {quote_identifier(spec.prediction)}
               {_as("probability", proba)}
               {_as("label", spec.target)}
        from reference_rows
        order by row_number
        """,
        [spec.model, model_version],
    ).df()


def reference_summary(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, model_version: int
) -> RowsSummary:
    """A model version's reference rows and their newest `loaded_at`, counted in SQL."""
    n_rows, newest = connection.execute(
        "select count(*), max(loaded_at) from raw.reference_rows where model_name = ? and model_version = ?",
        [spec.model, model_version],
    ).fetchone()
    return RowsSummary(n_rows=int(n_rows), newest=str(newest))
