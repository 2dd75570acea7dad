"""The promotion gate's drift check, judged by the drift engine itself: does the challenger's own
reference set still drift from the held-out recent traffic?

There is one implementation of drift, the dbt project, so the gate does not re-implement it: it
builds a throwaway home on the embedded DuckDB, with the challenger's reference as the model's
reference set and the held-out rows (as the challenger would have logged them) as one window of
production traffic, runs the drift models on it and reads their verdicts. Every feature is judged by
the spec's own method and threshold and the dataset by its `dataset_drift_share`, as production
windows are. The holdout is one window however many days it spans (its timestamps are moved into one
day) and is judged whatever its size (`min_window_rows` is for windows of traffic, not for the gate).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from ml.estimators import feature_frame
from ml.spec import ModelSpec, Reference, SegmentDrift
from ml.train import TrainedModel, reference_set
from ml.validation import ReferenceDrift
from orchestration.dbt_setup import DBT_PROJECT_DIR, dbt_environment, dbt_executable, dbt_target_path
from warehouse.home import Home
from warehouse.importer import import_files
from warehouse.targets import Target

# Where the holdout's rows are placed: one closed, day-aligned window long before any real traffic.
GATE_DAY = datetime(2000, 1, 1)


class GateError(RuntimeError):
    """The drift engine could not judge the challenger's reference (the dbt run failed)."""


def gate_spec(spec: ModelSpec) -> ModelSpec:
    """The spec the gate judges with: the same features, methods and thresholds; the model's own
    reference set, one-day windows and every window judged; no segments (the gate judges the
    feature drift of the whole held-out set)."""
    return replace(
        spec, reference=Reference(), window="1d", min_window_rows=1, segments=(), segment_drift=SegmentDrift()
    )


def holdout_as_logs(spec: ModelSpec, challenger: TrainedModel, holdout: pd.DataFrame) -> pd.DataFrame:
    """The held-out rows as the challenger would have logged them, all scored within GATE_DAY."""
    logs = reference_set(
        spec, challenger.pipeline, feature_frame(spec, holdout), holdout[spec.id].astype(str), None
    )
    offsets = pd.to_timedelta(range(len(logs)), unit="us")
    logs.insert(1, spec.timestamp, pd.Timestamp(GATE_DAY) + offsets)
    return logs


def judge_reference(spec: ModelSpec, challenger: TrainedModel, holdout: pd.DataFrame) -> ReferenceDrift:
    """The drift engine's verdict on the challenger's reference against the held-out rows."""
    if len(holdout) >= timedelta(days=1) / timedelta(microseconds=1):
        raise GateError(f"{len(holdout)} held-out rows do not fit one window of the gate")
    judged = gate_spec(spec)
    with tempfile.TemporaryDirectory(prefix="driftmart-gate-") as folder:
        root = Path(folder)
        home = Home.resolve(root / "home").ensure()
        reference_path, logs_path = root / "reference.parquet", root / "holdout.parquet"
        challenger.reference.to_parquet(reference_path, index=False)
        holdout_as_logs(judged, challenger, holdout).to_parquet(logs_path, index=False)
        import_files(home, judged, reference_path, logs_path)
        _run_drift_models(home)
        with duckdb.connect(str(home.warehouse), read_only=True) as connection:
            features = connection.execute(
                """
                select feature_name, drift_method, threshold, drift_score, is_drifted
                from marts.fct_feature_drift
                where model_name = ? and has_reference
                order by feature_name
                """,
                [judged.model],
            ).fetchall()
            dataset = connection.execute(
                "select share_drifted, threshold, is_dataset_drifted from marts.fct_dataset_drift "
                "where model_name = ? and has_reference",
                [judged.model],
            ).fetchall()
    if len(dataset) != 1 or len(features) != len(spec.features):
        raise GateError(
            f"the drift engine judged {len(dataset)} window(s) and {len(features)} of "
            f"{len(spec.features)} features of the held-out rows: expected one window and every feature"
        )
    share, dataset_threshold, dataset_drifted = dataset[0]
    return ReferenceDrift(
        drifted_features=[name for name, *_, drifted in features if drifted],
        dataset_drifted=bool(dataset_drifted),
        share_drifted=float(share),
        dataset_threshold=float(dataset_threshold),
        features={
            name: {"method": method, "threshold": threshold, "score": score, "is_drifted": bool(drifted)}
            for name, method, threshold, score, drifted in features
        },
    )


def _run_drift_models(home: Home) -> None:
    environment = {**os.environ, **dbt_environment(home), **Target().dbt_environment(home)}
    command = [
        dbt_executable(),
        "run",
        "--quiet",
        "--select",
        "+fct_feature_drift",
        "+fct_dataset_drift",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(dbt_target_path(home)),
    ]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip().splitlines()
        raise GateError("dbt could not judge the challenger's reference:\n" + "\n".join(output[-30:]))
