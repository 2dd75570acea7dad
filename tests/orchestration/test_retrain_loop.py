"""The retraining loop through the real Dagster definitions, registry and API."""

import threading
import time
from datetime import timedelta

import dagster as dg
import duckdb
import httpx
import pytest

from ml import registry
from ml.datasets import training_set
from ml.train import train_model
from orchestration.automation import retrain_decision
from orchestration.definitions import RETRAIN_JOB, build_definitions
from orchestration.instance import instance_for
from orchestration.pipeline import run_pipeline
from tests.conftest import DRIFT_PLAN
from tests.services import start_api_server, stop_process_group
from tests.test_cli import driftmart
from warehouse.publish import publish

pytestmark = pytest.mark.slow


def failed_checks(home) -> set[str]:
    with instance_for(home) as instance:
        graph = build_definitions(str(home.root)).resolve_asset_graph()
        failed = set()
        for check in graph.asset_check_keys:
            record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check]).get(check)
            if record is not None and record.evaluation is not None and not record.evaluation.passed:
                failed.add(f"{check.asset_key.to_user_string()}:{check.name}")
        return failed


def test_drift_checks_fail_on_drift_and_pass_without(built_home, calm_home):
    drift_failures = failed_checks(built_home)
    assert any(
        name.startswith("marts/fct_feature_drift:feature_drift_not_detected") for name in drift_failures
    )
    assert failed_checks(calm_home) == set()


def test_retrain_is_due_only_after_failed_checks(built_home, calm_home):
    decision = retrain_decision(built_home, registry_spec())
    assert decision.needed, decision.reason
    assert decision.drift_started_at == DRIFT_PLAN.drift_start
    calm = retrain_decision(calm_home, registry_spec())
    assert not calm.needed and "no retrain due" in calm.reason


def test_a_retrain_short_of_labels_waits_and_says_for_how_many(built_home, capsys):
    from dataclasses import replace

    from orchestration.cli import _retrain_if_due
    from warehouse.queries import labelled_count

    spec = registry_spec()
    due = retrain_decision(built_home, spec)
    with duckdb.connect(str(built_home.published), read_only=True) as connection:
        n_labelled = labelled_count(connection, spec, since=due.drift_started_at)
    assert n_labelled > 0
    wanting = replace(spec, retrain=replace(spec.retrain, min_labelled_rows=n_labelled + 1))
    waiting = retrain_decision(built_home, wanting)
    assert (waiting.needed, waiting.waiting_for_labels) == (False, True)
    assert (waiting.drift_started_at, waiting.trigger_window) == (due.drift_started_at, due.trigger_window)
    assert f"({n_labelled} labelled rows scored since" in waiting.reason
    assert f"retrain.min_labelled_rows is {n_labelled + 1}" in waiting.reason
    _retrain_if_due(built_home, wanting, None)  # no retrain job is run: it would fail short of labels
    assert capsys.readouterr().out == f"retrain: due, waiting for labels: {waiting.reason}\n"
    assert waiting.reason.startswith(f"{due.reason}: the retrain is due and waits for labels")
    assert [version.model_version for version in registry.list_versions(built_home, spec.model)] == [1]
    # Once as many labels as the policy asks for exist, the same drift is due.
    enough = replace(spec, retrain=replace(spec.retrain, min_labelled_rows=n_labelled))
    assert retrain_decision(built_home, enough).needed


def registry_spec():
    from ml.spec import load_spec

    return load_spec()


def sensor_result(home):
    definitions = build_definitions(str(home.root))
    sensor = definitions.resolve_sensor_def("drift_retrain_sensor")
    with instance_for(home) as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"driftmart": definitions.resources["driftmart"]}
        )
        return sensor(context)


def test_sensor_requests_one_retrain_per_drift_episode_and_the_job_promotes(built_home, home_copy):
    home = home_copy(built_home)
    request = sensor_result(home)
    assert isinstance(request, dg.RunRequest)
    # two consecutive drifted windows complete the streak: the window after the drift began
    second_window = DRIFT_PLAN.drift_start + timedelta(days=1)
    assert request.run_key == f"retrain:{second_window:%Y%m%dT%H%M%S}"
    outcome = run_pipeline(home, job_name=RETRAIN_JOB)
    assert outcome.success, outcome.failed_steps
    challenger = registry.get_version(home, "car_loan", 2)
    assert (challenger.trigger, challenger.status) == ("drift", "champion")
    assert challenger.validation["challenger"]["roc_auc"] > challenger.validation["champion"]["roc_auc"]
    assert [event["event"] for event in challenger.history] == ["registered", "promoted"]
    assert challenger.history[0]["evidence"]["trigger_window"]
    assert registry.get_version(home, "car_loan", 1).status == "retired"
    skipped = sensor_result(home)
    assert isinstance(skipped, dg.SkipReason)
    # after the next pipeline pass the registry is in the warehouse, with its evidence
    assert run_pipeline(home).success
    with duckdb.connect(str(home.published), read_only=True) as connection:
        rows = connection.execute(
            "select model_version, trigger, status from marts.dim_model_versions order by 1"
        ).fetchall()
        evidence = connection.execute(
            "select holdout_metric, holdout_champion_version, n_holdout_rows, holdout_champion_score, "
            "holdout_challenger_score, decision_reason from marts.dim_model_versions where model_version = 2"
        ).fetchall()[0]
    assert rows == [(1, "initial", "retired"), (2, "drift", "champion")]
    metric, champion_version, n_holdout, champion_score, challenger_score, reason = evidence
    assert (metric, champion_version) == ("roc_auc", 1)
    assert n_holdout == challenger.validation["n_holdout"]
    assert challenger_score == pytest.approx(challenger.validation["challenger"]["roc_auc"], rel=1e-12)
    assert challenger_score > champion_score
    assert reason == challenger.reason


