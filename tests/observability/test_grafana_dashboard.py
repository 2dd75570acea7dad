"""The Grafana dashboard as code: valid for provisioning, and every query names only metrics that the
exporter and the API really expose (checked against real scrapes), on the provisioned datasource."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import yaml
from fastapi.testclient import TestClient

from ml.serving.app import create_app
from tests.observability.conftest import DEPLOY, copy_home, parse_samples, scrape

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "driftmart.json"
# Series that Prometheus itself makes: `ALERTS` from the rules in alerts.yml, `up` per scrape target.
PROMETHEUS_SERIES = {"ALERTS", "up"}
PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana `label_values(...)` query) selects."""
    variable_query = re.fullmatch(r"\s*label_values\((?:(.*),)?\s*\w+\s*\)\s*", expr, flags=re.DOTALL)
    if variable_query:
        return metric_names(variable_query.group(1) or "")
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)  # strings ($model …)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries ($__rate_interval …)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if match.start() > 0 and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "."):
            continue  # part of a number such as 1e3
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function
        if match.group(0).lower() not in PROMQL_KEYWORDS:
            names.add(match.group(0))
    return names


def test_metric_names_reads_promql_like_prometheus():
    quantile = 'histogram_quantile(0.95, sum by (le) (rate(duration_bucket{job=~"$job"}[$__rate_interval])))'
    assert metric_names(quantile) == {"duration_bucket"}
    assert metric_names(
        '(a_total{x="on (y)"} and on (job, model) (b == 1)) * on (job) group_left (status) c_info offset 5m'
    ) == {"a_total", "b", "c_info"}
    assert metric_names("sum(rate(x_total[5m])) by (status) / 1e3 > bool 0.5") == {"x_total"}
    assert metric_names("label_values(driftmart_window_rows, model)") == {"driftmart_window_rows"}
    assert metric_names("label_values(model)") == set()


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and templating variable."""
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} target {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield f"variable {variable['name']}", query["query"] if isinstance(query, dict) else query


def _provisioned_datasource() -> dict:
    provisioning = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "driftmart.yml").read_text())
    assert provisioning["apiVersion"] == 1
    (datasource,) = provisioning["datasources"]
    assert datasource["type"] == "prometheus" and datasource["uid"]
    return datasource


@pytest.fixture(scope="module")
def exposed_names(built_home, trained_template, spec, tmp_path_factory) -> set[str]:
    """Sample names of a real exporter scrape (the drift scenario) and a real API scrape after traffic."""
    names = set(scrape(built_home))
    api_home = copy_home(trained_template, tmp_path_factory.mktemp("api") / "home")
    with TestClient(create_app(api_home, spec)) as client:
        model = client.get("/model").json()
        row = {name: (1.0 if kind == "numeric" else "a") for name, kind in model["features"].items()}
        assert client.post("/predict", json=row | {"request_id": "r1"}).status_code == 200
        assert client.post("/feedback", json={"request_id": "r1", "label": 1}).status_code == 200
        assert client.post("/predict", json={}).status_code == 422
        text = client.get("/metrics").text
    api = parse_samples(text)
    assert {"driftmart_api_log_write_duration_seconds_bucket", "driftmart_api_requests_total"} <= api.keys()
    return names | set(api)


def test_the_dashboard_is_valid_for_provisioning():
    dashboard = _dashboard()
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"] and "id" not in dashboard  # id is Grafana's own
    panels = list(_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            refs = [target["refId"] for target in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "driftmart.yml").read_text())
    assert provider["apiVersion"] == 1
    (entry,) = provider["providers"]
    assert entry["type"] == "file" and entry["options"]["path"]


def test_every_query_uses_the_provisioned_datasource():
    uid = _provisioned_datasource()["uid"]
    dashboard = _dashboard()
    for panel in _panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid


@pytest.mark.slow
def test_every_query_uses_only_exposed_metrics(exposed_names):
    used: dict[str, set[str]] = {}
    for where, expr in _queries(_dashboard()):
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        missing = names - exposed_names - PROMETHEUS_SERIES
        assert not missing, f"{where}: {sorted(missing)} not exposed by the exporter or the API"
        for name in names:
            used.setdefault(name, set()).add(where)
    # the panels the issue asks for
    for name in (
        "driftmart_dataset_drift_share",  # overall drift gauge
        "driftmart_feature_psi",  # per-feature PSI over time
        "driftmart_feature_drifted",  # drifted features table
        "driftmart_model_performance",  # realized performance (every metric of the task) …
        "driftmart_model_version_validation_accuracy",  # … against the champion's validation
        "driftmart_seconds_since_last_success",  # pipeline health
        "driftmart_ingest_oldest_pending_age_seconds",
        "driftmart_api_requests_total",  # API traffic
        "driftmart_api_log_write_duration_seconds_bucket",
    ):
        assert name in used, name


def test_performance_queries_name_only_metrics_of_the_long_performance_mart():
    """driftmart_model_performance{metric=...}: every metric a panel selects is one the mart has."""
    from ml.spec import PERFORMANCE_METRICS

    known = {name for names in PERFORMANCE_METRICS.values() for name in names}
    selected = set()
    for where, expr in _queries(_dashboard()):
        for matcher in re.findall(r'driftmart_model_performance\{[^}]*metric=~?"([^"]*)"', expr):
            names = set(matcher.split("|"))
            assert names <= known, f"{where}: {sorted(names - known)} is no metric of fct_model_performance"
            selected |= names
    assert {"accuracy", "roc_auc", "macro_f1", "mae", "rmse", "r2"} <= selected
