"""The model API (docs/architecture.md §3.1b). It never opens the warehouse: every answered prediction is
appended to the landing zone and fsynced before the answer is sent, so a 200 means "on disk".

Hostile input is a 4xx with a JSON `{"error": …}` naming what was wrong, never a 5xx: bodies over
`max_body_bytes` are refused whether they declare a Content-Length or stream in chunks, and with
`DRIFTMART_API_TOKEN` set the writing endpoints want `Authorization: Bearer <token>` (checked before
the body is read; the token is never logged).
"""

import hmac
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import pandas as pd
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ml import registry
from ml.estimators import estimator_name, model_classes, model_inputs, predict_outputs
from ml.serving.batching import Combiner
from ml.serving.schemas import (
    ErrorBody,
    FeedbackAccepted,
    ModelInfo,
    Prediction,
    feedback_fields,
    feedback_model,
    label_choices,
    prediction_request_model,
    prediction_response_model,
    request_fields,
)
from ml.spec import ModelSpec
from warehouse.home import Home
from warehouse.landing import LandingWriteError, LandingWriter

logger = logging.getLogger("driftmart.serving")
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_BATCH = 1000
CHAMPION_CHECK_SECONDS = 1.0
# A refused body up to this size is read and discarded before the 413 is sent, so a client that
# writes its whole body before reading (requests, curl) reads the answer instead of a reset; past
# it the server stops reading and closes.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
TOKEN_ENV = "DRIFTMART_API_TOKEN"
# What the token protects: everything that writes (the landing zone). /health, /model and /metrics
# stay open for load balancers and Prometheus; the API has no admin endpoints (promote and rollback
# are `driftmart` commands on the host).
PROTECTED_PATHS = frozenset({"/predict", "/predict/batch", "/feedback"})
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body could not be read as UTF-8 JSON"},
    401: {
        "model": ErrorBody,
        "description": "DRIFTMART_API_TOKEN is set and the bearer token is missing or wrong",
    },
    413: {"model": ErrorBody, "description": "The body or the batch is larger than the server's limit"},
    422: {"model": ErrorBody, "description": "Invalid JSON or values; `fields` names each field"},
    503: {"model": ErrorBody, "description": "The landing zone could not write the rows durably: retry"},
}


class BodyTooLargeError(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"request body is larger than the limit of {limit} bytes", headers={"Connection": "close"}
        )


async def _discard_body(receive: Receive, received: int = 0) -> None:
    """Reads the rest of a refused body (up to DRAIN_LIMIT_BYTES) and drops it."""
    while received <= DRAIN_LIMIT_BYTES:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        received += len(message.get("body", b""))


