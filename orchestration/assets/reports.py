"""The Evidently report of a window: Evidently's own drift numbers beside driftmart's, per window.

Reads the published copy only (never the warehouse a run is writing), so it runs beside the
pipeline without taking the writer lock. The files and the workspace run are ml/reports.py's.

Beside a window's report, `.driftmart-inputs` holds a digest of everything the report and its
metadata were made from (the window's rows, the reference rows, driftmart's marts for the window,
the spec, the config, the Evidently version and this code). With `only_if_changed` (what
`driftmart run` sets), a report whose inputs have not changed is not built again, and Evidently is
not even imported: the step only confirms the report (the marker then names the build whose
published marts it was checked against: orchestration/state.py) and materializes nothing.
"""

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd

import ml.reports
from ml.reports import (
    DEFAULT_MAX_ROWS,
    DEFAULT_SEED,
    REPORT_HTML,
    REPORT_JSON,
    SUMMARY_JSON,
    ColumnDrift,
    SavedReport,
    build_drift_report,
    evidently_ui_command,
    report_directory,
    save_report,
)
from ml.spec import ModelSpec
from orchestration.resources import DriftmartResource
from orchestration.state import REPORT_INPUTS_FILE, latest_reported_window, published_build_key, report_marker
from warehouse.connection import NothingPublishedError, connect_published
from warehouse.home import Home
from warehouse.queries import reference_rows, window_rows

EVIDENTLY_REPORT = dg.AssetKey(["reports", "evidently_drift"])
FEATURE_DRIFT = dg.AssetKey(["marts", "fct_feature_drift"])
# orchestration/assets/publish.py's key, spelled out: importing that module would parse the dbt project.
PUBLISHED = dg.AssetKey(["published", "driftmart_duckdb"])
BAR_WIDTH = 24


class EvidentlyReportConfig(dg.Config):
    """Which window to report and how much of it Evidently sees."""

    window_start: str = ""  # ISO-8601 start of the window, e.g. 2026-03-04T00:00:00; empty: the latest
    max_rows: int = DEFAULT_MAX_ROWS  # rows per side at most; larger windows are sampled
    seed: int = DEFAULT_SEED
    only_if_changed: bool = False  # skip a report whose inputs are those of the window's last report


def _parse_window_start(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise dg.Failure(description=f"config window_start: {text!r} is not an ISO-8601 timestamp") from None
    # Windows are stored in UTC without a time zone (docs/architecture.md §3.3).
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _latest_window_start(connection: duckdb.DuckDBPyConnection, spec: ModelSpec) -> datetime:
    """The newest window of the model that has a reference to compare with."""
    latest = latest_reported_window(connection, spec)
    if latest is None:
        raise dg.Failure(
            description=f"no window of model {spec.model!r} with a reference in the published warehouse: "
            "run the pipeline (`driftmart run`) after logging predictions"
        )
    return latest


def _window_feature_drift(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, window_start: datetime
) -> pd.DataFrame:
    frame = connection.execute(
        """
        select feature_name, window_start, window_end, reference_id, reference_version,
               drift_method, drift_score, threshold, is_drifted
        from marts.fct_feature_drift
        where model_name = ? and window_start = ?
        order by feature_name
        """,
        [spec.model, window_start],
    ).df()
    if frame.empty:
        raise dg.Failure(
            description=f"model {spec.model!r} has no window starting at {window_start.isoformat()} "
            "in marts.fct_feature_drift of the published warehouse"
        )
    return frame


def _reference(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, reference_id: Any, reference_version: Any
) -> pd.DataFrame:
    """The rows the window was judged against, as the marts chose them (int_window_references):
    `model_version:<v>`, `window:<start>` (previous window) or `time_range:<start>/<end>`."""
    if pd.notna(reference_version):
        return reference_rows(connection, spec, int(reference_version))
    reference = str(reference_id) if pd.notna(reference_id) else ""
    kind, _, value = reference.partition(":")
    if kind == "window":
        start = datetime.fromisoformat(value)
        return window_rows(connection, spec, start, start + timedelta(seconds=spec.window_seconds))
    if kind == "time_range":
        start, _, end = value.partition("/")
        return window_rows(connection, spec, datetime.fromisoformat(start), datetime.fromisoformat(end))
    raise dg.Failure(description=f"model {spec.model!r}: the window has no usable reference ({reference!r})")


def _score(value: Any) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.4g}"


def _verdict(value: Any) -> str:
    return "—" if value is None or pd.isna(value) else ("**yes**" if value else "no")


