"""deploy/dagster/: the production instance, the workspace and the scale-out examples.

Each file is checked with Dagster's own config schemas (no services needed); then the production
instance runs for real: PostgreSQL storage, `dagster-daemon run` and `dagster-webserver` as processes,
a run launched over GraphQL, dequeued by the daemon and materialised on the `postgres` target.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.config import PoolGranularity
from dagster._core.instance.ref import InstanceRef
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.workspace.load import location_origins_from_yaml_paths
from dagster._serdes import ConfigurableClassData

from ml.datasets import generate
from orchestration.definitions import PIPELINE_JOB, build_definitions
from orchestration.instance import INSTANCE_CONFIG
from orchestration.partitions import current_partition_key, window_partitions
from orchestration.resources import WAREHOUSE_WRITER_POOL
from tests.conftest import DRIFT_PLAN, REPO, traffic_records
from tests.services import free_port

DEPLOY = REPO / "deploy" / "dagster"
EXAMPLES = DEPLOY / "examples"
BIN = Path(sys.executable).parent
STORAGE_ENV = (
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)
FAKE_STORAGE = dict(zip(STORAGE_ENV, ("pg.internal", "5433", "dagster", "s3cret", "dagster"), strict=True))
CELERY_ENV = {"DAGSTER_CELERY_BROKER_URL": "amqp://u:p@rabbit//", "DAGSTER_CELERY_BACKEND_URL": "rpc://"}


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def class_config(data: ConfigurableClassData) -> tuple[type, dict[str, Any]]:
    """Import a configurable class named in instance config and validate its config against the
    class's own `config_type()` (what `rehydrate` does, without constructing it)."""
    klass = getattr(importlib.import_module(data.module_name), data.class_name)
    result = process_config(resolve_to_config_type(klass.config_type()), data.config_dict)
    assert result.success, [error.message for error in result.errors]
    return klass, result.value


