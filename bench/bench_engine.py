"""Benchmark of the drift engine at warehouse scale: driftmart against Evidently and a DuckDB scan.

Run it with one command (not part of `make test`; it installs the `bench` extra when needed):

    make bench                                          # 1M rows per window, 1 repetition
    make bench BENCH_ARGS="--size 1M --repeat 3"        # medians of 3 repetitions
    make bench BENCH_ARGS="--sizes 200k,1M,10M"         # several sizes, one plot
    make bench BENCH_ARGS="--size 20k --reference-rows 20k --windows 2 --history-windows 4"  # smoke

or directly `.venv/bin/python bench/bench_engine.py --help`.

The data is generated here (numpy, fixed seed, written to Parquet in chunks so that a 10M-row window
never sits in memory): a model with 20 numeric and 2 categorical features (`num_00` … `num_19`,
`cat_00`, `cat_01`, plus a predicted label and probability), a reference set of `--reference-rows`
rows (default 1M) and daily windows of `--size` rows each (`200k`, `1M`, `10M`, `30M` …). From day
`--windows // 2` on, `num_03` drifts mildly (its mean moves by half a standard deviation), so the
drift marts have something to say and `driftmart run` exits 1 (drift found, not an error).

Every driftmart step is the real CLI in a subprocess (`driftmart --home H import …`,
`driftmart --home H run --no-retrain`: detection only, the model is imported, not trained here), on
a fresh home per repetition. `run`'s exit 1 (drift found) is a result; any other failure stops the
bench with the step's stderr. An Evidently run that fails (out of memory at large sizes) is recorded
as failed and the bench goes on. Each figure is the median over `--repeat` repetitions of:

- seconds: wall time of the subprocess, start-up included;
- peak RSS: sampled every 50 ms over the whole process tree, per process name (so the `dbt` child
  is reported apart from its `driftmart` parent; the tables leave out helpers under 10 MB, the JSON
  has them all) and for the tree as a whole (the sum of all its processes at one instant: what the
  machine must hold; pages shared between processes count once per process).

The figures:

a) first run: `import` of the first `--windows` windows (default 5) in one file, then `run` over
   them; timed apart and summed.
b) one more window: `import` of the next window, then `run`.
c) the same one more window on a home with `--history-windows` windows of history (default 30).
   That home is built once per size (imports of `--windows` windows at a time, then one `run`;
   its build is reported, not repeated). Repetition r adds day 30 + r, so its history grows by one
   window per repetition. `--skip-history` leaves it out (it is the costly part).
d) a `run` with no new rows right after (b), beside the seconds of `python -c "import dagster"`.
e) Evidently 0.7.23 on the same new window and reference, in a subprocess: the Parquet files loaded
   into pandas, then `Report([DataDriftPreset()]).run(current, reference)` and its fastest
   composition, one `ValueDrift(column=c, method="psi")` per feature in one Report. Evidently's
   seconds are the load of both Parquet files plus the report; the interpreter start-up and
   `import evidently` are reported beside them, not counted (driftmart's seconds count all of its
   start-up, so the comparison leans towards Evidently).
f) the floor: one DuckDB aggregate scan (count, min, max of every column, avg of the numeric ones)
   over `read_parquet` of the same window file, threads = the machine's cores; only the query.
g) the SQL compute of the drift models: dbt's own `execution_time` per node, from the
   `run_results.json` files the run of (b) wrote under the home. "drift models" are the models
   named `int_window_*`, `fct_*` and `int_reference_bins_frozen`; "all models" every model node;
   "all nodes" adds the data tests.

How to read the targets (each a ratio of two figures measured in the same run):

- "new window vs preset" = Evidently preset seconds / driftmart's import + run of one new window:
  how many times faster driftmart is (goal ≥ 10 at 1M rows); "vs PSI-only" the same against the
  PSI composition (goal ≥ 2).
- "incremental / first" = import + run of one new window / import + run of the first 5 windows
  (goal ≤ 0.5; the run alone is shown beside it).
- "flat with history" = one new window on the 30-window home / on the 5-window home (goal ≤ 1.25).
- "no new rows" = seconds of a `run` that finds nothing new (goal ≤ 10 s).
- "peak RSS" = the largest whole-tree peak of any driftmart step (goal ≤ 3 GB at 10M rows per
  window; at other sizes it is shown, not judged).
- "SQL vs floor" = dbt's seconds for the drift models / the DuckDB scan of the window (goal ≤ 5).
- stretch: a full rebuild (`driftmart run --full-refresh` when the CLI has it, on the largest home;
  otherwise the build of the history home (c), or the first build (a) without one, is the full
  build), in rows per second and extrapolated linearly to 30M and 100M rows (goal: 30M in < 2 min).

A verdict is "met", "not met", or "not judged" when the goal is stated for another size (peak RSS,
the stretch) or the figure could not be measured.

Writes `bench/results/bench-<size>.md` (the tables) and `.json` (every raw measurement, the medians,
the machine: cores, RAM, versions of duckdb, dbt, dagster and evidently), and redraws
`bench/results/time_vs_rows.png` from every `bench-*.json` there, so running sizes one at a time
accumulates one plot. Homes and data live under `--workdir` (default: a temporary folder) and are
deleted at the end unless `--keep`; the free space is checked first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

NUMERIC = tuple(f"num_{i:02d}" for i in range(20))
CATEGORICAL = ("cat_00", "cat_01")
FEATURES = NUMERIC + CATEGORICAL
DRIFT_FEATURE = "num_03"
DRIFT_SD = 0.5  # mild: the mean of DRIFT_FEATURE moves by half a standard deviation
CATEGORIES = np.array(["a", "b", "c", "d", "e", "f"])
CATEGORY_SHARES = np.array([0.3, 0.25, 0.2, 0.12, 0.08, 0.05])
START = datetime(2026, 2, 1)
CHUNK_ROWS = 500_000
POLL_SECONDS = 0.05

# Drift models of the SQL figure (g): these, and any model named int_window_* or fct_*.
DRIFT_MODELS = frozenset(
    {
        "int_window_bin_counts_aggregated",
        "int_window_drift_statistics_computed",
        "int_reference_bins_frozen",
        "fct_feature_drift",
        "fct_dataset_drift",
        "fct_feature_statistics",
    }
)

# Disk estimates for the up-front check. A Parquet row of this case is ~200 bytes (random doubles do
# not compress); a home held ~1.3 kB per logged row on main (warehouse file and its published copy).
# The history home is checked again with the bytes per row measured on the first 5-window home.
FILE_BYTES_PER_ROW = 200
HOME_BYTES_PER_ROW = 1_400

TARGET_RSS_BYTES = 3 * 1024**3
GIB = 1024**3


class BenchError(RuntimeError):
    """A step failed: the bench stops with this message."""


# --------------------------------------------------------------------------------------------------
# sizes


def parse_size(text: str) -> int:
    """'200k' → 200_000, '1M' → 1_000_000, '1.5M', '30M', '1G', or a plain number."""
    text = text.strip().replace("_", "")
    factors = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
    factor = factors.get(text[-1:].lower(), 1)
    number = text[:-1] if factor != 1 else text
    try:
        rows = round(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 200k, 1M, 10M)") from None
    if rows <= 0:
        raise argparse.ArgumentTypeError(f"a size must be positive: {text!r}")
    return rows


def size_label(rows: int) -> str:
    for factor, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if rows >= factor and rows % (factor // 10) == 0:
            value = rows / factor
            return f"{value:g}{suffix}"
    return str(rows)


def gib(n_bytes: float) -> str:
    return f"{n_bytes / GIB:.2f} GB"


# --------------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class Case:
    rows: int  # per window
    reference_rows: int
    windows: int
    history_windows: int
    seed: int

    @property
    def label(self) -> str:
        return size_label(self.rows)

    @property
    def drift_day(self) -> int:
        return max(1, self.windows // 2)

    def spec(self) -> dict:
        return {
            "model": "bench_model",
            "timestamp": "event_time",
            "id": "row_id",
            "prediction": "score_label",
            "prediction_proba": "score",
            "target": "outcome",
            "features": {name: "numeric" for name in NUMERIC} | {name: "categorical" for name in CATEGORICAL},
            "window": "1d",
        }


LOG_SCHEMA = pa.schema(
    [("event_time", pa.timestamp("us")), ("row_id", pa.string())]
    + [(name, pa.float64()) for name in NUMERIC]
    + [(name, pa.string()) for name in CATEGORICAL]
    + [("score_label", pa.int64()), ("score", pa.float64())]
)
REFERENCE_SCHEMA = pa.schema(
    [(name, pa.float64()) for name in NUMERIC]
    + [(name, pa.string()) for name in CATEGORICAL]
    + [("score_label", pa.int64()), ("score", pa.float64()), ("outcome", pa.int64())]
)


def feature_columns(rng: np.random.Generator, n: int, shift_sd: float) -> dict[str, pa.Array]:
    """The 22 features, one column at a time: normal numerics (every third integer-valued), 6
    categories with fixed shares; `shift_sd` moves the mean of DRIFT_FEATURE."""
    columns: dict[str, pa.Array] = {}
    for position, name in enumerate(NUMERIC):
        sd = 2.0 + position
        values = rng.normal(10.0 * (position + 1), sd, size=n)
        if name == DRIFT_FEATURE and shift_sd:
            values += shift_sd * sd
        columns[name] = pa.array(values.round() if position % 3 == 2 else values)
    for name in CATEGORICAL:
        columns[name] = pa.array(rng.choice(CATEGORIES, size=n, p=CATEGORY_SHARES))
    return columns


def chunk_sizes(total: int) -> Iterable[tuple[int, int]]:
    for start in range(0, total, CHUNK_ROWS):
        yield start, min(CHUNK_ROWS, total - start)


def write_reference(path: Path, case: Case) -> None:
    rng = np.random.default_rng([case.seed, 10**9])
    with pq.ParquetWriter(path, REFERENCE_SCHEMA) as writer:
        for _, n in chunk_sizes(case.reference_rows):
            columns = feature_columns(rng, n, 0.0)
            score = rng.random(n)
            columns["score_label"] = pa.array((score > 0.5).astype(np.int64))
            columns["score"] = pa.array(score)
            columns["outcome"] = pa.array((rng.random(n) < score).astype(np.int64))
            writer.write_table(pa.table(columns, schema=REFERENCE_SCHEMA))


def write_days(path: Path, case: Case, days: Sequence[int]) -> None:
    """One Parquet file with the logs of `days` (0 = the first window), `case.rows` rows each, in
    time order within a day. Each day has its own random stream, so a day is the same rows in
    whichever file it is written."""
    with pq.ParquetWriter(path, LOG_SCHEMA) as writer:
        for day in days:
            rng = np.random.default_rng([case.seed, day])
            shift = DRIFT_SD if day >= case.drift_day else 0.0
            day_start = np.datetime64(START + timedelta(days=day), "us")
            for start, n in chunk_sizes(case.rows):
                # chunk k covers its own slice of the day, so the whole day is in time order
                low = start * 86_400_000_000 // case.rows
                high = (start + n) * 86_400_000_000 // case.rows
                offsets = np.sort(rng.integers(low, high, size=n))
                columns = {
                    "event_time": pa.array(day_start + offsets.astype("timedelta64[us]")),
                    "row_id": pc.binary_join_element_wise(
                        pa.scalar(f"d{day:04d}-"),
                        pc.cast(pa.array(np.arange(start, start + n)), pa.string()),
                        "",
                    ),
                }
                columns |= feature_columns(rng, n, shift)
                score = rng.random(n)
                columns["score_label"] = pa.array((score > 0.5).astype(np.int64))
                columns["score"] = pa.array(score)
                writer.write_table(pa.table(columns, schema=LOG_SCHEMA))


@dataclass(frozen=True)
class DataFiles:
    spec: Path
    reference: Path
    first: Path  # the first `windows` windows
    new_window: Path  # the window right after them (the "one more window")

    @staticmethod
    def write(folder: Path, case: Case) -> DataFiles:
        folder.mkdir(parents=True, exist_ok=True)
        files = DataFiles(
            spec=folder / "spec.yaml",
            reference=folder / "reference.parquet",
            first=folder / f"days-000-{case.windows - 1:03d}.parquet",
            new_window=folder / f"day-{case.windows:03d}.parquet",
        )
        files.spec.write_text(yaml.safe_dump(case.spec(), sort_keys=False))
        write_reference(files.reference, case)
        write_days(files.first, case, range(case.windows))
        write_days(files.new_window, case, [case.windows])
        return files


# --------------------------------------------------------------------------------------------------
# measuring a subprocess


@dataclass
class Measurement:
    step: str
    seconds: float
    tree_peak_rss: int = 0  # bytes: the whole process tree at its largest instant
    peak_rss: dict[str, int] = field(default_factory=dict)  # bytes, per process name
    exit_code: int = 0
    detail: dict[str, float] = field(default_factory=dict)  # seconds the process reported itself
    failed: bool = False  # a step allowed to fail (Evidently out of memory) did

    @property
    def reported_seconds(self) -> float | None:
        """The seconds the process measured itself (the figure of a worker), None if it failed."""
        return None if self.failed else self.detail.get("seconds")

    @staticmethod
    def combined(step: str, parts: Sequence[Measurement]) -> Measurement:
        """Steps run one after the other: seconds add up, peaks are the largest of the parts."""
        peaks: dict[str, int] = {}
        for part in parts:
            for name, rss in part.peak_rss.items():
                peaks[name] = max(peaks.get(name, 0), rss)
        return Measurement(
            step,
            sum(part.seconds for part in parts),
            max(part.tree_peak_rss for part in parts),
            peaks,
            max(part.exit_code for part in parts),
        )

    @staticmethod
    def median(step: str, runs: Sequence[Measurement]) -> Measurement:
        names = sorted({name for run in runs for name in run.peak_rss})
        succeeded = [run for run in runs if not run.failed]
        details = sorted({key for run in succeeded for key in run.detail})
        return Measurement(
            step,
            statistics.median(run.seconds for run in runs),
            int(statistics.median(run.tree_peak_rss for run in runs)),
            {name: int(statistics.median(run.peak_rss.get(name, 0) for run in runs)) for name in names},
            max(run.exit_code for run in runs),
            {key: statistics.median(run.detail[key] for run in succeeded) for key in details},
            failed=len(succeeded) < len(runs),
        )

    def rss_text(self, at_least: int = 10 * 1024**2) -> str:
        """Peak RSS per process name, leaving out the small helpers (under 10 MB)."""
        shown = sorted((name, rss) for name, rss in self.peak_rss.items() if rss >= at_least)
        return ", ".join(f"{name} {gib(rss)}" for name, rss in shown)


def process_label(process) -> str:
    """The process's name; for an interpreter, the script or module it runs (`python -B x.py` → x.py).
    Read at every sample, not cached: a child is a copy of its parent until it execs."""
    name = process.name()
    if not name.startswith("python"):
        return name
    arguments = process.cmdline()[1:]
    while arguments and arguments[0].startswith("-") and arguments[0] not in ("-m", "-c"):
        option = arguments.pop(0)
        if option in ("-X", "-W") and arguments:
            arguments.pop(0)
    if arguments[:1] == ["-m"] and len(arguments) > 1:
        return f"python -m {arguments[1]}"
    if arguments[:1] == ["-c"]:
        return "python -c"
    return Path(arguments[0]).name if arguments else name


class Runner:
    """Runs the steps as subprocesses with their output in `logs`, measuring time and memory."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        bin_dir = Path(sys.executable).parent
        self.python = sys.executable
        self.driftmart = str(bin_dir / "driftmart")
        if not Path(self.driftmart).exists():
            raise BenchError(f"{self.driftmart} not found: run `make install` first")
        self.env = dict(os.environ)
        self.env["PATH"] = f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}"
        # the bench measures the DuckDB engine on the homes it creates
        for name in ("DRIFTMART_HOME", "DRIFTMART_TARGET", "DRIFTMART_SPEC"):
            self.env.pop(name, None)
        self.count = 0

    def measure(
        self,
        step: str,
        argv: Sequence[str],
        *,
        ok: Sequence[int] = (0,),
        may_fail: bool = False,
        root_label: str | None = None,
    ) -> Measurement:
        """Run `argv` to its end, sampling the RSS of its process tree; a failure (an exit code not
        in `ok`) stops the bench, unless `may_fail`: then it is recorded and the bench goes on."""
        import psutil

        self.count += 1
        stem = self.logs / f"{self.count:03d}-{''.join(c if c.isalnum() else '-' for c in step)[:60]}"
        peaks: dict[str, int] = {}
        tree_peak = 0
        with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
            started = time.perf_counter()
            root = psutil.Popen(list(argv), stdout=out, stderr=err, env=self.env, cwd=REPO)
            while True:
                sample: dict[str, int] = {}
                try:
                    tree = [root, *root.children(recursive=True)]
                except psutil.Error:
                    tree = []
                for process in tree:
                    try:
                        rss = process.memory_info().rss
                        label = root_label if process is root and root_label else process_label(process)
                    except psutil.Error:
                        continue
                    sample[label] = sample.get(label, 0) + rss
                tree_peak = max(tree_peak, sum(sample.values()))
                for label, rss in sample.items():
                    peaks[label] = max(peaks.get(label, 0), rss)
                try:
                    code = root.wait(timeout=POLL_SECONDS)
                    break
                except psutil.TimeoutExpired:
                    continue
            seconds = time.perf_counter() - started
        measurement = Measurement(step, seconds, tree_peak, peaks, code, failed=code not in ok)
        if measurement.failed:
            tail = Path(f"{stem}.err").read_text(errors="replace").strip().splitlines()[-25:]
            out_tail = Path(f"{stem}.out").read_text(errors="replace").strip().splitlines()[-10:]
            killed = f" (killed by signal {-code}: out of memory?)" if code < 0 else ""
            message = f"{step}: `{' '.join(argv)}` exited {code}{killed} after {seconds:.1f} s, " + "\n".join(
                [
                    f"peak RSS {gib(tree_peak)}",
                    "stdout (last lines):",
                    *out_tail,
                    "stderr (last lines):",
                    *tail,
                ]
            )
            if not may_fail:
                raise BenchError(message)
            print(f"  FAILED (recorded, the bench goes on) {message}", flush=True)
            return measurement
        print(f"  {step}: {seconds:.2f} s, peak RSS {gib(tree_peak)} (exit {code})", flush=True)
        return measurement

    def import_logs(self, step: str, home: Path, files: DataFiles, logs: Path) -> Measurement:
        return self.measure(
            step,
            [
                *(self.driftmart, "--home", str(home), "import", "--spec", str(files.spec)),
                *("--reference", str(files.reference), "--logs", str(logs)),
            ],
        )

    def run(self, step: str, home: Path, files: DataFiles, *extra: str) -> Measurement:
        # exit 1 means drift found: a result, not an error
        return self.measure(
            step,
            [self.driftmart, "--home", str(home), "run", "--spec", str(files.spec), "--no-retrain", *extra],
            ok=(0, 1),
        )

    def worker(
        self, step: str, mode: str, files: DataFiles, current: Path, *, may_fail: bool = False
    ) -> Measurement:
        """A worker of this script in its own interpreter; it reports its inner timings as JSON."""
        result = self.logs / f"{mode}-{self.count + 1:03d}.json"
        measurement = self.measure(
            step,
            [
                *(self.python, __file__, "worker", mode, "--current", str(current)),
                *("--reference", str(files.reference), "--result", str(result)),
            ],
            may_fail=may_fail,
            root_label=f"{mode} worker",
        )
        if not measurement.failed:
            measurement.detail = json.loads(result.read_text())
        return measurement

    def help_mentions(self, command: str, option: str) -> bool:
        completed = subprocess.run(
            [self.driftmart, command, "--help"], capture_output=True, text=True, env=self.env, check=False
        )
        return option in completed.stdout


