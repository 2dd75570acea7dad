import json

import pytest
from fastapi.testclient import TestClient

from ml import registry
from ml.datasets import generate
from ml.serving.app import create_app
from tests.conftest import traffic_records
from warehouse.landing import list_segments


@pytest.fixture
def rows(spec):
    return traffic_records(generate("no_drift", days=1, rows_per_day=20, seed=2), spec.target)


@pytest.fixture
def client(trained_home, spec):
    with TestClient(create_app(trained_home, spec, max_body_bytes=64 * 1024, max_batch=50)) as client:
        yield client


def landed(home, stream="inference"):
    return [
        json.loads(line)
        for path in list_segments(home.landing, stream)
        for line in path.read_text().splitlines()
    ]


def test_predict_answers_and_logs_before_answering(client, trained_home, rows):
    response = client.post("/predict", json=rows[0])
    assert response.status_code == 200
    body = response.json()
    assert body["request_id"] == rows[0]["request_id"]
    assert body["model_version"] == 1
    assert body["prediction"] in (0, 1)
    assert 0.0 <= body["probability"] <= 1.0
    (record,) = landed(trained_home)
    assert record["request_id"] == rows[0]["request_id"]
    assert record["features"]["car_value"] == rows[0]["car_value"]
    assert record["scored_at"].startswith(rows[0]["scored_at"][:19])


def test_batch_is_answered_in_order_and_ids_are_generated(client, trained_home, rows):
    rows[1].pop("request_id")
    response = client.post("/predict/batch", json=rows)
    assert response.status_code == 200
    answers = response.json()
    assert [a["request_id"] for a in answers][:1] == [rows[0]["request_id"]]
    assert len(answers[1]["request_id"]) == 32
    assert [a["request_id"] for a in answers][2:] == [r["request_id"] for r in rows[2:]]
    assert len(landed(trained_home)) == len(rows)


