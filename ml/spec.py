"""The monitoring spec: one YAML file per monitored model.

Every part of driftmart reads the spec through `load_spec`: the API builds its request schema from
it, the ingest step writes it to the warehouse for dbt, training picks its columns from it.

Column names are the user's own, kept exactly: any non-empty text without control characters
(mixed case, spaces, dots, quotes, non-ASCII). They reach SQL only as bound parameters, quoted
identifiers or JSON keys, never spliced in as they are. The model name is an identifier: it names
folders and appears in metric names.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from ml.errors import DriftmartError

FeatureType = Literal["numeric", "categorical"]
FEATURE_TYPES: tuple[str, ...] = ("numeric", "categorical")
STATISTICS: tuple[str, ...] = ("reference_bins", "evidently")
REQUIRED_KEYS: tuple[str, ...] = ("model", "timestamp", "id", "prediction", "features")
OPTIONAL_KEYS: tuple[str, ...] = (
    "target",
    "task",
    "segments",
    "segment_drift",
    "prediction_proba",
    "positive_label",
    "window",
    "min_window_rows",
    "reference",
    "statistics",
    "drift_methods",
    "thresholds",
    "retrain",
    "description",
)
# Statistics that can decide drift, with their default thresholds. Effect sizes decide by default:
# at large n every p-value is tiny. chi2_p_value is the one where a *small* value means drift.
DRIFT_METHODS: tuple[str, ...] = (
    "psi",
    "js_distance",
    "kl_divergence",
    "hellinger",
    "l_infinity",
    "ks_statistic",
    "wasserstein_normed",
    "chi2_p_value",
)
NUMERIC_ONLY_METHODS = ("ks_statistic", "wasserstein_normed")
CATEGORICAL_ONLY_METHODS = ("l_infinity",)
DEFAULT_THRESHOLDS: dict[str, float] = {
    "psi": 0.2,
    "js_distance": 0.1,
    "kl_divergence": 0.1,
    "hellinger": 0.1,
    "l_infinity": 0.1,
    "ks_statistic": 0.1,
    "wasserstein_normed": 0.1,
    "chi2_p_value": 0.05,
    "dataset_drift_share": 0.5,
}
DEFAULT_DRIFT_METHODS = {
    "reference_bins": {"numeric": "psi", "categorical": "js_distance"},
    # Evidently 0.7's own defaults for references above 1,000 rows (docs/architecture.md §5).
    "evidently": {"numeric": "wasserstein_normed", "categorical": "js_distance"},
}
# PSI over 10 bins has a small-sample bias of about 9/n: below ~100 rows a window is noise.
DEFAULT_MIN_WINDOW_ROWS = 100
REFERENCE_KINDS = ("model_version", "previous_window", "time_range")
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MAX_COLUMN_NAME_LENGTH = 256
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
FIT_FUNCTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
WINDOW = re.compile(r"^([1-9][0-9]*)([mhdw])$")
WINDOW_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DEFAULT_SPEC_PATH = Path(__file__).parent / "specs" / "car_loan.yaml"


class SpecError(DriftmartError, ValueError):
    """A monitoring spec that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class FeatureMonitor:
    """How one feature is judged: the statistic that decides drift and its threshold."""

    method: str
    threshold: float


@dataclass(frozen=True)
class Reference:
    """What windows are compared with: the model version's reference set (default), the window
    before (rolling), or the production rows of a fixed time range [start, end)."""

    kind: str = "model_version"
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class RetrainPolicy:
    """When to retrain and when a challenger wins: the spec's optional `retrain:` block.

    A retrain is due when the dataset drifted in the latest judged window (the severity-error
    signal), when features drifted in `consecutive_warns` windows in a row (warnings), or when
    realized performance degraded in `consecutive_warns` labelled windows in a row (concept
    drift: marts.fct_model_performance.is_degraded). The
    challenger trains on the champion's reference plus the labelled rows since the drift began (at
    most `max_training_rows`); the newest `holdout_share` of them judge champion and challenger, and
    the challenger wins only by at least `promotion_margin` on `metric` (for an error metric such
    as rmse: by being at least that much lower). `fit` ("package.module:function") names the user's
    own training function, called as `fit(champion_estimator, X, y) -> fitted estimator`; without
    it the challenger is `sklearn.base.clone(champion)` refit on the same rows.
    """

    consecutive_warns: int = 2
    min_labelled_rows: int = 200
    max_training_rows: int = 50_000
    holdout_share: float = 0.3
    metric: str = "roc_auc"
    promotion_margin: float = 0.0
    fit: str | None = None