def production_ref(tmp_path: Path, overrides: Mapping[str, Any] | None = None) -> InstanceRef:
    """The production dagster.yaml (merged with `overrides`, as an example says to) in a DAGSTER_HOME,
    validated against Dagster's instance schema by `InstanceRef.from_dir`."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    shutil.copy(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")
    return InstanceRef.from_dir(str(dagster_home), overrides=dict(overrides or {}))


@pytest.fixture
def storage_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in {**FAKE_STORAGE, **CELERY_ENV, "DRIFTMART_IMAGE": "driftmart:1.0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))


def test_production_instance_uses_postgres_storage_from_the_environment(storage_env, tmp_path):
    ref = production_ref(tmp_path)
    assert (ref.storage_data.module_name, ref.storage_data.class_name) == (
        "dagster_postgres",
        "DagsterPostgresStorage",
    )
    _, storage = class_config(ref.storage_data)
    assert storage["postgres_db"] == {
        "hostname": "pg.internal",
        "port": 5433,
        "username": "dagster",
        "password": "s3cret",
        "db_name": "dagster",
        "params": {},
        "scheme": "postgresql+psycopg2",
    }
    # Every connection setting is an env reference: no password (nor host) is written in the file.
    written = load_yaml(DEPLOY / "dagster.yaml")["storage"]["postgres"]["postgres_db"]
    settings = {key: value for key, value in written.items() if key != "scheme"}
    assert all(set(value) == {"env"} for value in settings.values()), written
    assert {value["env"] for value in settings.values()} == set(STORAGE_ENV)


def test_production_instance_queues_runs_and_gives_the_warehouse_writers_one_slot(storage_env, tmp_path):
    # Storage swapped for SQLite so a real DagsterInstance is built without a database server; every
    # other setting is the production file's.
    sqlite = {"storage": {"sqlite": {"base_dir": str(tmp_path / "sqlite")}}}
    with dg.DagsterInstance.from_ref(production_ref(tmp_path, sqlite)) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        assert instance.run_monitoring_enabled
        assert not instance.telemetry_enabled
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 1
        assert pools.pool_granularity == PoolGranularity.OP
        # The same semantics as the home's own instance that `driftmart run` / `ui` write.
        local = yaml.safe_load(INSTANCE_CONFIG)["concurrency"]["pools"]
        assert local["default_limit"] == pools.default_pool_limit
        assert Path(instance.root_directory) == tmp_path / "dagster_home"
        # The pool the warehouse-writing assets use gets the one slot on first use.
        instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_WRITER_POOL)
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_WRITER_POOL).slot_count == 1


def test_workspace_loads_the_definitions_driftmart_ui_serves(monkeypatch, tmp_path):
    from dagster._core.workspace.autodiscovery import loadable_targets_from_python_module

    from orchestration import cli

    (origin,) = location_origins_from_yaml_paths([str(DEPLOY / "workspace.yaml")])
    target = origin.loadable_target_origin
    assert origin.location_name == "driftmart"
    # What `driftmart ui` starts (its server stubbed): `dagster dev -m <module>` without an attribute,
    # which serves the module's one Definitions, found as Dagster finds it.
    started: dict[str, Any] = {}
    monkeypatch.setattr(
        cli, "_run_as_server", lambda command, environment: started.update(command=command) or 0
    )
    monkeypatch.setenv("DRIFTMART_HOME", str(tmp_path / "ui_home"))
    assert cli.main(["ui", "--port", "3999"]) == 0
    command = started["command"]
    assert command[1] == "dev", command
    assert not {"-a", "--attribute", "-f", "-w"} & set(command), command
    module = command[command.index("-m") + 1]
    (loadable,) = loadable_targets_from_python_module(module, working_directory=None)
    assert (target.module_name, target.attribute) == (module, loadable.attribute)
    definitions = getattr(importlib.import_module(target.module_name), target.attribute)
    assert definitions is loadable.target_definition
    assert isinstance(definitions, dg.Definitions)
    assert definitions.resolve_job_def(PIPELINE_JOB).name == PIPELINE_JOB


def test_multiprocess_example_is_valid_run_config_of_the_pipeline_job():
    run_config = load_yaml(EXAMPLES / "multiprocess.run_config.yaml")
    job = build_definitions().resolve_job_def(PIPELINE_JOB)
    resolved = dg.validate_run_config(job, run_config)
    assert resolved["execution"]["multi_or_in_process_executor"]["multiprocess"]["max_concurrent"] == 4


def commented_python(path: Path) -> str:
    """The Python snippet of a YAML example's comment (indented ten spaces after `#`, before `2.`)."""
    head = path.read_text().split("#   2.")[0]
    prefix = "#" + " " * 10
    return "\n".join(line.removeprefix(prefix) for line in head.splitlines() if line.startswith(prefix))


def test_celery_executor_example_configures_the_documented_celery_job(storage_env):
    from dagster_celery import celery_executor
    from dagster_celery.cli import get_validated_config

    path = EXAMPLES / "celery.run_config.yaml"
    namespace: dict[str, Any] = {}
    exec(compile(commented_python(path), str(path), "exec"), namespace)  # the snippet users copy
    job = namespace["defs"].resolve_job_def(PIPELINE_JOB)
    assert job.executor_def is celery_executor
    resolved = dg.validate_run_config(job, load_yaml(path))
    assert resolved["execution"]["celery"]["broker"] == CELERY_ENV["DAGSTER_CELERY_BROKER_URL"]
    # What `dagster-celery worker start -y <file>` reads: the broker URL resolved from the environment.
    worker = get_validated_config(str(path))
    assert worker["broker"] == CELERY_ENV["DAGSTER_CELERY_BROKER_URL"]
    assert worker["config_source"]["worker_prefetch_multiplier"] == 1


