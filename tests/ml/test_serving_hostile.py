"""Hostile input against the model API (issue 6): never a 5xx, always a JSON error naming what was
wrong, nothing of a refused request logged. Hypothesis throws arbitrary JSON at the TestClient;
schemathesis drives a real uvicorn server from the app's own OpenAPI document."""

from __future__ import annotations

import json
import threading
import time

import hypothesis.strategies as st
import pytest
import schemathesis
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from ml.datasets import generate
from ml.serving.app import create_app
from tests.conftest import traffic_records
from tests.services import free_port
from warehouse.landing import list_segments

TOKEN = "s3cret-token-for-tests"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def landed_lines(home) -> int:
    return sum(len(path.read_bytes().splitlines()) for path in list_segments(home.landing, "inference"))


@pytest.fixture(scope="module")
def served(tmp_path_factory, trained_template):
    import shutil

    from warehouse.home import Home

    root = tmp_path_factory.mktemp("hostile") / "home"
    shutil.copytree(trained_template.root, root)
    home = Home.resolve(root)
    return home


@pytest.fixture(scope="module")
def client(served, spec):
    with TestClient(create_app(served, spec, max_body_bytes=64 * 1024, max_batch=50)) as client:
        yield client


@pytest.fixture(scope="module")
def valid_row(spec):
    return traffic_records(generate("no_drift", days=1, rows_per_day=1, seed=3), spec.target)[0]


def assert_clean_refusal_or_success(response, home, before: int, expected_rows: int) -> None:
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code == 200:
        assert landed_lines(home) == before + expected_rows
    else:
        assert 400 <= response.status_code < 500 and isinstance(body["error"], str) and body["error"]
        assert landed_lines(home) == before  # nothing of a refused request is logged


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values)
def test_any_json_body_is_answered_or_refused_cleanly(client, served, body):
    for path in ("/predict", "/predict/batch", "/feedback"):
        before = landed_lines(served)
        text = json.dumps(body, allow_nan=True)  # NaN/Infinity tokens included on purpose
        response = client.post(path, content=text, headers={"content-type": "application/json"})
        assert_clean_refusal_or_success(response, served, before, 1 if path == "/predict" else 0)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_feature_values_are_logged_or_refused_naming_the_field(client, served, spec, valid_row, data):
    """Each feature gets an arbitrary JSON value: a valid one is logged as given (null = missing), an
    invalid one is a 422 whose `fields` name exactly the bad features."""
    row = dict(valid_row)
    changed = data.draw(st.lists(st.sampled_from(list(spec.features)), unique=True, max_size=3))
    for name in changed:
        row[name] = data.draw(json_values, label=name)
    before = landed_lines(served)
    response = client.post(
        "/predict", content=json.dumps(row, allow_nan=True), headers={"content-type": "application/json"}
    )
    assert_clean_refusal_or_success(response, served, before, 1)
    if response.status_code == 422:
        named = {field["field"] for field in response.json()["fields"]}
        assert named and named <= set(changed), (named, changed)


