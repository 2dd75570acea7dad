"""The Evidently report of a window: Evidently's own drift numbers beside driftmart's, per window.

Reads the published copy only (never the warehouse a run is writing), so it runs beside the
pipeline without taking the writer lock. The files and the workspace run are ml/reports.py's.

Beside a window's report, `.driftmart-inputs` holds a digest of everything the report and its
metadata were made from (the window's rows, the reference rows, driftmart's marts for the window,
the spec, the config, the Evidently version and this code). With `only_if_changed` (what
`driftmart run` sets), a report whose inputs have not changed is not built again, and Evidently is
not even imported: the step only confirms the report (the marker then names the build whose
published marts it was checked against: orchestration/state.py) and materializes nothing. The rows
enter the digest as the sample Evidently sees *and* as each side's row count and newest
`ingest_seq` (or `loaded_at`) in the warehouse, so a late row outside the sample still makes a new
report.

Which window: the one in the config, else the latest *judged* window (orchestration/state.py
`latest_reported_window`: driftmart judged it, i.e. it has a reference and at least `min_window_rows`
rows, and it is closed). Without one, the step says so (a log line and an observation of the asset)
and materializes nothing: a report of an unjudged window would show verdicts driftmart never made.

How much of it: at most `max_rows` rows a side, sampled in SQL (warehouse/queries.py: a seeded hash
of the row's id, so the same window and seed give the same sample); memory does not grow with the
window beyond `max_rows` rows.

Why verdicts differ: the metadata lists the features where Evidently's verdict (its own test,
threshold and score) and driftmart's (marts.fct_feature_drift) differ, counts the agreements, and
says in words when the two judge a feature by different tests.
"""

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from warehouse.queries import RowsSummary, reference_rows, reference_summary, window_rows, window_summary

EVIDENTLY_REPORT = dg.AssetKey(["reports", "evidently_drift"])
FEATURE_DRIFT = dg.AssetKey(["marts", "fct_feature_drift"])
# orchestration/assets/publish.py's key, spelled out: importing that module would parse the dbt project.
PUBLISHED = dg.AssetKey(["published", "driftmart_duckdb"])
BAR_WIDTH = 24
# How each side's rows are sampled when there are more than max_rows (warehouse/queries.py).
SAMPLING = "SQL: the rows ordered by hash(<row id> || ':<seed>'), the first max_rows kept"
# Evidently 0.7.23's drift tests (their display names, as the snapshot holds them) that compute the
# statistic of a driftmart drift_method. Any other pair of methods is two different tests.
EVIDENTLY_METHODS = {
    "PSI": "psi",
    "Jensen-Shannon distance": "js_distance",
    "Kullback-Leibler divergence": "kl_divergence",
    "Hellinger distance": "hellinger",
    "Wasserstein distance (normed)": "wasserstein_normed",
    "chi-square p_value": "chi2_p_value",
}


class EvidentlyReportConfig(dg.Config):
    """Which window to report and how much of it Evidently sees."""

    window_start: str = ""  # ISO-8601 start of a window, e.g. 2026-03-04T00:00:00; empty: the latest judged
    max_rows: int = DEFAULT_MAX_ROWS  # rows per side at most; larger sides are sampled in SQL
    seed: int = DEFAULT_SEED
    only_if_changed: bool = False  # skip a report whose inputs are those of the window's last report