class StreamedBodyLimit:
    """Refuses bodies over `max_body_bytes` as they arrive, so a chunked upload without a
    Content-Length cannot make the server buffer more than the limit."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    if message.get("more_body", False):
                        await _discard_body(receive, received)
                    raise BodyTooLargeError(self.max_body_bytes)
            return message

        await self.app(scope, limited_receive, send)


class ServedModel:
    """The champion model (any scikit-learn estimator or Pipeline), swapped atomically when the
    registry names a new champion.

    A new champion that fails verification (missing or tampered artifact) is not loaded: the current
    model keeps serving and the error is logged.
    """

    def __init__(self, home: Home, spec: ModelSpec) -> None:
        self.home, self.spec = home, spec
        self._lock = threading.Lock()
        self._next_check = 0.0
        # One immutable pair, replaced by one assignment: a request never pairs the new model with
        # the old version number (two attributes could be read between their two assignments).
        self._champion: tuple[Any, registry.ModelVersion] = registry.load_pipeline(home, spec.model)

    @property
    def version(self) -> registry.ModelVersion:
        return self._champion[1]

    def current(self) -> tuple[Any, registry.ModelVersion]:
        now = time.monotonic()
        if now >= self._next_check:
            with self._lock:
                if now >= self._next_check:
                    self._next_check = now + CHAMPION_CHECK_SECONDS
                    self._reload_if_changed()
        return self._champion

    def _reload_if_changed(self) -> None:
        champion = registry.champion_version(self.home, self.spec.model)
        if champion is None or champion == self.version.model_version:
            return
        try:
            pipeline, version = registry.load_pipeline(self.home, self.spec.model, champion)
        except (registry.RegistryError, OSError) as error:
            logger.error("keeping model v%s: %s", self.version.model_version, error)
            return
        self._champion = (pipeline, version)  # readers see the old pair or the new one
        logger.info("now serving %s v%s", self.spec.model, version.model_version)


class FieldsError(Exception):
    """A body valid field by field but not as a whole (two names of the id that disagree, a label
    that is no class of the model): a 422 naming the fields as the client wrote them."""

    def __init__(self, fields: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{field['field']}: {field['message']}" for field in fields))
        self.fields = fields


def _one_value(row: BaseModel, keys: tuple[tuple[str, str], ...], prefix: str) -> Any:
    """The value given under any of `keys` ((key, field name): the spec's name, the generic one);
    two different values is a FieldsError naming both."""
    given = [(key, getattr(row, name)) for key, name in keys if getattr(row, name) is not None]
    if len({value for _, value in given}) > 1:
        named = " and ".join(key for key, _ in given)
        message = f"{named} are both given, with different values: give one (or the same value)"
        raise FieldsError([{"field": prefix + key, "message": message} for key, _ in given])
    return given[0][1] if given else None


@dataclass(frozen=True)
class ScoredRow:
    """One row to predict: the id and timestamp it came with (if any) and its feature values."""

    request_id: str | None
    scored_at: datetime | None
    features: dict[str, Any]
    segments: dict[str, Any]  # the spec's segment columns, as given (None when not)


def _error_response(status: int, message: str, fields: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if fields is not None:
        body["fields"] = fields
    return JSONResponse(status_code=status, content=body)


def _field_errors(errors: list[Any]) -> list[dict[str, Any]]:
    fields = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        fields.append({"field": ".".join(location) or "(body)", "message": error.get("msg", "")})
    return fields


def create_app(
    home: Home,
    spec: ModelSpec,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch: int = DEFAULT_MAX_BATCH,
    api_token: str | None = None,
) -> FastAPI:
    """Build the API for the spec's model, serving the registry's champion from `home`.

    `api_token` (default: env DRIFTMART_API_TOKEN; empty means none) protects PROTECTED_PATHS.
    """
    served = ServedModel(home, spec)
    token = (api_token if api_token is not None else os.environ.get(TOKEN_ENV, "")).encode()
    request_model = prediction_request_model(spec)
    writers: dict[str, LandingWriter] = {}
    metrics = CollectorRegistry()
    requests_total = Counter(
        "driftmart_api_requests",
        "API requests by endpoint and HTTP status.",
        ["endpoint", "status"],
        registry=metrics,
    )
    latency = Histogram(
        "driftmart_api_request_duration_seconds",
        "API request latency by endpoint, including the durable log write.",
        ["endpoint"],
        registry=metrics,
    )
    predictions_total = Counter(
        "driftmart_api_predictions", "Predictions answered and durably logged.", registry=metrics
    )
    log_write_latency = Histogram(
        "driftmart_api_log_write_duration_seconds",
        "Durable logging latency by landing stream: one LandingWriter.append, write + fdatasync.",
        ["stream"],
        buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        registry=metrics,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        writers["inference"] = LandingWriter(home.landing, "inference")
        writers["feedback"] = LandingWriter(home.landing, "feedback")
        try:
            yield
        finally:
            for writer in writers.values():
                writer.close()

    app = FastAPI(title=f"driftmart model API: {spec.model}", lifespan=lifespan)
    app.add_middleware(StreamedBodyLimit, max_body_bytes=max_body_bytes)

    def authorized(request: Request) -> bool:
        if not token or request.url.path not in PROTECTED_PATHS:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)

    @app.middleware("http")
    async def limit_body_and_measure(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        declared = request.headers.get("content-length")
        if not authorized(request):
            response: Response = _error_response(
                401, "missing or wrong bearer token (header `Authorization: Bearer <DRIFTMART_API_TOKEN>`)"
            )
            response.headers["WWW-Authenticate"] = "Bearer"
        elif declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
            if declared.isdigit() and request.headers.get("expect", "").lower() != "100-continue":
                await _discard_body(request.receive)  # an Expect client sends nothing until told
            response = _error_response(
                413, f"request body is larger than the limit of {max_body_bytes} bytes"
            )
            response.headers["Connection"] = "close"
        else:
            response = await call_next(request)
        # The route's template, never the raw path: random 404 paths must not create new series.
        route = request.scope.get("route")
        endpoint = getattr(route, "path", None)
        if endpoint is None:  # refused before routing (401, 413) or no such route (404)
            known = {getattr(known_route, "path", None) for known_route in app.routes}
            endpoint = request.url.path if request.url.path in known else "(unmatched)"
        requests_total.labels(endpoint, str(response.status_code)).inc()
        latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        message = str(error.detail)
        if error.status_code == 400 and message == "There was an error parsing the body":  # FastAPI's
            message = "the request body could not be parsed: send UTF-8 JSON"
        return JSONResponse(status_code=error.status_code, content={"error": message}, headers=error.headers)

    @app.exception_handler(LandingWriteError)
    async def not_logged(_: Request, error: LandingWriteError) -> JSONResponse:
        # Nothing is acknowledged that is not on disk: the client may retry the same request_id.
        logger.error("landing write failed: %s", error)
        return _error_response(503, "the prediction could not be logged durably; retry the request")

    @app.exception_handler(FieldsError)
    async def invalid_fields(_: Request, error: FieldsError) -> JSONResponse:
        return _error_response(422, f"invalid request: {error}", error.fields)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        fields = _field_errors(list(error.errors()))
        summary = "; ".join(f"{field['field']}: {field['message']}" for field in fields)
        return _error_response(422, f"invalid request: {summary}", fields)

    fields = request_fields(spec)
    response_model = prediction_response_model(spec)
    feedback_keys = feedback_fields(spec)
    feedback_schema = feedback_model(spec, model_classes(served.current()[0]) if spec.is_classifier else None)

    def scored_rows(payload: list[BaseModel], indexed: bool) -> list[ScoredRow]:
        rows = []
        for index, row in enumerate(payload):
            prefix = f"{index}." if indexed else ""
            features = {key: getattr(row, name) for key, name in fields.features}
            segments = {key: getattr(row, name) for key, name in fields.segments}
            rows.append(
                ScoredRow(
                    request_id=_one_value(row, fields.ids, prefix),
                    scored_at=_one_value(row, fields.timestamps, prefix),
                    features=features,
                    segments={key: features.get(key, segments.get(key)) for key in spec.segments},
                )
            )
        return rows

    def _predict_rows(rows: list[ScoredRow]) -> list[Prediction]:
        model, version = served.current()
        frame = pd.DataFrame([row.features for row in rows], columns=list(spec.features))
        # What the model's own predict (and predict_proba) answers, in its own type (ml/estimators.py).
        outputs = predict_outputs(spec, model, model_inputs(spec, model, frame))
        now = datetime.now(UTC).replace(tzinfo=None)
        records, answers = [], []
        for position, row in enumerate(rows):
            request_id = row.request_id or uuid.uuid4().hex
            scored_at = row.scored_at or now  # naive UTC (schemas.Timestamp)
            prediction = outputs.predictions[position]
            probability = outputs.probability[position] if outputs.probability is not None else None
            record: dict[str, Any] = {
                "model": spec.model,
                "request_id": request_id,
                "model_version": version.model_version,
                "scored_at": scored_at.isoformat(),
                "received_at": now.isoformat(),
                "features": row.features,
                **({"segments": row.segments} if row.segments else {}),
                "prediction": prediction,
                "probability": probability,
            }
            answer: dict[str, Any] = {
                "request_id": request_id,
                "prediction": prediction,
                "probability": probability,
                "model_version": version.model_version,
            }
            if outputs.probabilities is not None:
                record["probabilities"] = answer["probabilities"] = outputs.probabilities[position]
            records.append(record)
            answers.append(response_model(**answer))
        with log_write_latency.labels("inference").time():
            writers["inference"].append(records)  # on disk before we answer
        predictions_total.inc(len(records))
        return answers

    # Concurrent requests share one model call and one durable write (ml/serving/batching.py).
    predictions: Combiner[ScoredRow, Prediction] = Combiner(_predict_rows)

    @app.post("/predict", response_model=response_model, responses=ERROR_RESPONSES)
    def predict(payload: Annotated[request_model, Body()]) -> Any:  # type: ignore[valid-type]
        return predictions.submit(scored_rows([payload], indexed=False))[0]

    @app.post("/predict/batch", response_model=list[response_model], responses=ERROR_RESPONSES)
    def predict_batch(
        # The limits are documented in the OpenAPI schema and checked below: an empty batch is a 422,
        # one over the limit a 413 (too large), not a validation error.
        payload: Annotated[
            list[request_model],  # type: ignore[valid-type]
            Body(json_schema_extra={"minItems": 1, "maxItems": max_batch}),
        ],
    ) -> Any:
        if not payload:
            return _error_response(
                422,
                "invalid request: the batch is empty",
                [{"field": "(body)", "message": "empty batch"}],
            )
        if len(payload) > max_batch:
            return _error_response(
                413, f"batch of {len(payload)} rows is larger than the limit of {max_batch}"
            )
        return predictions.submit(scored_rows(payload, indexed=True))

    def checked_label(item: BaseModel, prefix: str, choices: list[Any] | None) -> Any:
        label = item.label  # type: ignore[attr-defined]
        if choices is not None and not any(type(label) is type(c) and label == c for c in choices):
            shown = ", ".join(map(repr, choices))
            raise FieldsError(
                [
                    {
                        "field": prefix + feedback_keys.label,
                        "message": f"{label!r} is not a class of the model (one of {shown})",
                    }
                ]
            )
        return label

    @app.post("/feedback", response_model=FeedbackAccepted, responses=ERROR_RESPONSES)
    def feedback(
        payload: Annotated[
            feedback_schema | Annotated[list[feedback_schema], Field(min_length=1)],  # type: ignore[valid-type]
            Body(),
        ],
    ) -> Any:
        indexed = isinstance(payload, list)
        items = payload if indexed else [payload]
        if not items:
            return _error_response(
                422,
                "invalid request: no feedback given",
                [{"field": "(body)", "message": "empty list"}],
            )
        model, _ = served.current()
        choices = label_choices(model_classes(model)) if spec.is_classifier else None
        records = []
        for index, item in enumerate(items):
            prefix = f"{index}." if indexed else ""
            request_id = _one_value(item, feedback_keys.ids, prefix)
            if request_id is None:
                raise FieldsError([{"field": prefix + feedback_keys.ids[0][0], "message": "Field required"}])
            records.append(
                {
                    "model": spec.model,
                    "request_id": request_id,
                    "label": checked_label(item, prefix, choices),
                }
            )
        now = datetime.now(UTC).replace(tzinfo=None).isoformat()
        with log_write_latency.labels("feedback").time():
            writers["feedback"].append([record | {"received_at": now} for record in records])
        return FeedbackAccepted(accepted=len(items))

    @app.get("/model", response_model=ModelInfo)
    def model_info() -> ModelInfo:
        model, version = served.current()
        return ModelInfo(
            model=spec.model,
            model_version=version.model_version,
            features=dict(spec.features),
            task=spec.task,
            estimator=version.estimator or estimator_name(model),
        )

    @app.get("/health")
    def health() -> dict[str, Any]:
        _, version = served.current()
        return {"status": "ok", "model": spec.model, "model_version": version.model_version}

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"description": "Prometheus exposition format", "content": {CONTENT_TYPE_LATEST: {}}}
        },
    )
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    return app