def test_chunked_body_over_the_limit_is_413_without_content_length(client, served):
    before = landed_lines(served)

    def chunks():
        for _ in range(100):
            yield b" " * 1024  # 100 KiB in chunks; the limit is 64 KiB

    response = client.post("/predict/batch", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "limit of 65536 bytes" in response.json()["error"]
    assert landed_lines(served) == before


@pytest.mark.parametrize(
    "text",
    [
        '{"car_value": 1e999}',  # overflows to infinity
        "[1, 2",  # truncated JSON
        "\xff\xfe not utf-8",
        '{"scored_at": "0001-01-01T00:00:00+05:00"}',  # before year 1 once in UTC
    ],
)
def test_malformed_bodies_are_4xx(client, served, valid_row, text):
    body = text
    if text.startswith("{"):
        body = json.dumps({**valid_row, **json.loads(text.replace("1e999", '"__inf__"'))}).replace(
            '"__inf__"', "1e999"
        )
    before = landed_lines(served)
    response = client.post(
        "/predict", content=body.encode("latin-1"), headers={"content-type": "application/json"}
    )
    assert_clean_refusal_or_success(response, served, before, 1)
    assert response.status_code == 422


def test_bearer_token_guards_writes_and_leaves_health_open(served, spec, valid_row):
    with TestClient(create_app(served, spec, api_token=TOKEN)) as client:
        before = landed_lines(served)
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
            for path, body in (("/predict", valid_row), ("/predict/batch", [valid_row]), ("/feedback", {})):
                refused = client.post(path, json=body, headers=headers)
                assert refused.status_code == 401, (path, headers)
                assert refused.headers["www-authenticate"] == "Bearer"
                assert TOKEN not in refused.text
        assert landed_lines(served) == before
        allowed = client.post("/predict", json=valid_row, headers={"authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/model").status_code == 200


@pytest.fixture(scope="module")
def real_server(served, spec):
    """The app under a real uvicorn server in a thread, on a free localhost port."""
    port = free_port()
    app = create_app(served, spec, max_body_bytes=64 * 1024, max_batch=50)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_openapi_contract_holds_for_generated_requests(real_server, mode):
    """Schemathesis on every operation of the app's own OpenAPI document: no 5xx, responses match
    the documented schemas and status codes, and invalid data (negative mode) is rejected.
    (Its pytest plugin's `from_fixture` does not run under pytest 9, so the strategies are driven
    by Hypothesis directly.)"""
    # A batch over the documented maxItems is refused as too large (413), like an oversized body.
    config = SchemathesisConfig.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": [400, 413, 422]}}}
    )
    schema = schemathesis.openapi.from_url(f"{real_server}/openapi.json", config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.label for operation in operations} >= {"POST /predict", "POST /feedback"}
    for operation in operations:
        if mode == GenerationMode.NEGATIVE and operation.method.upper() == "GET":
            continue  # the GET operations take no input: there is nothing invalid to send

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            case.call_and_validate()

        check()


def test_the_token_is_never_logged(served, spec, valid_row, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(served, spec, api_token=TOKEN)) as client:
        client.post("/predict", json=valid_row, headers={"authorization": f"Bearer {TOKEN}"})
        client.post("/predict", json=valid_row, headers={"authorization": f"Bearer {TOKEN}x"})
        client.get("/metrics")
    assert caplog.records, "nothing was logged: the check would be vacuous"
    assert TOKEN not in caplog.text
    segments = list_segments(served.landing, "inference")
    assert all(TOKEN not in path.read_text() for path in segments)


def _upload_then_read(base_url: str, size: int, framing: str) -> tuple[int, dict[str, str], bytes]:
    """POST /predict/batch with `size` bytes of body written in 64 KiB pieces at a network's pace,
    all of it before reading the answer, as requests or curl (without Expect) do."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(base_url)
    framing_header = (
        f"Content-Length: {size}" if framing == "content-length" else "Transfer-Encoding: chunked"
    )
    head = (
        f"POST /predict/batch HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"{framing_header}\r\n\r\n"
    ).encode()
    piece = b" " * 65536
    with socket.create_connection((url.hostname, url.port), timeout=20) as connection:
        connection.sendall(head)
        for _ in range(size // len(piece)):
            connection.sendall(piece if framing == "content-length" else b"10000\r\n" + piece + b"\r\n")
            time.sleep(0.002)
        if framing == "chunked":
            connection.sendall(b"0\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode().lower().split(": ", 1) for line in header_block.split(b"\r\n") if line)
    return int(status_line.split()[1]), headers, payload


@pytest.mark.parametrize("size", [2 * 1024 * 1024, 20 * 1024 * 1024], ids=["2MB", "20MB"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_oversize_body_gets_a_readable_413_not_a_reset(real_server, served, size, framing):
    """A client that writes its whole body before it reads must get the documented 413, not
    "connection reset by peer" or "broken pipe": the server reads and discards what it refuses, then
    answers and closes after the response."""
    before = landed_lines(served)
    status, headers, payload = _upload_then_read(real_server, size, framing)
    assert status == 413
    assert headers["connection"] == "close"
    assert "limit of 65536 bytes" in json.loads(payload)["error"]
    assert landed_lines(served) == before
