"""`make demo`, the README's first command, end to end: real server, real dbt build, real Dagster run."""

import os
import subprocess
import time
from datetime import timedelta

import pytest

from tests.conftest import REPO, parse_grids

pytestmark = pytest.mark.slow


def test_make_demo_tells_the_whole_story(tmp_path):
    home = tmp_path / "demo-home"
    started = time.monotonic()
    completed = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=REPO,
        env={**os.environ, "DRIFTMART_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    output = completed.stdout
    print(f"make demo took {elapsed:.0f} s")
    for step in range(1, 9):
        assert f"[{step}/8]" in output
    assert "starting the model API on http://127.0.0.1:" in output
    (_, before), (header, after) = parse_grids(output)
    features = header[2:-2]
    assert len(before) == 14 and len(after) == 17
    for day, cells in enumerate(after):
        assert cells["rows"] == "400"
        drifted = {name for name in features if cells[name].endswith("*")}
        # market_shift moves car_value from day 7; v2, trained on the drifted traffic, is the new
        # reference from day 14 on, so the windows after the retrain are back under threshold.
        assert drifted == ({"car_value"} if 7 <= day < 14 else set()), (day, cells)
    assert "v2 champion: challenger roc_auc" in output
    assert "API switched to v2 without a restart" in output
    assert "after the retrain: no feature drifted in the 3 new windows" in output
    assert str(home / "published" / "driftmart.duckdb") in output

    driftmart = str(REPO / ".venv/bin/driftmart")
    query = subprocess.run(
        [driftmart, "--home", str(home), "sql", "select count(*) as n from raw.inference_log"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert query.returncode == 0 and query.stdout.split()[-1] == str(17 * 400)
    versions = subprocess.run(
        [
            driftmart,
            "--home",
            str(home),
            "sql",
            "select model_version, trigger, status from marts.dim_model_versions order by 1",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert versions.stdout.splitlines()[1:] == ["1,initial,retired", "2,drift,champion"]
    # The demo's windows were judged by the demo: the first run after it has nothing new to report.
    after_demo = subprocess.run(
        [driftmart, "--home", str(home), "run"], capture_output=True, text=True, check=False
    )
    assert after_demo.returncode == 0, after_demo.stdout + after_demo.stderr
    assert "no new rows; the latest window" in after_demo.stdout


def test_the_demo_story_is_what_happened_when_no_retrain_is_due(tmp_path, capsys):
    """Without drift no retrain is due, and the story must not tell of one."""
    from ml import registry
    from orchestration.demo import run_demo
    from warehouse.home import Home

    home = Home.resolve(tmp_path / "demo-home")
    assert run_demo(home, scenario="no_drift", days=3, rows_per_day=150, days_after_retrain=1) == 0
    output = capsys.readouterr().out
    assert "[5/8] drift checks: no retrain due" in output
    assert "  - no retrain: " in output
    assert "retrain:" not in output.replace("no retrain:", "")
    assert "  - no input drift detected (planted from " in output
    assert "API still serving v1; 150 more predictions" in output
    assert "on v1: no feature drifted in the 1 new windows; realized performance not degraded" in output
    assert "switched" not in output and "after the retrain" not in output
    assert (
        "new champion" not in output
        and "[7/8] pipeline again: the new windows are judged against v1's" in output
    )
    assert [version.model_version for version in registry.list_versions(home, "car_loan")] == [1]


def test_concept_drift_is_caught_by_realized_performance_retrained_and_recovered(tmp_path, capsys):
    """concept_drift changes the labels, not the inputs: no input drift, but the realized
    performance of exactly the changed windows falls past its thresholds, the retrain follows, and
    the window after it is back within the new champion's reference."""
    from ml import registry
    from orchestration.demo import run_demo
    from warehouse.connection import connect_published
    from warehouse.home import Home

    home = Home.resolve(tmp_path / "demo-home")
    assert run_demo(home, scenario="concept_drift", days=6, rows_per_day=200, days_after_retrain=1) == 0
    output = capsys.readouterr().out
    assert "  - no input drift detected (planted from " in output
    assert "[5/8] performance checks failed → retrain" in output
    assert "  - retrain: realized performance degraded (" in output
    assert "  - v2 champion: " in output
    assert "API switched to v2 without a restart" in output
    (after,) = [line for line in output.splitlines() if line.startswith("  - after the retrain: ")]
    assert after.endswith("; realized performance not degraded"), after
    assert [version.status for version in registry.list_versions(home, "car_loan")] == ["retired", "champion"]
    with connect_published(home) as connection:
        windows = connection.execute(
            "select window_start, bool_or(is_degraded), any_value(reference_version) "
            "from marts.fct_model_performance where model_name = 'car_loan' group by 1 order by 1"
        ).fetchall()
    assert len(windows) == 7
    drift_start = windows[0][0] + timedelta(days=6 // 2)  # the demo plants the change at days // 2
    degraded = [start for start, is_degraded, _ in windows if is_degraded]
    assert degraded == [start for start, _, version in windows if start >= drift_start and version == 1]
    assert [version for *_, version in windows] == [1] * 6 + [2]


def test_demo_refuses_a_home_it_did_not_create_and_resets_its_own(tmp_path):
    from orchestration.demo import DEMO_MARKER, DemoError, prepare_home
    from warehouse.home import Home

    foreign = Home.resolve(tmp_path / "foreign").ensure()
    (foreign.root / "driftmart.duckdb").write_bytes(b"precious")
    with pytest.raises(DemoError, match="holds data that the demo did not create"):
        prepare_home(foreign)
    assert (foreign.root / "driftmart.duckdb").read_bytes() == b"precious"

    own = Home.resolve(tmp_path / "own")
    prepare_home(own)
    (own.root / "leftover.txt").write_text("old run")
    prepare_home(own)
    assert not (own.root / "leftover.txt").exists()
    assert (own.root / DEMO_MARKER).exists()
