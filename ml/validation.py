"""Retraining and validation: a challenger is trained on the champion's reference plus recent
labelled production rows, and compared with the champion on held-out recent labelled rows.

The most recent rows (by score time) are held out: both models are judged on the traffic they
will serve next, never on rows either was trained on. The challenger is promoted only if it beats
the champion by the margin on the chosen metric and its own reference no longer drifts from the
held-out traffic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from ml.errors import DriftmartError
from ml.spec import ModelSpec, RetrainPolicy
from ml.train import TrainedModel, feature_frame, train_model

METRICS = ("roc_auc", "accuracy", "f1")
PSI_EPSILON = 1e-4  # the dbt var drift_share_epsilon's default


class NotEnoughLabelsError(DriftmartError):
    """Too few labelled production rows to retrain and validate honestly."""


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

    def to_dict(self) -> dict:
        """As stored in the registry; the metric's two scores also flat, for SQL readers."""
        return asdict(self) | {
            "champion_score": self.champion[self.metric],
            "challenger_score": self.challenger[self.metric],
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
    if holdout[spec.target].nunique() < 2:
        raise NotEnoughLabelsError("the held-out recent rows have a single class: cannot compare ROC AUC")
    return ordered.iloc[:-n_holdout], holdout


def evaluate(spec: ModelSpec, pipeline: Pipeline, rows: pd.DataFrame) -> dict[str, float]:
    features = feature_frame(spec, rows)
    truth = rows[spec.target].astype(str).to_numpy()
    classes = [str(label) for label in pipeline.classes_]
    probabilities = pipeline.predict_proba(features)
    probability = probabilities[:, 1]
    predicted = np.asarray(classes)[probabilities.argmax(axis=1)]
    positive = classes[1]
    return {
        "roc_auc": float(roc_auc_score(truth == positive, probability)),
        "accuracy": float(accuracy_score(truth, predicted)),
        "f1": float(f1_score(truth == positive, predicted == positive)),
    }


def train_challenger(
    spec: ModelSpec, reference: pd.DataFrame, recent: pd.DataFrame, *, seed: int = 0
) -> TrainedModel:
    """Fit on the champion's reference rows plus most recent labelled rows; a stratified quarter of
    the recent rows is the challenger's validation and reference set, so its drift baseline is the
    traffic it was trained for, not the past it replaces."""
    columns = [spec.id, *spec.features, spec.target]
    recent = recent[columns].assign(**{spec.target: recent[spec.target].astype(str)})
    reference = reference[[column for column in columns if column in reference]]
    reference = reference.assign(**{spec.target: reference[spec.target].astype(str)})
    recent_fit, recent_reference = train_test_split(
        recent, test_size=0.25, random_state=seed, stratify=recent[spec.target]
    )
    combined = pd.concat([reference, recent_fit], ignore_index=True)
    return train_model(spec, combined, seed=seed, validation=recent_reference.reset_index(drop=True))


def reference_psi(reference: pd.Series, current: pd.Series, kind: str, bins: int = 10) -> float:
    """PSI on the rules of the SQL engine: reference deciles with open ends (numeric) or reference
    categories plus unseen (categorical), NULL as its own bin, shares floored at 1e-4."""
    if kind == "numeric":
        reference_values = pd.to_numeric(reference, errors="coerce")
        current_values = pd.to_numeric(current, errors="coerce")
        finite = reference_values.dropna().to_numpy()
        edges = np.unique(np.quantile(finite, np.arange(1, bins) / bins)) if len(finite) else np.array([])

        def binned(values: pd.Series) -> np.ndarray:
            index = np.searchsorted(edges, values.to_numpy(), side="right").astype(object)
            index[values.isna().to_numpy()] = "null"
            return index

        reference_bins, current_bins = binned(reference_values), binned(current_values)
    else:
        known = set(reference.dropna())
        reference_bins = reference.where(reference.notna(), "__null__").to_numpy()
        current_bins = np.where(
            current.isna(), "__null__", np.where(current.isin(known), current, "__unseen__")
        ).astype(object)
    labels = set(reference_bins) | set(current_bins)
    psi = 0.0
    for label in labels:
        p_ref = max(np.mean(reference_bins == label), PSI_EPSILON)
        p_cur = max(np.mean(current_bins == label), PSI_EPSILON)
        psi += (p_cur - p_ref) * np.log(p_cur / p_ref)
    return float(psi)


def validate(
    spec: ModelSpec,
    champion: Pipeline,
    champion_version: int,
    challenger: TrainedModel,
    challenger_version: int,
    holdout: pd.DataFrame,
    policy: RetrainPolicy,
    *,
    psi_threshold: float = 0.2,
) -> Validation:
    """Compare the challenger with the champion on the held-out rows and re-check its drift."""
    champion_metrics = evaluate(spec, champion, holdout)
    challenger_metrics = evaluate(spec, challenger.pipeline, holdout)
    drifted = [
        name
        for name, kind in spec.features.items()
        if reference_psi(challenger.reference[name], holdout[name], kind) >= psi_threshold
    ]
    gain = challenger_metrics[policy.metric] - champion_metrics[policy.metric]
    dataset_drifted = len(drifted) / len(spec.features) >= spec.thresholds["dataset_drift_share"]
    if gain < policy.promotion_margin:
        promote = False
        reason = (
            f"challenger {policy.metric} {challenger_metrics[policy.metric]:.4f} does not beat the "
            f"champion's {champion_metrics[policy.metric]:.4f} by the margin {policy.promotion_margin:g}"
        )
    elif dataset_drifted:
        promote = False
        reason = f"the challenger's reference still drifts from recent traffic in {', '.join(drifted)}"
    else:
        promote = True
        reason = (
            f"challenger {policy.metric} {challenger_metrics[policy.metric]:.4f} beats the champion's "
            f"{champion_metrics[policy.metric]:.4f} (margin {policy.promotion_margin:g})"
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
    )
