import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
from evidently.ui.workspace import Workspace

from orchestration.assets.reports import EVIDENTLY_REPORT, EvidentlyReportConfig, evidently_report
from orchestration.resources import DriftmartResource
from warehouse.home import Home


def materialize(home: Home, **config) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [evidently_report],
        resources={"driftmart": DriftmartResource(home_dir=str(home.root), spec_path="")},
        run_config=dg.RunConfig(ops={evidently_report.op.name: EvidentlyReportConfig(**config)}),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def report_metadata(result: dg.ExecuteInProcessResult) -> dict:
    assert result.success
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.asset_key == EVIDENTLY_REPORT
    return event.materialization.metadata


@pytest.fixture
def report_home(tmp_path: Path, built_home: Home) -> Home:
    """A writable copy of the built home (the session's one is read-only)."""
    root = tmp_path / "home"
    shutil.copytree(built_home.root, root)
    return Home.resolve(root)


@pytest.mark.slow
def test_report_of_the_latest_window_is_linked_from_the_metadata(report_home, spec):
    metadata = report_metadata(materialize(report_home))

    html = Path(metadata["report_html"].value)
    assert html == report_home.reports / "car_loan" / "20260306T000000" / "report.html"
    assert html.stat().st_size > 0
    assert metadata["report_url"].value == html.as_uri()
    assert json.loads(Path(metadata["report_json"].value).read_text())["metrics"]
    assert metadata["window_start"].value == "2026-03-06T00:00:00"
    assert metadata["reference"].value == "model_version:1"
    assert metadata["current_rows"].value == metadata["current_rows_sampled"].value == 300
    assert metadata["seed"].value == 0

    table = metadata["drift_summary"].md_str
    car_value = next(line for line in table.splitlines() if line.startswith("| car_value |"))
    assert car_value.count("**yes**") == 2  # Evidently and driftmart both see the planted shift
    assert metadata["n_drifted"].value == 1
    assert "car_value" in metadata["drift_score_bars"].md_str
    assert metadata["evidently_score/car_value"].value < metadata["evidently_score/region"].value

    workspace = Workspace(str(report_home.reports / "workspace"))
    (project,) = workspace.search_project(spec.model)
    assert len(workspace.list_runs(project.id)) == 1


@pytest.mark.slow
def test_a_window_chosen_by_config_before_the_drift(report_home):
    metadata = report_metadata(materialize(report_home, window_start="2026-03-01T00:00:00", max_rows=200))
    assert Path(metadata["report_html"].value).parent.name == "20260301T000000"
    assert metadata["n_drifted"].value == 0
    assert metadata["current_rows"].value == 300
    assert metadata["current_rows_sampled"].value == 200


def test_without_a_published_copy_the_asset_fails_with_a_clear_message(home):
    result = materialize(home)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.user_failure_data.description
    assert "nothing published yet" in message and "driftmart run" in message
