"""Plain-text tables for the terminal: the drift grid of `demo` and the summary of `run`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestration.pipeline import DriftReport


def render_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(column) for column in columns]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append(
            "  ".join(
                cell.rjust(width) if _is_number(cell) else cell.ljust(width)
                for cell, width in zip(row, widths, strict=True)
            )
        )
    return "\n".join(line.rstrip() for line in lines)


def _is_number(cell: str) -> bool:
    try:
        float(cell.rstrip("*"))
    except ValueError:
        return False
    return True


def _window_label(window_start: datetime) -> str:
    return window_start.strftime("%Y-%m-%d %H:%M").removesuffix(" 00:00")


def drift_summary(report: DriftReport) -> str:
    """A window × feature grid of drift scores: `*` drifted, `~` too few rows to judge; then the
    share of drifted features (`*` when the dataset drifted) and prediction drift; then the
    degraded performance."""
    if not report.cells:
        return "no windows with data" + degradation_summary(report)
    features = list(dict.fromkeys(cell.feature_name for cell in report.cells))
    cells = {(cell.window_start, cell.feature_name): cell for cell in report.cells}
    grid = []
    for window in report.windows:
        line = [_window_label(window), ""]
        for feature in features:
            cell = cells.get((window, feature))
            if cell is None:
                line.append("")
                continue
            line[1] = str(cell.n_current)
            mark = "*" if cell.is_drifted else "~" if cell.is_below_min_rows else ""
            line.append("" if cell.drift_score is None else f"{cell.drift_score:.3f}{mark}")
        share, dataset_drifted = report.dataset_drifted.get(window, (None, False))
        line.append("" if share is None else f"{share:.2f}{'*' if dataset_drifted else ''}")
        line.append("yes*" if report.prediction_drifted.get(window) else "no")
        grid.append(line)
    methods = {}
    for cell in report.cells:
        methods.setdefault((cell.drift_method, cell.threshold), []).append(cell.feature_name)
    legend = "; ".join(
        f"{method} {'<' if method == 'chi2_p_value' else '>='} {threshold:g}"
        for method, threshold in sorted(methods)
    )
    header = ["window", "rows", *features, "drifted_share", "prediction_drift"]
    return (
        f"drift score per feature and window (* drifted: {legend}; ~ too few rows to judge)\n"
        + render_table(header, grid)
        + degradation_summary(report)
    )


def degradation_summary(report: DriftReport) -> str:
    """The windows whose realized performance fell past its threshold, then those whose label-free
    estimate did, one line per metric, then the drifted segments; empty when none."""
    header = ["window", "metric", "realized", "threshold", "reference", "labelled"]
    estimated_header = ["window", "metric", "estimated", "threshold", "reference", "rows"]
    text = ""
    for title, degradations, columns in (
        (
            "performance degraded (realized metric past the reference's sampling error: concept drift "
            "or worse)",
            report.degraded,
            header,
        ),
        (
            "performance estimated to degrade (CBPE, without labels: the calibrated scores expect "
            "fewer right predictions)",
            report.estimated_degraded,
            estimated_header,
        ),
    ):
        if not degradations:
            continue
        rows = [
            [
                _window_label(degraded.window_start),
                degraded.metric_name,
                f"{degraded.value:.3f}",
                f"{degraded.threshold:.3f}",
                f"{degraded.reference_value:.3f}",
                str(degraded.n_rows),
            ]
            for degraded in degradations
        ]
        text += f"\n\n{title}\n" + render_table(columns, rows)
    if report.segments_drifted:
        rows = [
            [
                _window_label(drifted.window_start),
                f"{drifted.segment_name}={drifted.segment_value}",
                drifted.feature_name,
                f"{drifted.drift_score:.3f}",
                f"{drifted.q_value:.2g}",
                str(drifted.n_current),
            ]
            for drifted in report.segments_drifted
        ]
        title = "segment drift (a feature moved within one segment; q-value at most the spec's fdr)"
        text += f"\n\n{title}\n" + render_table(
            ["window", "segment", "feature", "psi", "q_value", "rows"], rows
        )
    return text