def test_celery_run_launcher_example_merges_into_the_production_instance(storage_env, tmp_path):
    from dagster_celery.launcher import CeleryRunLauncher

    ref = production_ref(tmp_path, load_yaml(EXAMPLES / "celery.dagster.yaml"))
    klass, config = class_config(ref.run_launcher_data)
    assert klass is CeleryRunLauncher
    assert config["broker"] == CELERY_ENV["DAGSTER_CELERY_BROKER_URL"]
    # Constructing it makes the Celery app without contacting the broker.
    launcher = ref.run_launcher_data.rehydrate(CeleryRunLauncher)
    assert launcher.broker == CELERY_ENV["DAGSTER_CELERY_BROKER_URL"]
    assert launcher.default_queue == "dagster"


def test_k8s_run_launcher_example_merges_into_the_production_instance(storage_env, tmp_path):
    from dagster_k8s import K8sRunLauncher

    ref = production_ref(tmp_path, load_yaml(EXAMPLES / "k8s.dagster.yaml"))
    klass, config = class_config(ref.run_launcher_data)  # not constructed: that loads a kube config
    assert klass is K8sRunLauncher
    assert config["job_image"] == "driftmart:1.0"
    assert "DRIFTMART_TARGET=postgres" in config["env_vars"]
    assert config["postgres_password_secret"] and config["env_secrets"]
    # Runs in pods find the instance through the same PostgreSQL storage.
    assert ref.storage_data.class_name == "DagsterPostgresStorage"


WAREHOUSE_WRITERS = {
    "raw_tables",
    "driftmart_dbt_assets",
    "marts__fct_multivariate_drift",
    "published__driftmart_duckdb",
}


@pytest.mark.parametrize("name", sorted(path.name for path in EXAMPLES.glob("*.yaml")))
def test_every_example_keeps_the_warehouse_writers_to_one_slot(name, storage_env, tmp_path):
    """Under every example the steps that write the warehouse stay in the one-slot pool: an instance
    example replaces only the run launcher (the production concurrency settings stay), a run config
    example only the executor (the writers' pool is the steps' own)."""
    example = load_yaml(EXAMPLES / name)
    production = load_yaml(DEPLOY / "dagster.yaml")
    if name.endswith(".dagster.yaml"):
        assert set(example) == {"run_launcher"}, name
        ref = production_ref(tmp_path, example)
        assert ref.settings["concurrency"] == production["concurrency"]
        assert ref.settings["concurrency"]["pools"]["default_limit"] == 1
        assert ref.run_launcher_data.class_name == example["run_launcher"]["class"]
    else:
        assert set(example) == {"execution"}, name
        job = build_definitions().resolve_job_def(PIPELINE_JOB)
        if name.startswith("celery"):  # run config of the documented celery job
            path = EXAMPLES / name
            namespace: dict[str, Any] = {}
            exec(compile(commented_python(path), str(path), "exec"), namespace)
            job = namespace["defs"].resolve_job_def(PIPELINE_JOB)
        dg.validate_run_config(job, example)
        pools = {node.name: node.pool for node in job.graph.node_defs}
        assert {node for node, pool in pools.items() if pool == WAREHOUSE_WRITER_POOL} == WAREHOUSE_WRITERS
    local = yaml.safe_load(INSTANCE_CONFIG)["concurrency"]["pools"]
    assert local["default_limit"] == production["concurrency"]["pools"]["default_limit"] == 1


# --- the production instance, for real -------------------------------------------------------------

