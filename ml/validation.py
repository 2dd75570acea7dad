"""Retraining and validation: a challenger is trained on the champion's reference plus recent
labelled production rows, and compared with the champion on held-out recent labelled rows.

The challenger is the champion's own estimator refit: `sklearn.base.clone(champion)` (same type,
same hyperparameters, unfitted) fitted on those rows, or the spec's `retrain.fit` function when it
names one. Labels arrive as text from the warehouse; they are cast back to the type of the
champion's classes first, so a model whose classes are ints keeps answering ints.

The most recent rows (by score time) are held out: both models are judged on the traffic they
will serve next, never on rows either was trained on. The challenger is promoted only if it beats
the champion by the margin on the chosen metric and its own reference no longer drifts from the
held-out traffic. That drift is judged by the drift engine (the dbt project, with the spec's methods
and thresholds: orchestration/gate.py), never by a second implementation here.
"""

from __future__ import annotations

import copy
import importlib
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from ml.errors import DriftmartError
from ml.estimators import check_model, feature_frame, labels_as_classes, model_inputs, score
from ml.spec import LOWER_IS_BETTER, RETRAIN_METRICS, ModelSpec, RetrainPolicy
from ml.train import TrainedModel, validated_model

logger = logging.getLogger("driftmart.validation")


class NotEnoughLabelsError(DriftmartError):
    """Too few labelled production rows to retrain and validate honestly."""


class RetrainFitError(DriftmartError):
    """The spec's `retrain.fit` function cannot be imported, or did not return a fitted model."""


@dataclass(frozen=True)
class ReferenceDrift:
    """The drift engine's verdict on the challenger's reference against the held-out rows."""

    drifted_features: list[str]
    dataset_drifted: bool
    share_drifted: float
    dataset_threshold: float
    # feature -> {"method", "threshold", "score", "is_drifted"} as the engine judged it
    features: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Validation:
    metric: str
    champion_version: int
    challenger_version: int
    champion: dict[str, float]
    challenger: dict[str, float]
    margin: float
    n_holdout: int
    n_training_rows: int
    challenger_drifted_features: list[str]
    promote: bool
    reason: str
    challenger_drift: dict[str, dict[str, Any]] | None = None

    def to_dict(self) -> dict:
        """As stored in the registry; the metric's two scores also flat, for SQL readers."""
        return asdict(self) | {
            "champion_score": self.champion.get(self.metric),
            "challenger_score": self.challenger.get(self.metric),
        }


