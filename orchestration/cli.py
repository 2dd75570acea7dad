"""`driftmart`: the command line. It starts and orchestrates the other layers; no logic of its own.

User mistakes (a bad spec, a missing file, nothing published yet) become one clear line on stderr
and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

from ml.errors import DriftmartError

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2


class UsageError(DriftmartError):
    """A mistake in the command line itself."""


def _home(args: argparse.Namespace):
    from warehouse.home import Home

    return Home.resolve(args.home)


def cmd_train(args: argparse.Namespace) -> int:
    import pandas as pd

    from ml import registry
    from ml.datasets import training_set
    from ml.spec import DEFAULT_SPEC_PATH, load_spec
    from ml.train import train_model
    from warehouse.ingest import mirror_model
    from warehouse.specs import remember_spec, resolve_spec

    home = _home(args).ensure()
    spec = resolve_spec(home, args.spec)
    demo = load_spec(DEFAULT_SPEC_PATH)
    if args.data:
        path = Path(args.data)
        if not path.exists():
            raise UsageError(f"--data {path}: no such file")
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    elif spec.model == demo.model and spec.features == demo.features:
        frame = training_set(seed=args.seed)
    else:
        raise UsageError(
            f"--data is required to train {spec.model}: synthetic data exists for the demo model only"
        )
    trigger = "initial" if registry.champion_version(home, spec.model) is None else "manual"
    version = registry.register(home, spec, train_model(spec, frame, seed=args.seed), trigger=trigger)
    mirror_model(home, spec)
    remember_spec(home, spec)
    metrics = ", ".join(f"{name} {value:.3f}" for name, value in version.metrics.items())
    print(f"registered {spec.model} v{version.model_version} ({version.status}); validation: {metrics}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from ml.spec import load_spec
    from warehouse.importer import import_files
    from warehouse.specs import remember_spec

    spec = load_spec(args.spec)
    home = _home(args).ensure()
    result = import_files(
        home,
        spec,
        Path(args.reference),
        Path(args.logs) if args.logs else None,
        Path(args.labels) if args.labels else None,
    )
    remember_spec(home, spec)
    reference = "registered" if result.reference_is_new else "already registered"
    print(f"reference: {result.n_reference_rows} rows, {reference} as {spec.model} v{result.model_version}")
    if args.logs:
        skipped = result.n_log_rows_read - result.n_log_rows_loaded
        print(f"logs: {result.n_log_rows_loaded} rows loaded, {skipped} already in the warehouse")
    if result.n_label_rows_read:
        print(f"labels: {result.n_label_rows_read} rows read, {result.n_label_rows_changed} new or changed")
    if result.n_non_finite_as_missing:
        print(f"note: {result.n_non_finite_as_missing} infinite numbers were loaded as missing values")
    if result.ignored_columns:
        ignored = "; ".join(
            f"{path}: {', '.join(columns)}" for path, columns in result.ignored_columns.items()
        )
        print(f"note: ignored the columns the spec does not name: {ignored}")
    return EXIT_OK


def cmd_register(args: argparse.Namespace) -> int:
    from ml.spec import load_spec
    from orchestration.register import register_model_file

    spec = load_spec(args.spec)
    home = _home(args).ensure()
    result = register_model_file(
        home,
        spec,
        Path(args.model),
        Path(args.reference),
        trust_pickle=args.trust_pickle,
        promote=args.promote,
        actor=f"driftmart register ({os.environ.get('USER', 'cli')})",
    )
    try:
        from warehouse.specs import remember_spec
    except ImportError:  # a driftmart without the spec store
        pass
    else:
        remember_spec(home, spec)
    version = result.version
    metrics = ", ".join(f"{name} {value:.3f}" for name, value in version.metrics.items())
    print(
        f"registered {spec.model} v{version.model_version} ({version.status}): {version.estimator} "
        f"from {result.model_format}, stored as skops; "
        + (f"validation on {result.n_labelled_rows} reference rows: {metrics}" if metrics else "no metrics")
    )
    if not result.n_labelled_rows:
        print("note: the reference has no target values, so the version has no validation metrics")
    if result.n_predictions_differing:
        print(
            f"note: {result.n_predictions_differing} of {result.n_reference_rows} predictions in the "
            "reference file differ from the model's own"
        )
    if result.n_non_finite_as_missing:
        print(f"note: {result.n_non_finite_as_missing} infinite numbers were loaded as missing values")
    if version.status == "challenger":
        print(
            f"v{version.model_version} is a challenger: the champion stays; register with --promote "
            "to serve it at once"
        )
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ml.serving.app import create_app
    from warehouse.specs import resolve_spec

    limits = {name: getattr(args, name) for name in ("max_body_bytes", "max_batch") if getattr(args, name)}
    home = _home(args).ensure()
    spec = resolve_spec(home, args.spec)
    app = create_app(home, spec, **limits)
    print(
        f"driftmart: serving {spec.model} from {home.root} on http://{args.host}:{args.port} "
        f"(API docs: http://{args.host}:{args.port}/docs); access log at level {args.log_level}",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from warehouse.connection import run_lock
    from warehouse.specs import models_to_run, resolve_spec

    home = _home(args).ensure()
    models = models_to_run(home, args.spec)  # several models and no --spec: each of them in turn
    spec = None if models else resolve_spec(home, args.spec)
    with run_lock(home, on_wait=lambda holder: _say_waiting(home, holder)):
        return _run_once(args, spec, home) if spec is not None else _run_each(args, models, home)


def _run_each(args: argparse.Namespace, models: list[str], home) -> int:
    """One pass per model of the home, one after the other; the exit code is the worst (2 > 1 > 0)."""
    from warehouse.specs import model_spec

    codes: dict[str, int] = {}
    for model in models:
        try:
            codes[model] = _run_once(args, model_spec(home, model), home)
        except DriftmartError as error:
            print(f"driftmart: {model}: {error}", file=sys.stderr, flush=True)
            codes[model] = EXIT_ERROR
        sys.stdout.flush()
    worst = max(codes.values())
    print(f"{len(codes)} models: " + ", ".join(f"{model} exit {code}" for model, code in codes.items()))
    print(f"exit {worst}")
    return worst


def _say_waiting(home, holder: str) -> None:
    print(
        f"driftmart: another `driftmart run` ({holder}) is working on {home.root}; waiting for it to finish",
        file=sys.stderr,
        flush=True,
    )


def _run_once(args: argparse.Namespace, spec, home) -> int:
    from orchestration.pipeline import drift_report, read_watermark, write_watermark
    from orchestration.report import drift_summary

    since = read_watermark(home, spec)
    outcome = _pipeline_unless_unchanged(home, spec, spec.source, full_refresh=args.full_refresh)
    if outcome is not None and not outcome.success:
        print(
            f"driftmart: {spec.model}: {_failure(home, outcome)}; "
            f"see `driftmart ui` or {home.dbt_logs / 'last_run.log'}{_memory_hint(home)}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    report = drift_report(home, spec, since=since)
    scope = "windows with new rows" if since else "all windows"
    if not report.cells:
        # No new predictions: the latest window, and the degradation of windows with new labels.
        latest = drift_report(home, spec, latest=True)
        degraded = list(dict.fromkeys([*report.degraded, *latest.degraded]))
        scope = "no new rows; the latest window" + (
            " and the windows with new labels" if report.degraded else ""
        )
        report = replace(latest, degraded=sorted(degraded, key=lambda d: (d.window_start, d.metric_name)))
    print(f"{spec.model}: {scope}")
    print(drift_summary(report))
    write_watermark(home, spec)
    if not args.no_retrain:
        _retrain_if_due(home, spec, spec.source)
    if report.input_drift_found:
        print("drift found (exit 1)")
        return EXIT_DRIFT
    if report.segments_drifted:
        print("segment drift found (exit 1)")
        return EXIT_DRIFT
    if report.degraded:
        print("performance degraded (exit 1)")
        return EXIT_DRIFT
    if report.estimated_degraded:
        print("performance estimated to degrade (exit 1)")
        return EXIT_DRIFT
    print("no drift (exit 0)")
    return EXIT_OK


def _retrain_if_due(home, spec, spec_path: str | None) -> None:
    """The same decision as the Dagster sensor: on drift, run the retrain job and say what it did."""
    from ml import registry
    from orchestration.automation import retrain_decision
    from orchestration.jobs import RETRAIN_JOB

    decision = retrain_decision(home, spec)
    if decision.waiting_for_labels:
        print(f"retrain: due, waiting for labels: {decision.reason}")
        return
    if not decision.needed:
        print(f"retrain: not due ({decision.reason})")
        return
    print(f"retrain: {decision.reason}")
    outcome = _quiet_pipeline(home, spec_path, job_name=RETRAIN_JOB)
    if not outcome.success:
        raise UsageError(f"retrain {_failure(home, outcome)}")
    latest = registry.list_versions(home, spec.model)[-1]
    print(f"retrain: challenger v{latest.model_version} {latest.status}: {latest.reason}")
    # One more pass mirrors the registry into the warehouse and republishes, so dim_model_versions,
    # the exporter and BI tools show the decision now rather than after the next run.
    outcome = _pipeline_unless_unchanged(home, spec, spec_path)
    if outcome is not None and not outcome.success:
        raise UsageError(f"pipeline after the retrain: {_failure(home, outcome)}")


def _pipeline_unless_unchanged(home, spec, spec_path: str | None, *, full_refresh: bool = False):
    """The pipeline pass, or None when nothing it would read changed since its last successful
    build (orchestration/state.py): then the published marts are already what it would publish, and
    no Dagster run or dbt process is started. Either way `<home>/dbt/logs/last_run.log` says which."""
    import duckdb

    from orchestration.state import unchanged_since_last_build

    if full_refresh:
        reason = "--full-refresh"
    else:
        try:
            unchanged, reason = unchanged_since_last_build(home, spec)
        except (OSError, ValueError, KeyError, TypeError, duckdb.Error) as error:  # then it builds
            unchanged = False
            reason = f"the build state could not be compared ({type(error).__name__}: {error})"
        if unchanged:
            home.dbt_logs.mkdir(parents=True, exist_ok=True)
            (home.dbt_logs / "last_run.log").write_text(f"dbt build skipped: {reason}\n")
            return None
    return _quiet_pipeline(home, spec_path, full_refresh=full_refresh, note=f"dbt build: {reason}")


def _quiet_pipeline(
    home, spec_path: str | None, *, job_name: str | None = None, full_refresh: bool = False, note=None
):
    """A pipeline run whose failures the CLI reports in one line (`_failure`): Dagster's console logger
    would print each failed step with its stack trace. The full event log stays in the home's
    Dagster instance (`driftmart ui`)."""
    from orchestration.pipeline import run_pipeline

    return run_pipeline(
        home, spec_path, job_name=job_name, log_level="CRITICAL", full_refresh=full_refresh, note=note
    )


def _memory_hint(home) -> str:
    """What to do when the dbt build ran out of DuckDB's memory limit (warehouse/connection.py)."""
    from warehouse.connection import MEMORY_LIMIT_ENV, duckdb_memory_limit

    log = home.dbt_logs / "last_run.log"
    if not log.exists() or "Out of Memory Error" not in log.read_text(errors="replace"):
        return ""
    return (
        f"\ndriftmart: DuckDB ran out of its memory limit ({duckdb_memory_limit()}); exact quantiles "
        f"hold every value of the windows being recounted: raise {MEMORY_LIMIT_ENV} (e.g. 8GB) and run again"
    )