LAUNCH_RUN = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
  }
}"""
RUN_STATUS = "query ($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } } }"
SENSORS = ("landed_data_sensor", "drift_retrain_sensor")
SENSOR_ID = (
    "query ($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) { ... on Sensor { id } } }"
)
STOP_SENSOR = (
    "mutation ($id: String) { stopSensor(id: $id) { ... on StopSensorMutationResult "
    "{ instigationState { status } } ... on PythonError { message } } }"
)
JOB_NAME = (
    "query ($selector: PipelineSelector!) { pipelineOrError(params: $selector) { ... on Pipeline { name } } }"
)
SELECTOR = {
    "repositoryLocationName": "driftmart",
    "repositoryName": "__repository__",
    "pipelineName": PIPELINE_JOB,
}


def graphql(base: str, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


def send_traffic(home, spec) -> None:
    """Three days of DRIFT_PLAN's traffic and its labels through the API into the landing zone."""
    from fastapi.testclient import TestClient

    from ml.serving.app import create_app

    traffic = generate(DRIFT_PLAN.scenario, start=DRIFT_PLAN.start, days=3, rows_per_day=150, drift_day=2)
    with TestClient(create_app(home, spec)) as client:
        assert client.post("/predict/batch", json=traffic_records(traffic, spec.target)).status_code == 200
        labels = [
            {"request_id": r, "label": int(y)}
            for r, y in zip(traffic[spec.id], traffic[spec.target], strict=True)
        ]
        assert client.post("/feedback", json=labels).status_code == 200


@contextlib.contextmanager
def postgres_databases(server: Mapping[str, str], *names: str) -> Iterator[None]:
    import psycopg2

    connection = psycopg2.connect(**libpq(server))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(f"create database {name}")
        yield
    finally:
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(f"drop database if exists {name} with (force)")
        connection.close()


def libpq(server: Mapping[str, str], database: str | None = None) -> dict[str, str]:
    return {
        "host": server["PGHOST"],
        "port": server["PGPORT"],
        "user": server["PGUSER"],
        "password": server["PGPASSWORD"],
        "dbname": database or server["PGDATABASE"],
    }


def query(server: Mapping[str, str], database: str, sql: str, *parameters: object) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(**libpq(server, database)) as connection, connection.cursor() as cursor:
        cursor.execute(sql, parameters)
        rows = cursor.fetchall()
    connection.close()
    return rows


@contextlib.contextmanager
def service(
    command: list[str], environment: Mapping[str, str], log: Path, cwd: Path
) -> Iterator[subprocess.Popen]:
    """A real process in its own process group, stopped (the whole group) on exit."""
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            env=dict(environment),
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            stop_process_group(process)


