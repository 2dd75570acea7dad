import json
import multiprocessing
import os
import signal

import duckdb
import pytest

from warehouse.connection import warehouse_writer
from warehouse.ingest import ingest
from warehouse.landing import LandingWriter, is_segment_live, list_segments, read_segment


def record(spec, request_id, **features):
    values = {name: (1.0 if kind == "numeric" else "a") for name, kind in spec.features.items()}
    values.update(features)
    return {
        "model": spec.model,
        "request_id": request_id,
        "model_version": 1,
        "scored_at": "2026-03-01T10:00:00",
        "received_at": "2026-03-01T10:00:01",
        "features": values,
        "prediction": 1,
        "probability": 0.7,
    }


def run_ingest(home, spec):
    with warehouse_writer(home) as connection:
        return ingest(connection, home, spec)


def query(home, sql):
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def test_each_line_is_loaded_exactly_once_across_runs(trained_home, spec):
    writer = LandingWriter(trained_home.landing, "inference")
    writer.append([record(spec, f"r{i}") for i in range(5)])
    first = run_ingest(trained_home, spec)  # the writer is alive: its segment stays open
    writer.append([record(spec, f"r{i}") for i in range(5, 8)])
    second = run_ingest(trained_home, spec)
    writer.close()
    third = run_ingest(trained_home, spec)
    fourth = run_ingest(trained_home, spec)
    assert (first.inference_rows, second.inference_rows, third.inference_rows, fourth.inference_rows) == (
        5,
        3,
        0,
        0,
    )
    assert query(trained_home, "select count(*), count(distinct request_id) from raw.inference_log") == [
        (8, 8)
    ]
    assert query(trained_home, "select is_complete, lines_loaded from raw.landing_manifest") == [(True, 8)]


def test_client_retries_are_stored_once(trained_home, spec):
    writer = LandingWriter(trained_home.landing, "inference")
    writer.append([record(spec, "same"), record(spec, "same")])
    writer.append([record(spec, "same")])
    writer.close()
    result = run_ingest(trained_home, spec)
    assert (result.inference_rows, result.duplicates) == (1, 2)
    assert query(trained_home, "select count(*) from raw.inference_log") == [(1,)]


def _write_then_die(landing, whole: dict, line: bytes) -> None:
    writer = LandingWriter(landing, "inference")
    writer.append([whole])
    os.write(writer._descriptor, line)  # a torn write: no newline, then the process is killed
    os.kill(os.getpid(), signal.SIGKILL)


def test_torn_last_line_of_a_dead_writer_is_quarantined(trained_home, spec):
    good = json.dumps(record(spec, "whole")).encode()
    process = multiprocessing.get_context("fork").Process(
        target=_write_then_die, args=(trained_home.landing, record(spec, "acknowledged"), good[:40])
    )
    process.start()
    process.join()
    assert process.exitcode == -signal.SIGKILL
    (segment,) = list_segments(trained_home.landing, "inference")
    assert not is_segment_live(segment)
    result = run_ingest(trained_home, spec)
    assert (result.inference_rows, result.quarantined) == (1, 1)
    ((line, reason),) = query(trained_home, "select line, reason from raw.quarantine")
    assert line == good[:40].decode()
    assert reason.startswith("torn line")
    assert query(trained_home, "select request_id from raw.inference_log") == [("acknowledged",)]
    assert run_ingest(trained_home, spec).quarantined == 0  # counted once


def test_unfinished_line_of_a_live_writer_waits(trained_home, spec):
    writer = LandingWriter(trained_home.landing, "inference")
    writer.append([record(spec, "a")])
    os.write(writer._descriptor, b'{"model": "car_')
    read = read_segment(writer.segment, 0)
    assert read.torn_tail is None and not read.is_finished and len(read.lines) == 1
    assert run_ingest(trained_home, spec).quarantined == 0
    writer.close()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (None, "feature 'car_value': expected a finite number or null, got 'big'"),
        (None, "features: unknown colour"),
        (None, "scored_at: 'yesterday' is not an ISO-8601 timestamp"),
        (None, "model: 'other' has no spec in this warehouse"),
    ],
)
def test_malformed_lines_are_quarantined_with_the_reason(trained_home, spec, line, reason):
    if line is None:
        bad = record(spec, "bad")
        if "car_value" in reason:
            bad["features"]["car_value"] = "big"
        elif "colour" in reason:
            bad["features"]["colour"] = "red"
        elif "scored_at" in reason:
            bad["scored_at"] = "yesterday"
        else:
            bad["model"] = "other"
        line = json.dumps(bad).encode()
    directory = trained_home.landing / "inference"
    directory.mkdir(parents=True)
    good = json.dumps(record(spec, "good")).encode()
    (directory / "20260301T000000000000-1-000000.jsonl").write_bytes(line + b"\n" + good + b"\n")
    result = run_ingest(trained_home, spec)
    assert (result.inference_rows, result.quarantined) == (1, 1)
    assert query(trained_home, "select reason from raw.quarantine") == [(reason,)]