def _failure(home, outcome) -> str:
    """The failed run and steps, with the first failed step's own error message."""
    import dagster as dg

    from orchestration.instance import instance_for

    with instance_for(home) as instance:
        records = instance.all_logs(outcome.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    for record in records:
        failure = record.dagster_event.step_failure_data
        described = failure.user_failure_data.description if failure.user_failure_data else None
        error = failure.error
        while error is not None and error.cause is not None:
            error = error.cause
        message = described or (error.message if error is not None else "")
        message = re.sub(r"^(?:\w+\.)+(?=\w+: )", "", " ".join(message.split()))
        if message:
            return f"{outcome.failure}: {message[:500]}"
    return outcome.failure


def cmd_rollback(args: argparse.Namespace) -> int:
    from ml import registry
    from warehouse.ingest import mirror_model
    from warehouse.specs import resolve_spec

    home = _home(args)
    spec = resolve_spec(home, args.spec)
    before = registry.champion_version(home, spec.model)
    restored = registry.rollback(
        home, spec.model, actor=f"driftmart rollback ({os.environ.get('USER', 'cli')})"
    )
    mirror_model(home, spec)
    print(
        f"{spec.model}: champion is now v{restored.model_version} (was v{before}); "
        "a running API switches within a second"
    )
    if home.published.exists():
        # Readers see the change now: dim_model_versions, the exporter and BI tools read the
        # published copy, which one pass rebuilds from the registry just mirrored.
        outcome = _pipeline_unless_unchanged(home, spec, args.spec)
        if outcome is not None and not outcome.success:
            raise UsageError(f"pipeline after the rollback: {_failure(home, outcome)}")
        print(f"{spec.model}: marts.dim_model_versions and the exporter show v{restored.model_version}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from orchestration.demo import run_demo

    return run_demo(_home(args), scenario=args.scenario, days=args.days, rows_per_day=args.rows_per_day)


def cmd_ui(args: argparse.Namespace) -> int:
    from orchestration.instance import ensure_instance_dir
    from warehouse.specs import resolve_spec

    home = _home(args).ensure()
    spec = resolve_spec(home, args.spec)  # the Dagster code location reads it from DRIFTMART_SPEC
    environment = {
        **os.environ,
        "DRIFTMART_HOME": str(home.root),
        "DAGSTER_HOME": ensure_instance_dir(home),
        "DRIFTMART_SPEC": str(Path(spec.source).resolve()),
    }
    dagster = Path(sys.executable).with_name("dagster")
    command = [
        str(dagster) if dagster.exists() else "dagster",
        "dev",
        "-m",
        "orchestration.definitions",
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    print(f"Dagster UI for {home.root} on http://{args.host}:{args.port} (Ctrl-C to stop)", flush=True)
    return _run_as_server(command, environment)


class _StopRequested(Exception):
    pass


def _run_as_server(command: list[str], environment: dict[str, str], grace: float = 30.0) -> int:
    """Run `command` (dagster dev: its webserver, daemon and code server) in a process group of its
    own until it ends or this process gets SIGTERM, SIGINT or SIGHUP; then stop the whole group
    (SIGTERM, SIGKILL after `grace` seconds). Without this, `driftmart ui` started from a script
    (no job control) ignores SIGINT, and a SIGTERM could leave the daemon and code server behind."""
    import signal
    import subprocess

    def stop(signum: int, _frame: object) -> None:
        raise _StopRequested(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    server = subprocess.Popen(command, env=environment, start_new_session=True)
    try:
        return server.wait()
    except _StopRequested:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        _stop_group(server, grace)
        return EXIT_OK


def _stop_group(server, grace: float) -> None:
    import signal
    import subprocess
    import time

    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=grace)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:  # the group's other members (daemon, code server) too
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def _format_value(value: object, *, exact: bool = True) -> str:
    """Text of one cell. csv and json print a float exactly (Python's repr is the shortest text
    that reads back as the same double); only the human `table` format rounds."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if exact else f"{value:.6g}"
    if isinstance(value, (datetime, date)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from warehouse.connection import connect_published

    with connect_published(_home(args)) as connection:
        try:
            cursor = connection.execute(args.query)
        except duckdb.Error as error:
            raise UsageError(f"query failed: {error}") from None
        columns = [column[0] for column in cursor.description or []]
        rows = cursor.fetchall()
    if args.format == "json":
        # json.dumps prints floats exactly; NaN and ±inf are not JSON, so they become null.
        records = [
            {
                column: None if isinstance(value, float) and not math.isfinite(value) else value
                for column, value in zip(columns, row, strict=True)
            }
            for row in rows
        ]
        print(json.dumps(records, default=_format_value, indent=2, allow_nan=False))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([[_format_value(value) for value in row] for row in rows])
    else:
        from orchestration.report import render_table

        print(render_table(columns, [[_format_value(value, exact=False) for value in row] for row in rows]))
    return EXIT_OK


def cmd_metrics(args: argparse.Namespace) -> int:
    from warehouse.exporter import metrics_server

    home = _home(args)
    server = metrics_server(home, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"driftmart metrics for {home.root} on http://{host}:{port}/metrics (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftmart", description="Monitor ML models in production from the data warehouse."
    )
    parser.add_argument(
        "--home",
        help="where the warehouse, landing zone, models and reports live "
        "(default: $DRIFTMART_HOME or ./warehouse/data)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="the whole flow end to end on synthetic data with drift")
    demo.add_argument("--scenario", default="market_shift", help="drift scenario (default: market_shift)")
    demo.add_argument("--days", type=int, default=14, help="days of traffic to send (default 14)")
    demo.add_argument("--rows-per-day", type=int, default=400, help="predictions per day (default 400)")
    demo.set_defaults(handler=cmd_demo)

    train = commands.add_parser("train", help="train and register a model version")
    train.add_argument("--spec", help="monitoring spec YAML (default: the demo model car_loan)")
    train.add_argument("--data", help="training data, CSV or Parquet (default: synthetic, demo model only)")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(handler=cmd_train)

    importer = commands.add_parser(
        "import", help="load a reference set, inference logs and labels from CSV or Parquet (idempotent)"
    )
    importer.add_argument("--spec", required=True, help="monitoring spec YAML of the model")
    importer.add_argument(
        "--reference", required=True, help="reference set: the spec's features (+ prediction, target)"
    )
    importer.add_argument(
        "--logs", help="inference logs: timestamp, id, features, prediction (+ probability, target)"
    )
    importer.add_argument("--labels", help="delayed labels: id, target (+ timestamp)")
    importer.set_defaults(handler=cmd_import)

    register = commands.add_parser(
        "register", help="register a pre-trained scikit-learn model of yours as a version (skops or pickle)"
    )
    register.add_argument("--spec", required=True, help="monitoring spec YAML of the model")
    register.add_argument(
        "--model",
        required=True,
        help="the fitted estimator or Pipeline: .skops (safe), or .pkl/.pickle/.joblib with --trust-pickle",
    )
    register.add_argument(
        "--reference",
        required=True,
        help="reference set, CSV or Parquet: the spec's features and target (+ prediction, probabilities: "
        "computed with the model when absent)",
    )
    register.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load a pickle (unpickling runs code from the file: only for a file you trust)",
    )
    register.add_argument(
        "--promote",
        action="store_true",
        help="make the new version the champion now (default: only a model's first version is)",
    )
    register.set_defaults(handler=cmd_register)

    serve = commands.add_parser("serve", help="run the model API")
    serve.add_argument("--spec")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        help="larger request bodies are refused with 413 (default: 1 MiB)",
    )
    serve.add_argument("--max-batch", type=int, help="most rows per /predict/batch (default: 1000)")
    serve.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="uvicorn's log level; at info and below every request is in the access log (default: info)",
    )
    serve.set_defaults(handler=cmd_serve)

    run = commands.add_parser("run", help="one batch pass: ingest, dbt build, checks (exit 1 on drift)")
    run.add_argument("--spec")
    run.add_argument(
        "--no-retrain", action="store_true", help="detect only: do not retrain when drift checks fail"
    )
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild every dbt model from scratch (dbt build --full-refresh), even when nothing changed",
    )
    run.set_defaults(handler=cmd_run)

    rollback = commands.add_parser("rollback", help="make the previous champion the champion again")
    rollback.add_argument("--spec")
    rollback.set_defaults(handler=cmd_rollback)

    ui = commands.add_parser("ui", help="the Dagster UI on this home")
    ui.add_argument("--spec")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=cmd_ui)

    sql = commands.add_parser("sql", help="a read-only query against the published warehouse")
    sql.add_argument("query")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.set_defaults(handler=cmd_sql)

    metrics = commands.add_parser(
        "metrics", help="the Prometheus exporter for the drift marts (reads the published copy)"
    )
    metrics.add_argument("--host", default="127.0.0.1")
    metrics.add_argument(
        "--port", type=int, default=9108, help="port to listen on (default 9108; 0: any free)"
    )
    metrics.set_defaults(handler=cmd_metrics)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except DriftmartError as error:
        print(f"driftmart: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a bug, not a user mistake: still exit 2, never 1 (= drift)
        if os.environ.get("DRIFTMART_DEBUG"):
            raise
        print(
            f"driftmart: internal error: {type(error).__name__}: {error} "
            "(DRIFTMART_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