def _parse_window_start(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise dg.Failure(description=f"config window_start: {text!r} is not an ISO-8601 timestamp") from None
    # Windows are stored in UTC without a time zone (docs/architecture.md §3.3).
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _no_judged_window(spec: ModelSpec) -> str:
    return (
        f"{spec.model}: no judged window in the published warehouse (a closed window with a reference "
        f"and at least min_window_rows = {spec.min_window_rows} rows): no Evidently report. Run the "
        "pipeline (`driftmart run`) once enough predictions are logged, or name a window in the config "
        "(window_start)"
    )


def _window_feature_drift(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, window_start: datetime
) -> pd.DataFrame:
    frame = connection.execute(
        """
        select feature_name, window_start, window_end, reference_id, reference_version,
               drift_method, drift_score, threshold, is_drifted, has_reference, is_below_min_rows
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


def reference_sample(
    connection: duckdb.DuckDBPyConnection,
    spec: ModelSpec,
    reference_id: Any,
    reference_version: Any,
    *,
    max_rows: int,
    seed: int,
) -> tuple[pd.DataFrame, RowsSummary]:
    """The rows the window was judged against, as the marts chose them (int_window_references):
    `model_version:<v>`, `window:<start>` (previous window) or `time_range:<start>/<end>`; at most
    `max_rows` of them (sampled in SQL), with how many there are."""
    if pd.notna(reference_version):
        version = int(reference_version)
        return (
            reference_rows(connection, spec, version, max_rows=max_rows, seed=seed),
            reference_summary(connection, spec, version),
        )
    reference = str(reference_id) if pd.notna(reference_id) else ""
    kind, _, value = reference.partition(":")
    if kind == "window":
        start = datetime.fromisoformat(value)
        end = start + timedelta(seconds=spec.window_seconds)
    elif kind == "time_range":
        start_text, _, end_text = value.partition("/")
        start, end = datetime.fromisoformat(start_text), datetime.fromisoformat(end_text)
    else:
        raise dg.Failure(
            description=f"model {spec.model!r}: the window has no usable reference ({reference!r})"
        )
    return (
        window_rows(connection, spec, start, end, max_rows=max_rows, seed=seed),
        window_summary(connection, spec, start, end),
    )


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


def _is_p_value(method: str) -> bool:
    """Evidently's p-value tests are named `... p_value`; driftmart's is chi2_p_value."""
    return "p_value" in method


def _direction(method: str) -> str:
    return "p-value: drift below it" if _is_p_value(method) else "distance: drift at or above it"


@dataclass(frozen=True)
class VerdictComparison:
    """Evidently's verdict per feature against driftmart's (marts.fct_feature_drift)."""

    agree: tuple[str, ...]
    disagree: tuple[tuple[ColumnDrift, Mapping[str, Any]], ...]  # (Evidently's, driftmart's mart row)
    not_compared: dict[str, str]  # feature: why one side has no verdict
    notes: tuple[str, ...]  # in words: which tests the two sides use, and what follows
    tests_differ: bool  # some compared feature is judged by different tests on the two sides


def _driftmart_unjudged(row: Mapping[str, Any] | None) -> str | None:
    """Why driftmart has no verdict on a feature of the window (None when it has one)."""
    if row is None:
        return "not in marts.fct_feature_drift"
    if not row["has_reference"]:
        return "driftmart did not judge it: no reference"
    if row["is_below_min_rows"]:
        return "driftmart did not judge it: the window has fewer than min_window_rows rows"
    if row["drift_score"] is None or pd.isna(row["drift_score"]):
        return "driftmart did not judge it: no drift_score"
    return None


def compare_verdicts(
    features: Sequence[ColumnDrift],
    skipped: Mapping[str, str],
    marts: pd.DataFrame,
    statistics: str,
) -> VerdictComparison:
    """Compare Evidently's verdict on each feature (its test, threshold, score, drifted or not) with
    driftmart's (drift_method, threshold, drift_score, is_drifted), and say which tests each uses."""
    rows = {str(row["feature_name"]): row for row in marts.to_dict("records")}
    agree: list[str] = []
    disagree: list[tuple[ColumnDrift, Mapping[str, Any]]] = []
    not_compared = {column: f"Evidently did not judge it: {reason}" for column, reason in skipped.items()}
    pairs: dict[tuple[str, float, str, float], list[str]] = {}
    for drift in features:
        row = rows.get(drift.column)
        why = _driftmart_unjudged(row)
        if why is not None:
            not_compared[drift.column] = why
            continue
        assert row is not None
        if bool(row["is_drifted"]) == drift.is_drifted:
            agree.append(drift.column)
        else:
            disagree.append((drift, row))
        key = (drift.method, drift.threshold, str(row["drift_method"]), float(row["threshold"]))
        pairs.setdefault(key, []).append(drift.column)

    notes, tests_differ = [], False
    for (method, threshold, ours, our_threshold), columns in pairs.items():
        named = ", ".join(columns)
        sides = (
            f"Evidently's {method} (threshold {threshold:g}, {_direction(method)}) against driftmart's "
            f"{ours} (threshold {our_threshold:g}, {_direction(ours)})"
        )
        if EVIDENTLY_METHODS.get(method) != ours:
            tests_differ = True
            notes.append(
                f"{named}: different tests, {sides}. The verdicts answer different questions and can "
                "differ on the same rows"
                + (
                    " (a p-value shrinks as the rows grow, so Evidently flags smaller shifts in larger "
                    "windows; an effect size does not)."
                    if _is_p_value(method) != _is_p_value(ours)
                    else "."
                )
            )
        elif statistics != "evidently":
            notes.append(
                f"{named}: the same statistic, {sides}, computed in driftmart's own way "
                f"(`statistics: {statistics}`, e.g. its own bins); `statistics: evidently` computes it "
                "as Evidently does."
            )
        else:
            notes.append(
                f"{named}: the same test, {sides}, computed as Evidently computes it "
                "(`statistics: evidently`); Evidently sees at most max_rows sampled rows a side."
            )
    return VerdictComparison(
        agree=tuple(agree),
        disagree=tuple(disagree),
        not_compared=not_compared,
        notes=tuple(notes),
        tests_differ=tests_differ,
    )


def disagreement_table(comparison: VerdictComparison) -> str:
    """Markdown: the features on which Evidently and driftmart reach different verdicts, with each
    side's method, threshold and score."""
    if not comparison.disagree:
        compared = len(comparison.agree)
        return f"Evidently and driftmart agree on every feature both judged ({compared})."
    lines = [
        "| feature | Evidently method | Evidently threshold | Evidently score | Evidently drifted? "
        "| driftmart method | driftmart threshold | driftmart drift_score | driftmart is_drifted? |",
        "|---|---|--:|--:|:-:|---|--:|--:|:-:|",
    ]
    for drift, row in comparison.disagree:
        lines.append(
            f"| {drift.column} | {drift.method} | {drift.threshold:g} | {drift.drift_score:.4g} "
            f"| {_verdict(drift.is_drifted)} | {row['drift_method']} | {float(row['threshold']):g} "
            f"| {_score(row['drift_score'])} | {_verdict(bool(row['is_drifted']))} |"
        )
    return "\n".join(lines)


def method_notes(comparison: VerdictComparison) -> str:
    """Markdown: in words, which tests the two sides judge each feature by."""
    lines = [f"- {note}" for note in comparison.notes]
    lines += [f"- {column}: not compared ({why})." for column, why in comparison.not_compared.items()]
    return "\n".join(lines) or "No feature was judged by both."


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
    """Evidently 0.7 drift report (HTML + JSON) of the latest judged window, or of `window_start`,
    with ValueDrift for prediction and target; added to the Evidently workspace under the home. Each
    side is at most `max_rows` rows, sampled in SQL with `seed`. Nothing is materialized when no
    window is judged yet, nor, with `only_if_changed`, when the window's report is of these inputs."""
    home, spec = driftmart.home, driftmart.spec()
    if config.max_rows < 1:
        raise dg.Failure(description=f"config max_rows must be at least 1, got {config.max_rows}")
    try:
        connection = connect_published(home)
    except NothingPublishedError as error:
        raise dg.Failure(description=f"cannot build the Evidently report: {error}") from error
    with connection:
        if config.window_start:
            window_start = _parse_window_start(config.window_start)
        else:
            latest = latest_reported_window(connection, spec)
            if latest is None:
                message = _no_judged_window(spec)
                context.log.warning(message)
                context.log_event(
                    dg.AssetObservation(
                        asset_key=EVIDENTLY_REPORT,
                        metadata={"skipped": message, "judged_window": dg.MetadataValue.bool(False)},
                    )
                )
                return
            window_start = latest
        marts = _window_feature_drift(connection, spec, window_start)
        window_end = marts["window_end"].iloc[0].to_pydatetime()
        reference_id, reference_version = marts["reference_id"].iloc[0], marts["reference_version"].iloc[0]
        current = window_rows(
            connection, spec, window_start, window_end, max_rows=config.max_rows, seed=config.seed
        )
        current_summary = window_summary(connection, spec, window_start, window_end)
        reference, reference_sizes = reference_sample(
            connection, spec, reference_id, reference_version, max_rows=config.max_rows, seed=config.seed
        )
    is_judged = bool(marts["has_reference"].all() and not marts["is_below_min_rows"].any())
    reference_label = str(reference_id) if pd.notna(reference_id) else f"model_version:{reference_version}"
    directory = report_directory(home, spec.model, window_start)
    settings = {
        "spec": spec.to_dict(),
        "window": [window_start.isoformat(), window_end.isoformat()],
        "reference": reference_label,
        "max_rows": config.max_rows,
        "seed": config.seed,
        # The sample may not change when a late row arrives; these do.
        "current_rows": [current_summary.n_rows, current_summary.newest],
        "reference_rows": [reference_sizes.n_rows, reference_sizes.newest],
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
        f"{spec.model}: window {window_start.isoformat()} ({current_summary.n_rows} rows, {len(current)} "
        f"sampled) against {reference_label} ({reference_sizes.n_rows} rows, {len(reference)} sampled)"
    )
    if not is_judged:
        context.log.warning(
            f"{spec.model}: driftmart did not judge window {window_start.isoformat()} (no reference or "
            f"fewer than {spec.min_window_rows} rows): Evidently's verdicts stand alone"
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
        n_current_rows=current_summary.n_rows,
        n_reference_rows=reference_sizes.n_rows,
    )
    saved = save_report(home, spec, report, window_start)
    _write_marker(home, saved.directory, digest)
    comparison = compare_verdicts(report.features, report.skipped, marts, spec.statistics)

    metadata: dict[str, Any] = {
        "report_html": dg.MetadataValue.path(str(saved.html)),
        "report_url": dg.MetadataValue.url(saved.html.as_uri()),
        "report_json": dg.MetadataValue.path(str(saved.json)),
        "evidently_ui": dg.MetadataValue.md(f"`{evidently_ui_command(saved.workspace)}`"),
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "judged_window": dg.MetadataValue.bool(is_judged),
        "reference": reference_label,
        "drift_summary": dg.MetadataValue.md(summary_table(saved, marts)),
        "drift_score_bars": dg.MetadataValue.md(score_bars(saved)),
        "verdicts_agree": dg.MetadataValue.int(len(comparison.agree)),
        "verdicts_disagree": dg.MetadataValue.int(len(comparison.disagree)),
        "verdicts_not_compared": dg.MetadataValue.int(len(comparison.not_compared)),
        "verdict_disagreements": dg.MetadataValue.md(disagreement_table(comparison)),
        "verdict_methods": dg.MetadataValue.md(method_notes(comparison)),
        "tests_differ": dg.MetadataValue.bool(comparison.tests_differ),
        "share_drifted": dg.MetadataValue.float(report.share_drifted),
        "n_drifted": dg.MetadataValue.int(report.n_drifted),
        "is_dataset_drifted": dg.MetadataValue.bool(report.is_dataset_drifted),
        "current_rows": dg.MetadataValue.int(report.current.n_rows),
        "current_rows_sampled": dg.MetadataValue.int(report.current.n_used),
        "reference_rows": dg.MetadataValue.int(report.reference.n_rows),
        "reference_rows_sampled": dg.MetadataValue.int(report.reference.n_used),
        "max_rows": dg.MetadataValue.int(config.max_rows),
        "seed": dg.MetadataValue.int(report.seed),
        "sampling": SAMPLING,
    }
    # Numeric entries are what the Dagster UI plots across materializations (the asset's Plots tab).
    for drift in (*report.features, *report.outputs):
        metadata[f"evidently_score/{drift.column}"] = dg.MetadataValue.float(drift.drift_score)
    yield dg.MaterializeResult(metadata=metadata)