# --------------------------------------------------------------------------------------------------
# workers (run in their own process: `bench_engine.py worker MODE …`)


def worker_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_engine.py worker")
    parser.add_argument("mode", choices=["evidently-preset", "evidently-psi", "floor"])
    parser.add_argument("--current", type=Path, required=True)
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.mode == "floor":
        timings = floor_scan(args.current)
    else:
        timings = evidently_report(args.current, args.reference, psi_only=args.mode == "evidently-psi")
    args.result.write_text(json.dumps(timings))


def evidently_report(current_path: Path, reference_path: Path, *, psi_only: bool) -> dict[str, float]:
    started = time.perf_counter()
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    imported = time.perf_counter()
    definition = DataDefinition(numerical_columns=list(NUMERIC), categorical_columns=list(CATEGORICAL))
    current = Dataset.from_pandas(pd.read_parquet(current_path, columns=list(FEATURES)), definition)
    reference = Dataset.from_pandas(pd.read_parquet(reference_path, columns=list(FEATURES)), definition)
    loaded = time.perf_counter()
    metrics = (
        [ValueDrift(column=name, method="psi") for name in FEATURES] if psi_only else [DataDriftPreset()]
    )
    Report(metrics).run(current, reference)
    computed = time.perf_counter()
    return {
        "import_seconds": imported - started,
        "load_seconds": loaded - imported,
        "report_seconds": computed - loaded,
        "seconds": computed - imported,  # the figure: load + report
    }


