"""Multivariate drift by a domain classifier ("adversarial validation").

A classifier learns to tell a window's rows from its reference's rows using all the features at
once. If it cannot (cross-validated ROC AUC near 0.5), the two samples look alike jointly; if it
can, the joint distribution moved, even where every feature's own distribution stayed put (a
change in correlation that no univariate test sees).

The verdict: drifted when the cross-validated AUC exceeds 0.5 by more than `NULL_SIGMAS` times
the AUC's standard deviation under no drift for these sample sizes (Hanley and McNeil's variance of
a Mann-Whitney AUC of 0.5: (n_reference + n_current + 1) / (12 n_reference n_current)), and by at
least `MIN_MARGIN`: a rule that follows the sample sizes instead of one fixed cut-off. The
classifier is scikit-learn's HistGradientBoostingClassifier (missing values and categories handled
natively, interactions found without feature engineering); `top_features` are the features whose
permutation lowers a held-out AUC most.

When not to trust it: a tiny sample (the band is wide and only large shifts show); features that
identify the time themselves (an id or a counter that grows) make every window "drifted"; and the
AUC says *that* the joint distribution moved, not whether it matters for the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.spec import ModelSpec

NULL_SIGMAS = 4.0
MIN_MARGIN = 0.02
FOLDS = 5
TOP_FEATURES = 3
METHOD = "domain_classifier_roc_auc"
MAX_CATEGORIES = 255  # HistGradientBoostingClassifier's limit (max_bins)
OTHER = "__other__"


@dataclass(frozen=True)
class MultivariateDrift:
    method: str
    score: float  # cross-validated ROC AUC of telling the window's rows from the reference's
    threshold: float
    is_drifted: bool
    n_reference: int
    n_current: int
    top_features: list[str]


def auc_threshold(n_reference: int, n_current: int) -> float:
    """The AUC above which the two samples differ: 0.5 + max(NULL_SIGMAS sigma_0, MIN_MARGIN)."""
    sigma = math.sqrt((n_reference + n_current + 1) / (12 * n_reference * n_current))
    return 0.5 + max(NULL_SIGMAS * sigma, MIN_MARGIN)


def _encoded(spec: ModelSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric features as floats, categories as pandas categoricals (native in the classifier)."""
    columns = {}
    for name, kind in spec.features.items():
        if kind == "numeric":
            columns[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
        else:
            columns[name] = frame[name].astype("string").astype("category")
    return pd.DataFrame(columns)


def domain_classifier_drift(
    spec: ModelSpec, reference: pd.DataFrame, current: pd.DataFrame, *, seed: int = 0
) -> MultivariateDrift:
    """The domain classifier's verdict on `current` against `reference` (rows of the spec's features)."""
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: the samples are capped (a few thousand rows), where the classifier's
    # threads cost more than they save, and they spin-wait when the cores are busy (2.4x slower).
    with threadpool_limits(limits=1, user_api="openmp"):
        return _domain_classifier_drift(spec, reference, current, seed=seed)


def _domain_classifier_drift(
    spec: ModelSpec, reference: pd.DataFrame, current: pd.DataFrame, *, seed: int
) -> MultivariateDrift:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split

    n_reference, n_current = len(reference), len(current)
    if min(n_reference, n_current) < FOLDS * 2:
        raise ValueError(
            f"a domain classifier needs at least {FOLDS * 2} rows a side, got {n_reference} reference "
            f"and {n_current} current rows"
        )
    features = pd.concat([_encoded(spec, reference), _encoded(spec, current)], ignore_index=True)
    for name, kind in spec.features.items():  # one category set across both sides
        if kind != "numeric":
            values = features[name].astype("string")
            # the classifier takes at most MAX_CATEGORIES categories a feature: the rarest share one
            frequent = values.value_counts().index[: MAX_CATEGORIES - 1]
            features[name] = values.where(values.isin(frequent) | values.isna(), OTHER).astype("category")
    is_current = np.r_[np.zeros(n_reference, dtype=int), np.ones(n_current, dtype=int)]

    def classifier() -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=60, learning_rate=0.1, categorical_features="from_dtype", random_state=seed
        )

    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    probabilities = cross_val_predict(classifier(), features, is_current, cv=folds, method="predict_proba")
    score = float(roc_auc_score(is_current, probabilities[:, 1]))
    threshold = auc_threshold(n_reference, n_current)
    top: list[str] = []
    if score > threshold:
        fit_x, held_x, fit_y, held_y = train_test_split(
            features, is_current, test_size=0.25, random_state=seed, stratify=is_current
        )
        importance = permutation_importance(
            classifier().fit(fit_x, fit_y), held_x, held_y, scoring="roc_auc", n_repeats=3, random_state=seed
        )
        order = np.argsort(-importance.importances_mean)
        top = [features.columns[i] for i in order[:TOP_FEATURES] if importance.importances_mean[i] > 0]
    return MultivariateDrift(
        method=METHOD,
        score=score,
        threshold=threshold,
        is_drifted=score > threshold,
        n_reference=n_reference,
        n_current=n_current,
        top_features=top,
    )
