"""When drift calls for a retrain: one decision, used by the Dagster sensor and by `driftmart run`.

Only windows the *current* champion answers for count: with a `model_version` reference, the windows
judged against its reference set; with a `previous_window` or `time_range` reference (no reference
version), the windows whose predictions it made (or that carry no model version). After a promotion
the old drifted windows are history, not a reason to retrain again.

A drift episode is the streak of consecutive drifted windows; it triggers at most one retrain,
whatever that challenger's verdict: a rejected challenger does not make every new drifted window of
the same episode a new trigger. A window without drift (or a promotion) ends the episode.

Concept drift shows in the labels, not in the inputs: degraded realized performance
(marts.fct_model_performance.is_degraded) in `consecutive_warns` consecutive windows whose
performance was judged (enough labelled rows) triggers a retrain too, also when no input drifted.
Windows still waiting for labels neither extend nor end that streak.
"""

from dataclasses import dataclass
from datetime import datetime

import duckdb

from ml.spec import ModelSpec
from warehouse.connection import NothingPublishedError, connect_published
from warehouse.home import Home


@dataclass(frozen=True)
class RetrainDecision:
    needed: bool
    reason: str
    drift_started_at: datetime | None = None  # first window of the drift episode
    trigger_window: datetime | None = None  # the window that crossed the line
    # Due, but fewer labelled rows since the drift began than `retrain.min_labelled_rows`: the
    # retrain waits (no run is requested) and happens on a later pass once the labels arrive.
    waiting_for_labels: bool = False
    signal: str | None = None  # what called for it: "input_drift" or "performance" (concept drift)

    @property
    def run_key(self) -> str:
        return f"retrain:{self.trigger_window:%Y%m%dT%H%M%S}" if self.trigger_window else "retrain"


def judged_windows(connection: duckdb.DuckDBPyConnection, spec: ModelSpec, champion: int) -> list[tuple]:
    """(window_start, n_drifted, is_dataset_drifted) of the windows with enough rows that `champion`
    answers for (see the module docstring), newest first."""
    if spec.reference.kind == "model_version":
        served_by_champion = "features.reference_version = $champion"
    else:
        # No reference version to match: the window belongs to the champion when the newest model
        # version logged in it is the champion's (rows imported without a version count as its own).
        served_by_champion = """coalesce((
            select max(logs.model_version)
            from raw.inference_log as logs
            where logs.model_name = features.model_name
              and logs.scored_at >= features.window_start and logs.scored_at < features.window_end
        ), $champion) = $champion"""
    return connection.execute(
        f"""
        select features.window_start,
               count(*) filter (where features.is_drifted) as n_drifted,
               bool_or(dataset.is_dataset_drifted) as is_dataset_drifted
        from marts.fct_feature_drift as features
        inner join marts.fct_dataset_drift as dataset
            on dataset.model_name = features.model_name and dataset.window_start = features.window_start
        where features.model_name = $model
          and features.has_reference
          and not features.is_below_min_rows
          and {served_by_champion}
        group by features.window_start
        order by features.window_start desc
        """,
        {"model": spec.model, "champion": champion},
    ).fetchall()


def performance_windows(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, champion: int, *, estimated: bool = False
) -> list[tuple[datetime, bool, list[str]]]:
    """(window_start, is_degraded, degraded metric names) of the windows `champion` served whose
    realized performance was judged (a reference spread and at least min_window_rows labelled
    rows), newest first; with `estimated`, the same of the label-free estimate
    (is_estimated_degraded, over the estimated rows)."""
    flag, threshold, rows_column = (
        ("is_estimated_degraded", "estimated_threshold", "n_estimated")
        if estimated
        else ("is_degraded", "threshold", "n_labelled")
    )
    rows = connection.execute(
        f"""
        select window_start, bool_or({flag}),
               list(metric_name order by metric_name) filter (where {flag})
        from marts.fct_model_performance
        where model_name = $model
          and coalesce(reference_version, $champion) = $champion
          and {threshold} is not null
          and {rows_column} >= $min_rows
        group by window_start
        order by window_start desc
        """,
        {"model": spec.model, "champion": champion, "min_rows": spec.min_window_rows},
    ).fetchall()
    return [(start, bool(degraded), metrics or []) for start, degraded, metrics in rows]


