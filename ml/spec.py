"""The monitoring spec: one YAML file per monitored model (DESIGN.md §3.2).

Every part of driftmart reads the spec through `load_spec`: the API builds its request schema from
it, the ingest step writes it to the warehouse for dbt, training picks its columns from it. Names
from the spec end up in SQL, so they are restricted to lowercase identifiers.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ml.errors import DriftmartError

FeatureType = Literal["numeric", "categorical"]
FEATURE_TYPES: tuple[str, ...] = ("numeric", "categorical")
STATISTICS: tuple[str, ...] = ("reference_bins", "evidently")
REQUIRED_KEYS: tuple[str, ...] = ("model", "timestamp", "id", "prediction", "target", "features")
OPTIONAL_KEYS: tuple[str, ...] = (
    "prediction_proba",
    "window",
    "statistics",
    "thresholds",
    "description",
)
DEFAULT_THRESHOLDS: dict[str, float] = {"psi": 0.2}
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
WINDOW = re.compile(r"^([1-9][0-9]*)([mhdw])$")
WINDOW_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DEFAULT_SPEC_PATH = Path(__file__).parent / "specs" / "car_loan.yaml"


class SpecError(DriftmartError, ValueError):
    """A monitoring spec that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class ModelSpec:
    model: str
    timestamp: str
    id: str
    prediction: str
    target: str
    features: dict[str, FeatureType]
    prediction_proba: str | None = None
    window: str = "1d"
    statistics: str = "reference_bins"
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    source: str = "<memory>"

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

    def to_dict(self) -> dict[str, Any]:
        spec = {
            "model": self.model,
            "timestamp": self.timestamp,
            "id": self.id,
            "prediction": self.prediction,
            "prediction_proba": self.prediction_proba,
            "target": self.target,
            "features": dict(self.features),
            "window": self.window,
            "statistics": self.statistics,
            "thresholds": dict(self.thresholds),
        }
        return spec

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


def _identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise SpecError(
            f"{where}: {value!r} is not a valid name "
            "(lowercase letters, digits and underscores, starting with a letter or underscore)"
        )
    return value


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

    columns = {
        key: _identifier(raw[key], f"{source}: key '{key}'")
        for key in ("model", "timestamp", "id", "prediction", "target")
    }
    proba = raw.get("prediction_proba")
    if proba is not None:
        proba = _identifier(proba, f"{source}: key 'prediction_proba'")

    features_raw = raw["features"]
    if not isinstance(features_raw, dict) or not features_raw:
        raise SpecError(f"{source}: 'features' must be a non-empty mapping of name: numeric|categorical")
    features: dict[str, FeatureType] = {}
    reserved = {value for key, value in columns.items() if key != "model"} | {proba}
    for name, kind in features_raw.items():
        _identifier(name, f"{source}: feature")
        if name in reserved:
            raise SpecError(f"{source}: feature '{name}' has the name of a reserved column")
        if kind not in FEATURE_TYPES:
            raise SpecError(
                f"{source}: feature '{name}' has unknown type {kind!r} "
                f"(expected one of: {', '.join(FEATURE_TYPES)})"
            )
        features[name] = kind

    window = str(raw.get("window", "1d"))
    if not WINDOW.match(window):
        raise SpecError(f"{source}: key 'window': {window!r} is not a window length like 1h, 1d or 7d")
    statistics = raw.get("statistics", "reference_bins")
    if statistics not in STATISTICS:
        raise SpecError(f"{source}: key 'statistics': {statistics!r} is not one of {', '.join(STATISTICS)}")

    thresholds = dict(DEFAULT_THRESHOLDS)
    thresholds_raw = raw.get("thresholds") or {}
    if not isinstance(thresholds_raw, dict):
        raise SpecError(f"{source}: 'thresholds' must be a mapping of statistic: number")
    for name, value in thresholds_raw.items():
        if name not in DEFAULT_THRESHOLDS:
            raise SpecError(
                f"{source}: thresholds: unknown statistic {name!r} (known: {', '.join(DEFAULT_THRESHOLDS)})"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise SpecError(f"{source}: thresholds: {name} must be a positive number, got {value!r}")
        thresholds[name] = float(value)

    return ModelSpec(
        **columns,
        features=features,
        prediction_proba=proba,
        window=window,
        statistics=statistics,
        thresholds=thresholds,
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
