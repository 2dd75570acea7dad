"""Request and response models generated from the monitoring spec.

A feature is required; `null` is an accepted missing value. Numbers must be finite JSON numbers
(not strings, not booleans, not NaN/Infinity); categories must be strings, and a category the model
never saw is valid input (that is drift, not an error). Unknown fields are refused, so a misspelt
feature name is an error naming the field instead of a silently missing value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, create_model

from ml.spec import ModelSpec

RequestId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
NumericValue = Annotated[float | None, Field(strict=True, allow_inf_nan=False)]
CategoricalValue = Annotated[StrictStr | None, Field(max_length=256)]


def _utc_naive(value: datetime) -> datetime:
    """Timestamps are stored as UTC without a zone (DESIGN.md §3.3): convert an aware one."""
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ValueError("timestamp is out of range once converted to UTC") from None


Timestamp = Annotated[datetime, AfterValidator(_utc_naive)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def prediction_request_model(spec: ModelSpec) -> type[BaseModel]:
    """The body of one prediction: the spec's features, plus an optional id and timestamp."""
    fields: dict[str, Any] = {
        spec.id: (RequestId | None, None),
        # For replaying or backfilling scored traffic; the server's clock otherwise.
        spec.timestamp: (Timestamp | None, None),
    }
    for name, kind in spec.features.items():
        fields[name] = (NumericValue if kind == "numeric" else CategoricalValue, ...)
    return create_model(f"{spec.model.title().replace('_', '')}PredictionRequest", __base__=_Strict, **fields)


class Prediction(BaseModel):
    request_id: str
    prediction: int | str
    probability: float | None
    model_version: int


class Feedback(_Strict):
    request_id: RequestId
    label: StrictInt | StrictStr


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
