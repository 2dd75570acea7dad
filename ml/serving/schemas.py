"""Request and response models generated from the monitoring spec.

A feature is required; `null` is an accepted missing value. Numbers must be finite JSON numbers
(not strings, not booleans, not NaN/Infinity); categories must be strings, and a category the model
never saw is valid input (that is drift, not an error). The spec's segment columns that are not
features are optional fields (text, a whole number or a boolean), logged for segment drift and not
given to the model. Unknown fields are refused, so a misspelt
feature name is an error naming the field instead of a silently missing value.

Feature names are the user's own (spaces, dots, quotes, non-ASCII): each is a JSON key exactly as
the spec writes it, validated through a Python-safe field name with the user's name as its alias
(only the alias is accepted, and errors name the alias).

The id and the timestamp (the same rule on /predict, /predict/batch and /feedback): a body gives
them under the spec's names (`id`, `timestamp`); when the spec names them differently, also under
the generic `request_id` and `scored_at` (unless a feature has that name). Both given with
different values is a 422 naming both; both with the same value is fine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    create_model,
)

from ml.spec import ModelSpec

RequestId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
NumericValue = Annotated[float | None, Field(strict=True, allow_inf_nan=False)]
CategoricalValue = Annotated[StrictStr | None, Field(max_length=256)]
# A segment column's value (spec `segments`): text, a whole number or a boolean; optional.
SegmentValue = Annotated[StrictStr | StrictInt | StrictBool | None, Field(union_mode="left_to_right")]
FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]
GENERIC_ID, GENERIC_TIMESTAMP, LABEL = "request_id", "scored_at", "label"


def _utc_naive(value: datetime) -> datetime:
    """Timestamps are stored as UTC without a zone (docs/architecture.md §3.3): convert an aware one."""
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ValueError("timestamp is out of range once converted to UTC") from None


def _iso_text(value: Any) -> Any:
    """The schema says an ISO-8601 string: pydantic alone would also take a number as Unix seconds."""
    if isinstance(value, bool | int | float):
        raise ValueError("a timestamp is an ISO-8601 string, not a number")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_utc_naive)]


class _Strict(BaseModel):
    # Only the aliases (the user's names) are accepted as keys: never the internal field names.
    model_config = ConfigDict(extra="forbid", validate_by_alias=True, validate_by_name=False)


@dataclass(frozen=True)
class RequestFields:
    """Which JSON key is which field of a generated request model: (key as written, field name)."""

    features: tuple[tuple[str, str], ...]
    segments: tuple[tuple[str, str], ...]  # the spec's segment columns that are not features
    ids: tuple[tuple[str, str], ...]  # the spec's name first
    timestamps: tuple[tuple[str, str], ...]


def request_fields(spec: ModelSpec) -> RequestFields:
    def keys(name: str, generic: str) -> list[str]:
        taken = generic in spec.features or generic in spec.segments
        return [name] + ([generic] if generic != name and not taken else [])

    return RequestFields(
        features=tuple((name, f"feature_{position}") for position, name in enumerate(spec.features)),
        segments=tuple(
            (name, f"segment_{position}")
            for position, name in enumerate(spec.segments)
            if name not in spec.features
        ),
        ids=tuple((key, f"id_{n}") for n, key in enumerate(keys(spec.id, GENERIC_ID))),
        timestamps=tuple(
            (key, f"timestamp_{n}") for n, key in enumerate(keys(spec.timestamp, GENERIC_TIMESTAMP))
        ),
    )


def _model_name(spec: ModelSpec, suffix: str) -> str:
    return f"{spec.model.title().replace('_', '')}{suffix}"


def _at_least_one_of(keys: list[str]) -> dict[str, Any] | None:
    """JSON Schema for "at least one of these keys" (each is optional on its own)."""
    return {"anyOf": [{"required": [key]} for key in keys]} if len(keys) > 1 else None


def prediction_request_model(spec: ModelSpec) -> type[BaseModel]:
    """The body of one prediction: the spec's features, plus an optional id and timestamp."""
    names = request_fields(spec)
    fields: dict[str, Any] = {}
    for key, field_name in names.ids:
        fields[field_name] = (RequestId | None, Field(None, alias=key))
    for key, field_name in names.timestamps:
        # For replaying or backfilling scored traffic; the server's clock otherwise.
        fields[field_name] = (Timestamp | None, Field(None, alias=key))
    for (key, field_name), kind in zip(names.features, spec.features.values(), strict=True):
        fields[field_name] = (NumericValue if kind == "numeric" else CategoricalValue, Field(..., alias=key))
    for key, field_name in names.segments:
        fields[field_name] = (SegmentValue, Field(None, alias=key))
    return create_model(_model_name(spec, "PredictionRequest"), __base__=_Strict, **fields)


