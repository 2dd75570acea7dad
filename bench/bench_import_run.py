"""Benchmark: `import` + `run` for a batch-scoring case (default 1M log rows × 20 features).

Prints, side by side, the median seconds of each step over several repetitions and the ratios that
matter: an incremental day (new rows for one window) against the full first build, and Parquet
against CSV input. Not a test: machines are shared and noisy, so it reports medians.

    .venv/bin/python bench/bench_import_run.py --rows-per-day 100000 --days 10 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.datasets import wide_case
from ml.spec import load_spec
from orchestration.pipeline import run_pipeline
from warehouse.home import Home
from warehouse.importer import import_files


def timed(function, *args, **kwargs) -> float:
    started = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - started


def one_repetition(root: Path, days: int, rows_per_day: int, seed: int) -> dict[str, float]:
    spec_dict, reference, logs = wide_case(
        days=days + 1, rows_per_day=rows_per_day, drift={"num_03": days // 2}, seed=seed
    )
    files = root / "files"
    files.mkdir(parents=True)
    (files / "spec.yaml").write_text(yaml.safe_dump(spec_dict))
    spec = load_spec(files / "spec.yaml")
    reference.to_parquet(files / "reference.parquet", index=False)
    first_days = logs[
        logs["event_time"] < logs["event_time"].min().normalize() + __import__("pandas").Timedelta(days=days)
    ]
    last_day = logs.iloc[len(first_days) :]
    first_days.drop(columns=["outcome"]).to_parquet(files / "logs.parquet", index=False)
    first_days.drop(columns=["outcome"]).to_csv(files / "logs.csv", index=False)
    last_day.drop(columns=["outcome"]).to_parquet(files / "next_day.parquet", index=False)

    timings = {}
    csv_home = Home.resolve(root / "csv-home")
    timings["import CSV"] = timed(
        import_files, csv_home, spec, files / "reference.parquet", files / "logs.csv"
    )
    home = Home.resolve(root / "home")
    timings["import Parquet"] = timed(
        import_files, home, spec, files / "reference.parquet", files / "logs.parquet"
    )
    timings["run (first build)"] = timed(run_pipeline, home, str(files / "spec.yaml"))
    timings["import next day"] = timed(
        import_files, home, spec, files / "reference.parquet", files / "next_day.parquet"
    )
    timings["run (incremental day)"] = timed(run_pipeline, home, str(files / "spec.yaml"))
    timings["run (no new rows)"] = timed(run_pipeline, home, str(files / "spec.yaml"))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--rows-per-day", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for repetition in range(args.repeat):
        with tempfile.TemporaryDirectory() as directory:
            runs.append(one_repetition(Path(directory), args.days, args.rows_per_day, seed=repetition))
        print(
            f"repetition {repetition + 1}/{args.repeat}: "
            + ", ".join(f"{k} {v:.1f}s" for k, v in runs[-1].items()),
            flush=True,
        )
    medians = {step: statistics.median(run[step] for run in runs) for step in runs[0]}
    rows = args.days * args.rows_per_day
    print(f"\n{rows:,} log rows × 20 features over {args.days} daily windows; median of {args.repeat} runs")
    width = max(map(len, medians))
    for step, seconds in medians.items():
        print(f"  {step:<{width}}  {seconds:8.2f} s")
    print("ratios")
    first_build = medians["run (first build)"]
    print(f"  import CSV / import Parquet          {medians['import CSV'] / medians['import Parquet']:.2f}")
    print(f"  incremental day / first build        {medians['run (incremental day)'] / first_build:.2f}")
    print(f"  no-new-rows run / first build        {medians['run (no new rows)'] / first_build:.2f}")
    total = medians["import Parquet"] + medians["run (first build)"]
    print(f"  import + run: {total:.1f} s = {rows / total:,.0f} rows/s")


if __name__ == "__main__":
    main()