def summary_table(saved: SavedReport, marts: pd.DataFrame) -> str:
    """Markdown: Evidently's verdict per column beside driftmart's (marts.fct_feature_drift)."""
    ours = marts.set_index("feature_name")
    lines = [
        "| column | role | Evidently method | Evidently score | threshold | Evidently drifted? "
        "| driftmart method | driftmart drift_score | driftmart is_drifted? |",
        "|---|---|---|--:|--:|:-:|---|--:|:-:|",
    ]
    for drift in (*saved.report.features, *saved.report.outputs):
        mart = ours.loc[drift.column] if drift.column in ours.index else None
        lines.append(
            f"| {drift.column} | {drift.role} | {drift.method} | {drift.drift_score:.4g} "
            f"| {drift.threshold:g} | {_verdict(drift.is_drifted)} "
            f"| {'—' if mart is None or pd.isna(mart['drift_method']) else mart['drift_method']} "
            f"| {_score(None if mart is None else mart['drift_score'])} "
            f"| {_verdict(None if mart is None else mart['is_drifted'])} |"
        )
    for column, reason in saved.report.skipped.items():
        lines.append(f"| {column} | not judged: {reason} | | | | | | | |")
    report = saved.report
    lines.append("")
    lines.append(
        f"Evidently: {report.n_drifted} of {len(report.features)} features drifted "
        f"(share {report.share_drifted:.3f}; dataset drift at ≥ {report.drift_share:g}: "
        f"{'**yes**' if report.is_dataset_drifted else 'no'})."
    )
    return "\n".join(lines)


def _threshold_multiple(drift: ColumnDrift) -> float:
    """How far past its threshold a score is, 1.0 at the line and larger towards drift. Distances
    drift above the threshold; p-value tests below it, so they compare on a -log scale. Which kind
    a method is follows from Evidently's own verdict."""
    higher_is_drift = drift.is_drifted == (drift.drift_score >= drift.threshold)
    if higher_is_drift:
        return drift.drift_score / drift.threshold if drift.threshold > 0 else 0.0
    return (
        math.log(max(drift.drift_score, 1e-300)) / math.log(drift.threshold)
        if 0 < drift.threshold < 1
        else 0.0
    )


def score_bars(saved: SavedReport) -> str:
    """A text bar chart of each column's score as a multiple of its threshold."""
    drifts = (*saved.report.features, *saved.report.outputs)
    width = max(len(drift.column) for drift in drifts)
    half = BAR_WIDTH // 2
    rows = []
    for drift in drifts:
        multiple = _threshold_multiple(drift)
        filled = min(BAR_WIDTH, round(multiple * half))
        bar = "█" * filled + "·" * (BAR_WIDTH - filled)
        flag = "  drifted" if drift.is_drifted else ""
        rows.append(f"{drift.column.ljust(width)} {bar[:half]}|{bar[half:]} {multiple:6.2f}×{flag}")
    legend = "score as a multiple of its threshold ('|' = threshold, bar capped at 2×)"
    return "```\n" + "\n".join(rows) + f"\n```\n{legend}"


def _frame_digest(frame: pd.DataFrame) -> bytes:
    columns = ",".join(f"{name}:{dtype}" for name, dtype in frame.dtypes.items()).encode()
    try:
        rows = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    except TypeError:  # unhashable cells (lists, dicts): their JSON text
        rows = frame.to_json(orient="values", date_format="iso", double_precision=15).encode()
    return hashlib.sha256(columns + b"\0" + rows).digest()


def inputs_digest(settings: dict[str, Any], *frames: pd.DataFrame) -> str:
    """What a report is made from: `settings` (spec, window, reference, config) and `frames`, with
    the Evidently version and the code that turns them into a report."""
    code = b"".join(Path(module).read_bytes() for module in (__file__, ml.reports.__file__))
    described = {
        **settings,
        "evidently": package_metadata.version("evidently"),
        "code": hashlib.sha256(code).hexdigest(),
    }
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode())
    for frame in frames:
        digest.update(_frame_digest(frame))
    return digest.hexdigest()


def _is_current(directory: Path, digest: str) -> bool:
    marker = directory / REPORT_INPUTS_FILE
    files = [directory / name for name in (REPORT_HTML, REPORT_JSON, SUMMARY_JSON)]
    if not (marker.exists() and all(path.exists() for path in files)):
        return False
    return marker.read_text().split("\n", 1)[0] == digest


