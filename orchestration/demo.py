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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd

from ml import registry
from ml.datasets import DriftPlan, check_scenario, generate, training_set
from ml.errors import DriftmartError
from ml.spec import load_spec
from ml.train import train_model
from orchestration.pipeline import drift_report, run_pipeline
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


def send_traffic(client: httpx.Client, traffic: pd.DataFrame, target: str, days: int) -> int:
    sent = 0
    day_of = (traffic["scored_at"] - traffic["scored_at"].min().normalize()).dt.days
    for day in range(days):
        rows = traffic[day_of == day].drop(columns=[target])
        for start in range(0, len(rows), BATCH_SIZE):
            response = client.post("/predict/batch", json=_records(rows.iloc[start : start + BATCH_SIZE]))
            response.raise_for_status()
            sent += len(response.json())
        print(f"      day {day + 1:>2}/{days}: {sent} predictions logged", flush=True)
    return sent


def send_feedback(client: httpx.Client, traffic: pd.DataFrame, spec_id: str, target: str) -> int:
    labels = [
        {"request_id": rid, "label": int(label)}
        for rid, label in zip(traffic[spec_id], traffic[target], strict=True)
    ]
    for start in range(0, len(labels), 1000):
        client.post("/feedback", json=labels[start : start + 1000]).raise_for_status()
    return len(labels)


def _driftmart_command() -> str:
    """How the user can call driftmart: plain `driftmart` if it is on PATH, else its path."""
    installed = Path(sys.executable).with_name("driftmart")
    on_path = shutil.which("driftmart")
    if on_path and Path(on_path).resolve() == installed.resolve():
        return "driftmart"
    try:
        return str(installed.relative_to(Path.cwd()))
    except ValueError:
        return str(installed)


def run_demo(
    home: Home, *, scenario: str = "covariate_shift", days: int = 14, rows_per_day: int = 400
) -> int:
    started = time.monotonic()
    total = 6
    check_scenario(scenario)
    spec = load_spec()
    prepare_home(home)
    today = datetime.now(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    plan = DriftPlan(scenario=scenario, start=today - timedelta(days=days), days=days, drift_day=days // 2)
    traffic = generate(
        scenario, start=plan.start, days=days, rows_per_day=rows_per_day, drift_day=plan.drift_day, seed=7
    )

    _step(1, total, f"training {spec.model} v1 on {len(training_set())} synthetic applications")
    version = registry.register(home, spec, train_model(spec, training_set()), trigger="initial")
    mirror_model(home, spec)
    metrics = version.metrics
    print(f"      validation ROC AUC {metrics['roc_auc']:.3f}, accuracy {metrics['accuracy']:.3f}")

    port = free_port()
    _step(2, total, f"starting the model API on http://127.0.0.1:{port}")
    server = start_server(home, port)
    try:
        _step(
            3,
            total,
            f"sending {days} days of traffic; scenario '{scenario}' from {plan.drift_start:%Y-%m-%d}",
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            sent = send_traffic(client, traffic, spec.target, days)
            _step(4, total, "sending delayed labels to /feedback")
            labelled = send_feedback(client, traffic, spec.id, spec.target)
            print(f"      {labelled} labels logged")
    finally:
        server.terminate()
        server.wait(timeout=30)

    _step(5, total, "running the pipeline in Dagster: ingest → dbt build (drift marts + tests) → publish")
    outcome = run_pipeline(home)
    if not outcome.success:
        raise DemoError(f"pipeline run {outcome.run_id} failed at {', '.join(outcome.failed_steps)}")

    _step(6, total, "drift per feature and day")
    report = drift_report(home, spec)
    print(drift_summary(report))
    planted = ", ".join(plan.drifted_features) or "no input feature (labels only)"
    print(f"\nPlanted: '{scenario}' in {planted} from {plan.drift_start:%Y-%m-%d} on.")
    n_drifted = sum(cell.is_drifted for cell in report.cells)
    print(
        f"The dbt drift test flagged {n_drifted} of {len(report.cells)} (feature, window) cells; it is a "
        "non-blocking check (severity warn), shown on marts/fct_feature_drift in the Dagster UI."
    )
    command = _driftmart_command()
    print(
        f"\nDone in {time.monotonic() - started:.0f} s: {sent} predictions and {labelled} labels "
        "went through the API.\nWhere to look next:\n"
        f"  warehouse (DuckDB)   {home.warehouse}\n"
        f"  published read-only  {home.published}\n"
        f"  query it             {command} --home {home.root} sql "
        '"select * from marts.fct_feature_drift where is_drifted"\n'
        f"  Dagster UI           {command} --home {home.root} ui   (then open http://127.0.0.1:3000)"
    )
    return 0