def floor_scan(window_path: Path) -> dict[str, float]:
    import duckdb

    aggregates = ["count(*)"]
    for name in FEATURES:
        column = '"' + name.replace('"', '""') + '"'
        aggregates += [f"count({column})", f"min({column})", f"max({column})"]
        if name in NUMERIC:
            aggregates.append(f"avg({column})")
    with duckdb.connect() as connection:
        connection.execute(f"set threads = {os.cpu_count() or 1}")
        started = time.perf_counter()
        connection.execute(
            f"select {', '.join(aggregates)} from read_parquet(?)", [str(window_path)]
        ).fetchall()
        seconds = time.perf_counter() - started
    return {"seconds": seconds}


# --------------------------------------------------------------------------------------------------
# dbt's own timings


def run_results_files(home: Path) -> dict[Path, int]:
    """Every run_results.json under `home`, with its modification time (ns)."""
    return {path: path.stat().st_mtime_ns for path in home.rglob("run_results.json")}


def dbt_timings(home: Path, before: dict[Path, int]) -> dict:
    """Execution seconds per dbt node, from the run_results.json files written under `home` since
    `before` was taken (a run may invoke dbt more than once)."""
    nodes: dict[str, float] = {}
    files = [path for path, mtime in run_results_files(home).items() if before.get(path) != mtime]
    for path in files:
        for result in json.loads(path.read_text()).get("results", []):
            nodes[result["unique_id"]] = nodes.get(result["unique_id"], 0.0) + result["execution_time"]

    def is_drift_model(unique_id: str) -> bool:
        name = unique_id.split(".")[-1]
        return name in DRIFT_MODELS or name.startswith(("int_window", "fct_"))

    models = {key: value for key, value in nodes.items() if key.startswith("model.")}
    return {
        "run_results": [str(path) for path in files],
        "drift_models_seconds": sum(value for key, value in models.items() if is_drift_model(key)),
        "models_seconds": sum(models.values()),
        "all_nodes_seconds": sum(nodes.values()),
        "nodes": dict(sorted(nodes.items(), key=lambda item: -item[1])),
    }


