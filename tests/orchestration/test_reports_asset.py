import json
import shutil
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from evidently.ui.workspace import Workspace

import orchestration.assets.reports as reports_asset
from ml.datasets import generate
from ml.reports import ColumnDrift
from orchestration import state
from orchestration.assets.reports import (
    EVIDENTLY_REPORT,
    EvidentlyReportConfig,
    compare_verdicts,
    disagreement_table,
    evidently_report,
    method_notes,
)
from orchestration.resources import DriftmartResource
from tests.conftest import traffic_records
from warehouse import queries
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
    # Before the drift: no dataset drift. Not "no column flagged": on 200 sampled rows each of
    # Evidently's p-value tests flags a stable column 5 % of the time (about one window in three has
    # one); three or more false alarms among the features would happen about once in 150 samples.
    assert metadata["is_dataset_drifted"].value is False
    assert metadata["n_drifted"].value <= 2
    assert metadata["current_rows"].value == 300
    assert metadata["current_rows_sampled"].value == 200


def test_without_a_published_copy_the_asset_fails_with_a_clear_message(home):
    result = materialize(home)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.user_failure_data.description
    assert "nothing published yet" in message and "driftmart run" in message


LATEST_DAY = datetime(2026, 3, 6)  # the built home's newest day of traffic (DRIFT_PLAN: 6 days from 03-01)


def published(home: Home, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(home.published), read_only=read_only)


@pytest.mark.slow
def test_the_default_window_is_the_latest_judged_one_not_an_open_small_one(
    home_copy, built_home, spec, monkeypatch
):
    """Three rows logged now open a window with a reference but too few rows for driftmart to judge:
    the report stays on the newest judged window."""
    from fastapi.testclient import TestClient

    from ml.serving.app import create_app
    from orchestration.pipeline import run_pipeline

    home = home_copy(built_home)
    monkeypatch.setenv("DRIFTMART_HOME", str(home.root))  # run_pipeline sets it; restored after the test
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = generate("no_drift", start=now, days=1, rows_per_day=3, seed=11, id_prefix="open")
    rows = rows.assign(scored_at=[now - timedelta(seconds=n) for n in (3, 2, 1)])
    with TestClient(create_app(home, spec)) as client:
        assert client.post("/predict/batch", json=traffic_records(rows, spec.target)).status_code == 200
    outcome = run_pipeline(home)
    assert outcome.success, outcome.failed_steps

    with published(home) as connection:
        newest = connection.execute(
            "select window_start, window_end, n_current, has_reference, is_below_min_rows "
            "from marts.fct_dataset_drift where model_name = ? order by window_start desc limit 1",
            [spec.model],
        ).fetchone()
    window_start, window_end, n_current, has_reference, is_below_min_rows = newest
    assert window_start > LATEST_DAY and window_end > now  # the open window of today
    assert (n_current, has_reference, is_below_min_rows) == (3, True, True)

    metadata = report_metadata(materialize(home))
    assert metadata["window_start"].value == LATEST_DAY.isoformat()
    assert metadata["judged_window"].value is True
    assert Path(metadata["report_html"].value).parent.name == "20260306T000000"
    assert metadata["current_rows"].value == 300

    # A window named in the config is reported even when driftmart did not judge it.
    explicit = report_metadata(materialize(home, window_start=window_start.isoformat()))
    assert explicit["window_start"].value == window_start.isoformat()
    assert explicit["judged_window"].value is False
    assert explicit["current_rows"].value == 3
    assert explicit["verdicts_agree"].value == explicit["verdicts_disagree"].value == 0
    assert "fewer than min_window_rows" in explicit["verdict_methods"].md_str


def test_the_judged_window_must_be_closed(built_home, spec):
    with published(built_home) as connection:
        latest = partial(state.latest_reported_window, connection, spec)
        assert latest(now=LATEST_DAY + timedelta(days=1)) == LATEST_DAY
        assert latest(now=LATEST_DAY + timedelta(hours=12)) == LATEST_DAY - timedelta(days=1)  # 03-06 open
        assert latest(now=datetime(2026, 3, 1, 12)) is None
        assert latest() == LATEST_DAY  # by the clock, every window of March 2026 is closed


@pytest.mark.slow
def test_without_a_judged_window_the_asset_says_so_and_reports_nothing(
    home_copy, built_home, spec, monkeypatch
):
    home = home_copy(built_home)
    before_march_2 = partial(state.latest_reported_window, now=datetime(2026, 3, 1, 12))
    monkeypatch.setattr(reports_asset, "latest_reported_window", before_march_2)
    result = materialize(home)
    assert result.success
    assert result.get_asset_materialization_events() == []
    (observation,) = result.get_asset_observation_events()
    observed = observation.asset_observation_data.asset_observation
    assert observed.asset_key == EVIDENTLY_REPORT
    assert "no judged window" in observed.metadata["skipped"].value
    assert observed.metadata["judged_window"].value is False


