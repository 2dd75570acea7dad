"""Plain-text tables for the terminal: the drift grid of `demo` and the summary of `run`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


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


def drift_summary(rows: Sequence[tuple], *, latest_only: bool = False) -> tuple[str, bool]:
    """A window × feature grid of PSI (`*` marks drift) from fct_feature_drift rows, and whether the
    shown windows drifted. Rows: (window_start, feature_name, feature_type, n_current, psi,
    threshold, is_drifted)."""
    if not rows:
        return "no windows with data yet", False
    windows = sorted({row[0] for row in rows})
    if latest_only:
        windows = windows[-1:]
    features = list(dict.fromkeys(row[1] for row in rows))
    cells = {(row[0], row[1]): row for row in rows}
    grid, any_drifted = [], False
    for window in windows:
        line = [_window_label(window), ""]
        for feature in features:
            row = cells.get((window, feature))
            if row is None:
                line.append("")
                continue
            line[1] = str(row[3])
            drifted = bool(row[6])
            any_drifted |= drifted
            line.append("" if row[4] is None else f"{row[4]:.3f}{'*' if drifted else ''}")
        grid.append(line)
    thresholds = sorted({row[5] for row in rows if row[5] is not None})
    legend = f"PSI per feature and window; * = drifted (PSI >= {', '.join(f'{t:g}' for t in thresholds)})"
    return legend + "\n" + render_table(["window", "rows", *features], grid), any_drifted
