"""Helpers for the dbt project tests: a generated raw fixture, an independent numpy computation of
the drift marts, and a runner for `dbt build` against a temporary DRIFTMART_HOME.

The numpy side re-implements DESIGN.md §5 from the raw rows (not from the dbt tables): reference
deciles with duplicates removed and open end bins, categories plus `__unseen__`, a `__null__` bin,
shares floored at epsilon, PSI = sum((p_cur - p_ref) * ln(p_cur / p_ref)).
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

MODEL = "car_loan"
WINDOW_SECONDS = 86_400
PSI_THRESHOLD = 0.2
EPSILON = 1e-4  # dbt var drift_share_epsilon
N_QUANTILE_BINS = 10  # dbt var drift_n_quantile_bins
FEATURES: dict[str, str] = {
    "car_value": "numeric",
    "income": "numeric",
    "salary_range": "categorical",
    "region": "categorical",
}
FIRST_WINDOW = datetime(2024, 3, 1)
SALARY_RANGES = ["low", "medium", "high"]
REGIONS = ["north", "south", "east", "west"]


@dataclass
class RawFixture:
    """Rows for the raw tables, as Python values (features as dicts, serialised on insert)."""

    reference_rows: list[dict[str, Any]] = field(default_factory=list)
    inference_rows: list[dict[str, Any]] = field(default_factory=list)


def _features(
    rng: np.random.Generator,
    car_value_mean: float,
    salary_probabilities: list[float],
    salary_categories: list[str] | None = None,
) -> dict[str, Any]:
    """One row of feature values, with missing keys, JSON nulls and a non-numeric string mixed in."""
    salary_categories = salary_categories or SALARY_RANGES
    row: dict[str, Any] = {
        "car_value": float(rng.normal(car_value_mean, 5_000.0)),
        "income": float(rng.normal(50_000.0, 12_000.0)),
        "salary_range": str(rng.choice(salary_categories, p=salary_probabilities)),
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


def reference_set(rng: np.random.Generator, version: int, n_rows: int) -> list[dict[str, Any]]:
    car_value_mean = 20_000.0 if version == 1 else 26_000.0
    return [
        {
            "model_version": version,
            "row_number": number,
            "features": _features(rng, car_value_mean, [0.3, 0.5, 0.2]),
        }
        for number in range(1, n_rows + 1)
    ]


def window_rows(
    rng: np.random.Generator,
    window_index: int,
    n_rows: int,
    loaded_at: datetime,
    request_prefix: str,
    versions: list[int],
) -> list[dict[str, Any]]:
    """Rows scored inside window `window_index` (0-based from FIRST_WINDOW).

    Drift planted: car_value shifts from window 2 (the third window) on; salary_range changes its
    shares and gains an unseen category in window 3 (the fourth window) and after.
    """
    start = FIRST_WINDOW + timedelta(days=window_index)
    car_value_mean = 20_000.0 if window_index < 2 else 32_000.0
    if window_index < 3:
        salary = {"salary_probabilities": [0.3, 0.5, 0.2]}
    else:
        salary = {
            "salary_probabilities": [0.55, 0.15, 0.1, 0.2],
            "salary_categories": [*SALARY_RANGES, "very_high"],
        }
    rows = []
    for number in range(n_rows):
        # Spread over the window, never on its end; the first row sits exactly on its start.
        offset = timedelta(seconds=int(number * (WINDOW_SECONDS - 1) / n_rows))
        rows.append(
            {
                "request_id": f"{request_prefix}-{window_index}-{number:04d}",
                "model_version": versions[min(number * len(versions) // n_rows, len(versions) - 1)],
                "features": _features(rng, car_value_mean, **salary),
                "scored_at": start + offset,
                "loaded_at": loaded_at,
            }
        )
    return rows


def first_load(seed: int = 20240301) -> RawFixture:
    """Reference sets of versions 1 and 2 and five daily windows; window 4 spans the retrain."""
    rng = np.random.default_rng(seed)
    fixture = RawFixture()
    fixture.reference_rows = reference_set(rng, 1, 400) + reference_set(rng, 2, 300)
    loaded_at = datetime(2024, 3, 6, 1, 0, 0)
    for window_index in range(5):
        versions = {3: [1, 2], 4: [2]}.get(window_index, [1])
        fixture.inference_rows += window_rows(rng, window_index, 200, loaded_at, "a", versions)
    return fixture


def second_load(seed: int = 20240307) -> RawFixture:
    """Late rows for window 2 (index 1) and a new sixth window, loaded a day later.

    Also one more reference row for version 1: its bins are frozen, so it must change nothing.
    """
    rng = np.random.default_rng(seed)
    loaded_at = datetime(2024, 3, 7, 1, 0, 0)
    fixture = RawFixture()
    fixture.reference_rows = [
        {
            "model_version": 1,
            "row_number": 401,
            "features": {"car_value": 1e9, "income": -1e9, "salary_range": "x", "region": "y"},
        }
    ]
    fixture.inference_rows = window_rows(rng, 1, 40, loaded_at, "late", [1]) + window_rows(
        rng, 5, 150, loaded_at, "b", [2]
    )
    return fixture


# --- the warehouse side -------------------------------------------------------------------------


def create_raw_tables(database: Path) -> None:
    import duckdb

    with duckdb.connect(str(database)) as connection:
        connection.execute(SCHEMA_SQL.read_text())
        connection.execute(
            "insert into raw.monitored_models values (?, ?, ?, ?, ?, ?)",
            [MODEL, WINDOW_SECONDS, "reference_bins", PSI_THRESHOLD, "{}", datetime(2024, 3, 1)],
        )
        connection.executemany(
            "insert into raw.model_features values (?, ?, ?, ?, ?)",
            [
                [MODEL, name, kind, position, datetime(2024, 3, 1)]
                for position, (name, kind) in enumerate(FEATURES.items(), start=1)
            ],
        )


def insert_fixture(database: Path, fixture: RawFixture) -> None:
    import duckdb

    with duckdb.connect(str(database)) as connection:
        if fixture.reference_rows:
            connection.executemany(
                "insert into raw.reference_rows values (?, ?, ?, ?, null, null, null, ?)",
                [
                    [
                        MODEL,
                        row["model_version"],
                        row["row_number"],
                        json.dumps(row["features"]),
                        datetime(2024, 2, 28),
                    ]
                    for row in fixture.reference_rows
                ],
            )
        if fixture.inference_rows:
            connection.executemany(
                "insert into raw.inference_log values (?, ?, ?, ?, null, null, ?, ?, ?, 'fixture')",
                [
                    [
                        MODEL,
                        row["request_id"],
                        row["model_version"],
                        json.dumps(row["features"]),
                        row["scored_at"],
                        row["scored_at"],
                        row["loaded_at"],
                    ]
                    for row in fixture.inference_rows
                ],
            )


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


# --- the independent numpy side ------------------------------------------------------------------


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


@dataclass
class FeatureBins:
    feature_type: str
    edges: np.ndarray | None = None  # numeric: distinct interior cut points, increasing
    categories: list[str] | None = None  # categorical: reference categories, sorted

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


def reference_bins(reference_rows: list[dict[str, Any]]) -> dict[tuple[int, str], FeatureBins]:
    """The frozen catalogue, per (model_version, feature), from the reference rows."""
    by_version: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in reference_rows:
        by_version[row["model_version"]].append(row["features"])
    catalogue = {}
    quantiles = np.arange(1, N_QUANTILE_BINS) / N_QUANTILE_BINS
    for version, rows in by_version.items():
        for name, kind in FEATURES.items():
            values = [row.get(name) for row in rows]
            if kind == "numeric":
                numbers = np.array([n for n in map(_number, values) if n is not None])
                edges = np.unique(np.quantile(numbers, quantiles)) if len(numbers) else np.array([])
                catalogue[(version, name)] = FeatureBins(kind, edges=edges)
            else:
                categories = sorted({c for c in map(_category, values) if c is not None})
                catalogue[(version, name)] = FeatureBins(kind, categories=categories)
    return catalogue


def psi(reference_counts: np.ndarray, current_counts: np.ndarray, epsilon: float = EPSILON) -> float:
    p_ref = np.maximum(reference_counts / reference_counts.sum(), epsilon)
    p_cur = np.maximum(current_counts / current_counts.sum(), epsilon)
    return float(np.sum((p_cur - p_ref) * np.log(p_cur / p_ref)))


def window_start_of(scored_at: datetime) -> datetime:
    epoch = datetime(1970, 1, 1)
    seconds = (scored_at - epoch) // timedelta(seconds=1)
    return epoch + timedelta(seconds=(seconds // WINDOW_SECONDS) * WINDOW_SECONDS)


def expected_feature_drift(
    reference_rows: list[dict[str, Any]], inference_rows: list[dict[str, Any]]
) -> dict[tuple[str, datetime], dict[str, Any]]:
    """Expected fct_feature_drift, keyed by (feature_name, window_start)."""
    catalogue = reference_bins(reference_rows)
    reference_by_version: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in reference_rows:
        reference_by_version[row["model_version"]].append(row["features"])
    windows: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
    for row in inference_rows:
        windows[window_start_of(row["scored_at"])].append(row)

    expected = {}
    for window_start, rows in windows.items():
        version = max(row["model_version"] for row in rows)
        for name, kind in FEATURES.items():
            bins = catalogue[(version, name)]
            reference_counts = bins.counts([r.get(name) for r in reference_by_version[version]])
            current_counts = bins.counts([row["features"].get(name) for row in rows])
            value = psi(reference_counts, current_counts)
            expected[(name, window_start)] = {
                "feature_type": kind,
                "reference_version": version,
                "window_end": window_start + timedelta(seconds=WINDOW_SECONDS),
                "n_reference": int(reference_counts.sum()),
                "n_current": int(current_counts.sum()),
                "psi": value,
                "is_drifted": value >= PSI_THRESHOLD,
                "current_counts": current_counts,
            }
    return expected
