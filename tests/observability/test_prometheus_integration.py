"""A real Prometheus (Debian package `prometheus`) on the project's scrape config and alert rules:
it scrapes the exporter on the drift scenario and the model API, the drift alert goes pending (the
project's rules) and firing (the same rules with a short `for:`), and every dashboard query runs.

In CI (CI=true) a missing `prometheus` binary fails this test; elsewhere it is skipped."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from ml.serving.app import create_app
from tests.observability.conftest import DEPLOY, copy_home, labels, require_tool, scrape
from tests.observability.test_grafana_dashboard import DASHBOARD, _panels
from tests.services import free_port
from warehouse.exporter import metrics_server

pytestmark = pytest.mark.slow

PROMETHEUS = DEPLOY / "prometheus"
FAST_FOR = "2s"


def prometheus_config(directory: Path, exporter: str, api: str) -> Path:
    """The project's prometheus.yml with 1 s intervals, our targets, and a fast copy of the rules."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    targets = {"driftmart-exporter": exporter, "driftmart-api": api}
    for job in config["scrape_configs"]:
        job.update({"scrape_interval": "1s", "scrape_timeout": "1s"})
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    for group in rules["groups"]:
        group["name"] += "-fast"
        for rule in group["rules"]:
            rule["for"] = FAST_FOR
            rule["labels"]["copy"] = "fast"
    fast_rules = directory / "alerts_fast.yml"
    fast_rules.write_text(yaml.safe_dump(rules, sort_keys=False))
    config["rule_files"] = [str(PROMETHEUS / "alerts.yml"), str(fast_rules)]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextmanager
def running_prometheus(binary: str, config: Path, directory: Path) -> Iterator[str]:
    port = free_port()
    log = (directory / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url, process), 30, "Prometheus to be ready", directory / "prometheus.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _ready(url: str, process: subprocess.Popen) -> bool:
    assert process.poll() is None, "prometheus exited"
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def wait_for(condition: Callable[[], Any], seconds: float, what: str, log: Path | None = None) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.25)
    detail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"waited {seconds} s for {what}\n{detail}")


@contextmanager
def serving_in_thread(start: Callable[[], None], stop: Callable[[], None]) -> Iterator[None]:
    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop()
        thread.join(timeout=20)


def query(url: str, expr: str) -> list[dict]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert response["status"] == "success", (expr, response)
    return response["data"]["result"]


def alerts(url: str) -> list[dict]:
    return httpx.get(f"{url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]


def test_prometheus_scrapes_the_exporter_and_the_drift_alert_goes_pending_then_fires(
    built_home, trained_template, spec, tmp_path
):
    binary = require_tool("prometheus")
    exporter = metrics_server(built_home, "127.0.0.1", 0)
    exporter_target = f"127.0.0.1:{exporter.server_address[1]}"
    api_port = free_port()
    api_home = copy_home(trained_template, tmp_path / "api-home")
    api = uvicorn.Server(
        uvicorn.Config(create_app(api_home, spec), host="127.0.0.1", port=api_port, log_level="warning")
    )

    def stop_api() -> None:
        api.should_exit = True

    config = prometheus_config(tmp_path, exporter_target, f"127.0.0.1:{api_port}")
    with (
        serving_in_thread(exporter.serve_forever, exporter.shutdown),
        serving_in_thread(api.run, stop_api),
        running_prometheus(binary, config, tmp_path) as url,
    ):
        wait_for(lambda: api.started, 30, "the API to start")
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}") as client:
            features = client.get("/model").json()["features"]
            row = {name: (1.0 if kind == "numeric" else "a") for name, kind in features.items()}
            for request in range(5):
                assert client.post("/predict", json=row | {"request_id": str(request)}).status_code == 200
            assert client.post("/predict", json={}).status_code == 422

        def drift_alerts() -> dict[str, str] | None:
            found = {
                alert["labels"].get("copy", "project"): alert["state"]
                for alert in alerts(url)
                if alert["labels"]["alertname"] == "DriftmartFeatureDrift"
            }
            return found if found == {"project": "pending", "fast": "firing"} else None

        wait_for(drift_alerts, 40, "DriftmartFeatureDrift pending (project rules) and firing (fast copy)")
        samples = scrape(built_home)
        expected_drifted = {
            (dict(key)["model"], dict(key)["feature"])
            for key, value in samples["driftmart_feature_drifted"].items()
            if value == 1.0
        }
        assert ("car_loan", "car_value") in expected_drifted
        active = [alert["labels"] for alert in alerts(url) if "copy" not in alert["labels"]]
        drifted = {(a["model"], a["feature"]) for a in active if a["alertname"] == "DriftmartFeatureDrift"}
        assert drifted == expected_drifted
        (feature_alert,) = [
            a
            for a in alerts(url)
            if a["labels"]["alertname"] == "DriftmartFeatureDrift"
            and a["labels"].get("feature") == "car_value"
            and "copy" not in a["labels"]
        ]
        assert feature_alert["labels"]["severity"] == "warning"
        assert feature_alert["annotations"]["runbook_url"].endswith("#driftmartfeaturedrift")
        # alerts follow the marts: dataset drift only if the marts say so; pipeline and API healthy
        dataset_drifted = samples["driftmart_dataset_drifted"][labels(model="car_loan")] == 1.0
        assert ("DriftmartDatasetDrift" in {a["alertname"] for a in active}) == dataset_drifted
        healthy = {
            "DriftmartPipelineStale",
            "DriftmartExporterDown",
            "DriftmartIngestLag",
            "DriftmartApiErrorRate",
        }
        assert not healthy & {a["alertname"] for a in active}

        # Prometheus stores exactly the marts' value
        exported = samples["driftmart_feature_psi"][labels(model="car_loan", feature="car_value")]
        (psi,) = query(url, 'driftmart_feature_psi{feature="car_value"}')
        assert float(psi["value"][1]) == exported
        assert {r["metric"]["job"]: r["value"][1] for r in query(url, "up")} == {
            "driftmart-exporter": "1",
            "driftmart-api": "1",
        }

        # every dashboard query runs; the main panels have data
        dashboard = json.loads(DASHBOARD.read_text())
        must_have_data = {
            "Share of drifted features",
            "PSI per feature",
            "Drifted features",
            "Realized vs validation",
            "Since the last successful run",
            "Requests per second by status",
            "Durable logging latency (append + fdatasync)",
        }
        for panel in _panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$model", ".*").replace("$__rate_interval", "1m")
                if panel["title"] in must_have_data:
                    wait_for(lambda expr=expr: query(url, expr), 15, f"data for {panel['title']!r}: {expr}")
                else:
                    query(url, expr)
        models = httpx.get(
            f"{url}/api/v1/label/model/values", params={"match[]": "driftmart_window_rows"}, timeout=10
        ).json()
        assert models["data"] == ["car_loan"]  # the dashboard's $model variable