# --------------------------------------------------------------------------------------------------
# the steps


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def remove(path: Path, keep: bool) -> None:
    if not keep:
        shutil.rmtree(path, ignore_errors=True)


def repetition(runner: Runner, case: Case, files: DataFiles, home: Path) -> tuple[dict, dict]:
    """(a), (b), (d), (e), (f) and (g) on a fresh home: measurements by figure, and dbt's timings."""
    n = case.windows
    steps: dict[str, Measurement] = {}
    steps["first_import"] = runner.import_logs(f"a) import of {n} windows", home, files, files.first)
    steps["first_run"] = runner.run(f"a) run over {n} windows", home, files)
    steps["new_import"] = runner.import_logs("b) import of one more window", home, files, files.new_window)
    before = run_results_files(home)
    steps["new_run"] = runner.run("b) run of one more window", home, files)
    sql = dbt_timings(home, before)
    steps["empty_run"] = runner.run("d) run with no new rows", home, files)
    steps["import_dagster"] = runner.measure(
        'd) python -c "import dagster"', [runner.python, "-c", "import dagster"]
    )
    steps["evidently_preset"] = runner.worker(
        "e) Evidently DataDriftPreset", "evidently-preset", files, files.new_window, may_fail=True
    )
    steps["evidently_psi"] = runner.worker(
        'e) Evidently ValueDrift(method="psi") per column',
        "evidently-psi",
        files,
        files.new_window,
        may_fail=True,
    )
    steps["floor"] = runner.worker("f) DuckDB aggregate scan", "floor", files, files.new_window)
    steps["first"] = Measurement.combined(
        "a) first run: import + run", [steps["first_import"], steps["first_run"]]
    )
    steps["new"] = Measurement.combined(
        "b) one more window: import + run", [steps["new_import"], steps["new_run"]]
    )
    print(
        f"  g) dbt execution time: drift models {sql['drift_models_seconds']:.2f} s, "
        f"all models {sql['models_seconds']:.2f} s, all nodes {sql['all_nodes_seconds']:.2f} s",
        flush=True,
    )
    return {key: asdict(value) for key, value in steps.items()}, sql


