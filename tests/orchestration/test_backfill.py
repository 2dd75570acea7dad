"""Windows are Dagster partitions; a run for past window partitions recounts them (a backfill)."""

import dagster as dg
import duckdb
import pytest

from orchestration.definitions import PIPELINE_JOB, build_definitions
from orchestration.partitions import window_partitions
from orchestration.pipeline import run_pipeline
from tests.conftest import DRIFT_PLAN

pytestmark = pytest.mark.slow


def test_partitions_follow_the_spec_window(spec):
    import dataclasses

    daily = window_partitions(spec)
    assert isinstance(daily, dg.TimeWindowPartitionsDefinition)
    assert daily.time_window_for_partition_key("2026-03-04").start.isoformat() == "2026-03-04T00:00:00+00:00"
    hourly = window_partitions(dataclasses.replace(spec, window="2h"))
    assert hourly.time_window_for_partition_key("2026-03-04-02:00").end.hour == 4
    weekly = window_partitions(dataclasses.replace(spec, window="7d"))
    assert weekly.time_window_for_partition_key("2026-03-05").start.weekday() == 3  # Thursday, like the epoch
    assert window_partitions(dataclasses.replace(spec, window="90m")) is None
    job = build_definitions().resolve_job_def(PIPELINE_JOB)
    assert job.partitions_def == daily


def counted_rows(home, window):
    """What the window's bin counts add up to (both sides, all features)."""
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        return connection.execute(
            "select sum(n_rows) from intermediate.int_window_bin_counts_aggregated where window_start = ?",
            [window],
        ).fetchall()[0][0]


def drift(home, window):
    with duckdb.connect(str(home.published), read_only=True) as connection:
        return connection.execute(
            "select feature_name, psi, n_current from marts.fct_feature_drift "
            "where window_start = ? order by 1",
            [window],
        ).fetchall()


def test_a_run_for_a_past_window_partition_recounts_it(built_home, home_copy):
    home = home_copy(built_home)
    window = DRIFT_PLAN.start  # the first day: no new rows will ever touch it again
    truth, truth_drift = counted_rows(home, window), drift(home, window)
    with duckdb.connect(str(home.warehouse)) as connection:  # damage the window's counts
        connection.execute(
            "update intermediate.int_window_bin_counts_aggregated set n_rows = n_rows + 50 "
            "where window_start = ? and feature_name = 'car_value' and bin_id = 1",
            [window],
        )
    assert run_pipeline(home).success  # a routine run leaves an untouched window alone
    assert counted_rows(home, window) == truth + 50
    assert drift(home, window) != truth_drift
    assert run_pipeline(home, partition_key=f"{window:%Y-%m-%d}").success
    assert counted_rows(home, window) == truth
    assert drift(home, window) == truth_drift
