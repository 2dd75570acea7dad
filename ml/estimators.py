"""The user's estimator as driftmart uses it: checked against the spec, asked for its predictions,
scored per task, and given labels in its own classes' type.

Any scikit-learn estimator or Pipeline works: driftmart calls `predict` for the prediction (never the
argmax of `predict_proba`: the two can differ) and `predict_proba` for the probabilities of a
classifier. Predictions keep the model's own type: an int class stays an int, a string class a
string, a regression value a float.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier, is_regressor
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline

from ml.errors import DriftmartError
from ml.spec import ModelSpec, label_text


class ModelSpecMismatchError(DriftmartError):
    """A model that does not fit its spec: wrong task, classes, features or missing methods."""


class TrainingDataError(DriftmartError, ValueError):
    """Training data that cannot train the spec's model; the message names the column."""


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


def python_value(value: Any) -> Any:
    """A numpy scalar as the Python value JSON carries (np.int64(1) → 1, np.str_("a") → "a")."""
    return value.item() if isinstance(value, np.generic) else value


def final_estimator(model: Any) -> Any:
    """The last step of a Pipeline (of nested Pipelines too); the model itself otherwise."""
    while isinstance(model, Pipeline):
        model = model.steps[-1][1]
    return model


def estimator_name(model: Any) -> str:
    """The class name of the final estimator, e.g. RandomForestClassifier."""
    return type(final_estimator(model)).__name__


def model_classes(model: Any) -> list[Any]:
    """A classifier's classes as Python values, in the order of its predict_proba columns."""
    return [python_value(label) for label in np.asarray(model.classes_)]