@dataclass
class History:
    build: dict[str, dict] = field(default_factory=dict)
    runs: list[dict[str, dict]] = field(default_factory=list)
    skipped: str | None = None


def history_home(
    runner: Runner, case: Case, files: DataFiles, home: Path, data: Path, repeat: int, keep: bool
) -> History:
    """(c): a home with `history_windows` windows, built once, then one more window per repetition."""
    history = History()
    batches = [
        range(start, min(start + case.windows, case.history_windows))
        for start in range(0, case.history_windows, case.windows)
    ]
    imports = []
    for batch in batches:
        if batch.start == 0:
            path = files.first
        else:
            path = data / f"days-{batch.start:03d}-{batch.stop - 1:03d}.parquet"
            write_days(path, case, batch)
        imports.append(
            runner.import_logs(f"c) build: import of days {batch.start}-{batch.stop - 1}", home, files, path)
        )
        if path != files.first and not keep:
            path.unlink()
    build_run = runner.run(f"c) build: run over {case.history_windows} windows", home, files)
    history.build = {
        "imports": asdict(Measurement.combined("c) build: imports", imports)),
        "run": asdict(build_run),
        "home_bytes": folder_bytes(home),
    }
    for index in range(repeat):
        day = case.history_windows + index
        path = data / f"day-{day:03d}.parquet"
        write_days(path, case, [day])
        windows = f"{day}-window home"
        new_import = runner.import_logs(f"c) import of one more window on a {windows}", home, files, path)
        new_run = runner.run(f"c) run of one more window on a {windows}", home, files)
        combined = Measurement.combined(
            "c) one more window on the history home: import + run", [new_import, new_run]
        )
        history.runs.append(
            {"new_import": asdict(new_import), "new_run": asdict(new_run), "new": asdict(combined)}
        )
        if not keep:
            path.unlink()
    return history


def full_rebuild(runner: Runner, files: DataFiles, home: Path, rows_in_home: int) -> dict:
    """The stretch figure: a full refresh of the largest home, when the CLI offers one."""
    if not runner.help_mentions("run", "--full-refresh"):
        return {"available": False, "rows": rows_in_home}
    measurement = runner.run("stretch: run --full-refresh", home, files, "--full-refresh")
    return {"available": True, "rows": rows_in_home, "measurement": asdict(measurement)}


# --------------------------------------------------------------------------------------------------
# one size, end to end


def check_disk(workdir: Path, case: Case, args: argparse.Namespace) -> None:
    """Refuse up front when the data files and the 5-window homes cannot fit."""
    windows_on_disk = case.windows + 1 + (0 if args.skip_history else case.windows + 1)
    need_files = (windows_on_disk * case.rows + case.reference_rows) * FILE_BYTES_PER_ROW
    homes = args.repeat if args.keep else 1
    per_row = args.home_bytes_per_row
    need_homes = homes * ((case.windows + 1) * case.rows + case.reference_rows) * per_row
    need = need_files + need_homes
    free = shutil.disk_usage(workdir).free
    if need > free:
        raise BenchError(
            f"not enough free space in {workdir}: size {case.label} needs about {gib(need)} "
            f"({gib(need_files)} of Parquet files, {gib(need_homes)} of homes at ~{per_row:.0f} "
            f"bytes per logged row, see --home-bytes-per-row), {gib(free)} free; "
            "pass --workdir on a larger disk"
            + (
                ""
                if args.skip_history
                else f" (the {case.history_windows}-window home needs more: see --skip-history)"
            )
        )


def history_fits(workdir: Path, case: Case, repeat: int, bytes_per_row: float) -> str | None:
    rows = (case.history_windows + repeat) * case.rows + case.reference_rows
    need = rows * bytes_per_row + (case.windows + 1) * case.rows * FILE_BYTES_PER_ROW
    free = shutil.disk_usage(workdir).free
    if need > free:
        return (
            f"not enough free space in {workdir} for the {case.history_windows}-window home: about "
            f"{gib(need)} needed ({bytes_per_row:.0f} bytes per row measured on the 5-window home), "
            f"{gib(free)} free; pass --workdir on a larger disk, or --skip-history"
        )
    return None