def test_a_worse_challenger_is_rejected_with_the_reason(built_home, home_copy):
    home = home_copy(built_home)
    # Force a worse challenger: every label before the held-out newest rows is inverted in the
    # data it trains on; the held-out rows keep their true labels. The labels are changed in the
    # warehouse as a re-import would change them (a new ingest_seq), then published.
    with duckdb.connect(str(home.warehouse)) as connection:
        cutoff = connection.execute("select quantile_disc(scored_at, 0.7) from raw.inference_log").fetchall()[
            0
        ][0]
        connection.execute(
            """
            update raw.labels
            set label = case when label = '1' then '0' else '1' end, ingest_seq = nextval('raw.ingest_seq')
            where request_id in (select request_id from raw.inference_log where scored_at < ?)
            """,
            [cutoff],
        )
    publish(home)
    assert run_pipeline(home, job_name=RETRAIN_JOB).success
    challenger = registry.get_version(home, "car_loan", 2)
    assert challenger.status == "rejected"
    assert "does not beat the champion's" in challenger.reason
    assert registry.champion_version(home, "car_loan") == 1


def test_promotion_reaches_a_running_api_without_a_failed_request(trained_home, spec):
    server, base = start_api_server(trained_home)
    row = {name: (1.0 if kind == "numeric" else "salaried") for name, kind in spec.features.items()}
    statuses, versions, stop = [], [], threading.Event()
    seen_by_client: list[list[int]] = []  # each client's versions in the order it received them

    def client_loop():
        seen: list[int] = []
        seen_by_client.append(seen)
        with httpx.Client(base_url=base, timeout=10) as client:
            while not stop.is_set():
                response = client.post("/predict", json=row)
                statuses.append(response.status_code)
                versions.append(response.json().get("model_version"))
                seen.append(versions[-1])

    try:
        threads = [threading.Thread(target=client_loop) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        version = registry.register(trained_home, spec, train_model(spec, training_set(1500, seed=8)))
        registry.promote(
            trained_home, spec.model, version.model_version, actor="test", reason="test promotion"
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not versions or versions[-1] != 2):
            time.sleep(0.1)
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        stop.set()
        stop_process_group(server)
    assert statuses and set(statuses) == {200}, {code: statuses.count(code) for code in set(statuses)}
    assert versions[0] == 1 and versions[-1] == 2
    # No flapping back: once a client has been answered by v2, it is never answered by v1 again.
    for seen in seen_by_client:
        assert 2 in seen and set(seen[seen.index(2) :]) == {2}, seen


def test_rollback_cli_returns_to_the_previous_champion(trained_home, spec):
    version = registry.register(trained_home, spec, train_model(spec, training_set(1500, seed=8)))
    registry.promote(trained_home, spec.model, version.model_version, actor="test", reason="test")
    rolled = driftmart("rollback", home=trained_home)
    assert rolled.returncode == 0, rolled.stderr
    assert "champion is now v1 (was v2)" in rolled.stdout
    assert registry.champion_version(trained_home, spec.model) == 1
    with duckdb.connect(str(trained_home.warehouse), read_only=True) as connection:
        statuses = connection.execute(
            "select model_version, status from raw.model_registry order by 1"
        ).fetchall()
    assert statuses == [(1, "champion"), (2, "retired")]
    again = driftmart("rollback", home=trained_home)
    assert again.returncode == 0 and "champion is now v2 (was v1)" in again.stdout


def test_rollback_shows_in_the_marts_and_the_exporter_at_once(built_home, home_copy, spec):
    from tests.observability.conftest import labels, scrape

    home = home_copy(built_home)
    version = registry.register(home, spec, train_model(spec, training_set(1500, seed=8)))
    registry.promote(home, spec.model, version.model_version, actor="test", reason="test")
    rolled = driftmart("rollback", home=home)
    assert rolled.returncode == 0, rolled.stderr
    assert "marts.dim_model_versions and the exporter show v1" in rolled.stdout
    # no `driftmart run` in between: the rollback itself republished
    with duckdb.connect(str(home.published), read_only=True) as connection:
        rows = connection.execute(
            "select model_version, status from marts.dim_model_versions order by 1"
        ).fetchall()
    assert rows == [(1, "champion"), (2, "retired")]
    champion = scrape(home)["driftmart_model_champion_version"]
    assert champion == {labels(model=spec.model): 1.0}
