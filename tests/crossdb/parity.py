"""Parity of the marts across warehouse targets (issue 7, docs/architecture.md §9).

One generated case is imported and run through the same CLI on DuckDB (the reference) and on another
engine, in two batches (so the second run is incremental), and the published marts must agree: every
float to 1e-9 relative, everything else exactly. The published copy carries the engine's marts on
every target (warehouse/targets/), so both sides are read the same way.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from ml.datasets import wide_case
from tests.test_cli import driftmart
from warehouse.home import Home

DAYS = 5
FIRST_BATCH_DAYS = 3
ROWS_PER_DAY = 300
DRIFT = {"num_01": 2, "cat_00": 3}
RELATIVE_TOLERANCE = 1e-9

PARITY_MARTS = (
    "marts.fct_feature_drift",
    "marts.fct_dataset_drift",
    "marts.fct_prediction_drift",
    "marts.fct_model_performance",
    "marts.fct_feature_statistics",
    "marts.dim_model_versions",
    "marts.fct_segment_drift",
)
# Wall-clock columns: when rows were loaded or registered differs between any two installations.
VOLATILE_COLUMNS = {"loaded_at", "max_ingest_seq", "ingest_seq", "created_at", "decided_at", "registered_at"}


def write_parity_case(root: Path) -> Path:
    """spec.yaml, reference.parquet and two batches of logs and labels (CSV) in `root`."""
    spec, reference, logs = wide_case(
        days=DAYS, rows_per_day=ROWS_PER_DAY, n_numeric=4, n_categorical=3, drift=DRIFT, seed=7, regions=3
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    reference.to_parquet(root / "reference.parquet", index=False)
    day = (logs["event_time"] - logs["event_time"].min()).dt.days
    for batch, rows in ((1, logs[day < FIRST_BATCH_DAYS]), (2, logs[day >= FIRST_BATCH_DAYS])):
        rows.drop(columns=["outcome"]).to_csv(root / f"logs_{batch}.csv", index=False)
        rows[["row_id", "outcome"]].to_csv(root / f"labels_{batch}.csv", index=False)
    return root


def import_batch(files: Path, home: Home, batch: int, env: dict[str, str] | None = None) -> None:
    """`driftmart import` of the reference and one batch of logs and labels; fails on any error."""
    imported = driftmart(
        "import",
        "--spec",
        str(files / "spec.yaml"),
        "--reference",
        str(files / "reference.parquet"),
        "--logs",
        str(files / f"logs_{batch}.csv"),
        "--labels",
        str(files / f"labels_{batch}.csv"),
        home=home,
        env=env,
    )
    assert imported.returncode == 0, f"import batch {batch}:\n{imported.stdout}{imported.stderr}"


def run_case(files: Path, home: Home, env: dict[str, str] | None = None) -> None:
    """`driftmart run --no-retrain`; fails unless it exits 0 (no drift) or 1 (drift)."""
    run = driftmart(
        "run", "--spec", str(files / "spec.yaml"), "--no-retrain", home=home, env=env, timeout=900
    )
    assert run.returncode in (0, 1), f"run:\n{run.stdout}{run.stderr}"


def build_parity_case(
    files: Path, home: Home, target: str, environment: dict[str, str] | None = None
) -> Home:
    """Import and run both batches with DRIFTMART_TARGET=`target`; fails on any error."""
    env = {"DRIFTMART_TARGET": target, **(environment or {})}
    for batch in (1, 2):
        import_batch(files, home, batch, env)
        run_case(files, home, env)
    return home


def read_mart(home: Home, table: str) -> pd.DataFrame:
    """A mart from the published copy: columns by name, wall-clock columns dropped, rows sorted."""
    with duckdb.connect(str(home.published), read_only=True) as connection:
        frame = connection.execute(f"select * from {table}").df()
    frame = frame[sorted(set(frame.columns) - VOLATILE_COLUMNS)]
    keys = [column for column in frame.columns if not pd.api.types.is_float_dtype(frame[column])]
    return frame.sort_values(keys, kind="stable", na_position="first").reset_index(drop=True)


def _same(expected: object, actual: object) -> bool:
    if pd.isna(expected) or pd.isna(actual):
        return bool(pd.isna(expected) and pd.isna(actual))
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(float(expected), float(actual), rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12)
    return expected == actual


def mart_differences(reference: Home, other: Home, table: str, limit: int = 10) -> list[str]:
    """Cells where `other`'s mart differs from `reference`'s (empty when they agree), over the models
    `reference` holds: `other` may hold more (one Spark build serves several parity cases)."""
    expected, actual = read_mart(reference, table), read_mart(other, table)
    if "model_name" in expected.columns and "model_name" in actual.columns:
        actual = actual[actual["model_name"].isin(set(expected["model_name"]))].reset_index(drop=True)
    if expected.empty:  # two empty marts agree on nothing: the case must put rows in every mart
        return [f"{table}: no rows on duckdb, nothing to compare"]
    if list(expected.columns) != list(actual.columns):
        return [f"{table}: columns {list(expected.columns)} != {list(actual.columns)}"]
    if len(expected) != len(actual):
        return [f"{table}: {len(expected)} rows on duckdb, {len(actual)} on the other target"]
    differences = []
    for column in expected.columns:
        for row, (want, got) in enumerate(zip(expected[column], actual[column], strict=True)):
            if not _same(want, got):
                differences.append(f"{table}.{column} row {row}: duckdb {want!r} != {got!r}")
    return differences[:limit]


# --- tasks: a multiclass and a regression model (tests/test_tasks.py's generated cases) --------------

TASK_PARITY_TASKS = ("multiclass", "regression")
# Where the task-specific SQL lands: the per-class probability and numeric prediction pseudo-features
# (their statistics), the prediction drift mart and the long performance mart.
TASK_PARITY_TABLES = (
    "marts.fct_model_performance",
    "marts.fct_prediction_drift",
    "intermediate.int_window_drift_statistics_computed",
)
# (Not the frozen bins: their text labels print cut points that engines' quantiles may put one ulp
# apart; the statistics computed over those bins agree to 1e-9.)


def write_task_parity_case(root: Path) -> Path:
    """`root/<task>/`: spec.yaml, reference.csv and logs.csv (with inline labels) of each task."""
    from tests.test_tasks import write_task_case

    for task in TASK_PARITY_TASKS:
        write_task_case(root / task, task)
    return root


def import_task_case(files: Path, home: Home, env: dict[str, str] | None = None) -> None:
    """`driftmart import` of every task's model (reference and logs with inline labels)."""
    for task in TASK_PARITY_TASKS:
        imported = driftmart(
            "import",
            "--spec",
            str(files / task / "spec.yaml"),
            "--reference",
            str(files / task / "reference.csv"),
            "--logs",
            str(files / task / "logs.csv"),
            home=home,
            env=env,
        )
        assert imported.returncode == 0, f"import {task}:\n{imported.stdout}{imported.stderr}"


def build_task_parity_case(
    files: Path, home: Home, target: str, environment: dict[str, str] | None = None
) -> Home:
    """Import every task's model, then one `driftmart run --no-retrain` (it builds every model's
    marts) with DRIFTMART_TARGET=`target`; fails on any error."""
    env = {"DRIFTMART_TARGET": target, **(environment or {})}
    import_task_case(files, home, env)
    run_case(files / TASK_PARITY_TASKS[-1], home, env)
    return home
