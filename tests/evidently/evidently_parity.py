"""Helpers for the Evidently-parity tests of `int_feature_drift_evidently`: raw rows written to a
temporary warehouse, `dbt build` of the model and its parents, and Evidently 0.7.23 itself run on
the same reference / current data (not a re-implementation).

A feature value is a Python value as the client sent it: a number, a string, None (JSON null),
MISSING (the key is absent), or a non-finite float. The warehouse gets it as JSON (non-finite floats
as the strings "NaN" / "Infinity" / "-Infinity", which the staging layer reads as not-a-number);
Evidently gets the pandas frame built from the same dicts, so an all-int column is int64 and a
column with a missing value is float64, as pandas would give it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
SCHEMA_SQL = REPO_ROOT / "warehouse" / "schema.sql"
DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")
SELECTION = "+int_feature_drift_evidently"
WINDOW_SECONDS = 86_400
LOADED_AT = datetime(2024, 5, 1)
MISSING = object()  # the key is absent from the row's JSON
# Evidently's stattest names and the columns of int_feature_drift_evidently they give.
STATTESTS = {"psi": "psi", "jensenshannon": "js_distance", "wasserstein": "wasserstein_normed"}


@dataclass
class MonitoredModel:
    """One model of the fixture: its spec row, its reference sets and its production rows."""

    name: str
    features: dict[str, str]
    reference_kind: str = "model_version"
    statistics: str = "evidently"
    reference_sets: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    windows: list[list[dict[str, Any]]] = field(default_factory=list)  # row dicts per window
    first_window: datetime = datetime(2024, 4, 1)
    request_prefix: str = "a"  # request ids are <model>-<prefix>-<window index>-<row number>

    def window_start(self, index: int) -> datetime:
        return self.first_window + timedelta(seconds=index * WINDOW_SECONDS)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def feature_maps(row: dict[str, Any], features: dict[str, str]) -> tuple[str, str]:
    """The row as raw's two typed maps (sent as JSON): numeric features' values as numbers
    (non-finite ones kept: the warehouse must treat them as missing), categorical ones as text
    (a number as its JSON text); MISSING keys left out."""
    present = {key: value for key, value in row.items() if value is not MISSING}
    numbers = {key: _json_value(value) for key, value in present.items() if features[key] == "numeric"}
    categories = {
        key: value if value is None or isinstance(value, str) else json.dumps(value)
        for key, value in present.items()
        if features[key] != "numeric"
    }
    return json.dumps(numbers), json.dumps(categories)


# raw's typed maps from the JSON of feature_maps (DuckDB reads "NaN"/"Infinity" strings as doubles)
MAPS_SQL = (
    """from_json(feature_numbers, '"MAP(VARCHAR, DOUBLE)"'), """
    """from_json(feature_categories, '"MAP(VARCHAR, VARCHAR)"')"""
)


def _pandas_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if value is not MISSING}


# --- the warehouse side -------------------------------------------------------------------------


def write_warehouse(
    database: Path, models: list[MonitoredModel], loaded_at: datetime = LOADED_AT, create: bool = True
) -> None:
    """Create the raw tables and the models' spec rows (create=True), then load the models' reference
    sets and window rows with `loaded_at` (a later load appends rows)."""
    import duckdb

    with duckdb.connect(str(database)) as connection:
        if create:
            connection.execute(SCHEMA_SQL.read_text())
        for model in models:
            if create:
                _insert_spec(connection, model)
            _insert_rows(connection, model, loaded_at)


def _insert_spec(connection: Any, model: MonitoredModel) -> None:
    connection.execute(
        "insert into raw.monitored_models (model_name, window_seconds, min_window_rows, "
        "reference_kind, reference_start_at, reference_end_at, statistics, dataset_drift_share, "
        "positive_label, spec, loaded_at) values (?, ?, 1, ?, null, null, ?, 0.5, '1', '{}', ?)",
        [model.name, WINDOW_SECONDS, model.reference_kind, model.statistics, LOADED_AT],
    )
    connection.executemany(
        "insert into raw.model_features (model_name, feature_name, feature_type, "
        "feature_position, drift_method, drift_threshold, loaded_at) values (?, ?, ?, ?, ?, 0.1, ?)",
        [
            [
                model.name,
                name,
                kind,
                position,
                "wasserstein_normed" if kind == "numeric" else "js_distance",
                LOADED_AT,
            ]
            for position, (name, kind) in enumerate(model.features.items(), start=1)
        ],
    )


def _insert_rows(connection: Any, model: MonitoredModel, loaded_at: datetime) -> None:
    reference_rows = [
        [model.name, version, number, *feature_maps(row, model.features), loaded_at]
        for version, rows in model.reference_sets.items()
        for number, row in enumerate(rows, start=1)
    ]
    if reference_rows:
        _insert_frame(
            connection,
            "raw.reference_rows (model_name, model_version, row_number, feature_numbers, "
            "feature_categories, loaded_at)",
            pd.DataFrame(
                reference_rows,
                columns=[
                    "model_name",
                    "model_version",
                    "row_number",
                    "feature_numbers",
                    "feature_categories",
                    "loaded_at",
                ],
            ),
            f"model_name, model_version, row_number, {MAPS_SQL}, loaded_at",
        )
    inference_rows = []
    for index, rows in enumerate(model.windows):
        start = model.window_start(index)
        for number, row in enumerate(rows):
            scored_at = start + timedelta(seconds=int(number * (WINDOW_SECONDS - 1) / len(rows)))
            inference_rows.append(
                [
                    model.name,
                    f"{model.name}-{model.request_prefix}-{index}-{number}",
                    1,
                    *feature_maps(row, model.features),
                    scored_at,
                ]
            )
    frame = pd.DataFrame(
        inference_rows,
        columns=[
            "model_name",
            "request_id",
            "model_version",
            "feature_numbers",
            "feature_categories",
            "scored_at",
        ],
    )
    frame["received_at"] = frame["scored_at"]
    frame["loaded_at"] = loaded_at
    frame["source"] = "fixture"
    if frame.empty:
        return
    _insert_frame(
        connection,
        "raw.inference_log (model_name, request_id, model_version, feature_numbers, "
        "feature_categories, scored_at, received_at, loaded_at, source)",
        frame,
        f"model_name, request_id, model_version, {MAPS_SQL}, scored_at, received_at, loaded_at, source",
    )


def _insert_frame(connection: Any, target: str, frame: pd.DataFrame, select: str = "*") -> None:
    connection.register("fixture_frame", frame)
    connection.execute(f"insert into {target} select {select} from fixture_frame")
    connection.unregister("fixture_frame")


def run_dbt(home: Path, *arguments: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """`dbt <arguments> --project-dir dbt_project --profiles-dir dbt_project` on a temporary home."""
    env = dict(os.environ)
    env.update(
        DRIFTMART_HOME=str(home),
        DBT_TARGET_PATH=str(home / "dbt_target"),
        DBT_LOG_PATH=str(home / "dbt_logs"),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    command = [
        str(DBT_EXECUTABLE),
        *arguments,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    return result, time.perf_counter() - started


def build(home: Path) -> float:
    """Build the model and its parents (tests included); return the seconds it took."""
    result, seconds = run_dbt(home, "build", "--select", SELECTION)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return seconds


def model_timings(home: Path) -> dict[str, float]:
    results = json.loads((home / "dbt_target" / "run_results.json").read_text())["results"]
    return {row["unique_id"]: row["execution_time"] for row in results}


def max_ingest_seq(database: Path) -> int:
    """The newest ingest number of raw.inference_log (rows loaded later get higher ones)."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute("select max(ingest_seq) from raw.inference_log").fetchall()[0][0]


