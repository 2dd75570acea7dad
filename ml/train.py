"""Training: a scikit-learn Pipeline built from the spec, with its validation metrics and reference.

`driftmart train` fits the spec's default pipeline (imputation, scaling, one-hot encoding, then
LogisticRegression for a classifier, Ridge for a regression). A model of the user's own is registered
with `driftmart register` instead, and retrained as itself (ml/validation.py).

The held-out validation rows, with the model's predictions, become the version's reference set:
drift is measured against the data the model was validated on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml.estimators import (
    TrainingDataError,
    feature_frame,
    label_text,
    model_inputs,
    predict_outputs,
    score,
)
from ml.spec import ModelSpec

__all__ = ["TrainedModel", "TrainingDataError", "build_pipeline", "feature_frame", "train_model"]

MISSING_CATEGORY = "__missing__"


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Any  # any fitted scikit-learn estimator or Pipeline
    metrics: dict[str, float]
    reference: pd.DataFrame  # validation rows: id, features, prediction, probabilities, target
    n_training_rows: int


def build_pipeline(spec: ModelSpec, seed: int = 0) -> Pipeline:
    numeric = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", add_indicator=True)),
            ("scale", StandardScaler()),
        ]
    )
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    transformers = []
    if spec.numeric_features:
        transformers.append(("numeric", numeric, spec.numeric_features))
    if spec.categorical_features:
        transformers.append(("categorical", categorical, spec.categorical_features))
    final = (
        ("classifier", LogisticRegression(max_iter=2000, random_state=seed))
        if spec.is_classifier
        else ("regressor", Ridge())
    )
    return Pipeline([("preprocess", ColumnTransformer(transformers)), final])


def reference_set(
    spec: ModelSpec,
    model: Any,
    features: pd.DataFrame,
    ids: Any,
    truth: Any | None,
    segments: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Rows with the model's predictions (and probabilities) as a version's reference set: id,
    features in the spec's order, prediction, the spec's probability column(s), target, and the
    spec's segment columns that `segments` holds (not model inputs: kept for segment drift)."""
    reference = features.reset_index(drop=True).copy()
    reference.insert(0, spec.id, np.asarray(ids).astype(str))
    outputs = predict_outputs(spec, model, model_inputs(spec, model, reference))
    reference[spec.prediction] = outputs.predictions
    if outputs.probability is not None:
        reference[spec.prediction_proba or "probability"] = outputs.probability
    if outputs.probabilities is not None:
        for label, column in spec.class_probabilities.items():
            reference[column] = [row.get(label_text(label)) for row in outputs.probabilities]
    if truth is not None and spec.target:
        reference[spec.target] = np.asarray(truth)
    if segments is not None:
        for column in spec.segments:
            if column in segments and column not in reference:
                reference[column] = segments[column].to_numpy()
    return reference


def validated_model(
    spec: ModelSpec,
    model: Any,
    x_valid: pd.DataFrame,
    y_valid: Any,
    valid_ids: Any,
    n_training_rows: int,
    segments: pd.DataFrame | None = None,
) -> TrainedModel:
    """A fitted model with its validation metrics and reference set (the validation rows, with
    their segment columns when `segments` has them)."""
    metrics = score(
        spec, model, model_inputs(spec, model, x_valid), pd.Series(list(y_valid)), with_log_loss=True
    )
    return TrainedModel(
        pipeline=model,
        metrics=metrics,
        reference=reference_set(spec, model, x_valid, valid_ids, y_valid, segments),
        n_training_rows=n_training_rows,
    )


def training_target(spec: ModelSpec, frame: pd.DataFrame) -> pd.Series:
    """The labelled rows' target, checked for the spec's task."""
    if not spec.target:
        raise TrainingDataError("the spec names no target column: training needs one (key 'target')")
    if spec.target not in frame.columns:
        raise TrainingDataError(f"missing target column {spec.target!r}")
    target = frame.loc[frame[spec.target].notna(), spec.target]
    if spec.task == "binary" and target.nunique() != 2:
        raise TrainingDataError(
            f"target {spec.target!r} must have exactly two classes, found {target.nunique()}"
        )
    if spec.task == "multiclass":
        known = {label_text(label) for label in spec.class_probabilities}
        unknown = sorted({label_text(value) for value in target} - known, key=str)
        if unknown:
            raise TrainingDataError(
                f"target {spec.target!r} has class(es) {', '.join(map(repr, unknown))} that the spec's "
                f"prediction_proba mapping does not name"
            )
    if spec.task == "regression":
        numbers = pd.to_numeric(target, errors="coerce")
        if numbers.isna().any():
            row = int(np.flatnonzero(numbers.isna().to_numpy())[0])
            raise TrainingDataError(f"target {spec.target!r}: {target.iloc[row]!r} is not a number")
        target = numbers.astype(float)
    return target


def train_model(
    spec: ModelSpec,
    frame: pd.DataFrame,
    *,
    seed: int = 0,
    validation_share: float = 0.25,
    validation: pd.DataFrame | None = None,
) -> TrainedModel:
    """Fit the spec's pipeline on `frame` and validate it on a (stratified, for a classifier)
    held-out share of it, or on `validation` when given (its rows then become the reference set)."""
    target = training_target(spec, frame)
    labelled = frame.loc[target.index]
    features = feature_frame(spec, labelled)
    if validation is None:
        x_train, x_valid, y_train, y_valid = train_test_split(
            features,
            target,
            test_size=validation_share,
            random_state=seed,
            stratify=target if spec.is_classifier else None,
        )
        source = labelled
    else:
        x_train, y_train = features, target
        source = validation[validation[spec.target].notna()]
        x_valid, y_valid = feature_frame(spec, source), training_target(spec, source)
    pipeline = build_pipeline(spec, seed).fit(x_train, y_train)
    ids = source.loc[x_valid.index, spec.id] if spec.id in source else x_valid.index
    segments = source.loc[x_valid.index, [c for c in spec.segments if c in source]]
    return validated_model(spec, pipeline, x_valid, y_valid, ids, len(x_train), segments)
