"""Training: a scikit-learn Pipeline built from the spec, with its validation metrics and reference.

The held-out validation rows, with the model's predictions, become the version's reference set:
drift is measured against the data the model was validated on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml.errors import DriftmartError
from ml.spec import ModelSpec

MISSING_CATEGORY = "__missing__"


class TrainingDataError(DriftmartError, ValueError):
    """Training data that cannot train the spec's model; the message names the column."""


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Pipeline
    metrics: dict[str, float]
    reference: pd.DataFrame  # validation rows: id, features, prediction, probability, target
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
    return Pipeline(
        [
            ("preprocess", ColumnTransformer(transformers)),
            ("classifier", LogisticRegression(max_iter=2000, random_state=seed)),
        ]
    )


def feature_frame(spec: ModelSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The spec's feature columns with the dtypes the pipeline expects (object for categories)."""
    missing = [name for name in spec.features if name not in frame.columns]
    if missing:
        raise TrainingDataError(f"missing feature column(s): {', '.join(missing)}")
    columns = {}
    for name, kind in spec.features.items():
        column = frame[name]
        if kind == "numeric":
            converted = pd.to_numeric(column, errors="coerce").astype(float)
            bad = column.notna() & converted.isna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise TrainingDataError(f"column {name!r}: {column.iloc[row]!r} at row {row} is not a number")
            columns[name] = converted
        else:
            columns[name] = column.astype(object).where(column.notna(), np.nan)
    return pd.DataFrame(columns, index=frame.index)


def train_model(
    spec: ModelSpec,
    frame: pd.DataFrame,
    *,
    seed: int = 0,
    validation_share: float = 0.25,
    validation: pd.DataFrame | None = None,
) -> TrainedModel:
    """Fit the spec's pipeline on `frame` and validate it on a stratified held-out share of it, or
    on `validation` when given (its rows then become the reference set)."""
    if spec.target not in frame.columns:
        raise TrainingDataError(f"missing target column {spec.target!r}")
    labelled = frame[frame[spec.target].notna()]
    target = labelled[spec.target]
    if target.nunique() != 2:
        raise TrainingDataError(
            f"target {spec.target!r} must have exactly two classes, found {target.nunique()}"
        )
    features = feature_frame(spec, labelled)
    if validation is None:
        x_train, x_valid, y_train, y_valid = train_test_split(
            features, target, test_size=validation_share, random_state=seed, stratify=target
        )
    else:
        x_train, y_train = features, target
        validation = validation[validation[spec.target].notna()]
        x_valid, y_valid = feature_frame(spec, validation), validation[spec.target]
    pipeline = build_pipeline(spec, seed).fit(x_train, y_train)
    probability = pipeline.predict_proba(x_valid)[:, 1]
    prediction = pipeline.predict(x_valid)
    metrics = {
        "accuracy": float(accuracy_score(y_valid, prediction)),
        "roc_auc": float(roc_auc_score(y_valid, probability)),
        "f1": float(f1_score(y_valid, prediction, pos_label=pipeline.classes_[1])),
        "log_loss": float(log_loss(y_valid, pipeline.predict_proba(x_valid))),
    }
    reference = x_valid.copy()
    source = labelled if validation is None else validation
    id_column = source.loc[x_valid.index, spec.id] if spec.id in source else x_valid.index
    reference.insert(0, spec.id, np.asarray(id_column).astype(str))
    reference[spec.prediction] = prediction
    reference[spec.prediction_proba or "probability"] = probability
    reference[spec.target] = y_valid.to_numpy()
    return TrainedModel(
        pipeline=pipeline,
        metrics=metrics,
        reference=reference.reset_index(drop=True),
        n_training_rows=len(x_train),
    )
