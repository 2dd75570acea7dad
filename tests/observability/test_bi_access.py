"""BI access: the README's example queries run on the published copy and answer their questions, its
Python snippet works, and the dbt exposures name what reads the marts."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from tests.conftest import DRIFT_PLAN, REPO
from warehouse.home import Home

SECTION = "## Query drift from your BI tool"


def bi_section(readme: str) -> str:
    assert SECTION in readme, f"README.md has no section {SECTION!r}"
    section = readme.split(SECTION, 1)[1]
    return re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]


def code_blocks(section: str, language: str) -> list[str]:
    return [
        re.sub(r"^ {2}", "", block, flags=re.MULTILINE)  # blocks inside list items are indented
        for block in re.findall(rf"^ *```{language}\n(.*?)^ *```", section, flags=re.MULTILINE | re.DOTALL)
    ]


def check_queries(section: str, home: Home) -> None:
    """Run every SQL block of the section on the published copy and check what it answers."""
    queries = code_blocks(section, "sql")
    assert len(queries) >= 4
    with duckdb.connect(str(home.published), read_only=True) as connection:

        def run(sql: str) -> list[dict]:
            cursor = connection.execute(sql)
            columns = [d[0] for d in cursor.description]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

        drifted = run(
            "select model_name, feature_name, window_start from marts.fct_feature_drift where is_drifted"
        )
        answers = {}
        for sql in queries:
            rows = run(sql)
            assert rows, f"no rows for:\n{sql}"
            answers[next(key for key in ("drifted_windows", "drifting_since", "times_threshold",
                                         "version_status", "roc_auc") if key in sql)] = rows  # fmt: skip
    drift_start = DRIFT_PLAN.start + timedelta(days=DRIFT_PLAN.drift_day)

    # which features drifted this week, how often
    this_week = {(r["model_name"], r["feature_name"]): r for r in answers["drifted_windows"]}
    assert this_week[("car_loan", "car_value")]["drifted_windows"] == sum(
        1 for r in drifted if r["feature_name"] == "car_value"
    )
    assert this_week[("car_loan", "car_value")]["first_drifted_window"] == drift_start
    # since when
    since = {r["feature_name"]: r for r in answers["drifting_since"]}
    assert since["car_value"]["drifting_since"] == drift_start
    assert since["car_value"]["windows_in_a_row"] == DRIFT_PLAN.days - DRIFT_PLAN.drift_day
    # by how much: one row per drifted (feature, window), each past its threshold
    assert len(answers["times_threshold"]) == len(drifted)
    for row in answers["times_threshold"]:
        if row["drift_method"] != "chi2_p_value":
            assert row["times_threshold"] >= 1.0
        assert row["mean"] is not None or row["null_share"] is not None
    # which model version
    versions = answers["version_status"]
    assert {(r["model_version"], r["version_status"]) for r in versions} == {(1, "champion")}
    assert {r["window_start"] for r in versions} == {r["window_start"] for r in drifted}
    # did it hurt: one row per window, with realized performance
    assert all(r["accuracy"] is not None for r in answers["roc_auc"])


@pytest.mark.slow
def test_the_readme_queries_answer_their_questions_on_the_published_copy(built_home):
    check_queries(bi_section((REPO / "README.md").read_text()), built_home)


@pytest.mark.slow
def test_the_readme_python_snippet_reads_the_published_copy(built_home):
    (snippet,) = code_blocks(bi_section((REPO / "README.md").read_text()), "python")
    default_path = "warehouse/data/published/driftmart.duckdb"
    assert default_path in snippet
    namespace: dict = {}
    exec(snippet.replace(default_path, str(built_home.published)), namespace)
    assert len(namespace["drift"]) > 0 and "psi" in namespace["drift"].columns


def test_dbt_exposures_name_the_dashboard_the_retrain_and_bi():
    from orchestration.assets.dbt import ensure_manifest

    manifest = json.loads(Path(ensure_manifest()).read_text())
    exposures = {exposure["name"]: exposure for exposure in manifest["exposures"].values()}
    assert {"grafana_driftmart_overview", "retrain_challenger", "bi_drift_analysis"} <= exposures.keys()
    assert exposures["grafana_driftmart_overview"]["type"] == "dashboard"
    assert exposures["retrain_challenger"]["type"] == "ml"
    marts = {unique_id for unique_id in manifest["nodes"] if unique_id.startswith("model.driftmart.fct_")}
    for exposure in exposures.values():
        parents = set(exposure["depends_on"]["nodes"])
        assert "model.driftmart.fct_feature_drift" in parents, exposure["name"]
        assert parents <= set(manifest["nodes"]) | set(manifest["sources"]), exposure["name"]
        assert exposure["owner"]["name"] and exposure["description"]
    assert marts <= set(exposures["grafana_driftmart_overview"]["depends_on"]["nodes"])
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/driftmart.json").read_text())
    assert exposures["grafana_driftmart_overview"]["url"].endswith(f"/d/{dashboard['uid']}")
