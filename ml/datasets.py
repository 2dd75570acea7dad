"""A seeded generator for the demo model `car_loan`: will a car loan be repaid?

The data look like a lender's scoring log: applicant and vehicle features, a score timestamp and a
delayed label. Named scenarios plant one kind of drift from a given day on, so tests and the demo
know exactly where drift is and where it is not:

- `no_drift`: every day is drawn from the training distribution.
- `covariate_shift`: from `drift_day` on, car prices rise (`car_value` × 1.6).
- `category_shift`: from `drift_day` on, the employment mix moves to self-employed and contractors.
- `missing_surge`: from `drift_day` on, `credit_score` is missing for 40 % of applicants.
- `concept_drift`: from `drift_day` on, the inputs keep their distribution but repayment depends on
  them differently (a regional downturn hits the self-employed), so only performance degrades.
- `market_shift`: both at once from `drift_day` on: car prices rise and repayment behaviour
  changes, so drift is visible in `car_value` and a retrained model does measurably better (the
  demo's story).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from ml.errors import DriftmartError

SCENARIOS: tuple[str, ...] = (
    "no_drift",
    "covariate_shift",
    "category_shift",
    "missing_surge",
    "concept_drift",
    "market_shift",
)
EMPLOYMENT_TYPES = ("salaried", "self_employed", "contractor", "retired", "unemployed")
EMPLOYMENT_SHARES = (0.62, 0.14, 0.10, 0.10, 0.04)
EMPLOYMENT_SHARES_SHIFTED = (0.30, 0.35, 0.25, 0.06, 0.04)
REGIONS = ("north", "south", "east", "west", "central")
REGION_SHARES = (0.22, 0.24, 0.18, 0.20, 0.16)
VEHICLE_CONDITIONS = ("new", "used")
LOAN_TERMS = (24, 36, 48, 60, 72)
BASE_MISSING_CREDIT_SCORE = 0.02
SURGE_MISSING_CREDIT_SCORE = 0.40
CAR_VALUE_SHIFT = 1.6


class UnknownScenarioError(DriftmartError, ValueError):
    """A scenario name the generator does not know."""


@dataclass(frozen=True)
class DriftPlan:
    """Which scenario starts when: the ground truth that tests check drift detection against."""

    scenario: str
    start: datetime
    days: int
    drift_day: int

    @property
    def drift_start(self) -> datetime:
        return self.start + timedelta(days=self.drift_day)

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return {
            "no_drift": (),
            "covariate_shift": ("car_value",),
            "category_shift": ("employment_type",),
            "missing_surge": ("credit_score",),
            "concept_drift": (),
            "market_shift": ("car_value",),
        }[self.scenario]


def check_scenario(scenario: str) -> None:
    if scenario not in SCENARIOS:
        raise UnknownScenarioError(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")


def _applicants(rng: np.random.Generator, n: int, drifted: np.ndarray, scenario: str) -> pd.DataFrame:
    employment_shifted = scenario == "category_shift"
    employment = np.where(
        drifted & employment_shifted,
        rng.choice(EMPLOYMENT_TYPES, size=n, p=EMPLOYMENT_SHARES_SHIFTED),
        rng.choice(EMPLOYMENT_TYPES, size=n, p=EMPLOYMENT_SHARES),
    )
    income = rng.lognormal(mean=np.log(52_000), sigma=0.45, size=n)
    income = np.where(employment == "unemployed", income * 0.35, income)
    car_value = rng.lognormal(mean=np.log(24_000), sigma=0.5, size=n)
    condition = rng.choice(VEHICLE_CONDITIONS, size=n, p=(0.35, 0.65))
    car_value = np.where(condition == "new", car_value * 1.45, car_value)
    if scenario in ("covariate_shift", "market_shift"):
        car_value = np.where(drifted, car_value * CAR_VALUE_SHIFT, car_value)
    credit_score = np.clip(rng.normal(680, 70, size=n), 300, 850).round()
    missing_share = np.where(
        drifted & (scenario == "missing_surge"),
        SURGE_MISSING_CREDIT_SCORE,
        BASE_MISSING_CREDIT_SCORE,
    )
    credit_score = np.where(rng.random(n) < missing_share, np.nan, credit_score)
    return pd.DataFrame(
        {
            "car_value": car_value.round(2),
            "annual_income": income.round(2),
            "credit_score": credit_score,
            "loan_term_months": rng.choice(LOAN_TERMS, size=n).astype(float),
            "applicant_age": np.clip(rng.normal(41, 12, size=n), 18, 85).round(),
            "employment_type": employment,
            "region": rng.choice(REGIONS, size=n, p=REGION_SHARES),
            "vehicle_condition": condition,
        }
    )


def _repayment_logit(frame: pd.DataFrame, concept_drifted: np.ndarray) -> np.ndarray:
    debt_ratio = frame["car_value"] / frame["annual_income"]
    credit = frame["credit_score"].fillna(600.0)
    logit = (
        1.6
        + 0.012 * (credit - 680)
        - 2.2 * (debt_ratio - 0.5)
        - 0.012 * (frame["loan_term_months"] - 48)
        + 0.4 * (frame["employment_type"] == "salaried")
        - 1.2 * (frame["employment_type"] == "unemployed")
    ).to_numpy()
    # After the concept change the same applicants repay differently: a downturn in the south and
    # among the self-employed, and credit scores predict less than they used to.
    downturn = (
        -2.5 * (frame["region"] == "south").to_numpy()
        - 2.0 * (frame["employment_type"] == "self_employed").to_numpy()
        - 0.009 * (credit - 680).to_numpy()
        + 2.0 * (debt_ratio - 0.5).to_numpy()
    )
    return np.where(concept_drifted, logit + downturn, logit)


def generate(
    scenario: str = "no_drift",
    *,
    start: datetime | None = None,
    days: int = 14,
    rows_per_day: int = 500,
    drift_day: int = 7,
    seed: int = 0,
    id_prefix: str = "req",
) -> pd.DataFrame:
    """Scored applications over `days` days; the scenario's drift starts on day `drift_day`.

    Columns: `request_id`, `scored_at` (UTC, naive), the spec's features and the label `repaid`.
    """
    check_scenario(scenario)
    if days < 1 or rows_per_day < 1:
        raise ValueError("days and rows_per_day must be at least 1")
    start = start or datetime(2026, 1, 1)
    if start.tzinfo is not None:
        start = start.astimezone(UTC).replace(tzinfo=None)
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    day_index = np.repeat(np.arange(days), rows_per_day)
    seconds = rng.integers(0, 86_400, size=n)
    scored_at = pd.to_datetime(start) + pd.to_timedelta(day_index * 86_400 + seconds, unit="s")
    drifted = day_index >= drift_day
    frame = _applicants(rng, n, drifted, scenario)
    logit = _repayment_logit(frame, drifted & (scenario in ("concept_drift", "market_shift")))
    repaid = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    frame.insert(0, "scored_at", scored_at)
    frame.insert(0, "request_id", [f"{id_prefix}-{seed}-{i:07d}" for i in range(n)])
    frame["repaid"] = repaid
    return frame.sort_values("scored_at", kind="stable").reset_index(drop=True)


def training_set(n: int = 4000, *, seed: int = 0, end: datetime | None = None) -> pd.DataFrame:
    """Historical, drift-free applications (the 60 days before `end`) to train the first model."""
    end = end or datetime(2026, 1, 1)
    days = 60
    frame = generate(
        "no_drift",
        start=end - timedelta(days=days),
        days=days,
        rows_per_day=max(1, n // days),
        seed=seed + 10_000,
        id_prefix="train",
    )
    return frame.head(n).reset_index(drop=True)


def wide_case(
    *,
    days: int = 10,
    rows_per_day: int = 500,
    n_numeric: int = 12,
    n_categorical: int = 8,
    drift: dict[str, int] | None = None,
    window: str = "1d",
    seed: int = 0,
    start: datetime | None = None,
    regions: int = 0,
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """A generic batch-scoring case for any number of features: (spec, reference, logs).

    Numeric features `num_<i>` are normal (some integer-valued), categorical `cat_<i>` draw from 6
    categories. `drift` maps a feature name to the day its distribution moves (numeric: mean +1 sd;
    categorical: the mix shifts to unseen-heavy categories). Columns follow the spec:
    `event_time`, `row_id`, features, `score_label`, `score`, and the label `outcome` in the logs.
    `regions` > 0 adds a column `region` (that many values, not a feature) as the spec's segments.
    """
    rng = np.random.default_rng(seed)
    start = start or datetime(2026, 2, 1)
    drift = drift or {}
    numeric = [f"num_{i:02d}" for i in range(n_numeric)]
    categorical = [f"cat_{i:02d}" for i in range(n_categorical)]
    unknown = set(drift) - set(numeric) - set(categorical)
    if unknown:
        raise ValueError(f"drift names unknown features: {sorted(unknown)}")
    categories = np.array(["a", "b", "c", "d", "e", "f"])
    shares = np.array([0.3, 0.25, 0.2, 0.12, 0.08, 0.05])
    shifted = np.array([0.1, 0.1, 0.15, 0.2, 0.2, 0.25])

    def draw(n: int, day_index: np.ndarray | None) -> dict[str, np.ndarray]:
        columns: dict[str, np.ndarray] = {}
        for position, name in enumerate(numeric):
            values = rng.normal(10.0 * (position + 1), 2.0 + position, size=n)
            if day_index is not None and name in drift:
                values = values + np.where(day_index >= drift[name], 2.0 + position, 0.0)
            columns[name] = values.round() if position % 3 == 2 else values
        for name in categorical:
            values = rng.choice(categories, size=n, p=shares)
            if day_index is not None and name in drift:
                values = np.where(day_index >= drift[name], rng.choice(categories, size=n, p=shifted), values)
            columns[name] = values
        return columns

    reference = pd.DataFrame(draw(max(2000, rows_per_day * 2), None))
    n = days * rows_per_day
    day_index = np.repeat(np.arange(days), rows_per_day)
    logs = pd.DataFrame(draw(n, day_index))
    score = rng.random(n)
    logs.insert(
        0,
        "event_time",
        pd.to_datetime(start) + pd.to_timedelta(day_index * 86_400 + rng.integers(0, 86_400, n), unit="s"),
    )
    logs.insert(1, "row_id", [f"r{seed}-{i:08d}" for i in range(n)])
    logs["score"] = score
    logs["score_label"] = (score > 0.5).astype(int)
    logs["outcome"] = (rng.random(n) < score).astype(int)
    reference_score = rng.random(len(reference))
    reference["score"] = reference_score
    reference["score_label"] = (reference_score > 0.5).astype(int)
    reference["outcome"] = (rng.random(len(reference)) < reference_score).astype(int)
    spec = {
        "model": "wide_model",
        "timestamp": "event_time",
        "id": "row_id",
        "prediction": "score_label",
        "prediction_proba": "score",
        "target": "outcome",
        "features": {name: "numeric" for name in numeric} | {name: "categorical" for name in categorical},
        "window": window,
    }
    if regions:
        # Drawn last, from a generator of its own: the other columns are the same with or without.
        region_rng = np.random.default_rng(seed + 1_000_003)
        names = [f"r{i}" for i in range(regions)]
        weights = 1 / np.arange(1, regions + 1)
        for frame in (reference, logs):
            frame["region"] = region_rng.choice(names, size=len(frame), p=weights / weights.sum())
        spec["segments"] = ["region"]
    return spec, reference, logs.sort_values("event_time", kind="stable").reset_index(drop=True)
