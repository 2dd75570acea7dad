"""Readers of the published copy during a real pipeline run: a separate process runs queries in a
loop and an exporter scrapes in a thread while `run_pipeline` ingests new rows, builds and
publishes. No reader may fail (no lock errors), wait long, or see a copy in which the tables do
not agree; and the readers must see the old copy, then the new one, and nothing in between. Also:
a connection held open keeps reading its own copy (and the raw parts it names) while newer copies
land, and readers find the parts from any working directory or where the home was moved to."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ml.datasets import generate
from ml.serving.app import create_app
from orchestration.pipeline import run_pipeline
from tests.conftest import DRIFT_PLAN, traffic_records
from tests.observability.conftest import copy_home, scrape
from warehouse.connection import connect_published
from warehouse.home import Home

pytestmark = pytest.mark.slow

NEW_DAYS, NEW_ROWS_PER_DAY = 2, 250


def consistency_problems(connection) -> tuple[int, list[str]]:
    """(rows in raw.inference_log, what disagrees) of one published copy, read in one connection."""

    def scalar(sql: str) -> Any:
        return connection.execute(sql).fetchall()[0][0]

    n_logs = scalar("select count(*) from raw.inference_log")
    n_model_features = scalar("select count(*) from raw.model_features")
    problems = []
    if scalar("select sum(n_current) from marts.fct_dataset_drift") != n_logs:
        problems.append("fct_dataset_drift rows per window do not add up to raw.inference_log")
    # fct_model_performance is long (one row per window and metric): n_predictions once per window
    windows = "select distinct model_name, window_start, n_predictions from marts.fct_model_performance"
    if scalar(f"select sum(n_predictions) from ({windows})") != n_logs:
        problems.append("fct_model_performance rows per window do not add up to raw.inference_log")
    if scalar(
        "select count(*) from (select model_name, window_start from marts.fct_model_performance "
        "group by model_name, window_start having count(distinct n_predictions) <> 1)"
    ):
        problems.append("fct_model_performance metric rows of a window disagree on n_predictions")
    mismatched = scalar(
        """
        select count(*) from (
            select dataset.window_start
            from marts.fct_dataset_drift as dataset
            full outer join (
                select window_start, count(*) as n_rows, max(n_current) as n_current
                from marts.fct_feature_drift group by window_start
            ) as features on dataset.window_start = features.window_start
            where features.n_rows is distinct from dataset.n_features
               or features.n_current is distinct from dataset.n_current
        )
        """
    )
    if mismatched:
        problems.append(f"{mismatched} windows where fct_feature_drift and fct_dataset_drift disagree")
    if scalar(f"select count(*) from marts.fct_dataset_drift where n_features <> {n_model_features}"):
        problems.append("windows without a row for every monitored feature")
    statistics = scalar(
        """
        select count(*) from marts.fct_feature_statistics as statistics
        left join marts.fct_dataset_drift as dataset
            on statistics.model_name = dataset.model_name and statistics.window_start = dataset.window_start
        where statistics.n_rows is distinct from dataset.n_current
        """
    )
    if statistics:
        problems.append(f"{statistics} fct_feature_statistics rows disagree with fct_dataset_drift")
    return n_logs, problems


def read_published_in_a_loop(root: str, stop: Any, results: Any) -> None:
    """The reader process: like a BI tool, reconnect and query until told to stop."""
    home = Home.resolve(root)
    reads, slowest, states, errors, inconsistent = 0, 0.0, set(), [], []
    while not stop.is_set():
        started = time.perf_counter()
        try:
            with connect_published(home) as connection:
                n_logs, problems = consistency_problems(connection)
            states.add(n_logs)
            inconsistent.extend(problems)
        except Exception as error:  # a reader must never fail: collect, then report
            errors.append(f"{type(error).__name__}: {error}")
        slowest = max(slowest, time.perf_counter() - started)
        reads += 1
        time.sleep(0.02)  # two CPUs here: leave the run its share
    results.put(
        {
            "reads": reads,
            "slowest": slowest,
            "states": sorted(states),
            "errors": errors,
            "inconsistent": inconsistent,
        }
    )


def test_readers_during_a_run_see_complete_copies_and_never_fail(built_home, spec, tmp_path):
    home = copy_home(built_home, tmp_path / "home")
    with connect_published(home) as connection:
        before, problems = consistency_problems(connection)
    assert problems == []
    plan = DRIFT_PLAN
    traffic = generate(
        plan.scenario,
        start=plan.start + timedelta(days=plan.days),
        days=NEW_DAYS,
        rows_per_day=NEW_ROWS_PER_DAY,
        drift_day=0,
        seed=11,
        id_prefix="later",
    )
    with TestClient(create_app(home, spec)) as client:  # lands the new rows, as in production
        response = client.post("/predict/batch", json=traffic_records(traffic, spec.target))
        assert response.status_code == 200

    context = multiprocessing.get_context("spawn")
    stop, results = context.Event(), context.Queue()
    reader = context.Process(target=read_published_in_a_loop, args=(str(home.root), stop, results))
    scrapes: list[dict] = []
    scraping = threading.Event()

    def scrape_in_a_loop() -> None:
        while not scraping.is_set():
            try:
                samples = scrape(home)
                scrapes.append({"up": samples["driftmart_up"][frozenset()], "error": None})
            except Exception as error:
                scrapes.append({"up": None, "error": f"{type(error).__name__}: {error}"})
            time.sleep(0.2)

    scraper = threading.Thread(target=scrape_in_a_loop)
    reader.start()
    scraper.start()
    try:
        time.sleep(2)  # the reader process is up and reading the old copy
        run_started = time.perf_counter()
        outcome = run_pipeline(home)
        run_seconds = time.perf_counter() - run_started
        time.sleep(2)  # … and reads the new one
    finally:
        stop.set()
        scraping.set()
        scraper.join(timeout=30)
        report = results.get(timeout=60)
        reader.join(timeout=30)

    assert outcome.success, outcome.failed_steps
    assert report["errors"] == [], report["errors"][:5]
    assert report["inconsistent"] == [], report["inconsistent"][:5]
    after = before + NEW_DAYS * NEW_ROWS_PER_DAY
    assert report["states"] == [before, after]  # the old copy, then the new one, nothing in between
    assert report["reads"] > 20, report["reads"]
    print(f"{report['reads']} reads and {len(scrapes)} scrapes during a {run_seconds:.1f} s run")
    assert report["slowest"] < 5.0  # never blocked by the run
    assert scrapes and all(s["error"] is None and s["up"] == 1.0 for s in scrapes), scrapes[:5]


def hold_a_connection_open(path: str, commands: Any, answers: Any) -> None:
    """A reader process like a BI tool's: one connection to the published copy, opened once and
    kept open, answering `count` on request until told `stop`."""
    import duckdb

    with duckdb.connect(path, read_only=True) as connection:
        while commands.get(timeout=120) != "stop":
            try:
                answers.put(
                    connection.execute(
                        "select (select count(*) from raw.inference_log), (select count(*) from raw.labels), "
                        "(select sum(n_current) from marts.fct_dataset_drift)"
                    ).fetchall()[0]
                )
            except Exception as error:
                answers.put(f"{type(error).__name__}: {error}")


def _count_rows_in(connection) -> tuple:
    """(predictions, labels, rows the drift windows counted) of the copy attached as `published`."""
    return connection.execute(
        "select (select count(*) from published.raw.inference_log), "
        "(select count(*) from published.raw.labels), "
        "(select sum(n_current) from published.marts.fct_dataset_drift)"
    ).fetchall()[0]


def _count_rows(path: str) -> tuple:
    """The same of the file at `path` now (a DuckDB of its own: never a copy this process has open)."""
    import duckdb

    with duckdb.connect() as connection:
        connection.execute(f"attach '{path}' as published (read_only)")
        return _count_rows_in(connection)


def test_an_open_reader_keeps_reading_its_copy_while_newer_ones_land(built_home, tmp_path, monkeypatch):
    import duckdb

    import warehouse.publish as publishing
    from warehouse.publish import publish

    home = copy_home(built_home, tmp_path / "home")
    # Every later publish merges the parts, so the parts this reader's copy names are no longer
    # named by the newest copy: they are kept all the same (RETAIN_SECONDS, one day by default).
    monkeypatch.setattr(publishing, "MAX_SMALL_PARTS", 1)
    publish(home)
    context = multiprocessing.get_context("spawn")
    commands, answers = context.Queue(), context.Queue()
    reader = context.Process(target=hold_a_connection_open, args=(str(home.published), commands, answers))
    reader.start()
    try:
        commands.put("count")
        opened = answers.get(timeout=120)
        assert opened == _count_rows(str(home.published))
        for batch in range(3):
            with duckdb.connect(str(home.warehouse)) as connection:
                for table in ("inference_log", "labels"):
                    connection.execute(
                        f"insert into raw.{table} by name select * exclude (ingest_seq) "
                        f"replace ('later-{batch}-' || request_id as request_id) "
                        f"from raw.{table} where request_id not like 'later-%' limit 25"
                    )
            publish(home)
            commands.put("count")
            assert answers.get(timeout=120) == opened, batch  # its own copy, whole, with its rows
        now = _count_rows(str(home.published))  # a new connection sees the newest copy
        assert now[:2] == (opened[0] + 75, opened[1] + 75)
    finally:
        commands.put("stop")
        reader.join(timeout=60)
    assert reader.exitcode == 0


def test_readers_elsewhere_find_the_parts(built_home, tmp_path):
    """From any working directory the copy reads as it is; a reader that sees the home at another
    path (a moved or copied home, a volume mounted elsewhere) names the folder in one variable,
    and the next publish there writes the new path."""
    import subprocess
    import sys

    import duckdb

    from warehouse.publish import LOCATION_VARIABLE, publish

    home = copy_home(built_home, tmp_path / "home")
    publish(home)
    expected = _count_rows(str(home.published))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
        "print(c.execute('select count(*) from raw.inference_log').fetchall()[0][0])"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, str(home.published)], cwd=elsewhere, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    assert int(completed.stdout) == expected[0]

    moved = Home.resolve(tmp_path / "moved")
    home.root.rename(moved.root)  # the writer's path is gone
    with duckdb.connect() as connection:
        connection.execute(f"attach '{moved.published}' as published (read_only)")
        assert connection.execute("select count(*) from published.marts.fct_dataset_drift").fetchall()[0][0]
        with pytest.raises(duckdb.IOException):
            connection.execute("select count(*) from published.raw.inference_log").fetchall()
        connection.execute(f"set variable {LOCATION_VARIABLE} = '{moved.published_dir}'")
        assert _count_rows_in(connection) == expected
    publish(moved)  # the next publish names the home where it is now
    assert _count_rows(str(moved.published)) == expected