@pytest.mark.slow
def test_the_metadata_says_where_and_why_the_verdicts_differ(home_copy, built_home):
    home = home_copy(built_home)
    # On the built home, Evidently (990 reference rows: K-S, chi-square and Z-test p-values) and
    # driftmart (PSI, JS distance) use different tests and agree: only car_value drifted.
    metadata = report_metadata(materialize(home))
    assert metadata["verdicts_agree"].value == 8
    assert metadata["verdicts_disagree"].value == metadata["verdicts_not_compared"].value == 0
    assert metadata["tests_differ"].value is True
    notes = metadata["verdict_methods"].md_str
    assert "different tests" in notes
    assert "Evidently's K-S p_value (threshold 0.05, p-value: drift below it)" in notes
    assert "driftmart's psi (threshold 0.2, distance: drift at or above it)" in notes
    assert "agree on every feature" in metadata["verdict_disagreements"].md_str

    # driftmart's marts now judge region with a stricter threshold: it drifts there, not in Evidently.
    with published(home, read_only=False) as connection:
        connection.execute(
            "update marts.fct_feature_drift set threshold = 0.01, is_drifted = drift_score >= 0.01 "
            "where feature_name = 'region' and window_start = ?",
            [LATEST_DAY],
        )
        (region_score,) = connection.execute(
            "select drift_score from marts.fct_feature_drift "
            "where feature_name = 'region' and window_start = ?",
            [LATEST_DAY],
        ).fetchone()
    metadata = report_metadata(materialize(home))
    assert (metadata["verdicts_agree"].value, metadata["verdicts_disagree"].value) == (7, 1)
    table = metadata["verdict_disagreements"].md_str.splitlines()
    assert table[0].startswith("| feature | Evidently method | Evidently threshold | Evidently score |")
    (region,) = [line for line in table if line.startswith("| region |")]
    cells = [cell.strip() for cell in region.strip("|").split("|")]
    evidently_score = metadata["evidently_score/region"].value
    assert cells == [
        "region",
        "chi-square p_value",
        "0.05",
        f"{evidently_score:.4g}",
        "no",
        "js_distance",
        "0.01",
        f"{region_score:.4g}",
        "**yes**",
    ]


def drift(column: str, method: str, threshold: float, score: float, is_drifted: bool) -> ColumnDrift:
    return ColumnDrift(column, "feature", "numeric", method, threshold, score, is_drifted)


def mart_rows(*rows: tuple, below_min_rows: bool = False) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "feature_name": name,
                "drift_method": method,
                "threshold": threshold,
                "drift_score": score,
                "is_drifted": is_drifted,
                "has_reference": True,
                "is_below_min_rows": below_min_rows,
            }
            for name, method, threshold, score, is_drifted in rows
        ]
    )


def test_verdicts_are_compared_feature_by_feature_with_each_sides_method():
    features = [
        drift("a", "Wasserstein distance (normed)", 0.1, 0.15, True),
        drift("b", "Wasserstein distance (normed)", 0.1, 0.02, False),
        drift("c", "K-S p_value", 0.05, 0.001, True),
    ]
    marts = mart_rows(
        ("a", "wasserstein_normed", 0.1, 0.15, True),
        ("b", "wasserstein_normed", 0.1, 0.02, False),
        ("c", "psi", 0.2, 0.05, False),
        ("d", "psi", 0.2, 0.5, True),
    )
    comparison = compare_verdicts(features, {"d": "no values in the current data"}, marts, "evidently")
    assert comparison.agree == ("a", "b")
    assert [(drift.column, row["drift_method"]) for drift, row in comparison.disagree] == [("c", "psi")]
    assert comparison.not_compared == {"d": "Evidently did not judge it: no values in the current data"}
    assert comparison.tests_differ
    table = disagreement_table(comparison)
    assert "| c | K-S p_value | 0.05 | 0.001 | **yes** | psi | 0.2 | 0.05 | no |" in table
    notes = method_notes(comparison)
    assert "a, b: the same test" in notes and "`statistics: evidently`" in notes
    assert "c: different tests" in notes and "a p-value shrinks as the rows grow" in notes

    same_statistic = compare_verdicts(features[:2], {}, marts, "reference_bins")
    assert not same_statistic.tests_differ and not same_statistic.disagree
    assert "computed in driftmart's own way (`statistics: reference_bins`" in method_notes(same_statistic)

    unjudged = compare_verdicts(
        features, {}, mart_rows(("a", "psi", 0.2, 0.5, True), below_min_rows=True), "x"
    )
    assert unjudged.agree == () and unjudged.disagree == ()
    assert set(unjudged.not_compared) == {"a", "b", "c"}


