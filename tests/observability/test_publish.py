"""Publishing: status.json, Parquet exports, readable permissions, and no change on failure."""

from __future__ import annotations

import stat

import duckdb
import pandas as pd
import pytest

from orchestration.instance import instance_for
from tests.observability.conftest import copy_home
from warehouse.publish import PARQUET_ENV, parquet_dir, publish, read_status

pytestmark = pytest.mark.slow


def _counts(path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as connection:
        tables = connection.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and table_schema in ('raw', 'marts')"
        ).fetchall()
        return {
            f"{schema}.{name}": connection.execute(f"select count(*) from {schema}.{name}").fetchall()[0][0]
            for schema, name in tables
        }


def test_the_pipeline_writes_a_status_with_its_run_and_the_row_counts(built_home):
    status = read_status(built_home)
    assert status is not None
    assert status["published_at"].endswith("+00:00")  # UTC
    assert status["rows"] == _counts(built_home.published)
    assert status["rows"]["marts.fct_feature_drift"] > 0
    with instance_for(built_home) as instance:
        run = instance.get_run_by_id(status["run_id"])
    assert run is not None and run.job_name == "driftmart_pipeline"
    mode = stat.S_IMODE(built_home.published.stat().st_mode)
    assert mode & stat.S_IROTH, oct(mode)  # BI tools may run as another user


def test_parquet_exports_of_the_marts_on_request(built_home, tmp_path, monkeypatch):
    home = copy_home(built_home, tmp_path / "home")
    monkeypatch.setenv(PARQUET_ENV, "1")
    publish(home, run_id="manual")
    status = read_status(home)
    assert status["run_id"] == "manual"
    marts = sorted(table for table in status["rows"] if table.startswith("marts."))
    assert status["parquet"] == [f"{table}.parquet" for table in marts]
    assert sorted(path.name for path in parquet_dir(home).iterdir()) == status["parquet"]
    with duckdb.connect(str(home.published), read_only=True) as connection:
        expected = connection.execute(
            "select * from marts.fct_feature_drift order by model_name, feature_name, window_start"
        ).df()
    exported = pd.read_parquet(parquet_dir(home) / "marts.fct_feature_drift.parquet")
    exported = exported.sort_values(["model_name", "feature_name", "window_start"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(exported, expected, check_dtype=False)
    assert not list(home.published_dir.rglob(".driftmart-*"))  # no temporary files left behind

    monkeypatch.delenv(PARQUET_ENV)
    publish(home)  # off by default: the files stay as they were, the status lists none
    assert read_status(home)["parquet"] == []


def test_a_failed_publish_leaves_the_previous_copy_in_place(built_home, tmp_path):
    home = copy_home(built_home, tmp_path / "home")
    before = home.published.read_bytes()
    status_before = read_status(home)
    home.warehouse.write_bytes(b"a half-written warehouse" * 1000)
    with pytest.raises(duckdb.Error):
        publish(home, run_id="broken")
    assert home.published.read_bytes() == before
    assert read_status(home) == status_before
    assert not list(home.published_dir.rglob(".driftmart-*"))
