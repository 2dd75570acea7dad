"""`driftmart demo`: the whole flow on a fresh home, through the real components.

Synthetic data with a planted drift scenario → train v1 → a real HTTP server (`driftmart serve` in
its own process) → two weeks of traffic and delayed labels over HTTP → ingest → dbt build → publish
→ a PSI grid that shows where the drift is.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd

from ml import registry
from ml.datasets import DriftPlan, check_scenario, generate, training_set
from ml.errors import DriftmartError
from ml.reports import EVIDENTLY_UI_PORT, evidently_ui_command
from ml.spec import load_spec
from ml.train import train_model
from orchestration.automation import retrain_decision
from orchestration.jobs import RETRAIN_JOB
from orchestration.pipeline import DriftReport, drift_report, run_pipeline, write_watermark
from orchestration.report import drift_summary
from warehouse.home import Home
from warehouse.ingest import mirror_model

DEMO_MARKER = ".driftmart-demo"
BATCH_SIZE = 200
SERVER_START_TIMEOUT = 60.0


class DemoError(DriftmartError):
    """The demo cannot run here, or a step of it failed."""


def _step(number: int, total: int, text: str) -> None:
    print(f"[{number}/{total}] {text}", flush=True)


def prepare_home(home: Home) -> None:
    """Start from an empty home; refuse to wipe one that holds anything but an earlier demo."""
    if home.root.exists() and any(path.is_file() for path in home.root.rglob("*")):
        if not (home.root / DEMO_MARKER).exists():
            raise DemoError(
                f"{home.root} holds data that the demo did not create; "
                "choose an empty folder with --home (the demo starts from scratch)"
            )
        shutil.rmtree(home.root)
    home.ensure()
    (home.root / DEMO_MARKER).write_text("created by `driftmart demo`; deleted by the next demo run\n")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(home: Home, port: int) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "orchestration.cli",
        "--home",
        str(home.root),
        "serve",
        "--port",
        str(port),
    ]
    log = (home.root / "serve.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise DemoError(f"the API exited with code {server.returncode}; see {home.root / 'serve.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise DemoError(f"the API did not answer within {SERVER_START_TIMEOUT:.0f} s")


def _records(frame: pd.DataFrame) -> list[dict]:
    payload = frame.assign(scored_at=frame["scored_at"].map(lambda ts: ts.isoformat()))
    return json.loads(payload.to_json(orient="records"))


def send_traffic(client: httpx.Client, traffic: pd.DataFrame, target: str) -> int:
    sent = 0
    day_of = traffic["scored_at"].dt.normalize()
    days = sorted(day_of.unique())
    for day_number, day in enumerate(days):
        rows = traffic[day_of == day].drop(columns=[target])
        for start in range(0, len(rows), BATCH_SIZE):
            response = client.post("/predict/batch", json=_records(rows.iloc[start : start + BATCH_SIZE]))
            response.raise_for_status()
            sent += len(response.json())
        print(
            f"      {pd.Timestamp(day):%Y-%m-%d} ({day_number + 1}/{len(days)}): {sent} predictions logged",
            flush=True,
        )
    return sent


def send_feedback(client: httpx.Client, traffic: pd.DataFrame, spec_id: str, target: str) -> int:
    labels = [
        {"request_id": rid, "label": int(label)}
        for rid, label in zip(traffic[spec_id], traffic[target], strict=True)
    ]
    for start in range(0, len(labels), 1000):
        client.post("/feedback", json=labels[start : start + 1000]).raise_for_status()
    return len(labels)


def _command(name: str) -> str:
    """How the user can call a command of this environment: plain `name` if that is the one on
    PATH, else its path (relative to the working directory when inside it)."""
    installed = Path(sys.executable).with_name(name)
    on_path = shutil.which(name)
    if on_path and Path(on_path).resolve() == installed.resolve():
        return name
    try:
        return str(installed.relative_to(Path.cwd()))
    except ValueError:
        return str(installed)


def _pipeline(home: Home) -> None:
    outcome = run_pipeline(home)
    if not outcome.success:
        raise DemoError(f"pipeline {outcome.failure}")


def run_demo(
    home: Home,
    *,
    scenario: str = "market_shift",
    days: int = 14,
    rows_per_day: int = 400,
    days_after_retrain: int = 3,
) -> int:
    """The story: drift appears, checks fail, a challenger is trained, validated and promoted,
    traffic continues on the new version, and the new windows are back under threshold."""
    started = time.monotonic()
    total = 8
    check_scenario(scenario)
    spec = load_spec()
    prepare_home(home)
    all_days = days + days_after_retrain
    today = datetime.now(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    plan = DriftPlan(
        scenario=scenario, start=today - timedelta(days=all_days), days=all_days, drift_day=days // 2
    )
    traffic = generate(
        scenario, start=plan.start, days=all_days, rows_per_day=rows_per_day, drift_day=plan.drift_day, seed=7
    )
    split_at = plan.start + timedelta(days=days)
    before, after = traffic[traffic[spec.timestamp] < split_at], traffic[traffic[spec.timestamp] >= split_at]
    timeline: list[str] = []

    _step(1, total, f"training {spec.model} v1 on {len(training_set())} synthetic applications")
    version = registry.register(
        home, spec, train_model(spec, training_set()), trigger="initial", actor="demo"
    )
    mirror_model(home, spec)
    metrics = version.metrics
    print(f"      validation ROC AUC {metrics['roc_auc']:.3f}, accuracy {metrics['accuracy']:.3f}")
    timeline.append(f"v1 trained and serving (validation ROC AUC {metrics['roc_auc']:.3f})")

    port = free_port()
    _step(2, total, f"starting the model API on http://127.0.0.1:{port}")
    server = start_server(home, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _step(
                3,
                total,
                f"sending {days} days of traffic and labels; '{scenario}' from {plan.drift_start:%Y-%m-%d}",
            )
            sent = send_traffic(client, before, spec.target)
            labelled = send_feedback(client, before, spec.id, spec.target)
            print(f"      {labelled} labels logged through /feedback")

            _step(4, total, "pipeline in Dagster: ingest → dbt build (drift marts + checks) → publish")
            _pipeline(home)
            report = drift_report(home, spec)
            print(drift_summary(report))
            first_drift = min((cell.window_start for cell in report.cells if cell.is_drifted), default=None)
            drifted = sorted({cell.feature_name for cell in report.cells if cell.is_drifted})
            planted = (
                f"planted from {plan.drift_start:%Y-%m-%d} in "
                f"{', '.join(plan.drifted_features) or 'the labels only'}"
            )
            timeline.append(
                f"drift detected from {first_drift:%Y-%m-%d} in {', '.join(drifted)} ({planted})"
                if first_drift
                else f"no input drift detected ({planted})"
            )
            if report.degraded:
                timeline.append(f"realized performance degraded: {_degraded_text(report)}")

            decision = retrain_decision(home, spec)
            if decision.needed:
                checks = "performance checks" if decision.signal == "performance" else "drift checks"
                _step(5, total, f"{checks} failed → retrain: a challenger trained and validated")
            else:
                _step(5, total, "drift checks: no retrain due")
                timeline.append(f"no retrain: {decision.reason}")
            print(f"      {decision.reason}")
            if decision.needed:
                outcome = run_pipeline(home, job_name=RETRAIN_JOB)
                if not outcome.success:
                    raise DemoError(f"retrain {outcome.failure}")
                challenger = registry.list_versions(home, spec.model)[-1]
                verdict = challenger.validation
                metric = verdict["metric"]
                print(
                    f"      v{challenger.model_version} {challenger.status}: {challenger.reason}\n"
                    f"      holdout {metric}: champion {verdict['champion'][metric]:.3f}, "
                    f"challenger {verdict['challenger'][metric]:.3f} on {verdict['n_holdout']} recent rows"
                )
                timeline.append(f"retrain: {decision.reason}")
                timeline.append(f"v{challenger.model_version} {challenger.status}: {challenger.reason}")

            _step(6, total, f"traffic continues for {days_after_retrain} days")
            champion = registry.champion_version(home, spec.model)
            serving = _wait_for_champion(client, champion)
            sent += send_traffic(client, after, spec.target)
            labelled += send_feedback(client, after, spec.id, spec.target)
            if serving != champion:
                raise DemoError(f"the API still serves v{serving}, not the champion v{champion}")
            if serving != version.model_version:
                timeline.append(
                    f"API switched to v{serving} without a restart; {len(after)} more predictions"
                )
            else:
                timeline.append(f"API still serving v{serving}; {len(after)} more predictions")
    finally:
        server.terminate()
        server.wait(timeout=30)

    _step(7, total, f"pipeline again: the new windows are judged against v{serving}'s reference")
    _pipeline(home)
    report = drift_report(home, spec)
    print(drift_summary(report))
    # The next `driftmart run` reports the windows that are new since this pass, not the demo's.
    write_watermark(home, spec)
    new_windows = [cell for cell in report.cells if cell.window_start >= split_at]
    after_drifted = sorted({cell.feature_name for cell in new_windows if cell.is_drifted})
    outcome_text = f"drift in {', '.join(after_drifted)}" if after_drifted else "no feature drifted"
    after_what = "after the retrain" if serving != version.model_version else f"on v{serving}"
    after_degraded = [degraded for degraded in report.degraded if degraded.window_start >= split_at]
    performance_text = (
        f"realized performance degraded: {_degraded_text(replace(report, degraded=after_degraded))}"
        if after_degraded
        else "realized performance not degraded"
    )
    timeline.append(
        f"{after_what}: {outcome_text} in the {days_after_retrain} new windows; {performance_text}"
    )

    _step(8, total, "timeline")
    for line in timeline:
        print(f"  - {line}")
    reports = sorted((home.reports / spec.model).glob("*/report.html"))
    for report_path in reports:
        print(f"  Evidently report of the window {report_path.parent.name}: {report_path}")
    command = _command("driftmart")
    print(
        f"\nDone in {time.monotonic() - started:.0f} s: {sent} predictions and {labelled} labels "
        "went through the API.\nWhere to look next:\n"
        f"  warehouse (DuckDB)   {home.warehouse}\n"
        f"  published read-only  {home.published}\n"
        f"  query it             {command} --home {home.root} sql "
        '"select * from marts.dim_model_versions"\n'
        f"  Dagster UI           {command} --home {home.root} ui   (then open http://127.0.0.1:3000)\n"
        f"  Evidently UI         {evidently_ui_command(home.reports / 'workspace', _command('evidently'))}"
        f"   (then open http://127.0.0.1:{EVIDENTLY_UI_PORT})"
    )
    return 0


def _degraded_text(report: DriftReport) -> str:
    """'<metrics> below their thresholds in N windows from <day>' for the report's degraded windows."""
    windows = sorted({degraded.window_start for degraded in report.degraded})
    metrics = sorted({degraded.metric_name for degraded in report.degraded})
    return f"{', '.join(metrics)} past their thresholds in {len(windows)} windows from {windows[0]:%Y-%m-%d}"


def _wait_for_champion(client: httpx.Client, version: int | None, timeout: float = 10.0) -> int:
    """The API follows the registry's champion within a second; wait until it serves `version`."""
    deadline = time.monotonic() + timeout
    while True:
        serving = client.get("/model").json()["model_version"]
        if serving == version or time.monotonic() > deadline:
            return serving
        time.sleep(0.2)