def test_feedback_labels_latest_wins(trained_home, spec):
    writer = LandingWriter(trained_home.landing, "feedback")
    writer.append(
        [{"model": spec.model, "request_id": "r1", "label": 0, "received_at": "2026-03-02T00:00:00"}]
    )
    writer.append(
        [{"model": spec.model, "request_id": "r1", "label": 1, "received_at": "2026-03-03T00:00:00"}]
    )
    writer.close()
    run_ingest(trained_home, spec)
    assert query(trained_home, "select request_id, label from raw.labels") == [("r1", "1")]


def test_spec_and_registry_are_mirrored(trained_home, spec):
    run_ingest(trained_home, spec)
    run_ingest(trained_home, spec)
    assert query(trained_home, "select model_version, status, trigger from raw.model_registry") == [
        (1, "champion", "initial")
    ]
    features = query(
        trained_home, "select feature_name, feature_type from raw.model_features order by feature_position"
    )
    assert features == list(spec.features.items())
    (count,) = query(trained_home, "select count(*) from raw.reference_rows")[0]
    assert count > 0


def test_group_commit_returns_only_after_a_covering_sync_and_shares_syncs(tmp_path, monkeypatch):
    """16 threads append at once through a slow disk: every append returns only after an fdatasync
    that started after its own write, and the syncs are shared (fewer syncs than appends). Small
    segments make the writer rotate in the middle of it; every line still lands exactly once."""
    import threading
    import time

    real_fdatasync, events, guard = os.fdatasync, [], threading.Lock()

    def slow_fdatasync(descriptor):
        with guard:
            events.append(("sync-start", time.monotonic()))
        time.sleep(0.005)
        real_fdatasync(descriptor)

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    writer = LandingWriter(tmp_path, "inference", max_segment_bytes=4096)
    returned_after_sync = []

    def client(number):
        for index in range(20):
            written_at = time.monotonic()
            writer.append([{"request_id": f"{number}-{index}", "padding": "x" * 40}])
            with guard:
                returned_after_sync.append(
                    any(kind == "sync-start" and at >= written_at for kind, at in events)
                )

    threads = [threading.Thread(target=client, args=(number,)) for number in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    assert all(returned_after_sync)
    assert writer.syncs < 16 * 20 / 2, f"{writer.syncs} syncs for {16 * 20} appends: commits not grouped"
    segments = list_segments(tmp_path, "inference")
    assert len(segments) > 1
    ids = [json.loads(line)["request_id"] for path in segments for line in path.read_text().splitlines()]
    assert sorted(ids) == sorted(f"{n}-{i}" for n in range(16) for i in range(20))


def test_fully_ingested_segments_past_the_retention_are_removed_and_never_reread(
    trained_home, spec, monkeypatch
):
    """A home does not grow without bound: complete segments older than the retention (env
    DRIFTMART_LANDING_RETENTION_DAYS, default 7) go; recent ones and live ones stay."""
    import time

    old_writer = LandingWriter(trained_home.landing, "inference")
    old_writer.append([record(spec, f"old{i}") for i in range(3)])
    old_writer.close()
    recent_writer = LandingWriter(trained_home.landing, "inference")
    recent_writer.append([record(spec, "recent")])
    recent_writer.close()
    old, recent = list_segments(trained_home.landing, "inference")
    live_writer = LandingWriter(trained_home.landing, "inference")
    live_writer.append([record(spec, "live")])
    (live,) = set(list_segments(trained_home.landing, "inference")) - {old, recent}
    eight_days_ago = time.time() - 8 * 86400
    for path in (old, live):
        os.utime(path, (eight_days_ago, eight_days_ago))

    first = run_ingest(trained_home, spec)
    assert first.inference_rows == 5 and first.segments_removed == 1
    assert set(list_segments(trained_home.landing, "inference")) == {recent, live}
    assert run_ingest(trained_home, spec).inference_rows == 0  # the removed segment is not missed

    monkeypatch.setenv("DRIFTMART_LANDING_RETENTION_DAYS", "0")
    assert run_ingest(trained_home, spec).segments_removed == 1  # the recent one; the live one stays
    assert list_segments(trained_home.landing, "inference") == [live]
    live_writer.close()
    assert query(trained_home, "select count(*) from raw.inference_log where request_id like 'old%'") == [
        (3,)
    ]

    monkeypatch.setenv("DRIFTMART_LANDING_RETENTION_DAYS", "a week")
    with pytest.raises(Exception, match="DRIFTMART_LANDING_RETENTION_DAYS='a week' is not a number of days"):
        run_ingest(trained_home, spec)