def drift_rows(database: Path) -> dict[tuple[str, str, datetime], dict[str, Any]]:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        cursor = connection.execute("select * from intermediate.int_feature_drift_evidently")
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return {(row["model_name"], row["feature_name"], row["window_start"]): row for row in rows}


# --- the Evidently side --------------------------------------------------------------------------


def evidently_scores(
    reference: list[dict[str, Any]], current: list[dict[str, Any]], feature: str, feature_type: str
) -> dict[str, float | None]:
    """Evidently's drift scores for one column: `report.run(current, reference)` with ValueDrift
    and an explicit stattest. None where Evidently refuses (an empty column after dropping NaN)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    methods = ["psi", "jensenshannon"] + (["wasserstein"] if feature_type == "numeric" else [])
    definition = DataDefinition(
        numerical_columns=[feature] if feature_type == "numeric" else [],
        categorical_columns=[feature] if feature_type == "categorical" else [],
    )
    frames = [
        pd.DataFrame([_pandas_row(row) for row in rows]).reindex(columns=[feature])
        for rows in (current, reference)
    ]
    for frame in frames:
        if feature_type == "numeric" and frame[feature].isna().all():
            frame[feature] = frame[feature].astype(float)  # all None: object dtype, not a number column
    report = Report([ValueDrift(column=feature, method=method) for method in methods])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        current_data, reference_data = (
            Dataset.from_pandas(frame, data_definition=definition) for frame in frames
        )
        try:
            snapshot = report.run(current_data, reference_data)
        except ValueError as error:
            if "empty column" not in str(error):
                raise
            return {column: None for column in STATTESTS.values()}
    scores: dict[str, float | None] = {column: None for column in STATTESTS.values()}
    for metric in snapshot.dict()["metrics"]:
        scores[STATTESTS[metric["config"]["method"]]] = float(metric["value"])
    return scores


def assert_close(actual: float | None, expected: float | None, where: str) -> None:
    if expected is None:
        assert actual is None, f"{where}: expected NULL (Evidently refuses), got {actual}"
        return
    assert actual is not None, f"{where}: expected {expected!r}, got NULL"
    tolerance = max(1e-9 * abs(expected), 1e-12)
    assert abs(actual - expected) <= tolerance, f"{where}: dbt {actual!r} != Evidently {expected!r}"
