"""Helpers for the dbt project tests: a generated raw fixture (three models, one per reference kind,
with drift planted in known features and windows), an independent numpy/scipy computation of every
mart, and a runner for `dbt build` against a temporary DRIFTMART_HOME.

The numpy side re-implements docs/architecture.md §5 and the marts' documented definitions from the raw rows
(not from the dbt tables): reference deciles with duplicates removed and open end bins, categories
plus `__unseen__`, a `__null__` bin; references frozen at the build that first needs them (bins and,
except for previous-window references, counts); statistics from the bin counts with scipy where
scipy has the statistic (chi2.sf, quad for the Wasserstein integral, sklearn for performance).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
SCHEMA_SQL = REPO_ROOT / "warehouse" / "schema.sql"
DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")

EPSILON = 1e-4  # dbt var drift_share_epsilon
N_QUANTILE_BINS = 10  # dbt var drift_n_quantile_bins
PREDICTION_PSI_THRESHOLD = 0.2  # dbt var prediction_drift_psi_threshold
PREDICTION_JS_THRESHOLD = 0.1  # dbt var prediction_drift_js_threshold
PSEUDO_FEATURES = {"__prediction__": "categorical", "__probability__": "numeric"}
FIRST_WINDOW = datetime(2024, 3, 1)
DAY = 86_400
SALARY_RANGES = ["low", "medium", "high"]
REGIONS = ["north", "south", "east", "west"]
PLANS = ["basic", "plus", "pro"]
CHANNELS = ["web", "app", "store"]
MERCHANTS = ["m01", "m02", "m03", "m04", "m05"]


@dataclass(frozen=True)
class Feature:
    kind: str  # numeric | categorical
    method: str
    threshold: float


@dataclass(frozen=True)
class ModelConfig:
    name: str
    features: dict[str, Feature]
    reference_kind: str = "model_version"
    reference_start_at: datetime | None = None
    reference_end_at: datetime | None = None
    window_seconds: int = DAY
    min_window_rows: int = 100
    dataset_drift_share: float = 0.5
    positive_label: str = "1"
    statistics: str = "reference_bins"

    @property
    def reference_id(self) -> str:
        """The time_range reference id (the other kinds depend on the window)."""
        iso = "%Y-%m-%dT%H:%M:%S"
        return f"time_range:{self.reference_start_at:{iso}}/{self.reference_end_at:{iso}}"


CAR_LOAN = ModelConfig(
    name="car_loan",
    features={
        "car_value": Feature("numeric", "psi", 0.2),
        "income": Feature("numeric", "ks_statistic", 0.15),
        "salary_range": Feature("categorical", "js_distance", 0.1),
        "region": Feature("categorical", "chi2_p_value", 0.001),
    },
)
CHURN = ModelConfig(
    name="churn",
    features={
        "tenure": Feature("numeric", "wasserstein_normed", 0.3),
        "spend": Feature("numeric", "hellinger", 0.15),
        "plan": Feature("categorical", "l_infinity", 0.1),
        "channel": Feature("categorical", "kl_divergence", 0.1),
    },
    reference_kind="time_range",
    reference_start_at=FIRST_WINDOW,
    reference_end_at=FIRST_WINDOW + timedelta(days=2),
    min_window_rows=50,
    dataset_drift_share=0.5,
    positive_label="yes",
)
FRAUD = ModelConfig(
    name="fraud",
    features={
        "amount": Feature("numeric", "psi", 0.2),
        "merchant": Feature("categorical", "chi2_p_value", 1e-6),
    },
    reference_kind="previous_window",
    min_window_rows=100,
    dataset_drift_share=0.5,
)
MODELS = {model.name: model for model in (CAR_LOAN, CHURN, FRAUD)}


@dataclass
class RawFixture:
    """Rows for the raw tables, as Python values (features as dicts, serialised on insert)."""

    reference_rows: list[dict[str, Any]] = field(default_factory=list)
    inference_rows: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    registry: list[dict[str, Any]] = field(default_factory=list)

    def __add__(self, other: RawFixture) -> RawFixture:
        return RawFixture(
            self.reference_rows + other.reference_rows,
            self.inference_rows + other.inference_rows,
            self.labels + other.labels,
            self.registry + other.registry,
        )


# --- the generator --------------------------------------------------------------------------------


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


def _car_loan_row(rng: np.random.Generator, car_value_mean: float, salary: list[float], unseen: bool) -> dict:
    categories = [*SALARY_RANGES, "very_high"] if unseen else SALARY_RANGES
    row: dict[str, Any] = {
        "car_value": float(rng.normal(car_value_mean, 5_000.0)),
        "income": float(rng.normal(50_000.0, 12_000.0)),
        "salary_range": str(rng.choice(categories, p=salary)),
        "region": str(rng.choice(REGIONS)),
    }
    draw = rng.random()
    if draw < 0.03:
        row["income"] = None  # JSON null
    elif draw < 0.05:
        del row["income"]  # missing key
    elif draw < 0.06:
        row["income"] = "n/a"  # not a number: counts as missing
    if rng.random() < 0.04:
        row["region"] = None
    return row


def _churn_row(rng: np.random.Generator, window_index: int) -> dict:
    tenure_mean = 24.0 if window_index < 3 else 34.0
    spend_sigma = 0.5 if window_index < 4 else 1.1
    plans = [0.5, 0.3, 0.2] if window_index < 3 else [0.2, 0.3, 0.5]
    row: dict[str, Any] = {
        # integers: many ties, and cut points that values sit exactly on
        "tenure": int(max(0, round(rng.normal(tenure_mean, 8.0)))),
        "spend": float(rng.lognormal(3.0, spend_sigma)),
        "plan": str(rng.choice(PLANS, p=plans)),
        "channel": str(rng.choice(CHANNELS, p=[0.5, 0.3, 0.2])),
    }
    if rng.random() < 0.05:
        row["spend"] = None
    return row


def _fraud_row(rng: np.random.Generator, window_index: int) -> dict:
    shifted = window_index >= 3
    merchants = [0.1, 0.1, 0.2, 0.3, 0.3] if shifted else [0.3, 0.3, 0.2, 0.1, 0.1]
    return {
        "amount": float(rng.gamma(4.0, 40.0 if shifted else 25.0)),
        "merchant": str(rng.choice(MERCHANTS, p=merchants)),
    }


def _prediction(rng: np.random.Generator, model: ModelConfig, features: dict) -> tuple[str, float, str]:
    """(prediction, probability, true label) for a row: a score of the features, noisy truth."""
    if model is CAR_LOAN:
        value = features.get("car_value")
        score = (float(value) - 24_000.0) / 4_000.0
        labels = ("1", "0")
    elif model is CHURN:
        score = (float(features["tenure"]) - 28.0) / 6.0
        labels = ("yes", "no")
    else:
        score = (float(features["amount"]) - 130.0) / 40.0
        labels = ("1", "0")
    probability = _sigmoid(score)
    if model is CHURN:
        probability = round(probability, 2)  # ties, for the rank-based ROC AUC
    prediction = labels[0] if probability >= 0.5 else labels[1]
    truth = labels[0] if rng.random() < _sigmoid(score * 1.5) else labels[1]
    return prediction, probability, truth


CONCEPT_DRIFT_WINDOW = 1


def _window_rows(
    rng: np.random.Generator,
    model: ModelConfig,
    window_index: int,
    n_rows: int,
    loaded_at: datetime,
    prefix: str,
    versions: list[int],
    label_share: float,
) -> tuple[list[dict], list[dict]]:
    # Concept drift: in car_loan's window 1 the inputs keep their distribution but the truth is the
    # other class, so its realized performance degrades with no input drift.
    concept_drifted = model is CAR_LOAN and window_index == CONCEPT_DRIFT_WINDOW
    start = FIRST_WINDOW + timedelta(seconds=window_index * model.window_seconds)
    rows, labels = [], []
    for number in range(n_rows):
        if model is CAR_LOAN:
            shifted = window_index >= 2
            salary = [0.55, 0.15, 0.1, 0.2] if window_index >= 3 else [0.3, 0.5, 0.2]
            features = _car_loan_row(rng, 32_000.0 if shifted else 20_000.0, salary, window_index >= 3)
        elif model is CHURN:
            features = _churn_row(rng, window_index)
        else:
            features = _fraud_row(rng, window_index)
        prediction, probability, truth = _prediction(rng, model, features)
        if concept_drifted:
            truth = "0" if truth == "1" else "1"
        # Spread over the window, never on its end; the first row sits exactly on its start.
        offset = timedelta(seconds=int(number * (model.window_seconds - 1) / n_rows))
        request_id = f"{prefix}-{window_index}-{number:04d}"
        rows.append(
            {
                "model_name": model.name,
                "request_id": request_id,
                "model_version": versions[min(number * len(versions) // n_rows, len(versions) - 1)],
                "features": features,
                "prediction": prediction,
                "probability": probability,
                "scored_at": start + offset,
                "loaded_at": loaded_at,
            }
        )
        if rng.random() < label_share:
            labels.append(
                {
                    "model_name": model.name,
                    "request_id": request_id,
                    "label": truth,
                    "labelled_at": start + offset + timedelta(hours=1),
                    "loaded_at": loaded_at,
                }
            )
    return rows, labels


def _reference_set(rng: np.random.Generator, version: int, n_rows: int) -> list[dict[str, Any]]:
    mean = 20_000.0 if version == 1 else 26_000.0
    rows = []
    for number in range(1, n_rows + 1):
        features = _car_loan_row(rng, mean, [0.3, 0.5, 0.2], False)
        prediction, probability, truth = _prediction(rng, CAR_LOAN, features)
        rows.append(
            {
                "model_name": CAR_LOAN.name,
                "model_version": version,
                "row_number": number,
                "features": features,
                "prediction": prediction,
                "probability": probability,
                "label": truth,
            }
        )
    return rows


def _registry() -> list[dict[str, Any]]:
    return [
        {
            "model_name": CAR_LOAN.name,
            "model_version": 1,
            "created_at": datetime(2024, 2, 20),
            "trigger": "initial",
            "status": "retired",
            "metrics": {"accuracy": 0.81, "roc_auc": 0.875, "f1": 0.5, "log_loss": 0.4},
            "n_training_rows": 1600,
            "n_reference_rows": 400,
        },
        {
            "model_name": CAR_LOAN.name,
            "model_version": 2,
            "created_at": datetime(2024, 3, 4, 12),
            "trigger": "drift",
            "status": "champion",
            "metrics": {"accuracy": 0.84, "roc_auc": 0.9, "f1": 0.62},  # no log_loss: NULL
            "n_training_rows": 1800,
            "n_reference_rows": 300,
        },
    ]


def first_load(seed: int = 20240301) -> RawFixture:
    """car_loan: reference sets of versions 1 and 2 and five daily windows (window 1's labels are
    concept-drifted, window 3 spans the retrain, window 4 has 60 rows: below min_window_rows);
    churn: five windows, the first two are its reference range; fraud: six windows, a step change
    at window 3."""
    rng = np.random.default_rng(seed)
    loaded_at = datetime(2024, 3, 7, 1, 0, 0)
    fixture = RawFixture(reference_rows=_reference_set(rng, 1, 400) + _reference_set(rng, 2, 300))
    fixture.registry = _registry()
    for window_index in range(5):
        versions = {3: [1, 2], 4: [2]}.get(window_index, [1])
        n_rows = 60 if window_index == 4 else 200
        rows, labels = _window_rows(rng, CAR_LOAN, window_index, n_rows, loaded_at, "a", versions, 0.7)
        fixture.inference_rows += rows
        fixture.labels += labels
    for window_index in range(5):
        rows, labels = _window_rows(rng, CHURN, window_index, 150, loaded_at, "c", [1], 0.8)
        fixture.inference_rows += rows
        fixture.labels += labels
    for window_index in range(6):
        rows, labels = _window_rows(rng, FRAUD, window_index, 150, loaded_at, "f", [1], 0.0)
        fixture.inference_rows += rows
    return fixture


def second_load(seed: int = 20240307) -> RawFixture:
    """A day later: car_loan gets late rows for window 1 and a new window 5, plus one more reference
    row for version 1 (its reference is frozen: it must change nothing); churn gets late rows
    inside its reference range (window 0: the reference changed, so it is frozen again and every
    churn window is recounted against it);
    fraud gets late rows for window 2, the reference of window 3 (both recounted), and a new
    window 6."""
    rng = np.random.default_rng(seed)
    loaded_at = datetime(2024, 3, 8, 1, 0, 0)
    fixture = RawFixture()
    fixture.reference_rows = [
        {
            "model_name": CAR_LOAN.name,
            "model_version": 1,
            "row_number": 401,
            "features": {"car_value": 1e9, "income": -1e9, "salary_range": "x", "region": "y"},
            "prediction": "1",
            "probability": 0.99,
            "label": "1",
        }
    ]
    for model, window_index, n_rows, prefix, versions in (
        (CAR_LOAN, 1, 40, "late", [1]),
        (CAR_LOAN, 5, 150, "b", [2]),
        (CHURN, 0, 30, "late", [1]),
        (FRAUD, 2, 50, "late", [1]),
        (FRAUD, 6, 150, "g", [1]),
    ):
        rows, labels = _window_rows(rng, model, window_index, n_rows, loaded_at, prefix, versions, 0.5)
        fixture.inference_rows += rows
        fixture.labels += labels
    return fixture


# --- the warehouse side -------------------------------------------------------------------------


def create_raw_tables(database: Path, models: list[ModelConfig] | None = None) -> None:
    import duckdb

    models = models or list(MODELS.values())
    with duckdb.connect(str(database)) as connection:
        connection.execute(SCHEMA_SQL.read_text())
        connection.executemany(
            "insert into raw.monitored_models (model_name, window_seconds, min_window_rows, reference_kind, "
            "reference_start_at, reference_end_at, statistics, dataset_drift_share, positive_label, spec, "
            "loaded_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    model.name,
                    model.window_seconds,
                    model.min_window_rows,
                    model.reference_kind,
                    model.reference_start_at,
                    model.reference_end_at,
                    model.statistics,
                    model.dataset_drift_share,
                    model.positive_label,
                    "{}",
                    datetime(2024, 3, 1),
                ]
                for model in models
            ],
        )
        connection.executemany(
            "insert into raw.model_features values (?, ?, ?, ?, ?, ?, ?)",
            [
                [model.name, name, f.kind, position, f.method, f.threshold, datetime(2024, 3, 1)]
                for model in models
                for position, (name, f) in enumerate(model.features.items(), start=1)
            ],
        )


def insert_fixture(database: Path, fixture: RawFixture) -> None:
    import duckdb

    with duckdb.connect(str(database)) as connection:
        if fixture.reference_rows:
            connection.executemany(
                "insert into raw.reference_rows (model_name, model_version, row_number, feature_numbers, "
                "feature_categories, prediction, probability, label, loaded_at) "
                f"values (?, ?, ?, {FEATURE_MAPS_SQL}, ?, ?, ?, ?)",
                [
                    [
                        row["model_name"],
                        row["model_version"],
                        row["row_number"],
                        *feature_maps_json(row["features"]),
                        row["prediction"],
                        row["probability"],
                        row["label"],
                        datetime(2024, 2, 28),
                    ]
                    for row in fixture.reference_rows
                ],
            )
        if fixture.inference_rows:
            connection.executemany(
                "insert into raw.inference_log (model_name, request_id, model_version, feature_numbers, "
                "feature_categories, prediction, probability, scored_at, received_at, loaded_at, source) "
                f"values (?, ?, ?, {FEATURE_MAPS_SQL}, ?, ?, ?, ?, ?, 'fixture')",
                [
                    [
                        row["model_name"],
                        row["request_id"],
                        row["model_version"],
                        *feature_maps_json(row["features"]),
                        row["prediction"],
                        row["probability"],
                        row["scored_at"],
                        row["scored_at"],
                        row["loaded_at"],
                    ]
                    for row in fixture.inference_rows
                ],
            )
        if fixture.labels:
            connection.executemany(
                "insert or replace into raw.labels "
                "(model_name, request_id, label, labelled_at, loaded_at, source, ingest_seq) "
                "values (?, ?, ?, ?, ?, 'fixture', nextval('raw.ingest_seq'))",
                [
                    [row["model_name"], row["request_id"], row["label"], row["labelled_at"], row["loaded_at"]]
                    for row in fixture.labels
                ],
            )
        if fixture.registry:
            connection.executemany(
                "insert into raw.model_registry (model_name, model_version, created_at, trigger, status, "
                "artifact_sha256, metrics, spec_fingerprint, n_training_rows, n_reference_rows, loaded_at) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [
                        row["model_name"],
                        row["model_version"],
                        row["created_at"],
                        row["trigger"],
                        row["status"],
                        f"sha-{row['model_version']}",
                        json.dumps(row["metrics"]),
                        "fingerprint",
                        row["n_training_rows"],
                        row["n_reference_rows"],
                        datetime(2024, 3, 1),
                    ]
                    for row in fixture.registry
                ],
            )


# raw stores feature values as typed maps, sent here as JSON objects
FEATURE_MAPS_SQL = """from_json(?, '"MAP(VARCHAR, DOUBLE)"'), from_json(?, '"MAP(VARCHAR, VARCHAR)"')"""


def feature_maps_json(features: dict[str, Any]) -> tuple[str, str]:
    """A fixture row's features as raw's two maps (JSON): numbers, and text; a None is left out
    (an absent key reads as NULL, whatever the feature's type)."""
    numbers = {k: v for k, v in features.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    texts = {k: v for k, v in features.items() if isinstance(v, str)}
    return json.dumps(numbers), json.dumps(texts)


def query(database: Path, sql: str) -> list[dict[str, Any]]:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        cursor = connection.execute(sql)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def dbt_environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DRIFTMART_HOME=str(home),
        DBT_TARGET_PATH=str(home / "dbt_target"),
        DBT_LOG_PATH=str(home / "dbt_logs"),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    return env


def run_dbt(home: Path, *arguments: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """`dbt <arguments> --project-dir dbt_project --profiles-dir dbt_project`, from the repo root."""
    command = [
        str(DBT_EXECUTABLE),
        *arguments,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]
    started = time.perf_counter()
    result = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=dbt_environment(home),
        capture_output=True,
        text=True,
        check=False,
    )
    return result, time.perf_counter() - started


def run_results(home: Path) -> list[dict[str, Any]]:
    return json.loads((home / "dbt_target" / "run_results.json").read_text())["results"]


# --- the independent numpy side: binning ----------------------------------------------------------


def _number(value: Any) -> float | None:
    """A feature value as a finite float, or None (missing, null, non-numeric, non-finite)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _category(value: Any) -> str | None:
    return None if value is None else str(value)


def feature_value(row: dict[str, Any], feature: str) -> Any:
    """The value of a (pseudo-)feature of a raw row."""
    if feature == "__prediction__":
        return row.get("prediction")
    if feature == "__probability__":
        return row.get("probability")
    return row["features"].get(feature)


@dataclass
class FeatureBins:
    feature_type: str
    edges: np.ndarray | None = None  # numeric: distinct interior cut points, increasing
    categories: list[str] | None = None  # categorical: reference categories, sorted
    minimum: float | None = None  # numeric reference summary, frozen with the bins
    maximum: float | None = None
    std: float | None = None

    @classmethod
    def freeze(cls, feature_type: str, values: list[Any]) -> FeatureBins:
        if feature_type == "numeric":
            numbers = np.array([n for n in map(_number, values) if n is not None])
            if not len(numbers):
                return cls(feature_type, edges=np.array([]))
            quantiles = np.arange(1, N_QUANTILE_BINS) / N_QUANTILE_BINS
            return cls(
                feature_type,
                edges=np.unique(np.quantile(numbers, quantiles)),
                minimum=float(numbers.min()),
                maximum=float(numbers.max()),
                std=float(np.std(numbers)),
            )
        return cls(feature_type, categories=sorted({c for c in map(_category, values) if c is not None}))

    @property
    def n_bins(self) -> int:
        if self.feature_type == "numeric":
            return len(self.edges) + 2  # m + 1 intervals and __null__
        return len(self.categories) + 2  # categories, __unseen__, __null__

    def bin_index(self, value: Any) -> int:
        """0-based position of the bin, in the catalogue's bin_id order."""
        if self.feature_type == "numeric":
            number = _number(value)
            if number is None:
                return self.n_bins - 1
            return int(np.searchsorted(self.edges, number, side="right"))
        category = _category(value)
        if category is None:
            return self.n_bins - 1
        if category in self.categories:
            return self.categories.index(category)
        return self.n_bins - 2

    def counts(self, values: list[Any]) -> np.ndarray:
        counts = np.zeros(self.n_bins, dtype=np.int64)
        for value in values:
            counts[self.bin_index(value)] += 1
        return counts


# --- the independent numpy side: statistics -------------------------------------------------------


def _linear_abs_integral(lower: float, upper: float, d_lower: float, d_upper: float) -> float:
    """∫ |D| over [lower, upper] for D linear between the two values, by numerical quadrature."""
    from scipy.integrate import quad

    if upper <= lower:
        return 0.0
    width = upper - lower
    points = None
    if d_lower * d_upper < 0:
        points = [lower + width * d_lower / (d_lower - d_upper)]
    value, _ = quad(
        lambda x: abs(d_lower + (d_upper - d_lower) * (x - lower) / width),
        lower,
        upper,
        points=points,
        epsabs=0.0,
        epsrel=1e-13,
        limit=200,
    )
    return value


def drift_statistics(
    bins: FeatureBins, reference_counts: np.ndarray, current_counts: np.ndarray, epsilon: float = EPSILON
) -> dict[str, Any]:
    """Every statistic of fct_feature_drift from the two count vectors (bins in bin_id order)."""
    from scipy import stats

    reference = reference_counts.astype(np.float64)
    current = current_counts.astype(np.float64)
    n, m = current.sum(), reference.sum()
    p, q = current / n, reference / m
    p_floor, q_floor = np.maximum(p, epsilon), np.maximum(q, epsilon)
    mixture = (p_floor + q_floor) / 2
    result: dict[str, Any] = {
        "n_reference": int(m),
        "n_current": int(n),
        "psi": float(np.sum((p_floor - q_floor) * np.log(p_floor / q_floor))),
        "kl_divergence": float(np.sum(p_floor * np.log(p_floor / q_floor))),
        "js_distance": float(
            math.sqrt(
                max(
                    0.5 * np.sum(p_floor * np.log(p_floor / mixture))
                    + 0.5 * np.sum(q_floor * np.log(q_floor / mixture)),
                    0.0,
                )
            )
        ),
        "hellinger": float(math.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2))),
        "l_infinity": None,
        "ks_statistic": None,
        "wasserstein_normed": None,
    }
    if bins.feature_type == "categorical":
        result["l_infinity"] = float(np.max(np.abs(p - q)))
    else:
        intervals = bins.n_bins - 1
        current_numbers, reference_numbers = current[:intervals], reference[:intervals]
        if current_numbers.sum() > 0 and reference_numbers.sum() > 0:
            difference = (
                np.cumsum(current_numbers) / current_numbers.sum()
                - np.cumsum(reference_numbers) / reference_numbers.sum()
            )
            result["ks_statistic"] = float(np.max(np.abs(difference)))
            grid = [bins.minimum, *bins.edges, bins.maximum]
            at_edges = [0.0, *difference]
            distance = sum(
                _linear_abs_integral(grid[k], grid[k + 1], at_edges[k], at_edges[k + 1])
                for k in range(intervals)
            )
            result["wasserstein_normed"] = distance / bins.std if bins.std else None
    has_rows = (current > 0) | (reference > 0)
    expected = n * q_floor
    degrees = int(np.sum(reference > 0)) - 1
    if degrees >= 1:
        chi2 = float(np.sum(((current - expected) ** 2 / expected)[has_rows]))
        result["chi2_statistic"] = chi2
        result["chi2_p_value"] = float(stats.chi2.sf(chi2, degrees))
    else:
        result["chi2_statistic"] = None
        result["chi2_p_value"] = None
    result["chi2_df"] = degrees
    return result


