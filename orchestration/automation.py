"""When drift calls for a retrain: one decision, used by the Dagster sensor and by `driftmart run`.

Only windows judged against the *current* champion's reference count (after a promotion, the old
drifted windows are history, not a reason to retrain again), and a drift episode triggers at most
one retrain: the run key is the window that completed the drift streak.
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

    @property
    def run_key(self) -> str:
        return f"retrain:{self.trigger_window:%Y%m%dT%H%M%S}" if self.trigger_window else "retrain"


def judged_windows(connection: duckdb.DuckDBPyConnection, spec: ModelSpec, champion: int) -> list[tuple]:
    """(window_start, n_drifted, is_dataset_drifted) of the windows judged against `champion`'s
    reference with enough rows, newest first."""
    return connection.execute(
        """
        select features.window_start,
               count(*) filter (where features.is_drifted) as n_drifted,
               bool_or(dataset.is_dataset_drifted) as is_dataset_drifted
        from marts.fct_feature_drift as features
        inner join marts.fct_dataset_drift as dataset
            on dataset.model_name = features.model_name and dataset.window_start = features.window_start
        where features.model_name = ?
          and features.reference_version = ?
          and not features.is_below_min_rows
        group by features.window_start
        order by features.window_start desc
        """,
        [spec.model, champion],
    ).fetchall()


def retrain_decision(home: Home, spec: ModelSpec) -> RetrainDecision:
    """Is a retrain due? Dataset drift in the latest judged window (an error), or drifted features
    in `consecutive_warns` judged windows in a row (warnings)."""
    from ml import registry  # skops and scikit-learn: not for whoever only imports this module

    champion = registry.champion_version(home, spec.model)
    if champion is None:
        return RetrainDecision(False, f"{spec.model} has no champion to retrain")
    try:
        with connect_published(home) as connection:
            windows = judged_windows(connection, spec, champion)
    except NothingPublishedError:
        return RetrainDecision(False, "nothing published yet")
    if not windows:
        return RetrainDecision(False, f"no window judged against v{champion} yet")
    streak = []
    for window_start, n_drifted, _ in windows:
        if not n_drifted:
            break
        streak.append(window_start)
    latest, n_drifted, dataset_drifted = windows[0]
    needed_warns = spec.retrain.consecutive_warns
    if dataset_drifted:
        reason = f"dataset drift in the window of {latest:%Y-%m-%d %H:%M} ({n_drifted} features drifted)"
        trigger = latest
    elif len(streak) >= needed_warns:
        reason = f"features drifted in {len(streak)} consecutive windows (threshold {needed_warns})"
        trigger = streak[-needed_warns]  # the window that completed the streak: stable as windows arrive
    else:
        return RetrainDecision(
            False,
            f"latest judged window {latest:%Y-%m-%d %H:%M}: {n_drifted} features drifted, no retrain due",
        )
    started = streak[-1] if streak else latest
    for version in registry.list_versions(home, spec.model):
        if any(
            event.get("evidence", {}).get("trigger_window") == f"{trigger:%Y-%m-%dT%H:%M:%S}"
            for event in version.history
        ):
            return RetrainDecision(
                False, f"already retrained for this drift (v{version.model_version})", started, trigger
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
        )
    return RetrainDecision(True, reason, started, trigger)