def model_inputs(spec: ModelSpec, model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The spec's features typed for the model, in the order the model was fitted with (when it
    recorded its feature names and they are the spec's): exactly the names the spec gives."""
    features = feature_frame(spec, frame)
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None and list(fitted) != list(features.columns) and set(fitted) == set(features.columns):
        features = features[list(fitted)]
    return features


def check_model(spec: ModelSpec, model: Any) -> None:
    """Refuse a model that cannot serve the spec: task, classes and fitted feature names."""
    where = f"the model ({estimator_name(model)})"
    if spec.is_classifier and not is_classifier(model):
        kind = "a regressor" if is_regressor(model) else "not a scikit-learn classifier"
        raise ModelSpecMismatchError(f"{where} is {kind}, but the spec's task is {spec.task}")
    if not spec.is_classifier and not is_regressor(model):
        kind = "a classifier" if is_classifier(model) else "not a scikit-learn regressor"
        raise ModelSpecMismatchError(f"{where} is {kind}, but the spec's task is regression")
    if not hasattr(model, "predict"):
        raise ModelSpecMismatchError(f"{where} has no predict method")
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None:
        fitted_names = [str(name) for name in fitted]
        missing = [name for name in spec.features if name not in fitted_names]
        extra = [name for name in fitted_names if name not in spec.features]
        if missing or extra:
            details = []
            if missing:
                details.append(f"it was not fitted with {', '.join(map(repr, missing))}")
            if extra:
                details.append(f"it needs {', '.join(map(repr, extra))}, which the spec does not name")
            raise ModelSpecMismatchError(
                f"{where} does not take the spec's features: {'; '.join(details)} "
                "(the spec's feature names must be the model's column names, exactly)"
            )
    if not spec.is_classifier:
        return
    if not hasattr(model, "classes_"):
        raise ModelSpecMismatchError(f"{where} has no classes_: is it fitted?")
    if not hasattr(model, "predict_proba"):
        raise ModelSpecMismatchError(
            f"{where} has no predict_proba: a classifier must give probabilities (e.g. "
            "SVC(probability=True), or wrap it in CalibratedClassifierCV)"
        )
    classes = [label_text(label) for label in model_classes(model)]
    shown = ", ".join(map(repr, classes))
    if spec.task == "binary":
        if len(classes) != 2:
            raise ModelSpecMismatchError(
                f"{where} has {len(classes)} classes ({shown}), but the spec's task is binary"
            )
        if spec.positive_label not in classes:
            raise ModelSpecMismatchError(
                f"the spec's positive_label {spec.positive_label!r} is not a class of {where} "
                f"(classes: {shown}); set positive_label to one of them"
            )
    elif set(classes) != {label_text(key) for key in spec.class_probabilities}:
        raise ModelSpecMismatchError(
            f"the classes of the spec's prediction_proba mapping "
            f"({', '.join(map(repr, spec.class_probabilities))}) are not those of {where} ({shown})"
        )


@dataclass(frozen=True)
class Outputs:
    """What the model answers for a batch of rows, as Python values."""

    predictions: list[Any]
    probability: list[float] | None = None  # binary: P(positive_label)
    probabilities: list[dict[str, float]] | None = None  # multiclass: {class as text: p}


def positive_index(spec: ModelSpec, model: Any) -> int:
    classes = [label_text(label) for label in model_classes(model)]
    return classes.index(spec.positive_label)


def predict_outputs(spec: ModelSpec, model: Any, features: pd.DataFrame) -> Outputs:
    """`predict` (and for a classifier `predict_proba`) on typed features (`model_inputs`)."""
    predicted = [python_value(value) for value in np.asarray(model.predict(features))]
    if spec.task == "regression":
        return Outputs([float(value) for value in predicted])
    matrix = np.asarray(model.predict_proba(features), dtype=float)
    if spec.task == "binary":
        return Outputs(predicted, probability=matrix[:, positive_index(spec, model)].tolist())
    keys = [label_text(label) or "" for label in model_classes(model)]
    return Outputs(predicted, probabilities=[dict(zip(keys, map(float, row), strict=True)) for row in matrix])


def labels_as_classes(spec: ModelSpec, labels: pd.Series, model: Any) -> np.ndarray:
    """Labels (stored as text in the warehouse) in the type of the model's own classes (1 stays 1,
    "yes" stays "yes"); a label that is no class of the model becomes None. Regression: floats (NaN
    for text that is no number)."""
    if not spec.is_classifier:
        return pd.to_numeric(labels, errors="coerce").to_numpy(dtype=float)
    classes = np.asarray(model.classes_)
    by_text = {label_text(label): label for label in classes}
    values = [by_text.get(label_text(value)) for value in labels]
    if all(value is not None for value in values):
        return np.asarray(values, dtype=classes.dtype)
    return np.asarray(values, dtype=object)


def score(
    spec: ModelSpec, model: Any, features: pd.DataFrame, truth: pd.Series, *, with_log_loss: bool = False
) -> dict[str, float]:
    """The task's metrics of `model` on labelled rows (truth as text or in the classes' type).
    binary: roc_auc, accuracy, f1 (positive_label); multiclass: accuracy, macro_f1, weighted_f1,
    roc_auc (one-vs-rest); regression: rmse, mae, r2. A metric the rows cannot give (one class
    only) is left out."""
    outputs = predict_outputs(spec, model, features)
    metrics: dict[str, float] = {}
    if spec.task == "regression":
        actual = pd.to_numeric(pd.Series(list(truth)), errors="coerce").to_numpy(dtype=float)
        predicted = np.asarray(outputs.predictions, dtype=float)
        metrics["rmse"] = float(math.sqrt(mean_squared_error(actual, predicted)))
        metrics["mae"] = float(mean_absolute_error(actual, predicted))
        if len(actual) > 1:
            metrics["r2"] = float(r2_score(actual, predicted))
        return metrics
    actual_text = np.asarray([label_text(value) for value in truth], dtype=object)
    predicted_text = np.asarray([label_text(value) for value in outputs.predictions], dtype=object)
    metrics["accuracy"] = float(accuracy_score(actual_text, predicted_text))
    matrix = np.asarray(model.predict_proba(features), dtype=float)
    class_texts = [label_text(label) for label in model_classes(model)]
    if spec.task == "binary":
        positive = spec.positive_label
        with contextlib.suppress(ValueError):  # one class only: no ROC AUC
            metrics["roc_auc"] = float(roc_auc_score(actual_text == positive, outputs.probability))
        metrics["f1"] = float(f1_score(actual_text == positive, predicted_text == positive, zero_division=0))
    else:
        metrics["macro_f1"] = float(f1_score(actual_text, predicted_text, average="macro", zero_division=0))
        metrics["weighted_f1"] = float(
            f1_score(actual_text, predicted_text, average="weighted", zero_division=0)
        )
        with contextlib.suppress(ValueError):
            metrics["roc_auc"] = float(
                roc_auc_score(actual_text, matrix, multi_class="ovr", labels=class_texts)
            )
    if with_log_loss:
        with contextlib.suppress(ValueError):
            metrics["log_loss"] = float(log_loss(actual_text, matrix, labels=class_texts))
    return metrics