def is_drifted_by(method: str, score: float | None, threshold: float) -> bool:
    if score is None:
        return False
    return score < threshold if method == "chi2_p_value" else score >= threshold


# --- the independent numpy side: the marts ----------------------------------------------------------


def window_start_of(scored_at: datetime, window_seconds: int) -> datetime:
    epoch = datetime(1970, 1, 1)
    seconds = (scored_at - epoch) // timedelta(seconds=1)
    return epoch + timedelta(seconds=(seconds // window_seconds) * window_seconds)


def _windows(rows: list[dict[str, Any]], model: ModelConfig) -> dict[datetime, list[dict[str, Any]]]:
    windows: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["model_name"] == model.name:
            windows[window_start_of(row["scored_at"], model.window_seconds)].append(row)
    return dict(sorted(windows.items()))


def _window_references(
    data: RawFixture, model: ModelConfig
) -> dict[datetime, tuple[str | None, int | None, list[dict[str, Any]]]]:
    """Per window: (reference_id, reference_version, the reference's rows as raw-row dicts)."""
    windows = _windows(data.inference_rows, model)
    result: dict[datetime, tuple[str | None, int | None, list[dict[str, Any]]]] = {}
    if model.reference_kind == "model_version":
        by_version: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in data.reference_rows:
            if row["model_name"] == model.name:
                by_version[row["model_version"]].append(row)
        for start, rows in windows.items():
            newest = max((r["model_version"] for r in rows if r["model_version"] is not None), default=None)
            candidates = [v for v in by_version if newest is None or v <= newest]
            if not candidates:
                result[start] = (None, None, [])
            else:
                version = max(candidates)
                result[start] = (f"model_version:{version}", version, by_version[version])
    elif model.reference_kind == "time_range":
        model_rows = [r for r in data.inference_rows if r["model_name"] == model.name]
        in_range = [
            r for r in model_rows if model.reference_start_at <= r["scored_at"] < model.reference_end_at
        ]
        usable = in_range and max(r["scored_at"] for r in model_rows) >= model.reference_end_at
        for start in windows:
            result[start] = (model.reference_id, None, in_range) if usable else (None, None, [])
    else:
        previous = None
        for start in windows:
            if previous is None:
                result[start] = (None, None, [])
            else:
                result[start] = (f"window:{previous:%Y-%m-%dT%H:%M:%S}", None, windows[previous])
            previous = start
    return result


def _all_features(model: ModelConfig) -> dict[str, str]:
    return {**{name: f.kind for name, f in model.features.items()}, **PSEUDO_FEATURES}


@dataclass
class FrozenReference:
    bins: FeatureBins
    counts: np.ndarray


def expected_marts(builds: list[RawFixture]) -> dict[str, dict]:
    """The expected marts after running `dbt build` once on each cumulative raw state in `builds`.

    A model version's reference is frozen (bins, summary, and counts) at the first build whose
    windows need it; a production-row reference (previous_window, time_range) is frozen again from
    its rows as they are at every build that needs it (late rows change it), so the last build's
    rows decide; previous-window references are recounted from the current rows.
    """
    frozen: dict[tuple[str, str, str], FrozenReference] = {}
    for data in builds:
        for model in MODELS.values():
            for reference_id, _, rows in _window_references(data, model).values():
                if reference_id is None:
                    continue
                for feature, kind in _all_features(model).items():
                    key = (model.name, reference_id, feature)
                    if key not in frozen or model.reference_kind != "model_version":
                        values = [feature_value(r, feature) for r in rows]
                        bins = FeatureBins.freeze(kind, values)
                        frozen[key] = FrozenReference(bins, bins.counts(values))

    data = builds[-1]
    feature_drift, prediction_drift, dataset_drift, feature_statistics = {}, {}, {}, {}
    for model in MODELS.values():
        references = _window_references(data, model)
        for start, rows in _windows(data.inference_rows, model).items():
            reference_id, version, reference_rows = references[start]
            end = start + timedelta(seconds=model.window_seconds)
            below = len(rows) < model.min_window_rows
            statistics = {}
            for feature, kind in _all_features(model).items():
                values = [feature_value(r, feature) for r in rows]
                if reference_id is None:
                    statistics[feature] = None
                else:
                    reference = frozen[(model.name, reference_id, feature)]
                    reference_counts = reference.counts
                    if model.reference_kind == "previous_window":
                        reference_counts = reference.bins.counts(
                            [feature_value(r, feature) for r in reference_rows]
                        )
                    current_counts = reference.bins.counts(values)
                    statistics[feature] = drift_statistics(reference.bins, reference_counts, current_counts)
                    statistics[feature]["current_counts"] = current_counts
                if feature in PSEUDO_FEATURES:
                    continue
                setting = model.features[feature]
                cell = statistics[feature]
                score = None if cell is None else cell[setting.method]
                feature_drift[(model.name, feature, start)] = {
                    "feature_type": kind,
                    "reference_id": reference_id,
                    "reference_version": version,
                    "window_end": end,
                    "n_current": len(rows),
                    "drift_method": setting.method,
                    "threshold": setting.threshold,
                    "drift_score": score,
                    "has_reference": cell is not None,
                    "is_below_min_rows": below,
                    "is_drifted": cell is not None
                    and not below
                    and is_drifted_by(setting.method, score, setting.threshold),
                    "statistics": cell,
                }
                reference_bins = (
                    None if reference_id is None else frozen[(model.name, reference_id, feature)].bins
                )
                feature_statistics[(model.name, feature, start)] = _feature_statistics(
                    kind, values, reference_bins, end
                )
            judged = [feature_drift[(model.name, feature, start)] for feature in model.features]
            n_drifted = sum(cell["is_drifted"] for cell in judged)
            share = n_drifted / len(judged)
            dataset_drift[(model.name, start)] = {
                "window_end": end,
                "n_current": len(rows),
                "n_features": len(judged),
                "n_drifted": n_drifted,
                "share_drifted": share,
                "threshold": model.dataset_drift_share,
                "is_dataset_drifted": reference_id is not None
                and not below
                and share >= model.dataset_drift_share,
                "has_reference": reference_id is not None,
                "is_below_min_rows": below,
            }
            predictions = [r["prediction"] for r in rows if r["prediction"] is not None]
            probabilities = [p for p in (_number(r["probability"]) for r in rows) if p is not None]
            prediction = statistics["__prediction__"]
            probability = statistics["__probability__"]
            values = {
                "reference_id": reference_id,
                "window_end": end,
                "n_current": len(rows),
                "positive_rate": (
                    sum(p == model.positive_label for p in predictions) / len(predictions)
                    if predictions
                    else None
                ),
                "mean_probability": float(np.mean(probabilities)) if probabilities else None,
                "prediction_js_distance": None if prediction is None else prediction["js_distance"],
                "prediction_psi": None if prediction is None else prediction["psi"],
                "probability_psi": None if probability is None else probability["psi"],
                "probability_ks_statistic": None if probability is None else probability["ks_statistic"],
                "has_reference": reference_id is not None,
                "is_below_min_rows": below,
            }
            values["is_drifted"] = (
                reference_id is not None
                and not below
                and (
                    (values["probability_psi"] or 0) >= PREDICTION_PSI_THRESHOLD
                    or (values["prediction_js_distance"] or 0) >= PREDICTION_JS_THRESHOLD
                )
            )
            prediction_drift[(model.name, start)] = values
    return {
        "feature_drift": feature_drift,
        "dataset_drift": dataset_drift,
        "prediction_drift": prediction_drift,
        "feature_statistics": feature_statistics,
        "model_performance": expected_model_performance(data),
        "model_versions": expected_model_versions(data),
        "frozen": frozen,
    }


def _feature_statistics(kind: str, values: list[Any], bins: FeatureBins | None, end: datetime) -> dict:
    typed = [_number(v) for v in values] if kind == "numeric" else [_category(v) for v in values]
    present = [v for v in typed if v is not None]
    result: dict[str, Any] = {
        "feature_type": kind,
        "window_end": end,
        "n_rows": len(values),
        "n_null": len(values) - len(present),
        "null_share": (len(values) - len(present)) / len(values),
        "n_distinct": len(set(present)),
        "mean": None,
        "std": None,
        "min": None,
        "max": None,
        "p25": None,
        "p50": None,
        "p75": None,
        "n_unseen": None,
    }
    if kind == "numeric" and present:
        numbers = np.array(present)
        result.update(
            mean=float(numbers.mean()),
            std=float(numbers.std()),
            min=float(numbers.min()),
            max=float(numbers.max()),
            p25=float(np.quantile(numbers, 0.25)),
            p50=float(np.quantile(numbers, 0.5)),
            p75=float(np.quantile(numbers, 0.75)),
        )
    if kind == "categorical" and bins is not None:
        result["n_unseen"] = sum(v not in bins.categories for v in present)
    return result


REFERENCE_CHUNKS = 10  # dbt_project.yml var performance_reference_chunks
DEGRADATION_ALPHA = 0.00135  # and performance_degradation_alpha


def degradation_multiplier() -> float:
    """Student's t quantile at 1 - alpha for REFERENCE_CHUNKS - 1 degrees of freedom (scipy)."""
    from scipy import stats

    return float(stats.t.ppf(1 - DEGRADATION_ALPHA, REFERENCE_CHUNKS - 1))


def expected_model_performance(data: RawFixture) -> dict[tuple[str, datetime, str], dict[str, Any]]:
    """marts.fct_model_performance, long: {(model, window_start, metric_name): row} (binary models),
    with each window judged against its serving version's reference (scikit-learn on the reference
    rows, numpy for the chunks' spread)."""
    from ml.spec import PERFORMANCE_METRICS

    window_columns = ("window_end", "n_predictions", "n_labelled", "label_coverage", "positive_rate_actual")
    references = _expected_reference_performance(data)
    expected = {}
    for (model_name, start), cell in _expected_binary_performance(data).items():
        model = MODELS[model_name]
        for metric in PERFORMANCE_METRICS["binary"]:
            reference = references.get((model_name, cell["serving_version"], metric), {})
            reference_value, spread = reference.get("value"), reference.get("stddev")
            sampling_error = threshold = None
            if spread is not None and cell["n_labelled"]:
                chunk_rows = reference["labelled"]
                sampling_error = spread * math.sqrt(
                    chunk_rows / cell["n_labelled"] + chunk_rows / reference["n_labelled"]
                )
                threshold = reference_value - degradation_multiplier() * sampling_error
            realized = cell[metric]
            expected[(model_name, start, metric)] = {
                "task": "binary",
                **{column: cell[column] for column in window_columns},
                "realized_value": realized,
                "reference_version": cell["serving_version"],
                "reference_value": reference_value,
                "sampling_error": sampling_error,
                "threshold": threshold,
                "is_degraded": bool(
                    cell["n_labelled"] >= model.min_window_rows
                    and None not in (realized, threshold)
                    and realized < threshold
                ),
            }
    return expected


def _binary_metrics(model: ModelConfig, scored: list[tuple[str, str, Any]]) -> dict[str, float | None]:
    """Every binary metric (scikit-learn) of (label, prediction, probability) triples."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    truth = [label == model.positive_label for label, _, _ in scored]
    predicted = [prediction == model.positive_label for _, prediction, _ in scored]
    metrics: dict[str, float | None] = {
        "accuracy": accuracy_score([label for label, _, _ in scored], [p for _, p, _ in scored])
        if scored
        else None,
        "precision": precision_score(truth, predicted, zero_division=np.nan) if any(predicted) else None,
        "recall": recall_score(truth, predicted, zero_division=np.nan) if any(truth) else None,
        "f1": f1_score(truth, predicted) if any(truth) or any(predicted) else None,
        "roc_auc": None,
    }
    probabilities = [(t, _number(p)) for t, (_, _, p) in zip(truth, scored, strict=True)]
    probabilities = [(t, p) for t, p in probabilities if p is not None]
    if len({t for t, _ in probabilities}) == 2:
        metrics["roc_auc"] = float(
            roc_auc_score([t for t, _ in probabilities], [p for _, p in probabilities])
        )
    return metrics


def _expected_reference_performance(data: RawFixture) -> dict[tuple[str, int, str], dict[str, Any]]:
    """{(model, version, metric): value on the whole reference, the sample standard deviation over
    the REFERENCE_CHUNKS chunks (row_number mod REFERENCE_CHUNKS) where the metric is defined, and
    their mean labelled rows}."""
    from ml.spec import PERFORMANCE_METRICS

    sets: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in data.reference_rows:
        sets[(row["model_name"], row["model_version"])].append(row)
    expected = {}
    for (model_name, version), rows in sets.items():
        model = MODELS[model_name]
        labelled = [r for r in rows if r["label"] is not None and r["prediction"] is not None]
        chunks = [
            [r for r in labelled if r["row_number"] % REFERENCE_CHUNKS == chunk]
            for chunk in range(REFERENCE_CHUNKS)
        ]
        whole = _binary_metrics(model, [(r["label"], r["prediction"], r["probability"]) for r in labelled])
        per_chunk = [
            (
                len(chunk),
                _binary_metrics(model, [(r["label"], r["prediction"], r["probability"]) for r in chunk]),
            )
            for chunk in chunks
        ]
        for metric in PERFORMANCE_METRICS["binary"]:
            defined = [(n, values[metric]) for n, values in per_chunk if values[metric] is not None]
            expected[(model_name, version, metric)] = {
                "value": whole[metric],
                "stddev": float(np.std([v for _, v in defined], ddof=1)) if len(defined) > 1 else None,
                "labelled": float(np.mean([n for n, _ in defined])) if defined else None,
                "n_labelled": len(labelled),
            }
    return expected


def _serving_version(data: RawFixture, model: ModelConfig, rows: list[dict[str, Any]]) -> int | None:
    """The newest version with reference rows not newer than the window's newest logged version."""
    versions = {r["model_version"] for r in data.reference_rows if r["model_name"] == model.name}
    logged = [r["model_version"] for r in rows if r.get("model_version") is not None]
    usable = [v for v in versions if not logged or v <= max(logged)]
    return max(usable) if usable else None


def _expected_binary_performance(data: RawFixture) -> dict[tuple[str, datetime], dict[str, Any]]:
    """One wide row per (model, window): the window's columns and every binary metric (scikit-learn)."""
    labels = {(r["model_name"], r["request_id"]): r["label"] for r in data.labels}
    expected = {}
    for model in MODELS.values():
        for start, rows in _windows(data.inference_rows, model).items():
            labelled = [
                (r, labels[(model.name, r["request_id"])])
                for r in rows
                if (model.name, r["request_id"]) in labels
            ]
            truth = [label == model.positive_label for _, label in labelled]
            cell: dict[str, Any] = {
                "window_end": start + timedelta(seconds=model.window_seconds),
                "n_predictions": len(rows),
                "n_labelled": len(labelled),
                "label_coverage": len(labelled) / len(rows),
                "positive_rate_actual": float(np.mean(truth)) if labelled else None,
                "serving_version": _serving_version(data, model, rows),
                **_binary_metrics(
                    model, [(label, r["prediction"], r["probability"]) for r, label in labelled]
                ),
            }
            expected[(model.name, start)] = cell
    return expected


def expected_model_versions(data: RawFixture) -> dict[tuple[str, int], dict[str, Any]]:
    return {
        (row["model_name"], row["model_version"]): {
            "created_at": row["created_at"],
            "trigger": row["trigger"],
            "status": row["status"],
            "artifact_sha256": f"sha-{row['model_version']}",
            "n_training_rows": row["n_training_rows"],
            "n_reference_rows": row["n_reference_rows"],
            "validation_accuracy": row["metrics"].get("accuracy"),
            "validation_roc_auc": row["metrics"].get("roc_auc"),
            "validation_f1": row["metrics"].get("f1"),
            "validation_log_loss": row["metrics"].get("log_loss"),
            "is_champion": row["status"] == "champion",
        }
        for row in data.registry
    }
