"""Benchmark: the same case on each warehouse target (DuckDB, PostgreSQL), side by side.

For each target, a fresh home: `import` of the logs (Parquet), the first `run` (ingest, copy of the
raw tables to the engine, dbt build of every window, publish, report), `import` of one more day and
the incremental `run` that follows. PostgreSQL is a throwaway local cluster with fsync on (as in
production), started by the benchmark. Prints seconds per step, the PostgreSQL/DuckDB ratio, and the
sizes that matter for the cost model (rows × features in the intermediate tables, bin-count rows).

    .venv/bin/python bench/bench_targets.py --rows-per-day 1000000 --days 10   # 10M log rows
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import duckdb
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.datasets import wide_case
from ml.spec import load_spec
from orchestration.pipeline import run_pipeline
from tests.services import throwaway_postgres
from warehouse.home import Home
from warehouse.importer import import_files


def write_case(files: Path, days: int, rows_per_day: int, numeric: int, categorical: int) -> None:
    spec, reference, logs = wide_case(
        days=days + 1,
        rows_per_day=rows_per_day,
        n_numeric=numeric,
        n_categorical=categorical,
        drift={"num_01": days // 2},
        seed=1,
    )
    files.mkdir(parents=True)
    (files / "spec.yaml").write_text(yaml.safe_dump(spec))
    reference.to_parquet(files / "reference.parquet", index=False)
    last_day = logs["event_time"] >= logs["event_time"].min().normalize() + pd.Timedelta(days=days)
    logs[~last_day].drop(columns=["outcome"]).to_parquet(files / "logs.parquet", index=False)
    logs[last_day].drop(columns=["outcome"]).to_parquet(files / "next_day.parquet", index=False)


def timed(function, *args, **kwargs) -> float:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    if hasattr(result, "success") and not result.success:
        raise RuntimeError(f"pipeline failed: {result.failure}")
    return time.perf_counter() - started


def one_target(root: Path, files: Path, target: str) -> dict[str, float]:
    os.environ["DRIFTMART_TARGET"] = target
    spec_path = str(files / "spec.yaml")
    spec = load_spec(spec_path)
    home = Home.resolve(root / f"home-{target}")
    timings = {
        "import logs (Parquet)": timed(
            import_files, home, spec, files / "reference.parquet", files / "logs.parquet"
        ),
        "first run": timed(run_pipeline, home, spec_path),
        "import next day": timed(
            import_files, home, spec, files / "reference.parquet", files / "next_day.parquet"
        ),
        "run after that day": timed(run_pipeline, home, spec_path),
    }
    with duckdb.connect(str(home.published), read_only=True) as connection:
        timings["bin-count rows"] = connection.execute(
            "select count(*) from intermediate.int_window_bin_counts_aggregated"
        ).fetchone()[0]
        timings["feature drift rows"] = connection.execute(
            "select count(*) from marts.fct_feature_drift"
        ).fetchone()[0]
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--rows-per-day", type=int, default=100_000)
    parser.add_argument("--numeric", type=int, default=4)
    parser.add_argument("--categorical", type=int, default=2)
    parser.add_argument("--targets", default="duckdb,postgres")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    targets = args.targets.split(",")
    results: dict[str, list[dict[str, float]]] = {target: [] for target in targets}
    with tempfile.TemporaryDirectory() as directory, ExitStack() as stack:
        root = Path(directory)
        write_case(root / "files", args.days, args.rows_per_day, args.numeric, args.categorical)
        for repetition in range(args.repeat):
            for target in targets:
                if target == "postgres":
                    os.environ.update(stack.enter_context(throwaway_postgres(durable=True)))
                timings = one_target(root / f"run-{repetition}", root / "files", target)
                results[target].append(timings)
                print(
                    f"{target} #{repetition + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()),
                    flush=True,
                )
    medians = {
        target: {step: statistics.median(run[step] for run in runs) for step in runs[0]}
        for target, runs in results.items()
    }
    rows = args.days * args.rows_per_day
    features = args.numeric + args.categorical
    print(f"\n{rows:,} log rows × {features} features, {args.days} daily windows; median of {args.repeat}")
    print(
        f"{'step (seconds)':28}"
        + "".join(f"{target:>12}" for target in targets)
        + (f"{'ratio':>8}" if len(targets) == 2 else "")
    )
    for step in medians[targets[0]]:
        values = [medians[target][step] for target in targets]
        ratio = f"{values[1] / values[0]:8.2f}" if len(values) == 2 and values[0] else ""
        print(f"{step:28}" + "".join(f"{value:12.1f}" for value in values) + ratio)


if __name__ == "__main__":
    main()
