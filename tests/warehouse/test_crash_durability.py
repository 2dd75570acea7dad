"""Durability under a crash (issue 6): a real `driftmart serve` process is killed with SIGKILL while
8 clients send predictions; after a restart, the clients retry what was not acknowledged (and some
of what was: retries of lost answers), and one ingest must hold every acknowledged request exactly
once, with nothing quarantined but torn lines."""

from __future__ import annotations

import os
import signal
import threading
import time

import duckdb
import httpx
import pytest

from ml.datasets import generate
from tests.conftest import traffic_records
from tests.services import start_api_server, stop_process_group
from warehouse.connection import warehouse_writer
from warehouse.ingest import ingest

pytestmark = pytest.mark.slow

CLIENTS = 8


class Client(threading.Thread):
    """Sends its own request ids in order until the server goes away; remembers what was acked."""

    def __init__(self, number, base, rows):
        super().__init__(daemon=True)
        self.number, self.base, self.rows = number, base, rows
        self.acknowledged: list[str] = []
        self.unanswered: list[str] = []
        self.errors: list[str] = []

    def run(self):
        with httpx.Client(base_url=self.base, timeout=10) as client:
            for index, row in enumerate(self.rows):
                request_id = f"c{self.number}-{index:05d}"
                try:
                    response = client.post("/predict", json={**row, "request_id": request_id})
                except httpx.TransportError:
                    self.unanswered.append(request_id)  # the crash: no answer, maybe logged
                    return
                if response.status_code != 200:
                    self.errors.append(f"{request_id}: {response.status_code} {response.text}")
                    return
                self.acknowledged.append(request_id)


def resend(base, rows_by_id):
    with httpx.Client(base_url=base, timeout=10) as client:
        for request_id, row in rows_by_id.items():
            response = client.post("/predict", json={**row, "request_id": request_id})
            assert response.status_code == 200, response.text


def test_sigkill_under_load_loses_no_acknowledged_request(trained_home, spec):
    rows = traffic_records(generate("no_drift", days=1, rows_per_day=4000, seed=5), spec.target)
    rows = [{key: value for key, value in row.items() if key != spec.timestamp} for row in rows]
    server, base = start_api_server(trained_home)
    clients = [Client(n, base, rows[n * 500 : (n + 1) * 500]) for n in range(CLIENTS)]
    try:
        for client in clients:
            client.start()
        deadline = time.monotonic() + 30
        while sum(len(client.acknowledged) for client in clients) < 400:  # mid-load, not at the end
            assert time.monotonic() < deadline, "the clients made no progress"
            time.sleep(0.02)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        for client in clients:
            client.join(timeout=30)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert not any(client.errors for client in clients), [client.errors for client in clients]
    acknowledged = [request_id for client in clients for request_id in client.acknowledged]
    unanswered = [request_id for client in clients for request_id in client.unanswered]
    assert len(acknowledged) >= 400 and all(len(client.rows) > len(client.acknowledged) for client in clients)

    row_of = {
        f"c{n}-{i:05d}": row for n in range(CLIENTS) for i, row in enumerate(rows[n * 500 : (n + 1) * 500])
    }
    restarted, base = start_api_server(trained_home)
    try:
        # Retries: the unanswered requests, plus the last 5 acknowledged ones of each client (a client
        # that lost the answer cannot tell), plus new traffic after the restart.
        retried = unanswered + [request_id for client in clients for request_id in client.acknowledged[-5:]]
        fresh = [f"c{n}-{499:05d}" for n in range(CLIENTS)]
        resend(base, {request_id: row_of[request_id] for request_id in retried + fresh})
    finally:
        stop_process_group(restarted)

    with warehouse_writer(trained_home) as connection:
        result = ingest(connection, trained_home, spec)
        stored = dict(
            connection.execute(
                "select request_id, count(*) from raw.inference_log where model_name = ? group by 1",
                [spec.model],
            ).fetchall()
        )
        reasons = [reason for (reason,) in connection.execute("select reason from raw.quarantine").fetchall()]
    expected = set(acknowledged) | set(retried) | set(fresh)
    assert set(stored) == expected
    assert set(stored.values()) == {1}, "a request stored more than once"
    assert result.duplicates >= len(retried) - len(unanswered)  # retries were recognised, not re-stored
    assert all(reason.startswith("torn line") for reason in reasons), reasons
    with duckdb.connect(str(trained_home.warehouse), read_only=True) as connection:
        (versions,) = connection.execute(
            "select count(distinct model_version) from raw.inference_log"
        ).fetchone()
    assert versions == 1
