import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.definitions import PIPELINE_JOB, build_definitions
from tests.conftest import DRIFT_PLAN

pytestmark = pytest.mark.slow


def test_definitions_validate_like_dagster_does():
    dagster = Path(sys.executable).with_name("dagster")
    completed = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "orchestration.definitions"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_asset_graph_has_the_lineage_from_landed_logs_to_the_published_marts():
    graph = build_definitions().resolve_asset_graph()

    def upstream(key: str) -> set[str]:
        return {
            parent.to_user_string() for parent in graph.get(dg.AssetKey.from_user_string(key)).parent_keys
        }

    assert "landing/inference_segments" in upstream("raw/inference_log")
    assert "raw/inference_log" in upstream("staging/stg_raw__inference_logs")
    assert "raw/model_features" in upstream("staging/stg_raw__model_features")
    assert "marts/fct_feature_drift" in upstream("published/driftmart_duckdb")
    # every path from the landing zone reaches the published warehouse
    reached, frontier = set(), {dg.AssetKey(["landing", "inference_segments"])}
    while frontier:
        key = frontier.pop()
        reached.add(key)
        frontier |= set(graph.get(key).child_keys) - reached
    assert dg.AssetKey(["marts", "fct_feature_drift"]) in reached
    assert dg.AssetKey(["published", "driftmart_duckdb"]) in reached
    checks = {
        check.name
        for check in graph.asset_check_keys
        if check.asset_key == dg.AssetKey(["marts", "fct_feature_drift"])
    }
    assert any(name.startswith("feature_drift_not_detected") for name in checks)


def test_pipeline_materializes_drift_marts_in_a_temporary_warehouse(built_home, spec):
    with duckdb.connect(str(built_home.published), read_only=True) as connection:
        schemas = {
            row[0]
            for row in connection.execute("select schema_name from information_schema.schemata").fetchall()
        }
        assert {"raw", "staging", "intermediate", "marts"} <= schemas
        assert not any(schema.startswith("main_") for schema in schemas)
        rows = connection.execute(
            "select feature_name, window_start, n_current, psi, is_drifted from marts.fct_feature_drift"
        ).fetchall()
    assert len(rows) == len(spec.features) * DRIFT_PLAN.days
    for feature, window_start, n_current, psi, is_drifted in rows:
        assert n_current == 300
        planted = feature == "car_value" and window_start >= DRIFT_PLAN.drift_start
        assert is_drifted == planted, (feature, window_start, psi)


def test_runs_are_recorded_in_the_homes_dagster_instance(built_home):
    from orchestration.instance import instance_for

    with instance_for(built_home) as instance:
        runs = instance.get_runs()
        assert [run.job_name for run in runs] == [PIPELINE_JOB]
        assert runs[0].is_success
        evaluation = instance.get_latest_materialization_event(dg.AssetKey(["raw", "inference_log"]))
        assert evaluation.asset_materialization.metadata["rows_loaded"].value == DRIFT_PLAN.days * 300
