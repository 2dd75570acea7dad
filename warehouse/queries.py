"""Reads of the published warehouse as pandas frames in the spec's own column names: what the
Evidently reports and retraining consume. All take a (read-only) connection."""

from __future__ import annotations

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


def _as(expression: str, name: str | None) -> str:
    """`expression as "name"`, or nothing when the spec has no such column (e.g. no target)."""
    return f", {expression} as {quote_identifier(name)}" if name else ""


def labelled_rows(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, limit: int, since: datetime | None = None
) -> pd.DataFrame:
    """The `limit` most recent labelled production rows (scored at or after `since`, if given):
    id, timestamp, features, target."""
    return connection.execute(
        f"""
        select logs.request_id as {quote_identifier(spec.id)},
               logs.scored_at as {quote_identifier(spec.timestamp)},
               {_feature_columns(spec, "logs")}
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


def window_rows(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, window_start: datetime, window_end: datetime
) -> pd.DataFrame:
    """The production rows scored in [window_start, window_end), with prediction, probability and
    the label where one arrived."""
    proba = spec.prediction_proba or "probability"
    return connection.execute(
        f"""
        select logs.request_id as {quote_identifier(spec.id)},
               logs.scored_at as {quote_identifier(spec.timestamp)},
               {_feature_columns(spec, "logs")},
               logs.prediction as {quote_identifier(spec.prediction)}
               {_as("logs.probability", proba)}
               {_as("labels.label", spec.target)}
        from raw.inference_log as logs
        left join raw.labels as labels
            on labels.model_name = logs.model_name and labels.request_id = logs.request_id
        where logs.model_name = ? and logs.scored_at >= ? and logs.scored_at < ?
        order by logs.scored_at, logs.request_id
        """,
        [spec.model, window_start, window_end],
    ).df()


def reference_rows(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, model_version: int
) -> pd.DataFrame:
    """A model version's reference set: features, prediction, probability and label."""
    proba = spec.prediction_proba or "probability"
    return connection.execute(
        f"""
        select {_feature_columns(spec, "reference_rows")},
               prediction as {quote_identifier(spec.prediction)}
               {_as("probability", proba)}
               {_as("label", spec.target)}
        from raw.reference_rows
        where model_name = ? and model_version = ?
        order by row_number
        """,
        [spec.model, model_version],
    ).df()
