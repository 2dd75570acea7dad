"""The alert rules and scrape config under deploy/prometheus/: promtool checks them and runs their
unit tests; every alert has a `for:`, a severity, a runbook section, and tests that see it fire and
not fire."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.observability.conftest import DEPLOY, require_tool

PROMETHEUS = DEPLOY / "prometheus"
SEVERITIES = {"critical", "warning"}


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_tool("promtool"), *args],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules():
    completed = _promtool("check", "rules", "alerts.yml")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"SUCCESS: {len(_alert_rules())} rules found" in completed.stdout


def test_promtool_checks_the_scrape_config_and_its_rule_files():
    completed = _promtool("check", "config", "prometheus.yml")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {"driftmart-api": ["127.0.0.1:8000"], "driftmart-exporter": ["127.0.0.1:9108"]}
    assert config["rule_files"] == ["alerts.yml"]


def test_promtool_unit_tests_of_the_alerts_pass():
    completed = _promtool("test", "rules", "alerts_test.yml")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "SUCCESS" in completed.stdout


def test_the_required_alerts_exist_with_for_severity_and_runbook():
    rules = _alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    assert {
        "DriftmartFeatureDrift",
        "DriftmartDatasetDrift",
        "DriftmartPerformanceDegraded",
        "DriftmartPerformanceEstimatedDegraded",
        "DriftmartPipelineStale",
        "DriftmartIngestLag",
        "DriftmartQuarantineGrowth",
        "DriftmartApiErrorRate",
    } <= set(names)
    runbook = (PROMETHEUS / "RUNBOOK.md").read_text()
    anchors = {heading.lower() for heading in re.findall(r"^## (\w+)$", runbook, flags=re.MULTILINE)}
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys(), rule["alert"]
        path, anchor = rule["annotations"]["runbook_url"].split("#")
        assert path == "deploy/prometheus/RUNBOOK.md" and anchor in anchors, rule["alert"]


def test_every_alert_has_unit_tests_that_see_it_fire_and_not_fire():
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    fires, stays_quiet = set(), set()
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else stays_quiet).add(case["alertname"])
    names = {rule["alert"] for rule in _alert_rules()}
    assert names - fires == set(), "alerts never seen firing"
    assert names - stays_quiet == set(), "alerts never seen quiet"