def stop_process_group(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM the group (the service, its code server, run workers, dbt), give it `grace` seconds,
    then SIGKILL whatever is left: a code server may outlive its parent while a run winds down."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def wait_for(
    condition: Callable[[], bool],
    process: subprocess.Popen,
    log: Path,
    seconds: float,
    what: str,
    interval: float = 1,
) -> None:
    """Poll `condition` (a GraphQL call that may not answer yet) until true, while `process` (writing
    `log`) lives."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return
        except (httpx.TransportError, httpx.HTTPStatusError, KeyError, TypeError, ValueError):
            pass
        assert process.poll() is None, f"{process.args[0]} exited while waiting for {what}\n{logs(log)}"
        assert time.monotonic() < deadline, f"waited {seconds:.0f} s for {what}\n{logs(log)}"
        time.sleep(interval)


def logs(*paths: Path) -> str:
    return "\n".join(f"--- {path.name}\n{path.read_text()[-4000:]}" for path in paths if path.exists())


@pytest.mark.slow
def test_daemon_dequeues_a_pipeline_run_onto_the_postgres_target(
    postgres_server, trained_home, spec, tmp_path, monkeypatch
):
    suffix = uuid.uuid4().hex[:8]
    storage_db, warehouse_db = f"dagster_{suffix}", f"driftmart_{suffix}"
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")  # verbatim
    environment = {
        **{
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("DAGSTER_", "DRIFTMART_"))
        },
        **postgres_server,
        "PGDATABASE": warehouse_db,
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_PG_HOST": postgres_server["PGHOST"],
        "DAGSTER_PG_PORT": postgres_server["PGPORT"],
        "DAGSTER_PG_USER": postgres_server["PGUSER"],
        "DAGSTER_PG_PASSWORD": postgres_server["PGPASSWORD"],
        "DAGSTER_PG_DB": storage_db,
        "DRIFTMART_HOME": str(trained_home.root),
        "DRIFTMART_TARGET": "postgres",
    }
    workspace = str(DEPLOY / "workspace.yaml")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon_log, webserver_log = tmp_path / "daemon.log", tmp_path / "webserver.log"
    webserver_command = [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(port)]
    daemon_command = [str(BIN / "dagster-daemon"), "run", "-w", workspace]
    with postgres_databases(postgres_server, storage_db, warehouse_db):
        # What `dagster instance migrate` does before a deployment starts: the verbatim dagster.yaml
        # builds a real instance on PostgreSQL and creates its tables (not both services at once).
        for name in (*STORAGE_ENV, "DAGSTER_HOME"):
            monkeypatch.setenv(name, environment[name])
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        with (
            service(webserver_command, environment, webserver_log, tmp_path) as webserver,
            service(daemon_command, environment, daemon_log, tmp_path) as daemon,
        ):
            wait_for(
                lambda: (
                    graphql(base, JOB_NAME, {"selector": SELECTOR})["pipelineOrError"].get("name")
                    == PIPELINE_JOB
                ),
                webserver,
                webserver_log,
                120,
                "the webserver to load the code location",
            )
            # The landing zone is still empty, so a sensor tick so far skipped. Stop the landing sensor
            # (it would launch a pipeline run of its own for the rows sent next) and the retrain sensor,
            # so that the daemon has exactly this test's run to dequeue.
            for sensor in SENSORS:
                selector = {key: SELECTOR[key] for key in ("repositoryLocationName", "repositoryName")}
                found = graphql(base, SENSOR_ID, {"selector": {**selector, "sensorName": sensor}})
                stopped = graphql(base, STOP_SENSOR, {"id": found["sensorOrError"]["id"]})["stopSensor"]
                assert stopped["instigationState"]["status"] == "STOPPED", stopped
            send_traffic(trained_home, spec)

            # In-process execution: one run worker instead of a process (and an import) per step.
            partition = current_partition_key(window_partitions(spec))
            params = {
                "selector": SELECTOR,
                "runConfigData": {"execution": {"config": {"in_process": {}}}},
                "mode": "default",
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
            }
            launched = graphql(base, LAUNCH_RUN, {"params": params})["launchRun"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            run_id = launched["run"]["runId"]
            # The queued run coordinator holds every run until the daemon dequeues and launches it.
            assert launched["run"]["status"] == "QUEUED"
            status = {}

            def finished() -> bool:
                status["run"] = graphql(base, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
                return status["run"] in ("SUCCESS", "FAILURE", "CANCELED")

            wait_for(finished, daemon, daemon_log, 240, f"run {run_id} to finish", interval=2)
            assert status["run"] == "SUCCESS", f"run {run_id}: {status}\n" + logs(daemon_log, webserver_log)

        # The run's record and its event log are in PostgreSQL, dequeued by the daemon.
        assert query(
            postgres_server, storage_db, "select pipeline_name, status from runs where run_id = %s", run_id
        ) == [(PIPELINE_JOB, "SUCCESS")]
        events = {
            row[0]
            for row in query(
                postgres_server,
                storage_db,
                "select distinct dagster_event_type from event_logs where run_id = %s",
                run_id,
            )
        }
        assert {
            "PIPELINE_ENQUEUED",
            "PIPELINE_STARTING",
            "PIPELINE_SUCCESS",
            "ASSET_MATERIALIZATION",
        } <= events
        # The warehouse writers' pool was created with its one slot, in the shared storage.
        assert query(
            postgres_server,
            storage_db,
            'select "limit" from concurrency_limits where concurrency_key = %s',
            WAREHOUSE_WRITER_POOL,
        ) == [(1,)]
        # dbt built the marts on PostgreSQL, and they were published to the home's DuckDB copy.
        [(drift_rows,)] = query(postgres_server, warehouse_db, "select count(*) from marts.fct_feature_drift")
        assert drift_rows > 0
        assert trained_home.published.exists()