def split_recent(
    spec: ModelSpec, labelled: pd.DataFrame, policy: RetrainPolicy
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Older labelled rows for training, the newest `holdout_share` for validation."""
    if len(labelled) < policy.min_labelled_rows:
        raise NotEnoughLabelsError(
            f"{len(labelled)} labelled production rows; retraining needs at least {policy.min_labelled_rows}"
        )
    ordered = labelled.sort_values(spec.timestamp, kind="stable")
    n_holdout = max(1, round(len(ordered) * policy.holdout_share))
    holdout = ordered.iloc[-n_holdout:]
    if spec.is_classifier and holdout[spec.label_column].nunique() < 2:
        raise NotEnoughLabelsError("the held-out recent rows have a single class: cannot compare ROC AUC")
    return ordered.iloc[:-n_holdout], holdout


def evaluate(spec: ModelSpec, model: Any, rows: pd.DataFrame) -> dict[str, float]:
    """The task's retrain metrics (RETRAIN_METRICS) of `model` on labelled rows."""
    metrics = score(spec, model, model_inputs(spec, model, rows), rows[spec.label_column])
    return {name: metrics[name] for name in RETRAIN_METRICS[spec.task] if name in metrics}


def load_fit_function(reference: str) -> Any:
    """The function `package.module:function` names (the spec's retrain.fit)."""
    module_name, _, function_name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise RetrainFitError(
            f"retrain.fit {reference!r}: cannot import {module_name}: {type(error).__name__}: {error} "
            "(is its package installed in driftmart's environment?)"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise RetrainFitError(f"retrain.fit {reference!r}: {module_name} has no function {function_name}")
    return function


def fit_challenger(spec: ModelSpec, champion: Any, features: pd.DataFrame, labels: np.ndarray) -> Any:
    """`clone(champion)` fitted on the rows, or the spec's `retrain.fit(champion, X, y)` (given a copy
    of the fitted champion, so it may refit it in place, clone it or warm-start from it)."""
    if spec.retrain.fit is None:
        return clone(champion).fit(features, labels)
    fitted = load_fit_function(spec.retrain.fit)(copy.deepcopy(champion), features, labels)
    if fitted is None or not hasattr(fitted, "predict"):
        raise RetrainFitError(
            f"retrain.fit {spec.retrain.fit!r} returned {type(fitted).__name__}, not a fitted estimator"
        )
    return fitted


def _labelled_as_classes(spec: ModelSpec, rows: pd.DataFrame, champion: Any, what: str) -> pd.DataFrame:
    """The rows with their labels in the type of the champion's classes; rows whose label is no class
    of the champion (or no number, for a regression) are left out, and counted in the log."""
    labels = labels_as_classes(spec, rows[spec.label_column], champion)
    known = np.asarray([value is not None and value == value for value in labels], dtype=bool)
    if not known.all():
        logger.warning(
            "%s: %d row(s) whose label is not a class of the champion are left out", what, (~known).sum()
        )
    kept = rows.loc[known].copy()
    values = labels[known]
    if spec.is_classifier:
        values = np.asarray(list(values), dtype=np.asarray(champion.classes_).dtype)
    kept[spec.label_column] = values
    return kept


def train_challenger(
    spec: ModelSpec, reference: pd.DataFrame, recent: pd.DataFrame, *, champion: Any, seed: int = 0
) -> TrainedModel:
    """Refit the champion's estimator on its reference rows plus most recent labelled rows; a
    (stratified, for a classifier) quarter of the recent rows is the challenger's validation and
    reference set, so its drift baseline is the traffic it was trained for, not the past it replaces."""
    columns = [spec.id, *spec.features, spec.label_column]
    segments = [column for column in spec.segments if column in recent and column not in columns]
    recent = _labelled_as_classes(spec, recent[[*columns, *segments]], champion, "recent rows")
    reference = reference[[column for column in columns if column in reference]]
    if spec.label_column in reference:
        reference = _labelled_as_classes(spec, reference, champion, "reference rows")
    else:
        reference = reference.iloc[0:0]
    stratify = None
    if spec.is_classifier and recent[spec.label_column].value_counts().min() >= 2:
        stratify = recent[spec.label_column]
    recent_fit, recent_reference = train_test_split(
        recent, test_size=0.25, random_state=seed, stratify=stratify
    )
    combined = pd.concat([reference, recent_fit], ignore_index=True)
    labels = combined[spec.label_column].to_numpy()
    model = fit_challenger(spec, champion, model_inputs(spec, champion, combined), labels)
    check_model(spec, model)
    recent_reference = recent_reference.reset_index(drop=True)
    return validated_model(
        spec,
        model,
        feature_frame(spec, recent_reference),
        recent_reference[spec.label_column],
        recent_reference[spec.id],
        len(combined),
        recent_reference[segments],
    )


def validate(
    spec: ModelSpec,
    champion: Any,
    champion_version: int,
    challenger: TrainedModel,
    challenger_version: int,
    holdout: pd.DataFrame,
    policy: RetrainPolicy,
    judge_drift: Callable[[], ReferenceDrift],
) -> Validation:
    """Compare the challenger with the champion on the held-out rows; `judge_drift()` gives the drift
    engine's verdict on the challenger's reference against them (a dataset-drifted reference is
    rejected), asked only of a challenger that wins on the metric (it costs a dbt run).
    For an error metric (rmse, mae) lower is better: the challenger must be lower by the margin."""
    champion_metrics = evaluate(spec, champion, holdout)
    challenger_metrics = evaluate(spec, challenger.pipeline, holdout)
    metric = policy.metric
    champion_score = champion_metrics.get(metric, math.nan)
    challenger_score = challenger_metrics.get(metric, math.nan)
    lower_is_better = metric in LOWER_IS_BETTER
    gain = champion_score - challenger_score if lower_is_better else challenger_score - champion_score
    drift = judge_drift() if math.isfinite(gain) and gain >= policy.promotion_margin else None
    drifted = drift.drifted_features if drift is not None else []
    if not math.isfinite(gain):
        promote = False
        reason = f"{metric} cannot be computed on the {len(holdout)} held-out rows: keeping the champion"
    elif gain < policy.promotion_margin:
        promote = False
        reason = (
            f"challenger {metric} {challenger_score:.4f} does not beat the "
            f"champion's {champion_score:.4f} by the margin {policy.promotion_margin:g}"
            + (" (lower is better)" if lower_is_better else "")
        )
    elif drift is not None and drift.dataset_drifted:
        promote = False
        reason = (
            f"the challenger's reference still drifts from recent traffic in {', '.join(drifted)} "
            f"({drift.share_drifted:.0%} of features drifted; "
            f"dataset_drift_share {drift.dataset_threshold:g})"
        )
    else:
        promote = True
        reason = (
            f"challenger {metric} {challenger_score:.4f} beats the champion's "
            f"{champion_score:.4f} (margin {policy.promotion_margin:g}"
            + (", lower is better)" if lower_is_better else ")")
        )
    return Validation(
        metric=policy.metric,
        champion_version=champion_version,
        challenger_version=challenger_version,
        champion=champion_metrics,
        challenger=challenger_metrics,
        margin=policy.promotion_margin,
        n_holdout=len(holdout),
        n_training_rows=challenger.n_training_rows,
        challenger_drifted_features=drifted,
        promote=promote,
        reason=reason,
        challenger_drift=drift.features if drift is not None else None,
    )