def _degraded_streak(windows: list[tuple[datetime, bool, list[str]]]) -> list[datetime]:
    """The newest windows, consecutive among the judged ones, whose performance is degraded."""
    streak = []
    for window_start, degraded, _ in windows:
        if not degraded:
            break
        streak.append(window_start)
    return streak


def retrain_decision(home: Home, spec: ModelSpec) -> RetrainDecision:
    """Is a retrain due? Dataset drift in the latest judged window (an error), or drifted features
    in `consecutive_warns` judged windows in a row (warnings), or degraded realized performance in
    `consecutive_warns` judged windows in a row (concept drift)."""
    from ml import registry  # skops and scikit-learn: not for whoever only imports this module

    champion = registry.champion_version(home, spec.model)
    if champion is None:
        return RetrainDecision(False, f"{spec.model} has no champion to retrain")
    try:
        with connect_published(home) as connection:
            windows = judged_windows(connection, spec, champion)
            performance = performance_windows(connection, spec, champion)
    except NothingPublishedError:
        return RetrainDecision(False, "nothing published yet")
    if not windows and not performance:
        return RetrainDecision(False, f"no window judged against v{champion} yet")
    streak = []
    for window_start, n_drifted, _ in windows:
        if not n_drifted:
            break
        streak.append(window_start)
    degraded = _degraded_streak(performance)
    needed_warns = spec.retrain.consecutive_warns
    latest, n_drifted, dataset_drifted = windows[0] if windows else (None, 0, False)
    if dataset_drifted:
        reason = f"dataset drift in the window of {latest:%Y-%m-%d %H:%M} ({n_drifted} features drifted)"
        trigger, signal = latest, "input_drift"
        episode = streak or [latest]
    elif len(streak) >= needed_warns:
        reason = f"features drifted in {len(streak)} consecutive windows (threshold {needed_warns})"
        trigger = streak[-needed_warns]  # the window that completed the streak: stable as windows arrive
        signal, episode = "input_drift", streak
    elif len(degraded) >= needed_warns:
        metrics = sorted({metric for start, _, names in performance if start in degraded for metric in names})
        reason = (
            f"realized performance degraded ({', '.join(metrics)}) in {len(degraded)} consecutive labelled "
            f"windows (threshold {needed_warns})"
        )
        trigger = degraded[-needed_warns]
        signal, episode = "performance", degraded
    else:
        latest_input = (
            f"latest judged window {latest:%Y-%m-%d %H:%M}: {n_drifted} features drifted"
            if latest
            else "no window judged for input drift"
        )
        latest_performance = (
            f"performance degraded in {len(degraded)} consecutive labelled windows of {needed_warns}"
            if degraded
            else "performance not degraded"
        )
        return RetrainDecision(False, f"{latest_input}, {latest_performance}, no retrain due")
    started = episode[-1]
    episode_windows = {f"{window:%Y-%m-%dT%H:%M:%S}" for window in episode}
    for version in registry.list_versions(home, spec.model):
        if any(
            event.get("evidence", {}).get("trigger_window") in episode_windows for event in version.history
        ):
            return RetrainDecision(
                False,
                f"already retrained for the drift since {started:%Y-%m-%d %H:%M} (v{version.model_version}, "
                f"{version.status}); a window without drift ends the episode",
                started,
                trigger,
                signal=signal,
            )
    from warehouse.queries import labelled_count  # pandas: not for whoever only imports this module

    with connect_published(home) as connection:
        n_labelled = labelled_count(connection, spec, since=started)
    if n_labelled < spec.retrain.min_labelled_rows:
        return RetrainDecision(
            False,
            f"{reason}: the retrain is due and waits for labels ({n_labelled} labelled rows scored since "
            f"{started:%Y-%m-%d %H:%M}; retrain.min_labelled_rows is {spec.retrain.min_labelled_rows})",
            started,
            trigger,
            waiting_for_labels=True,
            signal=signal,
        )
    return RetrainDecision(True, reason, started, trigger, signal=signal)
