"""Evidently drift reports of one window: plain frames in, HTML + JSON + an Evidently workspace run out.

A report holds Evidently 0.7's `DataDriftPreset` over the spec's features (their types declared in a
`DataDefinition`, never guessed) and `ValueDrift` for the model's outputs: the prediction, the
probability (classifiers) and the target where enough labels exist. These are Evidently's own
numbers with its own defaults (docs/architecture.md §5), shown beside driftmart's marts, so the two
can differ unless the spec asks for `statistics: evidently`.

Files: `<home>/reports/<model>/<window_start:%Y%m%dT%H%M%S>/report.html|report.json|summary.json`,
and one run per window in the workspace `<home>/reports/workspace` (one project per model), so
`evidently ui --workspace <home>/reports/workspace --port 8001` shows the history. Saving a window
again replaces its files and its workspace run.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.errors import DriftmartError
from ml.spec import ModelSpec
from warehouse.home import Home

# The port the Evidently UI is suggested on: Evidently's default, 8000, is `driftmart serve`'s too.
EVIDENTLY_UI_PORT = 8001


def evidently_ui_command(workspace: Path, executable: str = "evidently") -> str:
    """The command that shows a workspace's reports in the Evidently UI."""
    return f"{executable} ui --workspace {workspace} --port {EVIDENTLY_UI_PORT}"


# Evidently is imported by the functions that run or save a report, never at import time: it costs
# seconds, and importing this module (the Dagster definitions do) must not pay them.
if TYPE_CHECKING:
    from evidently.core.report import Snapshot
    from evidently.ui.workspace import Project, Workspace

# Evidently's cost and the HTML's size grow with the rows; 20,000 a side keeps a report to seconds
# while the drift statistics barely move (their sampling error is ~1/sqrt(n)).
DEFAULT_MAX_ROWS = 20_000
DEFAULT_SEED = 0
WINDOW_DIRECTORY_FORMAT = "%Y%m%dT%H%M%S"
WORKSPACE_DIRECTORY = "workspace"
REPORT_HTML = "report.html"
REPORT_JSON = "report.json"
SUMMARY_JSON = "summary.json"
VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
DRIFTED_COLUMNS_COUNT = "evidently:metric_v2:DriftedColumnsCount"


class ReportError(DriftmartError):
    """A report that cannot be built from the data given (no rows, no usable column)."""


@dataclass(frozen=True)
class SampleSize:
    """Rows available on one side and rows Evidently saw after sampling."""

    n_rows: int
    n_used: int

    @property
    def is_sampled(self) -> bool:
        return self.n_used < self.n_rows


@dataclass(frozen=True)
class ColumnDrift:
    """Evidently's verdict on one column: its method, score, threshold and whether drift was found."""

    column: str
    role: str  # feature | prediction | probability | target
    column_type: str  # numeric | categorical
    method: str
    threshold: float
    drift_score: float
    is_drifted: bool


@dataclass(frozen=True)
class DriftReport:
    """One Evidently run and what it found, in plain values (the snapshot renders the HTML)."""

    snapshot: Snapshot
    features: tuple[ColumnDrift, ...]
    outputs: tuple[ColumnDrift, ...]
    n_drifted: int
    share_drifted: float
    drift_share: float
    current: SampleSize
    reference: SampleSize
    seed: int
    skipped: dict[str, str] = field(default_factory=dict)  # column: why Evidently did not judge it

    @property
    def is_dataset_drifted(self) -> bool:
        return self.share_drifted >= self.drift_share

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [column.__dict__ for column in self.features],
            "outputs": [column.__dict__ for column in self.outputs],
            "n_drifted": self.n_drifted,
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "is_dataset_drifted": self.is_dataset_drifted,
            "current": {**self.current.__dict__, "is_sampled": self.current.is_sampled},
            "reference": {**self.reference.__dict__, "is_sampled": self.reference.is_sampled},
            "seed": self.seed,
            "skipped": dict(self.skipped),
        }


@dataclass(frozen=True)
class SavedReport:
    """Where a report went: its files and its run in the Evidently workspace."""

    report: DriftReport
    directory: Path
    html: Path
    json: Path
    summary: Path
    workspace: Path
    project_id: str
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.report.to_dict(),
            "html": str(self.html),
            "json": str(self.json),
            "workspace": str(self.workspace),
            "project_id": self.project_id,
            "run_id": self.run_id,
        }


def _labels(values: pd.Series) -> pd.Series:
    """Category values as text, so `1`, `1.0` and `"1"` from different sources are one category."""

    def text(value: Any) -> str:
        if isinstance(value, float | np.floating) and float(value).is_integer():
            return str(int(value))
        return str(value)

    return values.map(text, na_action="ignore").astype(object)


def _sample(frame: pd.DataFrame, max_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=rng).sort_index()


def _outputs(spec: ModelSpec) -> list[tuple[str, str, str]]:
    """(column, role, type) of the model's outputs; predictions and labels are categories."""
    outputs = [(spec.prediction, "prediction", "categorical")]
    if spec.prediction_proba:
        outputs.append((spec.prediction_proba, "probability", "numeric"))
    if spec.target:
        outputs.append((spec.target, "target", "categorical"))
    return outputs


