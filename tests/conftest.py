"""Shared fixtures: temporary homes, the demo spec, a trained model, and one built warehouse per
session (each `dbt build` costs ~10 s, so tests that only read the marts share it)."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest

from ml import registry
from ml.datasets import DriftPlan, generate, training_set
from ml.spec import ModelSpec, load_spec
from ml.train import train_model
from tests.services import IN_CI, throwaway_postgres
from warehouse.home import Home

__all__ = ["IN_CI"]

# A suite started in the background by a shell without job control inherits SIGINT ignored, and so
# would every server it starts (Python keeps an ignored SIGINT): restore it, so the servers the tests
# start stop on Ctrl-C (SIGINT) as they do in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
REPO = Path(__file__).resolve().parents[1]
# The cross-engine files share the session's Spark and PostgreSQL homes (minutes to build).
SHARED_SERVICE_TESTS = "tests/crossdb/"


def pytest_xdist_make_scheduler(config, log):
    """Under `pytest -n N --dist loadfile` (make test), each test file runs whole on one worker, so
    its module fixtures are built once, and the cross-engine files all run on the same worker."""
    from xdist.scheduler import LoadFileScheduling

    class FileOrSharedServices(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return SHARED_SERVICE_TESTS if path.startswith(SHARED_SERVICE_TESTS) else path

    return FileOrSharedServices(config, log) if config.getvalue("dist") == "loadfile" else None


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL cluster per session; yields its libpq environment (PGHOST …).
    Tests that need a database of their own create one in it."""
    with throwaway_postgres() as environment:
        yield environment


@pytest.fixture(scope="session")
def parity_files(tmp_path_factory):
    """The parity case's files (tests/crossdb/parity.py): a spec, a reference and two batches."""
    from tests.crossdb.parity import write_parity_case

    return write_parity_case(tmp_path_factory.mktemp("parity-case"))


@pytest.fixture(scope="session")
def duckdb_parity_home(tmp_path_factory, parity_files) -> Home:
    """Both batches of the parity case imported and run on DuckDB: the reference every other target
    and every interrupted-and-resumed run must equal."""
    from tests.crossdb.parity import build_parity_case

    return build_parity_case(parity_files, Home.resolve(tmp_path_factory.mktemp("parity-duckdb")), "duckdb")


@pytest.fixture(scope="session")
def task_parity_files(tmp_path_factory):
    """A multiclass and a regression model's files (tests/crossdb/parity.py, tests/test_tasks.py)."""
    from tests.crossdb.parity import write_task_parity_case

    return write_task_parity_case(tmp_path_factory.mktemp("task-parity-case"))


@pytest.fixture(scope="session")
def spark_parity_home(tmp_path_factory, parity_files, task_parity_files) -> Home:
    """The Spark build of the parity case (both batches) and of the task models, in one `driftmart
    run`: a Spark build costs minutes, so the two parity suites share it."""
    from tests.crossdb.parity import import_batch, import_task_case, run_case
    from tests.services import require_service
    from warehouse.targets import TargetError
    from warehouse.targets.spark import SparkTarget

    home = Home.resolve(tmp_path_factory.mktemp("parity-spark"))
    try:
        SparkTarget().check_available(home)
        available, reason = True, ""
    except TargetError as error:
        available, reason = False, str(error)
    require_service(available, reason)
    env = {"DRIFTMART_TARGET": "spark"}
    for batch in (1, 2):
        import_batch(parity_files, home, batch, env)
    import_task_case(task_parity_files, home, env)
    run_case(parity_files, home, env)
    return home


@pytest.fixture(scope="session")
def spec() -> ModelSpec:
    return load_spec()


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory, spec: ModelSpec) -> Home:
    """A home with v1 of the demo model registered; copy it, never write to it."""
    home = Home.resolve(tmp_path_factory.mktemp("trained-template")).ensure()
    registry.register(home, spec, train_model(spec, training_set()), trigger="initial")
    return home


@pytest.fixture
def trained_home(tmp_path: Path, trained_template: Home) -> Home:
    """A fresh home of this test's own, with v1 of the demo model as champion."""
    root = tmp_path / "home"
    shutil.copytree(trained_template.root, root)
    return Home.resolve(root)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home.resolve(tmp_path / "home").ensure()


