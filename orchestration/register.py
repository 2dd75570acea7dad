"""`driftmart register`: a pre-trained scikit-learn estimator or Pipeline of its owner's becomes a
version of the spec's model, served by `driftmart serve` and retrained as itself on drift.

Read the model file (ml/model_files.py: skops, or a pickle with `trust_pickle`) → check it against
the spec (task, classes, feature names: ml/estimators.py) → read the reference file the way
`driftmart import` does (warehouse/importer.py) → predict it (predictions and probabilities the file
lacks come from the model; the metrics always do) → register it (stored as skops with its SHA-256)
→ mirror the registry into the warehouse. The first version of a model becomes its champion; a
later one is a challenger unless `promote` (`--promote`) makes it the champion at once (the previous
champion is retired, and `driftmart rollback` returns to it).

It lives here, not in ml/, because it joins the model layer with the warehouse's file reading
(warehouse.importer imports ml.registry, so the registry cannot import it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio

from ml import registry
from ml.estimators import (
    ModelSpecMismatchError,
    Outputs,
    check_model,
    label_text,
    model_inputs,
    predict_outputs,
    score,
)
from ml.model_files import ModelFileError, load_model_file
from ml.spec import ModelSpec
from ml.train import TrainedModel
from warehouse.home import Home
from warehouse.importer import prepare_reference
from warehouse.ingest import mirror_model

TRIGGER = "register"


@dataclass(frozen=True)
class Registration:
    version: registry.ModelVersion
    model_format: str  # the file's format: skops or pickle (stored as skops either way)
    n_reference_rows: int
    n_labelled_rows: int  # reference rows with a target: what the metrics are computed on
    predictions_given: bool  # the reference file had the prediction column
    n_predictions_differing: int  # rows where the file's prediction is not the model's
    n_non_finite_as_missing: int


def _predict(spec: ModelSpec, model: Any, inputs: pd.DataFrame, reference_path: Path) -> Outputs:
    try:
        return predict_outputs(spec, model, inputs)
    except Exception as error:
        raise ModelSpecMismatchError(
            f"the model cannot predict the rows of {reference_path} from the spec's features "
            f"({', '.join(spec.features)}): {type(error).__name__}: {error}"
        ) from None


def _check_skops_round_trip(spec: ModelSpec, model: Any, inputs: pd.DataFrame, expected: Outputs) -> None:
    """The registry stores the model as skops: it must come back predicting the same."""
    try:
        data = sio.dumps(model)
        copy = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    except Exception as error:
        raise ModelFileError(
            f"the model cannot be stored in skops format, which the registry uses: "
            f"{type(error).__name__}: {error}"
        ) from None
    again = predict_outputs(spec, copy, inputs)
    same = [label_text(a) for a in again.predictions] == [label_text(b) for b in expected.predictions]
    if expected.probability is not None:
        same = same and np.allclose(again.probability, expected.probability, equal_nan=True)
    if not same:
        raise ModelFileError("the model predicts differently once stored in skops format: refusing it")


def _reference_set(spec: ModelSpec, reference: pd.DataFrame, outputs: Outputs) -> tuple[pd.DataFrame, int]:
    """The reference rows with the model's predictions and probabilities where the file had none;
    and how many of the file's own predictions differ from the model's."""
    reference = reference.copy()
    differing = 0
    if spec.prediction in reference:
        given = reference[spec.prediction].map(label_text)
        computed = pd.Series([label_text(value) for value in outputs.predictions], index=reference.index)
        differing = int((given.notna() & (given != computed)).sum())
    else:
        reference[spec.prediction] = outputs.predictions
    if outputs.probability is not None:
        column = spec.prediction_proba or "probability"
        if column not in reference:
            reference[column] = outputs.probability
    if outputs.probabilities is not None:
        for label, column in spec.class_probabilities.items():
            if column not in reference:
                reference[column] = [row.get(label_text(label)) for row in outputs.probabilities]
    return reference, differing


def register_model_file(
    home: Home,
    spec: ModelSpec,
    model_path: Path,
    reference_path: Path,
    *,
    trust_pickle: bool = False,
    promote: bool = False,
    actor: str = "driftmart register",
) -> Registration:
    """Check, register and mirror a model file with its reference set; see the module docstring."""
    loaded = load_model_file(model_path, trust_pickle=trust_pickle)
    model = loaded.model
    check_model(spec, model)
    reference, non_finite = prepare_reference(spec, reference_path)
    inputs = model_inputs(spec, model, reference)
    outputs = _predict(spec, model, inputs, reference_path)
    _check_skops_round_trip(spec, model, inputs, outputs)

    metrics: dict[str, float] = {}
    n_labelled = 0
    if spec.target and spec.target in reference:
        labelled = reference[spec.target].notna().to_numpy()
        n_labelled = int(labelled.sum())
        if n_labelled:
            metrics = score(
                spec, model, inputs[labelled], reference.loc[labelled, spec.target], with_log_loss=True
            )
    stored, differing = _reference_set(spec, reference, outputs)

    trained = TrainedModel(pipeline=model, metrics=metrics, reference=stored, n_training_rows=0)
    evidence = {
        "model_file": str(model_path.resolve()),
        "model_format": loaded.format,
        "reference_file": str(reference_path.resolve()),
    }
    version = registry.register(home, spec, trained, trigger=TRIGGER, actor=actor, evidence=evidence)
    if promote and version.status != "champion":
        version = registry.promote(
            home, spec.model, version.model_version, actor=actor, reason="registered with --promote"
        )
    mirror_model(home, spec)
    return Registration(
        version=version,
        model_format=loaded.format,
        n_reference_rows=len(stored),
        n_labelled_rows=n_labelled,
        predictions_given=spec.prediction in reference,
        n_predictions_differing=differing,
        n_non_finite_as_missing=non_finite,
    )
