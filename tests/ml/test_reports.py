import json
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from evidently.ui.workspace import Workspace

from ml.datasets import generate
from ml.reports import (
    REPORT_HTML,
    REPORT_JSON,
    ReportError,
    SampleSize,
    build_drift_report,
    report_directory,
    save_report,
    workspace_path,
)

DAY_1 = datetime(2026, 3, 1)
DAY_2 = datetime(2026, 3, 2)


def scored(frame: pd.DataFrame, spec) -> pd.DataFrame:
    """Generated rows as the warehouse returns them: a probability, the prediction and the label
    as text (the probability is a fixed function of the applicant, so it moves with the inputs)."""
    logit = 0.01 * (frame["credit_score"].fillna(650) - 650) - 0.5 * (
        frame["employment_type"] == "unemployed"
    )
    probability = 1 / (1 + np.exp(-logit))
    return frame.assign(
        **{
            spec.prediction_proba: probability,
            spec.prediction: np.where(probability >= 0.5, "1", "0"),
            spec.target: frame[spec.target].astype(str),
        }
    )


@pytest.fixture(scope="module")
def reference(spec) -> pd.DataFrame:
    return scored(generate("no_drift", days=3, rows_per_day=800, seed=1), spec)


@pytest.fixture(scope="module")
def shifted(spec) -> pd.DataFrame:
    """One window after the planted covariate shift: car_value × 1.6, everything else unchanged."""
    return scored(generate("covariate_shift", days=1, rows_per_day=600, drift_day=0, seed=2), spec)


@pytest.fixture(scope="module")
def shifted_report(spec, shifted, reference):
    return build_drift_report(spec, shifted, reference, timestamp=DAY_2)


def test_evidently_detects_the_planted_drift_in_car_value_only(spec, shifted_report):
    drifted = {drift.column for drift in shifted_report.features if drift.is_drifted}
    assert drifted == {"car_value"}
    assert shifted_report.n_drifted == 1
    assert shifted_report.share_drifted == pytest.approx(1 / len(spec.features))
    assert not shifted_report.is_dataset_drifted
    by_column = {drift.column: drift for drift in shifted_report.features}
    # Above 1,000 reference rows Evidently judges numeric columns by normed Wasserstein
    # (docs/architecture.md §5).
    assert by_column["car_value"].method == "Wasserstein distance (normed)"
    assert by_column["car_value"].drift_score > by_column["car_value"].threshold
    assert [drift.column_type for drift in shifted_report.features] == list(spec.features.values())


def test_outputs_get_value_drift_for_prediction_probability_and_target(spec, shifted_report):
    roles = {drift.role: drift.column for drift in shifted_report.outputs}
    assert roles == {
        "prediction": spec.prediction,
        "probability": spec.prediction_proba,
        "target": spec.target,
    }
    assert shifted_report.skipped == {}


def test_no_feature_drifts_without_a_planted_shift(spec, reference):
    calm = scored(generate("no_drift", days=1, rows_per_day=2000, seed=5), spec)
    report = build_drift_report(spec, calm, reference)
    assert [drift.column for drift in report.features if drift.is_drifted] == []
    assert report.share_drifted == 0


def test_the_target_is_judged_only_where_labels_exist(spec, shifted, reference):
    unlabelled = shifted.assign(**{spec.target: None})
    report = build_drift_report(spec, unlabelled, reference)
    assert spec.target not in {drift.column for drift in report.outputs}
    assert report.skipped == {spec.target: "no values in the current data"}

    few_labels = shifted.assign(**{spec.target: shifted[spec.target].where(shifted.index < 10)})
    report = build_drift_report(spec, few_labels, reference, min_labelled_rows=50)
    assert "10 labelled rows in the current data" in report.skipped[spec.target]


def test_sampling_is_seeded_and_reported(spec, shifted, reference):
    first = build_drift_report(spec, shifted, reference, max_rows=300, seed=7)
    again = build_drift_report(spec, shifted, reference, max_rows=300, seed=7)
    other = build_drift_report(spec, shifted, reference, max_rows=300, seed=8)
    assert first.current == SampleSize(n_rows=600, n_used=300) and first.current.is_sampled
    assert first.reference == SampleSize(n_rows=2400, n_used=300)
    assert first.seed == 7
    assert first.to_dict()["current"] == {"n_rows": 600, "n_used": 300, "is_sampled": True}
    scores = [drift.drift_score for drift in first.features]
    assert scores == [drift.drift_score for drift in again.features]
    assert scores != [drift.drift_score for drift in other.features]


def test_an_empty_window_is_a_clear_error(spec, reference):
    with pytest.raises(ReportError, match="current data has no rows"):
        build_drift_report(spec, reference.head(0), reference)


def test_saved_report_files_exist_and_parse(home, spec, shifted_report):
    saved = save_report(home, spec, shifted_report, DAY_2)
    assert saved.directory == report_directory(home, spec.model, DAY_2)
    assert saved.directory == home.reports / "car_loan" / "20260302T000000"
    assert (saved.html, saved.json) == (saved.directory / REPORT_HTML, saved.directory / REPORT_JSON)
    html = saved.html.read_text()
    assert html.lstrip().lower().startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "car_value" in html

    metrics = json.loads(saved.json.read_text())["metrics"]
    value_drift = {
        metric["config"]["column"]: metric["value"]
        for metric in metrics
        if metric["config"]["type"].endswith("ValueDrift")
    }
    assert set(value_drift) == {*spec.features, spec.prediction, spec.prediction_proba, spec.target}
    assert value_drift["car_value"] == pytest.approx(shifted_report.features[0].drift_score)

    summary = json.loads(saved.summary.read_text())
    assert summary["run_id"] == saved.run_id
    assert summary["share_drifted"] == shifted_report.share_drifted
    assert summary["html"] == str(saved.html)


def test_workspace_keeps_one_project_per_model_and_one_run_per_window(home, spec, shifted_report):
    first = save_report(home, spec, shifted_report, DAY_1)
    second = save_report(home, spec, shifted_report, DAY_2)
    workspace = Workspace(str(workspace_path(home)))
    (project,) = workspace.list_projects()
    assert project.name == spec.model and str(project.id) == first.project_id == second.project_id
    assert {str(run) for run in workspace.list_runs(project.id)} == {first.run_id, second.run_id}
    assert len(workspace.get_dashboard(project.id).panels) == 4

    again = save_report(home, spec, shifted_report, DAY_1)  # a re-run of a window replaces its run
    assert {str(run) for run in workspace.list_runs(project.id)} == {again.run_id, second.run_id}


def test_rows_sampled_before_the_report_keep_the_count_they_were_sampled_from(spec, shifted, reference):
    """warehouse/queries.py samples large windows in SQL: the report records the window's own size."""
    report = build_drift_report(
        spec, shifted, reference.head(500), max_rows=600, n_current_rows=5000, n_reference_rows=500
    )
    assert report.current == SampleSize(n_rows=5000, n_used=600) and report.current.is_sampled
    assert report.reference == SampleSize(n_rows=500, n_used=500)
    with pytest.raises(ValueError, match="n_current_rows is 10, fewer than the 600 current rows"):
        build_drift_report(spec, shifted, reference, n_current_rows=10)