def bench_size(case: Case, args: argparse.Namespace, workdir: Path, stretch: bool) -> dict:
    folder = workdir / f"size-{case.label}"
    data = folder / "data"
    runner = Runner(folder / "logs")
    print(
        f"\n== {case.label} rows per window: {case.windows} windows + 1, "
        f"reference {size_label(case.reference_rows)} rows, {len(FEATURES)} features; "
        f"{args.repeat} repetition(s); work in {folder}",
        flush=True,
    )
    started = time.perf_counter()
    files = DataFiles.write(data, case)
    generate_seconds = time.perf_counter() - started
    print(f"  data generated in {generate_seconds:.1f} s ({gib(folder_bytes(data))} of Parquet)", flush=True)

    runs, sql_runs = [], []
    home_bytes_per_row = args.home_bytes_per_row
    last_home = None
    for index in range(args.repeat):
        print(f"-- repetition {index + 1}/{args.repeat}", flush=True)
        home = folder / f"home-{index}"
        steps, sql = repetition(runner, case, files, home)
        runs.append(steps)
        sql_runs.append(sql)
        rows_in_home = (case.windows + 1) * case.rows + case.reference_rows
        home_bytes_per_row = folder_bytes(home) / rows_in_home
        if last_home is not None:
            remove(last_home, args.keep)
        last_home = home

    history = History(skipped="--skip-history")
    if not args.skip_history:
        history = History(skipped=history_fits(folder, case, args.repeat, home_bytes_per_row))
        if history.skipped:
            print(f"  c) skipped: {history.skipped}", flush=True)
        else:
            print(f"-- history: a {case.history_windows}-window home, built once", flush=True)
            history = history_home(runner, case, files, folder / "home-history", data, args.repeat, args.keep)

    rebuild = None
    if stretch:
        if history.skipped is None:
            rebuild_home, rows = folder / "home-history", (case.history_windows + args.repeat) * case.rows
        else:
            rebuild_home, rows = last_home, (case.windows + 1) * case.rows
        rebuild = full_rebuild(runner, files, rebuild_home, rows)
    remove(last_home, args.keep)
    remove(folder / "home-history", args.keep)

    result = {
        "size": case.label,
        "rows_per_window": case.rows,
        "case": asdict(case),
        "features": {"numeric": len(NUMERIC), "categorical": len(CATEGORICAL)},
        "drift": {"feature": DRIFT_FEATURE, "from_day": case.drift_day, "shift_sd": DRIFT_SD},
        "repeat": args.repeat,
        "generate_seconds": generate_seconds,
        "home_bytes_per_row": home_bytes_per_row,
        "runs": runs,
        "sql_runs": sql_runs,
        "history": asdict(history),
        "full_rebuild": rebuild,
        "machine": machine_facts(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    result["medians"] = medians(result)
    result["targets"] = targets(result)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return result


# --------------------------------------------------------------------------------------------------
# medians, targets, tables


def as_measurement(raw: dict) -> Measurement:
    return Measurement(**raw)


def medians(result: dict) -> dict:
    figures = {
        key: asdict(
            Measurement.median(
                result["runs"][0][key]["step"], [as_measurement(run[key]) for run in result["runs"]]
            )
        )
        for key in result["runs"][0]
    }
    history_runs = result["history"]["runs"]
    for key in ("new_import", "new_run", "new"):
        if history_runs:
            runs = [as_measurement(run[key]) for run in history_runs]
            figures[f"history_{key}"] = asdict(Measurement.median(runs[0].step, runs))
    sql = {
        key: statistics.median(run[key] for run in result["sql_runs"])
        for key in ("drift_models_seconds", "models_seconds", "all_nodes_seconds")
    }
    return {"figures": figures, "sql": sql}


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    goal: str
    met: bool | None  # None: not judged at this size, or not measured

    @property
    def verdict(self) -> str:
        return {True: "met", False: "not met", None: "not judged"}[self.met]


def targets(result: dict) -> list[dict]:
    figures = result["medians"]["figures"]
    sql = result["medians"]["sql"]
    size = result["size"]
    seconds = {key: figure["seconds"] for key, figure in figures.items()}
    new = seconds["new"]
    floor = figures["floor"]["detail"]["seconds"]
    at = "" if result["rows_per_window"] == 1_000_000 else f" (goal stated at 1M rows; measured at {size})"
    found = [
        speedup_target(
            "new window import + run vs Evidently DataDriftPreset", figures, "evidently_preset", 10, at
        ),
        speedup_target(
            'new window import + run vs Evidently ValueDrift(method="psi") per column',
            figures,
            "evidently_psi",
            2,
            at,
        ),
        Target(
            f"one more window / first run over {result['case']['windows']} windows (import + run)",
            f"{new / seconds['first']:.2f} (run alone {seconds['new_run'] / seconds['first_run']:.2f})",
            "≤ 0.5",
            new / seconds["first"] <= 0.5,
        ),
    ]
    if "history_new" in seconds:
        ratio = seconds["history_new"] / new
        found.append(
            Target(
                f"one more window on a {result['case']['history_windows']}-window home / on a "
                f"{result['case']['windows']}-window home",
                f"{ratio:.2f} ({seconds['history_new']:.1f} s vs {new:.1f} s)",
                "≤ 1.25",
                ratio <= 1.25,
            )
        )
    else:
        found.append(
            Target(
                "one more window on the history home / on the 5-window home",
                f"not measured: {result['history']['skipped']}",
                "≤ 1.25",
                None,
            )
        )
    found.append(
        Target(
            "run with no new rows",
            f'{seconds["empty_run"]:.1f} s (python -c "import dagster": {seconds["import_dagster"]:.1f} s)',
            "≤ 10 s",
            seconds["empty_run"] <= 10,
        )
    )
    # every driftmart step: the medians, and the history home's build (run once)
    steps = [Measurement(**figure) for key, figure in figures.items() if key.endswith(("_import", "_run"))]
    steps += [
        Measurement(**figure) for figure in result["history"]["build"].values() if isinstance(figure, dict)
    ]
    if result["full_rebuild"] and result["full_rebuild"]["available"]:
        steps.append(Measurement(**result["full_rebuild"]["measurement"]))
    largest = max(steps, key=lambda step: step.tree_peak_rss)
    peak = largest.tree_peak_rss
    judged = result["rows_per_window"] == 10_000_000
    found.append(
        Target(
            "peak RSS of any driftmart step (whole process tree)",
            f"{gib(peak)} in {largest.step} ({largest.rss_text()})",
            "≤ 3 GB at 10M rows per window" + ("" if judged else f" (measured at {size})"),
            peak <= TARGET_RSS_BYTES if judged else None,
        )
    )
    drift_sql = sql["drift_models_seconds"]
    found.append(
        Target(
            "SQL compute of the drift models (dbt) / DuckDB aggregate scan",
            f"{drift_sql / floor:.1f}× ({drift_sql:.2f} s vs {floor:.3f} s; "
            f"all models {sql['models_seconds']:.2f} s, all nodes {sql['all_nodes_seconds']:.2f} s)",
            "≤ 5×",
            drift_sql / floor <= 5,
        )
    )
    found.append(stretch_target(result))
    return [asdict(target) | {"verdict": target.verdict} for target in found]


def speedup_target(name: str, figures: dict, key: str, goal: float, at: str) -> Target:
    """How many times faster driftmart's new window (import + run) is than Evidently's `key`."""
    new = figures["new"]["seconds"]
    evidently = Measurement(**figures[key])
    if evidently.reported_seconds is None:
        measured = (
            f"Evidently failed (exit {evidently.exit_code} after {evidently.seconds:.1f} s, "
            f"peak RSS {gib(evidently.tree_peak_rss)}); driftmart {new:.1f} s"
        )
        return Target(name, measured, f"≥ {goal:g}× faster{at}", None)
    ratio = evidently.reported_seconds / new
    return Target(
        name,
        f"{ratio:.2f}× faster ({new:.1f} s vs {evidently.reported_seconds:.1f} s)",
        f"≥ {goal:g}× faster{at}",
        ratio >= goal,
    )


def stretch_target(result: dict) -> Target:
    rebuild = result["full_rebuild"]
    goal = "30M rows × 22 features fully rebuilt in < 120 s"
    if rebuild is None:
        return Target("stretch: full rebuild", "not measured at this size (only at the largest)", goal, None)
    if rebuild["available"]:
        seconds, rows, how = rebuild["measurement"]["seconds"], rebuild["rows"], "run --full-refresh"
    elif result["history"]["build"]:
        build = result["history"]["build"]
        rows = result["case"]["history_windows"] * result["rows_per_window"]
        seconds = build["imports"]["seconds"] + build["run"]["seconds"]
        how = "no --full-refresh in the CLI; the build of the history home (c), imports + first run"
    else:
        first = result["medians"]["figures"]["first"]
        rows = result["case"]["windows"] * result["rows_per_window"]
        seconds, how = first["seconds"], "no --full-refresh in the CLI; the first build (a), import + run"
    rate = rows / seconds
    projected = 30_000_000 / rate
    return Target(
        "stretch: full rebuild",
        f"{how}: {rows:,} rows in {seconds:.1f} s = {rate:,.0f} rows/s; "
        f"linearly 30M rows ≈ {projected:.0f} s, 100M rows ≈ {100_000_000 / rate:.0f} s",
        goal,
        projected < 120 if rows >= 30_000_000 else None,
    )


def figure_rows(result: dict) -> list[tuple[str, str, str, str]]:
    figures = result["medians"]["figures"]
    case = result["case"]

    def row(key: str, label: str | None = None, seconds: float | None = None, note: str = "") -> tuple:
        figure = Measurement(**figures[key])
        shown = figure.seconds if seconds is None else seconds
        return (
            label or figure.step,
            f"{shown:.2f}",
            f"{gib(figure.tree_peak_rss)} ({figure.rss_text()})",
            note,
        )

    rows = [
        row("first_import", note=f"{case['windows'] * case['rows']:,} rows + reference"),
        row("first_run"),
        row("first"),
        row("new_import", note=f"{case['rows']:,} rows"),
        row("new_run"),
        row("new"),
    ]
    if "history_new" in figures:
        history = f"{case['history_windows']} windows + r before it in repetition r"
        rows += [row("history_new_import", note=history), row("history_new_run"), row("history_new")]
    rows += [row("empty_run"), row("import_dagster", note="interpreter start-up + import")]
    for key in ("evidently_preset", "evidently_psi"):
        detail = figures[key]["detail"]
        if figures[key]["failed"]:
            rows.append(row(key, note=f"FAILED: exit {figures[key]['exit_code']} (seconds until it failed)"))
            continue
        rows.append(
            row(
                key,
                seconds=detail["seconds"],
                note=f"load of both Parquet files {detail['load_seconds']:.2f} s "
                f"+ report {detail['report_seconds']:.2f} s; "
                f"not counted: start-up + import evidently {detail['import_seconds']:.2f} s "
                f"(process {figures[key]['seconds']:.2f} s)",
            )
        )
    rows.append(
        row(
            "floor",
            seconds=figures["floor"]["detail"]["seconds"],
            note=f"process {figures['floor']['seconds']:.2f} s",
        )
    )
    sql = result["medians"]["sql"]
    rows.append(("g) dbt SQL of the drift models (run of b)", f"{sql['drift_models_seconds']:.2f}", "", ""))
    rows.append(
        (
            "g) dbt SQL of all models / all nodes (run of b)",
            f"{sql['models_seconds']:.2f} / {sql['all_nodes_seconds']:.2f}",
            "",
            "",
        )
    )
    build = result["history"]["build"]
    if build:
        for key, label in (
            ("imports", "c) build of the history home: imports"),
            ("run", "c) build of the history home: first run"),
        ):
            figure = Measurement(**build[key])
            rows.append(
                (
                    label,
                    f"{figure.seconds:.2f}",
                    f"{gib(figure.tree_peak_rss)} ({figure.rss_text()})",
                    "once, not a median",
                )
            )
    rebuild = result["full_rebuild"]
    if rebuild and rebuild["available"]:
        figure = Measurement(**rebuild["measurement"])
        rows.append(
            (
                "stretch: run --full-refresh",
                f"{figure.seconds:.2f}",
                f"{gib(figure.tree_peak_rss)} ({figure.rss_text()})",
                f"{rebuild['rows']:,} rows in the home, once",
            )
        )
    return rows


def markdown(result: dict) -> str:
    case = result["case"]
    machine = result["machine"]
    drift = result["drift"]
    lines = [
        f"# driftmart engine bench: {result['size']} rows per window",
        "",
        f"{case['windows']} daily windows + 1 more of {case['rows']:,} rows, "
        f"a {case['reference_rows']:,}-row reference, "
        f"{len(FEATURES)} features ({len(NUMERIC)} numeric, {len(CATEGORICAL)} categorical); "
        f"{drift['feature']} drifts by {drift['shift_sd']} sd from day {drift['from_day']}; "
        f"median of {result['repeat']} repetition(s). "
        f"Machine: {machine['cores']} cores, {gib(machine['ram_bytes'])} RAM; "
        + ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
        + ".",
        "",
        "Evidently's seconds are the load of the Parquet files into pandas plus the report (start-up and "
        "import not counted); driftmart's are the whole CLI process, start-up included.",
        "",
        "| step | seconds | peak RSS (tree; per process) | note |",
        "|---|---:|---|---|",
        *(f"| {' | '.join(row)} |" for row in figure_rows(result)),
        "",
        "| target | measured | goal | verdict |",
        "|---|---|---|---|",
        *(f"| {t['name']} | {t['measured']} | {t['goal']} | {t['verdict']} |" for t in result["targets"]),
        "",
    ]
    if result["history"]["skipped"]:
        lines += [f"History home (c) not measured: {result['history']['skipped']}.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# machine, results, plot


def machine_facts() -> dict:
    import psutil

    versions = {}
    for package in (
        "duckdb",
        "dbt-core",
        "dbt-duckdb",
        "dagster",
        "dagster-dbt",
        "evidently",
        "pandas",
        "pyarrow",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit + ("+uncommitted changes" if dirty else ""),
    }


def write_results(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"bench-{result['size']}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {stem}.md and {stem}.json", flush=True)


def plot(results_dir: Path) -> Path | None:
    """Seconds vs rows per window, log-log, from every bench-*.json in `results_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {
        "driftmart import + run of one new window": ("new", "o-"),
        "Evidently DataDriftPreset (load + report)": ("evidently_preset", "s--"),
        'Evidently ValueDrift(method="psi") per column (load + report)': ("evidently_psi", "^--"),
        "floor: one DuckDB aggregate scan": ("floor", "x:"),
    }
    points: dict[str, list[tuple[int, float]]] = {label: [] for label in series}
    for path in sorted(results_dir.glob("bench-*.json")):
        result = json.loads(path.read_text())
        figures = result["medians"]["figures"]
        for label, (key, _) in series.items():
            measured = Measurement(**figures[key])
            seconds = measured.seconds if key == "new" else measured.reported_seconds
            if seconds is not None:  # an Evidently run that failed has no point
                points[label].append((result["rows_per_window"], seconds))
    if not any(points.values()):
        return None
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, (_, style) in series.items():
        line = sorted(points[label])
        axes.plot([rows for rows, _ in line], [seconds for _, seconds in line], style, label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("rows per window (22 features)")
    axes.set_ylabel("seconds (median)")
    axes.set_title("Drift of one new window against its reference")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    path = results_dir / "time_vs_rows.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


# --------------------------------------------------------------------------------------------------
# command line


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="driftmart's engine against Evidently and a DuckDB scan; "
        '`make bench BENCH_ARGS="…"` runs it. What each figure means: see the docstring of this file.',
    )
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument(
        "--size", type=parse_size, help="rows per window, e.g. 200k, 1M, 10M, 30M (default 1M)"
    )
    sizes.add_argument("--sizes", help="several sizes, comma-separated (e.g. 200k,1M,10M): one result each")
    parser.add_argument("--reference-rows", type=parse_size, default=1_000_000, help="default 1M")
    parser.add_argument("--windows", type=int, default=5, help="windows of the first run (default 5)")
    parser.add_argument(
        "--history-windows", type=int, default=30, help="windows of the history home (default 30)"
    )
    parser.add_argument("--skip-history", action="store_true", help="leave out (c), the history home")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions; figures are medians (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", type=Path, help="where data and homes go (default: a new folder in the temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data and homes (default: delete them)")
    parser.add_argument(
        "--home-bytes-per-row",
        type=float,
        default=HOME_BYTES_PER_ROW,
        help=f"disk a home takes per logged row, for the free-space check (default {HOME_BYTES_PER_ROW}, "
        "measured on main before the engine work; the history home is checked with the measured value)",
    )
    args = parser.parse_args(argv)
    try:
        args.size_list = [parse_size(text) for text in args.sizes.split(",")] if args.sizes else []
    except argparse.ArgumentTypeError as error:
        parser.error(f"--sizes: {error}")
    args.size_list = args.size_list or [args.size or 1_000_000]
    if args.windows < 1 or args.repeat < 1:
        parser.error("--windows and --repeat must be at least 1")
    if not args.skip_history and args.history_windows <= args.windows:
        parser.error("--history-windows must be larger than --windows (or pass --skip-history)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        worker_main(argv[1:])
        return 0
    args = parse_args(argv)
    owned = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="driftmart-bench-")) if owned else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    cases = [
        Case(rows, args.reference_rows, args.windows, args.history_windows, args.seed)
        for rows in args.size_list
    ]
    largest = max(case.rows for case in cases)
    try:
        for case in cases:
            check_disk(workdir, case, args)
        for case in cases:
            result = bench_size(case, args, workdir, stretch=case.rows == largest)
            write_results(result)
            print("\n" + markdown(result), flush=True)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    finally:
        if owned and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep:
            print(f"kept data and homes in {workdir}")
    path = plot(RESULTS)
    if path:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