@dataclass(frozen=True)
class SegmentDrift:
    """How segment drift is judged: the spec's optional `segment_drift:` block.

    Per segment column, the `top_k` values with the most reference rows (at least `min_rows` of
    them) are segments of their own and every other value is `__other__`; a segment × feature ×
    window is tested when the window has at least `min_rows` of the segment's rows. A test is
    drifted when its Benjamini-Hochberg q-value, over every segment test of the model, is at most
    `fdr`: the expected share of false alarms among the alarms.
    """

    top_k: int = 10
    min_rows: int = 50
    fdr: float = 0.05


# Metrics a challenger can be judged on, per task; the first is the default.
RETRAIN_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "accuracy", "f1"),
    "multiclass": ("macro_f1", "accuracy", "weighted_f1", "roc_auc"),
    "regression": ("rmse", "mae", "r2"),
}
# Error metrics: lower is better.
LOWER_IS_BETTER: frozenset[str] = frozenset({"rmse", "mae", "mape"})
# The realized metrics of marts.fct_model_performance, per task.
PERFORMANCE_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc"),
    "multiclass": ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1", "roc_auc"),
    "regression": ("mae", "rmse", "mape", "r2"),
}


@dataclass(frozen=True)
class ModelSpec:
    model: str
    timestamp: str
    id: str
    prediction: str
    features: dict[str, FeatureType]
    target: str | None = None
    task: str = "binary"
    # binary: the positive class's probability column; multiclass: class_probabilities instead.
    prediction_proba: str | None = None
    # multiclass only: {class label as text: probability column}, in the spec's order.
    class_probabilities: dict[str, str] = field(default_factory=dict)
    positive_label: str = "1"
    window: str = "1d"
    min_window_rows: int = DEFAULT_MIN_WINDOW_ROWS
    reference: Reference = field(default_factory=Reference)
    statistics: str = "reference_bins"
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    monitors: dict[str, FeatureMonitor] = field(default_factory=dict)
    retrain: RetrainPolicy = field(default_factory=RetrainPolicy)
    segments: tuple[str, ...] = ()
    segment_drift: SegmentDrift = field(default_factory=SegmentDrift)
    source: str = "<memory>"

    @property
    def label_column(self) -> str:
        """The ground truth's column in frames: the spec's target, or `label` when it names none
        (labels then arrive only through /feedback or a labels file)."""
        return self.target or "label"

    @property
    def is_classifier(self) -> bool:
        return self.task != "regression"

    @property
    def probability_columns(self) -> list[str]:
        """Every probability column the spec names (binary: one; multiclass: one per class)."""
        if self.class_probabilities:
            return list(self.class_probabilities.values())
        return [self.prediction_proba] if self.prediction_proba else []

    @property
    def performance_metrics(self) -> tuple[str, ...]:
        return PERFORMANCE_METRICS[self.task]

    @property
    def window_seconds(self) -> int:
        count, unit = WINDOW.match(self.window).groups()  # type: ignore[union-attr]
        return int(count) * WINDOW_UNIT_SECONDS[unit]

    @property
    def numeric_features(self) -> list[str]:
        return [name for name, kind in self.features.items() if kind == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [name for name, kind in self.features.items() if kind == "categorical"]

    def monitor(self, feature: str) -> FeatureMonitor:
        return self.monitors[feature]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "timestamp": self.timestamp,
            "id": self.id,
            "prediction": self.prediction,
            "prediction_proba": self.prediction_proba,
            "class_probabilities": dict(self.class_probabilities),
            "positive_label": self.positive_label,
            "target": self.target,
            "task": self.task,
            "segments": list(self.segments),
            "segment_drift": asdict(self.segment_drift),
            "features": {
                name: {"type": kind, **asdict(self.monitors[name])} for name, kind in self.features.items()
            },
            "window": self.window,
            "min_window_rows": self.min_window_rows,
            "reference": {
                "kind": self.reference.kind,
                "start": self.reference.start.isoformat() if self.reference.start else None,
                "end": self.reference.end.isoformat() if self.reference.end else None,
            },
            "statistics": self.statistics,
            "thresholds": dict(self.thresholds),
        }

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the spec's content, to tell which spec a model version was trained with."""
        canonical = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if key in mapping:
            line = key_node.start_mark.line + 1
            raise SpecError(f"duplicate key {key!r} at line {line}")
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _column_name(value: Any, where: str) -> str:
    """A column name as the user's data has it: any non-empty text, kept exactly."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SpecError(f"{where}: {value!r} is not a column name (expected text)")
    name = str(value)  # YAML reads `2024: numeric` as an int key; the column is still named "2024"
    if not name.strip():
        raise SpecError(f"{where}: a column name cannot be empty or blank")
    if CONTROL_CHARACTERS.search(name):
        raise SpecError(f"{where}: {name!r} contains a control character (tab, newline …)")
    if len(name) > MAX_COLUMN_NAME_LENGTH:
        raise SpecError(f"{where}: {name[:40]!r}… is longer than {MAX_COLUMN_NAME_LENGTH} characters")
    return name


def _identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise SpecError(
            f"{where}: {value!r} is not a valid name "
            "(lowercase letters, digits and underscores, starting with a letter or underscore)"
        )
    return value


def _positive_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise SpecError(f"{where} must be a positive number, got {value!r}")
    return float(value)


def _method(value: Any, kind: str, where: str) -> str:
    if value not in DRIFT_METHODS:
        raise SpecError(f"{where}: unknown drift method {value!r} (known: {', '.join(DRIFT_METHODS)})")
    if kind == "categorical" and value in NUMERIC_ONLY_METHODS:
        raise SpecError(f"{where}: {value} applies to numeric features only")
    if kind == "numeric" and value in CATEGORICAL_ONLY_METHODS:
        raise SpecError(f"{where}: {value} applies to categorical features only")
    return value


def _timestamp(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            raise SpecError(f"{where}: {value!r} is not an ISO-8601 timestamp") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _reference(raw: Any, source: str) -> Reference:
    if raw is None or raw == "model_version":
        return Reference()
    if raw == "previous_window":
        return Reference(kind="previous_window")
    if isinstance(raw, dict) and set(raw) == {"start", "end"}:
        start = _timestamp(raw["start"], f"{source}: reference.start")
        end = _timestamp(raw["end"], f"{source}: reference.end")
        if not start < end:
            raise SpecError(f"{source}: reference: start {start} must be before end {end}")
        return Reference(kind="time_range", start=start, end=end)
    raise SpecError(
        f"{source}: key 'reference': expected model_version, previous_window or "
        f"{{start: <timestamp>, end: <timestamp>}}, got {raw!r}"
    )


def _retrain(raw: Any, source: str, task: str) -> RetrainPolicy:
    metrics = RETRAIN_METRICS[task]
    if raw is None:
        return RetrainPolicy(metric=metrics[0])
    where = f"{source}: retrain"
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping")
    known = RetrainPolicy.__dataclass_fields__
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SpecError(f"{where}: unknown key(s): {', '.join(unknown)} (known: {', '.join(known)})")
    values: dict[str, Any] = {"metric": metrics[0]}
    for key in ("consecutive_warns", "min_labelled_rows", "max_training_rows"):
        if key in raw:
            if isinstance(raw[key], bool) or not isinstance(raw[key], int) or raw[key] < 1:
                raise SpecError(f"{where}.{key} must be a positive integer, got {raw[key]!r}")
            values[key] = raw[key]
    if "holdout_share" in raw:
        share = raw["holdout_share"]
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
            raise SpecError(f"{where}.holdout_share must be between 0 and 1, got {share!r}")
        values["holdout_share"] = float(share)
    if "metric" in raw:
        if raw["metric"] not in metrics:
            raise SpecError(
                f"{where}.metric must be one of {', '.join(metrics)} for a {task} model, "
                f"got {raw['metric']!r}"
            )
        values["metric"] = raw["metric"]
    if "fit" in raw:
        if not isinstance(raw["fit"], str) or not FIT_FUNCTION.match(raw["fit"]):
            raise SpecError(
                f"{where}.fit must name a function as 'package.module:function', got {raw['fit']!r}"
            )
        values["fit"] = raw["fit"]
    if "promotion_margin" in raw:
        margin = raw["promotion_margin"]
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
            raise SpecError(f"{where}.promotion_margin must be a number in [0, 1), got {margin!r}")
        values["promotion_margin"] = float(margin)
    return RetrainPolicy(**values)


def _probability_columns(raw: Any, task: str, source: str) -> tuple[str | None, dict[str, str]]:
    """binary: one column (the positive class's probability); multiclass: {class: column}."""
    where = f"{source}: key 'prediction_proba'"
    if raw is None:
        return None, {}
    if task == "regression":
        raise SpecError(f"{where}: a regression model has no probabilities")
    if task == "binary":
        if isinstance(raw, dict):
            raise SpecError(f"{where}: a binary model names one column (the positive class's probability)")
        return _column_name(raw, where), {}
    if not isinstance(raw, dict) or len(raw) < 2:
        raise SpecError(f"{where}: a multiclass model maps each class to its column, {{class: column, ...}}")
    mapping: dict[str, str] = {}
    for label, column in raw.items():
        if isinstance(label, bool) or not isinstance(label, (str, int, float)) or str(label) == "":
            raise SpecError(f"{where}: {label!r} is not a class label")
        mapping[label_text(label)] = _column_name(column, f"{where}.{label}")
    return None, mapping


INTEGRAL_TEXT = re.compile(r"^-?[0-9]+\.0*$")


def label_text(value: object) -> str | None:
    """A prediction, label or class as the warehouse stores it, alike whatever the file type or the
    model's own type: 1, 1.0, "1", "1.0" and np.int64(1) → "1"; True → "true"."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip()
    return text.split(".")[0] if INTEGRAL_TEXT.match(text) else text


def _segments(raw: Any, source: str, reserved: set[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError(f"{source}: key 'segments' must be a list of log columns")
    names = tuple(_column_name(name, f"{source}: segments") for name in raw)
    if len(set(names)) != len(names):
        raise SpecError(f"{source}: segments: a column is named twice")
    taken = [name for name in names if name in reserved]
    if taken:
        raise SpecError(
            f"{source}: segments: {taken[0]!r} is a column driftmart reads as the id, timestamp, prediction, "
            "probability, target or model version, not a column to segment by"
        )
    return names


def _segment_drift(raw: Any, source: str, segments: tuple[str, ...]) -> SegmentDrift:
    where = f"{source}: segment_drift"
    if raw is None:
        return SegmentDrift()
    if not segments:
        raise SpecError(f"{where}: applies only with 'segments' (the log columns to segment by)")
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping")
    known = SegmentDrift.__dataclass_fields__
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SpecError(f"{where}: unknown key(s): {', '.join(unknown)} (known: {', '.join(known)})")
    values: dict[str, Any] = {}
    for key in ("top_k", "min_rows"):
        if key in raw:
            if isinstance(raw[key], bool) or not isinstance(raw[key], int) or raw[key] < 1:
                raise SpecError(f"{where}.{key} must be a positive integer, got {raw[key]!r}")
            values[key] = raw[key]
    if "fdr" in raw:
        rate = raw["fdr"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1:
            raise SpecError(f"{where}.fdr must be between 0 and 1, got {rate!r}")
        values["fdr"] = float(rate)
    return SegmentDrift(**values)


def parse_spec(raw: Any, source: str = "<memory>") -> ModelSpec:
    """Validate a parsed YAML document and return the spec it describes."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: a spec is a YAML mapping, got {type(raw).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise SpecError(f"{source}: missing required key(s): {', '.join(missing)}")
    unknown = sorted(set(raw) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise SpecError(f"{source}: unknown key(s): {', '.join(map(str, unknown))}")

    model = _identifier(raw["model"], f"{source}: key 'model'")
    task = raw.get("task", "binary")
    if task not in TASKS:
        raise SpecError(f"{source}: key 'task': {task!r} is not one of {', '.join(TASKS)}")
    columns = {
        key: _column_name(raw[key], f"{source}: key '{key}'") for key in ("timestamp", "id", "prediction")
    }
    target = _column_name(raw["target"], f"{source}: key 'target'") if raw.get("target") is not None else None
    proba, class_probabilities = _probability_columns(raw.get("prediction_proba"), task, source)
    named = [*columns.values(), *([target] if target else []), *([proba] if proba else [])]
    named += list(class_probabilities.values())
    if len(set(named)) != len(named):
        raise SpecError(
            f"{source}: timestamp, id, prediction, prediction_proba and target must name different columns"
        )
    reserved = set(named) | {"model_version"}
    if "positive_label" in raw and task != "binary":
        raise SpecError(f"{source}: key 'positive_label' applies to binary models only (task: {task})")

    window = str(raw.get("window", "1d"))
    if not WINDOW.match(window):
        raise SpecError(f"{source}: key 'window': {window!r} is not a window length like 1h, 1d or 7d")
    statistics = raw.get("statistics", "reference_bins")
    if statistics not in STATISTICS:
        raise SpecError(f"{source}: key 'statistics': {statistics!r} is not one of {', '.join(STATISTICS)}")
    min_rows = raw.get("min_window_rows", DEFAULT_MIN_WINDOW_ROWS)
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise SpecError(f"{source}: key 'min_window_rows' must be a positive integer, got {min_rows!r}")

    thresholds = dict(DEFAULT_THRESHOLDS)
    thresholds_raw = raw.get("thresholds") or {}
    if not isinstance(thresholds_raw, dict):
        raise SpecError(f"{source}: 'thresholds' must be a mapping of statistic: number")
    for name, value in thresholds_raw.items():
        if name not in DEFAULT_THRESHOLDS:
            raise SpecError(
                f"{source}: thresholds: unknown statistic {name!r} (known: {', '.join(DEFAULT_THRESHOLDS)})"
            )
        thresholds[name] = _positive_number(value, f"{source}: thresholds: {name}")
    if thresholds["chi2_p_value"] >= 1 or thresholds["dataset_drift_share"] > 1:
        raise SpecError(
            f"{source}: thresholds: chi2_p_value must be below 1 and dataset_drift_share at most 1"
        )

    default_methods = dict(DEFAULT_DRIFT_METHODS[statistics])
    methods_raw = raw.get("drift_methods") or {}
    if not isinstance(methods_raw, dict) or set(methods_raw) - set(FEATURE_TYPES):
        raise SpecError(f"{source}: 'drift_methods' must map numeric and/or categorical to a drift method")
    for kind, method in methods_raw.items():
        default_methods[kind] = _method(method, kind, f"{source}: drift_methods.{kind}")

    features_raw = raw["features"]
    if not isinstance(features_raw, dict) or not features_raw:
        raise SpecError(f"{source}: 'features' must be a non-empty mapping of name: numeric|categorical")
    features: dict[str, FeatureType] = {}
    monitors: dict[str, FeatureMonitor] = {}
    for raw_name, declaration in features_raw.items():
        name = _column_name(raw_name, f"{source}: feature")
        where = f"{source}: feature {name!r}"
        if name in reserved:
            raise SpecError(f"{where} has the name of a reserved column (id, timestamp, prediction …)")
        if name in features:
            raise SpecError(f"{where} is declared twice")
        if name == "__prediction__" or name.startswith("__probability__"):
            raise SpecError(
                f"{where}: names starting __prediction__ or __probability__ are the model output's"
            )
        options: dict[str, Any] = {}
        if isinstance(declaration, dict):
            options = dict(declaration)
            unknown_options = sorted(set(options) - {"type", "method", "threshold"})
            if unknown_options:
                raise SpecError(f"{where}: unknown option(s): {', '.join(unknown_options)}")
            kind = options.get("type")
        else:
            kind = declaration
        if kind not in FEATURE_TYPES:
            raise SpecError(
                f"{where} has unknown type {kind!r} (expected one of: {', '.join(FEATURE_TYPES)})"
            )
        method = _method(options.get("method", default_methods[kind]), kind, where)
        threshold = (
            _positive_number(options["threshold"], f"{where}: threshold")
            if "threshold" in options
            else thresholds[method]
        )
        features[name] = kind
        monitors[name] = FeatureMonitor(method=method, threshold=threshold)

    positive_label = raw.get("positive_label", 1)
    if isinstance(positive_label, bool):
        positive_label = str(positive_label).lower()
    if not isinstance(positive_label, (str, int)):
        raise SpecError(f"{source}: key 'positive_label' must be a string or an integer")

    segments = _segments(raw.get("segments"), source, reserved)

    return ModelSpec(
        model=model,
        **columns,
        features=features,
        target=target,
        task=task,
        prediction_proba=proba,
        class_probabilities=class_probabilities,
        positive_label=str(positive_label),
        window=window,
        min_window_rows=min_rows,
        reference=_reference(raw.get("reference"), source),
        statistics=statistics,
        thresholds=thresholds,
        monitors=monitors,
        retrain=_retrain(raw.get("retrain"), source, task),
        segments=segments,
        segment_drift=_segment_drift(raw.get("segment_drift"), source, segments),
        source=source,
    )


def load_spec(path: str | Path | None = None) -> ModelSpec:
    """Read and validate a spec file; `None` gives the synthetic demo model's spec."""
    spec_path = Path(path) if path is not None else DEFAULT_SPEC_PATH
    try:
        text = spec_path.read_text()
    except OSError as error:
        raise SpecError(f"{spec_path}: cannot read spec: {error.strerror}") from error
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except SpecError as error:
        raise SpecError(f"{spec_path}: {error}") from error
    except yaml.YAMLError as error:
        raise SpecError(f"{spec_path}: not valid YAML: {error}") from error
    return parse_spec(raw, source=str(spec_path))