@dataclass(frozen=True)
class FeedbackFields:
    ids: tuple[tuple[str, str], ...]
    label: str  # the JSON key of the label


def feedback_fields(spec: ModelSpec) -> FeedbackFields:
    """The id under the spec's name (and `request_id`), the label under `label` (or, when the
    spec's id is itself named `label`, under the target's name)."""
    label = LABEL if spec.id != LABEL else (spec.target or LABEL)
    keys = [key for key, _ in request_fields(spec).ids if key != label] or [GENERIC_ID]
    return FeedbackFields(ids=tuple((key, f"id_{n}") for n, key in enumerate(keys)), label=label)


def label_choices(classes: list[Any]) -> list[Any]:
    """The label values /feedback accepts for a classifier: each class as it is (an int or a
    string), and an int class also as its text (1 and "1")."""
    choices: list[Any] = []
    for label in classes:
        if isinstance(label, bool):
            choices.append("true" if label else "false")
        elif isinstance(label, int):
            choices += [label, str(label)]
        elif isinstance(label, str):
            choices.append(label)
        else:
            choices.append(str(label))
    return choices


def feedback_model(spec: ModelSpec, classes: list[Any] | None) -> type[BaseModel]:
    """One label for an earlier prediction: `{<id>, label}`. A classifier's label is one of its
    classes (`classes`, listed in the schema); a regression's a finite number."""
    names = feedback_fields(spec)
    fields: dict[str, Any] = {}
    required = len(names.ids) == 1
    for key, field_name in names.ids:
        fields[field_name] = (
            RequestId if required else RequestId | None,
            Field(... if required else None, alias=key),
        )
    if spec.is_classifier:
        fields["label"] = (
            StrictInt | StrictStr,
            Field(..., alias=names.label, json_schema_extra={"enum": label_choices(classes or [])}),
        )
    else:
        fields["label"] = (FiniteNumber, Field(..., alias=names.label))
    extra = _at_least_one_of([key for key, _ in names.ids])
    config = ConfigDict(
        extra="forbid", validate_by_alias=True, validate_by_name=False, json_schema_extra=extra
    )
    return create_model(_model_name(spec, "Feedback"), __config__=config, **fields)


class Prediction(BaseModel):
    """A classifier's answer: `prediction` is what the model's `predict` answers, in its type."""

    request_id: str
    prediction: StrictBool | StrictInt | StrictFloat | StrictStr
    probability: float | None  # binary: P(positive_label); null for multiclass and regression
    model_version: int


class MulticlassPrediction(Prediction):
    probabilities: dict[str, float]  # {class as text: probability}, from predict_proba


class RegressionPrediction(Prediction):
    prediction: float  # type: ignore[assignment]


def prediction_response_model(spec: ModelSpec) -> type[Prediction]:
    if spec.task == "multiclass":
        return MulticlassPrediction
    return RegressionPrediction if spec.task == "regression" else Prediction


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every 4xx: what was wrong, and for validation errors which field (`0.car_value` in a batch)."""

    error: str
    fields: list[FieldError] | None = None


class FeedbackAccepted(BaseModel):
    accepted: int


class ModelInfo(BaseModel):
    model: str
    model_version: int
    features: dict[str, str]
    task: str
    estimator: str