def _write_marker(home: Home, directory: Path, digest: str) -> None:
    """The report's inputs and the build it was made from (orchestration/state.py reads both)."""
    partial = directory / f".{REPORT_INPUTS_FILE}.partial"
    partial.write_text(report_marker(digest, published_build_key(home)))
    partial.replace(directory / REPORT_INPUTS_FILE)


@dg.asset(
    key=EVIDENTLY_REPORT,
    deps=[FEATURE_DRIFT, PUBLISHED],
    group_name="reports",
    kinds={"evidently"},
    output_required=False,
)
def evidently_report(
    context: dg.AssetExecutionContext, config: EvidentlyReportConfig, driftmart: DriftmartResource
):
    """Evidently 0.7 drift report (HTML + JSON) of the latest window, or of `window_start`, with
    ValueDrift for prediction and target; added to the Evidently workspace under the home. With
    `only_if_changed`, nothing is materialized when the window's report is already of these inputs."""
    home, spec = driftmart.home, driftmart.spec()
    try:
        connection = connect_published(home)
    except NothingPublishedError as error:
        raise dg.Failure(description=f"cannot build the Evidently report: {error}") from error
    with connection:
        window_start = (
            _parse_window_start(config.window_start)
            if config.window_start
            else _latest_window_start(connection, spec)
        )
        marts = _window_feature_drift(connection, spec, window_start)
        window_end = marts["window_end"].iloc[0].to_pydatetime()
        reference_id, reference_version = marts["reference_id"].iloc[0], marts["reference_version"].iloc[0]
        current = window_rows(connection, spec, window_start, window_end)
        reference = _reference(connection, spec, reference_id, reference_version)
    reference_label = str(reference_id) if pd.notna(reference_id) else f"model_version:{reference_version}"
    directory = report_directory(home, spec.model, window_start)
    settings = {
        "spec": spec.to_dict(),
        "window": [window_start.isoformat(), window_end.isoformat()],
        "reference": reference_label,
        "max_rows": config.max_rows,
        "seed": config.seed,
    }
    digest = inputs_digest(settings, current, reference, marts)
    if config.only_if_changed and _is_current(directory, digest):
        _write_marker(home, directory, digest)  # confirmed against the marts published now
        context.log.info(
            f"{spec.model}: the report of window {window_start.isoformat()} is of the same rows, "
            "reference and marts: not built again"
        )
        return
    context.log.info(
        f"{spec.model}: window {window_start.isoformat()} ({len(current)} rows) "
        f"against {reference_label} ({len(reference)} rows)"
    )

    report = build_drift_report(
        spec,
        current,
        reference,
        max_rows=config.max_rows,
        seed=config.seed,
        timestamp=window_start,
        name=f"{spec.model} {window_start.isoformat()}",
        metadata={
            "model": spec.model,
            "window_start": window_start.isoformat(),
            "window_end": window_end.isoformat(),
            "reference": reference_label,
        },
    )
    saved = save_report(home, spec, report, window_start)
    _write_marker(home, saved.directory, digest)

    metadata: dict[str, Any] = {
        "report_html": dg.MetadataValue.path(str(saved.html)),
        "report_url": dg.MetadataValue.url(saved.html.as_uri()),
        "report_json": dg.MetadataValue.path(str(saved.json)),
        "evidently_ui": dg.MetadataValue.md(f"`{evidently_ui_command(saved.workspace)}`"),
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "reference": reference_label,
        "drift_summary": dg.MetadataValue.md(summary_table(saved, marts)),
        "drift_score_bars": dg.MetadataValue.md(score_bars(saved)),
        "share_drifted": dg.MetadataValue.float(report.share_drifted),
        "n_drifted": dg.MetadataValue.int(report.n_drifted),
        "is_dataset_drifted": dg.MetadataValue.bool(report.is_dataset_drifted),
        "current_rows": dg.MetadataValue.int(report.current.n_rows),
        "current_rows_sampled": dg.MetadataValue.int(report.current.n_used),
        "reference_rows": dg.MetadataValue.int(report.reference.n_rows),
        "reference_rows_sampled": dg.MetadataValue.int(report.reference.n_used),
        "seed": dg.MetadataValue.int(report.seed),
    }
    # Numeric entries are what the Dagster UI plots across materializations (the asset's Plots tab).
    for drift in (*report.features, *report.outputs):
        metadata[f"evidently_score/{drift.column}"] = dg.MetadataValue.float(drift.drift_score)
    yield dg.MaterializeResult(metadata=metadata)