def test_null_is_a_missing_value_and_unseen_category_is_valid(client, rows):
    row = {**rows[0], "credit_score": None, "region": "atlantis"}
    assert client.post("/predict", json=row).status_code == 200


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda r: r.pop("car_value"), "car_value", "Field required"),
        (lambda r: r.update(car_value="cheap"), "car_value", "number"),
        (lambda r: r.update(car_value=True), "car_value", "number"),
        (lambda r: r.update(region=3), "region", "string"),
        (lambda r: r.update(colour="blue"), "colour", "Extra inputs are not permitted"),
        (lambda r: r.update(request_id=""), "request_id", "at least 1 character"),
    ],
)
def test_invalid_request_is_422_naming_the_field(client, rows, change, field, message):
    row = dict(rows[0])
    change(row)
    response = client.post("/predict", json=row)
    assert response.status_code == 422
    body = response.json()
    assert field in body["error"]
    assert any(item["field"] == field and message in item["message"] for item in body["fields"])


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(client, rows, token):
    text = json.dumps(rows[0]).replace(json.dumps(rows[0]["car_value"]), token, 1)
    response = client.post("/predict", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "car_value" in response.json()["error"]


def test_wrong_shapes_empty_and_oversized_batches(client, rows, trained_home):
    assert client.post("/predict", json=[rows[0]]).status_code == 422
    empty = client.post("/predict/batch", json=[])
    assert empty.status_code == 422 and "empty" in empty.json()["error"]
    too_many = client.post("/predict/batch", json=rows * 3)
    assert too_many.status_code == 413 and "limit of 50" in too_many.json()["error"]
    huge = client.post(
        "/predict/batch", content=b"[" + b" " * 70_000 + b"]", headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413
    bad_row = client.post("/predict/batch", json=[rows[0], {**rows[1], "car_value": "x"}])
    assert bad_row.status_code == 422 and bad_row.json()["fields"][0]["field"] == "1.car_value"
    assert landed(trained_home) == []  # nothing of a refused request is logged


def test_feedback_single_and_list(client, trained_home):
    assert client.post("/feedback", json={"request_id": "a", "label": 1}).json() == {"accepted": 1}
    assert client.post(
        "/feedback", json=[{"request_id": "b", "label": "0"}, {"request_id": "c", "label": 0}]
    ).json() == {"accepted": 2}
    assert client.post("/feedback", json={"request_id": "d"}).status_code == 422
    assert [r["request_id"] for r in landed(trained_home, "feedback")] == ["a", "b", "c"]


def test_model_health_and_metrics(client, spec, rows):
    assert client.get("/model").json() == {
        "model": "car_loan",
        "model_version": 1,
        "features": spec.features,
        "task": "binary",
        "estimator": "LogisticRegression",
    }
    assert client.get("/health").json()["status"] == "ok"
    client.post("/predict", json=rows[0])
    text = client.get("/metrics").text
    assert 'driftmart_api_requests_total{endpoint="/predict",status="200"} 1.0' in text
    assert "driftmart_api_predictions_total 1.0" in text


def test_new_champion_is_picked_up_and_a_tampered_one_is_not(trained_home, spec, rows, monkeypatch):
    from ml.datasets import training_set
    from ml.serving import app as app_module
    from ml.train import train_model

    monkeypatch.setattr(app_module, "CHAMPION_CHECK_SECONDS", 0.0)
    with TestClient(create_app(trained_home, spec)) as client:
        version = registry.register(trained_home, spec, train_model(spec, training_set(800, seed=5)))
        artifact = registry.version_dir(trained_home, spec.model, version.model_version) / registry.ARTIFACT
        artifact.write_bytes(artifact.read_bytes() + b"tampered")
        (trained_home.models / spec.model / registry.CHAMPION).write_text("2\n")
        assert client.post("/predict", json=rows[0]).json()["model_version"] == 1
        artifact.write_bytes(artifact.read_bytes()[: -len(b"tampered")])
        assert client.post("/predict", json=rows[1]).json()["model_version"] == 2


def test_a_failed_durable_write_is_a_503_and_nothing_is_acknowledged(client, trained_home, rows, monkeypatch):
    import errno
    import os

    from warehouse import landing

    real_write = os.write

    def disk_full(descriptor, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(landing.os, "write", disk_full)
    refused = client.post("/predict", json=rows[0])
    assert refused.status_code == 503
    assert "could not be logged durably" in refused.json()["error"]
    monkeypatch.setattr(landing.os, "write", real_write)
    assert client.post("/predict", json=rows[1]).status_code == 200
    assert [record["request_id"] for record in landed(trained_home)] == [rows[1]["request_id"]]


def test_request_metrics_label_the_route_not_the_raw_path(client, rows):
    for path in ("/no-such-page", "/random/abc123", "/predict/../etc"):
        assert client.get(path).status_code == 404
    client.post("/predict", json=rows[0])
    text = client.get("/metrics").text
    labels = {
        line.split("{", 1)[1].split("}", 1)[0]
        for line in text.splitlines()
        if line.startswith("driftmart_api_requests_total{")
    }
    assert 'endpoint="(unmatched)",status="404"' in labels
    assert 'endpoint="/predict",status="200"' in labels
    assert not any("no-such-page" in label or "abc123" in label for label in labels)


def test_driftmart_serve_prints_its_url_and_an_access_log_at_info(trained_home, tmp_path, spec):
    """`driftmart serve` says where it listens and logs every request (default --log-level info)."""
    import subprocess
    import time

    import httpx

    from tests.services import DRIFTMART, free_port, stop_process_group, wait_until_answering

    port, log = free_port(), tmp_path / "serve.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [DRIFTMART, "--home", str(trained_home.root), "serve", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_answering(
            server, f"http://127.0.0.1:{port}/health", 60, "driftmart serve did not come up", log.read_text
        )
        row = {name: (1.0 if kind == "numeric" else "salaried") for name, kind in spec.features.items()}
        assert httpx.post(f"http://127.0.0.1:{port}/predict", json=row, timeout=10).status_code == 200
        time.sleep(0.3)
    finally:
        stop_process_group(server)
    printed = log.read_text()
    assert f"driftmart: serving {spec.model} from {trained_home.root} on http://127.0.0.1:{port}" in printed
    assert '"POST /predict HTTP/1.1" 200' in printed


def test_the_evidently_ui_the_demo_suggests_does_not_take_the_apis_port(tmp_path):
    from ml.reports import EVIDENTLY_UI_PORT, evidently_ui_command
    from orchestration.cli import build_parser

    api_port = build_parser().parse_args(["serve"]).port
    evidently_default = 8000  # `evidently ui --help`: Service port [default: 8000]
    assert EVIDENTLY_UI_PORT not in (api_port, evidently_default)
    assert evidently_ui_command(tmp_path) == f"evidently ui --workspace {tmp_path} --port {EVIDENTLY_UI_PORT}"


def test_segment_columns_are_optional_fields_logged_beside_the_features(trained_home, spec, rows):
    """A spec's `segments` columns that are not features are optional request fields (text, a
    whole number, a boolean), logged as text for segment drift; a feature that is a segment
    column is logged from the features. A nested value is a 422 naming the field."""
    from dataclasses import replace

    import duckdb

    from tests.warehouse.test_landing_ingest import run_ingest

    segmented = replace(spec, segments=("branch", "region"))
    with TestClient(create_app(trained_home, segmented)) as client:
        assert client.post("/predict", json={**rows[0], "branch": 7}).status_code == 200
        assert client.post("/predict", json=rows[1]).status_code == 200
        refused = client.post("/predict", json={**rows[2], "branch": {"id": 7}})
        assert refused.status_code == 422
        assert "branch" in refused.text
    run_ingest(trained_home, segmented)
    with duckdb.connect(str(trained_home.warehouse), read_only=True) as connection:
        logged = dict(
            connection.execute("select request_id, segment_values from raw.inference_log").fetchall()
        )
    assert logged[rows[0]["request_id"]] == {"branch": "7", "region": rows[0]["region"]}
    assert logged[rows[1]["request_id"]] == {"branch": None, "region": rows[1]["region"]}