def traffic_records(frame: pd.DataFrame, target: str) -> list[dict]:
    """Generated rows as JSON request bodies (timestamps as ISO strings, no label)."""
    payload = frame.drop(columns=[target])
    payload = payload.assign(scored_at=payload["scored_at"].map(lambda ts: ts.isoformat()))
    return json.loads(payload.to_json(orient="records"))


def feedback_records(frame: pd.DataFrame, spec: ModelSpec) -> list[dict]:
    """Every generated row's label as a /feedback body."""
    return [
        {"request_id": r, "label": int(y)} for r, y in zip(frame[spec.id], frame[spec.target], strict=True)
    ]


# The shared drift case: car prices rise and repayment behaviour changes from day 3 of 6.
DRIFT_PLAN = DriftPlan("market_shift", start=pd.Timestamp("2026-03-01").to_pydatetime(), days=6, drift_day=3)
ROWS_PER_DAY = 300


def build_home(
    root: Path, template: Home, spec: ModelSpec, scenario: str, *, labelled_days: int | None = None
) -> Home:
    """Copy the trained template, send DRIFT_PLAN's days of `scenario` traffic and its labels (of
    the first `labelled_days` days only, when given) through the API, and run the pipeline once in
    Dagster (ingest, dbt build, publish)."""
    from fastapi.testclient import TestClient

    from ml.serving.app import create_app
    from orchestration.pipeline import run_pipeline

    shutil.copytree(template.root, root)
    home = Home.resolve(root)
    plan = DRIFT_PLAN
    traffic = generate(
        scenario,
        start=plan.start,
        days=plan.days,
        rows_per_day=ROWS_PER_DAY,
        drift_day=plan.drift_day,
        seed=3,
    )
    with TestClient(create_app(home, spec)) as client:
        for start in range(0, len(traffic), 500):
            chunk = traffic.iloc[start : start + 500]
            assert client.post("/predict/batch", json=traffic_records(chunk, spec.target)).status_code == 200
        if labelled_days is not None:
            traffic = traffic[traffic["scored_at"] < plan.start + pd.Timedelta(days=labelled_days)]
        assert client.post("/feedback", json=feedback_records(traffic, spec)).status_code == 200
    outcome = run_pipeline(home)
    assert outcome.success, outcome.failed_steps
    return home


@pytest.fixture(scope="session")
def built_home(tmp_path_factory: pytest.TempPathFactory, trained_template: Home, spec: ModelSpec) -> Home:
    """A home after one pipeline run on DRIFT_PLAN's market_shift traffic (drift in `car_value`
    from day 3 of 6, labels for every row). Read-only for tests: copy it to change it."""
    return build_home(tmp_path_factory.mktemp("built") / "home", trained_template, spec, DRIFT_PLAN.scenario)


@pytest.fixture(scope="session")
def calm_home(tmp_path_factory: pytest.TempPathFactory, trained_template: Home, spec: ModelSpec) -> Home:
    """Like built_home, with no drift at all. Read-only for tests."""
    return build_home(tmp_path_factory.mktemp("calm") / "home", trained_template, spec, "no_drift")


@pytest.fixture
def home_copy(tmp_path: Path):
    """Copy a (read-only) session home into this test's own folder: `home_copy(built_home)`."""

    def copy(source: Home) -> Home:
        root = tmp_path / "home-copy"
        shutil.copytree(source.root, root)
        return Home.resolve(root)

    return copy


def parse_grids(output: str) -> list[tuple[list[str], list[dict[str, str]]]]:
    """Every window × feature grid the demo printed: (header, rows as {column: cell}); the tables of
    degraded performance that may follow a grid are not grids."""
    lines, grids = output.splitlines(), []
    for index, line in enumerate(lines):
        if not line.startswith("window ") or "drifted_share" not in line:
            continue
        header, rows = line.split(), []
        for row in lines[index + 2 :]:
            if not row[:4].isdigit():
                break
            rows.append(dict(zip(header, row.split(), strict=True)))
        grids.append((header, rows))
    return grids