def _typed(frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    typed = {}
    for name, kind in columns.items():
        values = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
        if kind == "numeric":
            typed[name] = (
                pd.to_numeric(values, errors="coerce").astype(float).replace([np.inf, -np.inf], np.nan)
            )
        else:
            typed[name] = _labels(values)
    return pd.DataFrame(typed, index=frame.index)


def _column_drifts(snapshot: Snapshot, roles: Mapping[str, tuple[str, str]]) -> dict[str, ColumnDrift]:
    """Per-column results from the snapshot's plain dict (what `report.json` holds): the score from
    each ValueDrift metric, the verdict from its test (Evidently's own `drift_detected`)."""
    results = snapshot.dict()
    detected = {
        test["metric_config"]["metric_id"]: test["status"] == "FAIL"
        for test in results["tests"]
        if test["id"] == "drift"
    }
    drifts = {}
    for metric in results["metrics"]:
        config = metric["config"]
        if config["type"] != VALUE_DRIFT or config["column"] not in roles:
            continue
        role, kind = roles[config["column"]]
        drifts[config["column"]] = ColumnDrift(
            column=config["column"],
            role=role,
            column_type=kind,
            method=str(config["method"]),
            threshold=float(config["threshold"]),
            drift_score=float(metric["value"]),
            is_drifted=detected[metric["id"]],
        )
    return drifts


def build_drift_report(
    spec: ModelSpec,
    current: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = DEFAULT_SEED,
    min_labelled_rows: int | None = None,
    timestamp: datetime | None = None,
    name: str | None = None,
    metadata: Mapping[str, str] | None = None,
    n_current_rows: int | None = None,
    n_reference_rows: int | None = None,
) -> DriftReport:
    """Run Evidently on a window (`current`) against its reference, both in the spec's column names.

    Each side is sampled to at most `max_rows` rows (seeded: the same input gives the same report).
    A side already sampled by its reader (warehouse/queries.py samples in SQL) passes the rows it
    was sampled from as `n_current_rows` / `n_reference_rows`: what `SampleSize.n_rows` reports.
    The target is judged only when both sides have at least `min_labelled_rows` labels (default: the
    spec's `min_window_rows`); a column without values on a side is skipped, with the reason kept.
    `timestamp` (e.g. the window start) orders the runs in the Evidently UI.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    for side, frame, total in (
        ("current", current, n_current_rows),
        ("reference", reference, n_reference_rows),
    ):
        if total is not None and total < len(frame):
            raise ValueError(f"n_{side}_rows is {total}, fewer than the {len(frame)} {side} rows given")
    for side, frame in (("current", current), ("reference", reference)):
        if frame.empty:
            raise ReportError(f"{spec.model}: the {side} data has no rows: nothing to compare")
    min_labelled = spec.min_window_rows if min_labelled_rows is None else min_labelled_rows

    rng = np.random.default_rng(seed)
    current_sample = _sample(current, max_rows, rng)
    reference_sample = _sample(reference, max_rows, rng)

    declared = dict(spec.features) | {column: kind for column, _, kind in _outputs(spec)}
    current_typed = _typed(current_sample, declared)
    reference_typed = _typed(reference_sample, declared)
    counts = {
        column: (int(current_typed[column].notna().sum()), int(reference_typed[column].notna().sum()))
        for column in declared
    }
    skipped: dict[str, str] = {}
    for column, (n_current, n_reference) in counts.items():
        if min(n_current, n_reference) == 0:
            side = "current" if n_current == 0 else "reference"
            skipped[column] = f"no values in the {side} data"
    n_current_labels, n_reference_labels = counts[spec.target] if spec.target else (0, 0)
    if (
        spec.target
        and spec.target not in skipped
        and min(n_current_labels, n_reference_labels) < min_labelled
    ):
        skipped[spec.target] = (
            f"{n_current_labels} labelled rows in the current data and {n_reference_labels} in the "
            f"reference, fewer than {min_labelled} on a side"
        )

    features = [name for name in spec.features if name not in skipped]
    outputs = [(column, role, kind) for column, role, kind in _outputs(spec) if column not in skipped]
    if not features:
        raise ReportError(f"{spec.model}: no feature has values on both sides: {skipped}")
    used = features + [column for column, _, _ in outputs]
    definition = DataDefinition(
        numerical_columns=[column for column in used if declared[column] == "numeric"],
        categorical_columns=[column for column in used if declared[column] == "categorical"],
    )
    drift_share = spec.thresholds["dataset_drift_share"]
    report = Report(
        [
            DataDriftPreset(columns=features, drift_share=drift_share),
            *(ValueDrift(column=column) for column, _, _ in outputs),
        ],
        include_tests=True,  # the per-column tests carry Evidently's drift_detected verdicts
    )
    snapshot = report.run(
        Dataset.from_pandas(current_typed[used], data_definition=definition),
        Dataset.from_pandas(reference_typed[used], data_definition=definition),
        timestamp=timestamp,
        name=name,
        metadata=dict(metadata or {}),
        tags=["driftmart", spec.model],
    )

    roles = {name: ("feature", spec.features[name]) for name in features}
    roles |= {column: (role, kind) for column, role, kind in outputs}
    drifts = _column_drifts(snapshot, roles)
    feature_drifts = tuple(drifts[name] for name in features)
    n_drifted = sum(drift.is_drifted for drift in feature_drifts)
    return DriftReport(
        snapshot=snapshot,
        features=feature_drifts,
        outputs=tuple(drifts[column] for column, _, _ in outputs),
        n_drifted=n_drifted,
        share_drifted=n_drifted / len(feature_drifts),
        drift_share=drift_share,
        current=SampleSize(
            n_rows=len(current) if n_current_rows is None else n_current_rows, n_used=len(current_sample)
        ),
        reference=SampleSize(
            n_rows=len(reference) if n_reference_rows is None else n_reference_rows,
            n_used=len(reference_sample),
        ),
        seed=seed,
        skipped=skipped,
    )


def report_directory(home: Home, model: str, window_start: datetime) -> Path:
    return home.reports / model / window_start.strftime(WINDOW_DIRECTORY_FORMAT)


def workspace_path(home: Home) -> Path:
    return home.reports / WORKSPACE_DIRECTORY


@contextmanager
def _workspace_lock(path: Path) -> Iterator[None]:
    """Serialise writers of one workspace, so two runs never create a model's project twice."""
    path.mkdir(parents=True, exist_ok=True)
    with (path / ".driftmart.lock").open("a") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _project(workspace: Workspace, spec: ModelSpec) -> Project:
    """The model's project, found by name; created once, with a dashboard of the drift history."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import counter_panel, line_plot_panel

    found = workspace.search_project(spec.model)
    if found:
        return found[0]
    project = workspace.create_project(spec.model, description=f"driftmart drift reports of {spec.model}")

    def series(columns: list[str]) -> list[PanelMetric]:
        return [
            PanelMetric(legend=column, metric=VALUE_DRIFT, metric_labels={"column": column})
            for column in columns
        ]

    project.dashboard.add_panel(
        counter_panel(
            title="Share of drifted features (latest window)",
            values=[
                PanelMetric(
                    legend="share", metric=DRIFTED_COLUMNS_COUNT, metric_labels={"value_type": "share"}
                )
            ],
            size="half",
            aggregation="last",
        )
    )
    project.dashboard.add_panel(
        line_plot_panel(
            title="Share of drifted features per window",
            values=[
                PanelMetric(
                    legend="share", metric=DRIFTED_COLUMNS_COUNT, metric_labels={"value_type": "share"}
                )
            ],
            size="half",
        )
    )
    project.dashboard.add_panel(
        line_plot_panel(title="Feature drift scores per window", values=series(list(spec.features)))
    )
    outputs = [column for column, _, _ in _outputs(spec)]
    project.dashboard.add_panel(
        line_plot_panel(title="Prediction and target drift scores per window", values=series(outputs))
    )
    return project


def _write_atomically(path: Path, write: Any) -> None:
    """Write through a temporary file and rename, so a reader never sees a half-written report."""
    partial = path.with_name(f".{path.name}.partial")
    write(str(partial))
    os.replace(partial, path)


def save_report(home: Home, spec: ModelSpec, report: DriftReport, window_start: datetime) -> SavedReport:
    """Write the report's HTML, JSON and summary for the window and add it to the workspace,
    replacing what an earlier save of the same window left."""
    directory = report_directory(home, spec.model, window_start)
    directory.mkdir(parents=True, exist_ok=True)
    html, report_json, summary = directory / REPORT_HTML, directory / REPORT_JSON, directory / SUMMARY_JSON
    _write_atomically(html, report.snapshot.save_html)
    _write_atomically(report_json, report.snapshot.save_json)

    from evidently.ui.workspace import Workspace

    workspace_dir = workspace_path(home)
    with _workspace_lock(workspace_dir):
        workspace = Workspace(str(workspace_dir))
        project = _project(workspace, spec)
        if summary.exists():
            previous = json.loads(summary.read_text())
            known_runs = {str(run_id) for run_id in workspace.list_runs(project.id)}
            if previous.get("run_id") in known_runs:
                workspace.delete_run(project.id, previous["run_id"])
        run = workspace.add_run(project.id, report.snapshot)

    saved = SavedReport(
        report=report,
        directory=directory,
        html=html,
        json=report_json,
        summary=summary,
        workspace=workspace_dir,
        project_id=str(project.id),
        run_id=str(run.id),
    )
    payload = {"model": spec.model, "window_start": window_start.isoformat(), **saved.to_dict()}

    def write_summary(path: str) -> None:
        Path(path).write_text(json.dumps(payload, indent=2) + "\n")

    _write_atomically(summary, write_summary)
    return saved