def test_a_window_larger_than_max_rows_is_sampled_in_sql_the_same_way_twice(built_home, spec):
    with published(built_home) as connection:
        start, end = LATEST_DAY, LATEST_DAY + timedelta(days=1)
        whole = queries.window_rows(connection, spec, start, end)
        first = queries.window_rows(connection, spec, start, end, max_rows=50, seed=0)
        again = queries.window_rows(connection, spec, start, end, max_rows=50, seed=0)
        other = queries.window_rows(connection, spec, start, end, max_rows=50, seed=1)
        summary = queries.window_summary(connection, spec, start, end)
        reference = queries.reference_rows(connection, spec, 1, max_rows=100, seed=0)
        reference_again = queries.reference_rows(connection, spec, 1, max_rows=100, seed=0)
        reference_summary = queries.reference_summary(connection, spec, 1)
        (newest,) = connection.execute(
            "select max(ingest_seq) from raw.inference_log where scored_at >= ? and scored_at < ?",
            [start, end],
        ).fetchone()
        with pytest.raises(ValueError, match="max_rows must be at least 1"):
            queries.window_rows(connection, spec, start, end, max_rows=0)
    assert len(whole) == summary.n_rows == 300
    assert len(first) == len(other) == 50
    pd.testing.assert_frame_equal(first, again)
    assert set(first[spec.id]) < set(whole[spec.id]) and set(first[spec.id]) != set(other[spec.id])
    assert list(first.columns) == list(whole.columns)
    assert first[spec.timestamp].is_monotonic_increasing
    assert summary.newest.startswith(f"{newest}/")
    assert len(reference) == 100 and reference_summary.n_rows == 990
    pd.testing.assert_frame_equal(reference, reference_again)


@pytest.mark.slow
def test_the_asset_never_loads_more_than_max_rows_and_records_the_sample(
    home_copy, built_home, spec, monkeypatch
):
    home = home_copy(built_home)
    loaded: list[pd.DataFrame] = []

    def recording(read):
        def read_and_record(*args, **kwargs):
            frame = read(*args, **kwargs)
            loaded.append(frame)
            return frame

        return read_and_record

    monkeypatch.setattr(reports_asset, "window_rows", recording(queries.window_rows))
    monkeypatch.setattr(reports_asset, "reference_rows", recording(queries.reference_rows))
    metadata = report_metadata(materialize(home, max_rows=120, seed=5))
    assert [len(frame) for frame in loaded] == [120, 120]  # the window, then the reference
    assert (metadata["current_rows"].value, metadata["current_rows_sampled"].value) == (300, 120)
    assert (metadata["reference_rows"].value, metadata["reference_rows_sampled"].value) == (990, 120)
    assert (metadata["max_rows"].value, metadata["seed"].value) == (120, 5)
    assert "hash" in metadata["sampling"].value
    summary = json.loads((Path(metadata["report_html"].value).parent / "summary.json").read_text())
    assert summary["current"] == {"n_rows": 300, "n_used": 120, "is_sampled": True}

    again = report_metadata(materialize(home, max_rows=120, seed=5))
    assert [len(frame) for frame in loaded] == [120, 120, 120, 120]
    assert list(loaded[0][spec.id]) == list(loaded[2][spec.id])  # the same window gives the same sample
    assert again["evidently_score/car_value"].value == metadata["evidently_score/car_value"].value


@pytest.mark.slow
def test_a_late_row_outside_the_sample_makes_a_new_report(home_copy, built_home, monkeypatch):
    """The digest holds the window's row count and newest ingest_seq, not only the sample."""
    home = home_copy(built_home)
    assert report_metadata(materialize(home, max_rows=50, only_if_changed=True))["current_rows"].value == 300
    unchanged = materialize(home, max_rows=50, only_if_changed=True)
    assert unchanged.success and unchanged.get_asset_materialization_events() == []

    def one_more_row(*args, **kwargs):
        real = queries.window_summary(*args, **kwargs)
        return queries.RowsSummary(n_rows=real.n_rows + 1, newest=f"{real.newest}+1")

    monkeypatch.setattr(reports_asset, "window_summary", one_more_row)
    metadata = report_metadata(materialize(home, max_rows=50, only_if_changed=True))
    assert (metadata["current_rows"].value, metadata["current_rows_sampled"].value) == (301, 50)
