"""Readers of the published copy during a real pipeline run (DESIGN.md §4): a separate process runs
queries in a loop and an exporter scrapes in a thread while `run_pipeline` ingests new rows, builds
and publishes. No reader may fail (no lock errors), wait long, or see a copy in which the tables do
not agree; and the readers must see the old copy, then the new one, and nothing in between."""

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
