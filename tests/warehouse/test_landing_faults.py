"""The landing zone never loses an acknowledged line: not to a reader racing a new segment, not to a
failed write or sync. Each test here fails on the earlier writer (create, then lock; no recovery
from a failed write)."""

import errno
import os
import threading

import duckdb
import pytest

from tests.warehouse.test_landing_ingest import record, run_ingest
from warehouse import landing
from warehouse.landing import LandingWriteError, LandingWriter, list_segments, read_segment


def loaded_ids(home) -> list[str]:
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        return [row[0] for row in connection.execute("select request_id from raw.inference_log").fetchall()]


def test_a_reader_listing_between_create_and_lock_sees_no_unheld_segment(trained_home, spec, monkeypatch):
    """The interleaving that lost data: ingest lists the folder after the writer created its new
    segment and before it locked it. A visible segment must already be held by its writer, and a
    reader's shared lock at that moment must not make the writer fail."""
    real_flock = landing.fcntl.flock
    seen: list[tuple[str, bool]] = []
    held_by_reader: list = []

    def flock_with_a_reader_in_between(descriptor, operation):
        if operation & landing.fcntl.LOCK_EX and not seen:
            for segment in list_segments(trained_home.landing, "inference"):
                seen.append((segment.name, read_segment(segment, 0).is_finished))
                reader = segment.open("rb")
                real_flock(reader.fileno(), landing.fcntl.LOCK_SH | landing.fcntl.LOCK_NB)
                held_by_reader.append(reader)  # a reader mid-check holds a shared lock
            seen.append(("(checked)", False))
        return real_flock(descriptor, operation)

    monkeypatch.setattr(landing.fcntl, "flock", flock_with_a_reader_in_between)
    writer = LandingWriter(trained_home.landing, "inference")
    writer.append([record(spec, "first")])  # the writer's lock is taken with the reader in between
    for reader in held_by_reader:
        reader.close()
    assert seen == [("(checked)", False)], f"a segment was visible before its writer held it: {seen}"
    run_ingest(trained_home, spec)  # while the writer is alive
    writer.append([record(spec, "second")])
    writer.close()
    run_ingest(trained_home, spec)
    assert sorted(loaded_ids(trained_home)) == ["first", "second"]


def test_a_failed_write_is_not_acknowledged_and_the_next_record_is_whole(trained_home, spec, monkeypatch):
    writer = LandingWriter(trained_home.landing, "inference")
    writer.append([record(spec, "before")])
    failing_segment = writer.segment
    real_write = os.write
    calls = {"n": 0}

    def short_write_then_no_space(descriptor, data):
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(descriptor, data[:25])  # a short write: a torn fragment on disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(landing.os, "write", short_write_then_no_space)
    with pytest.raises(LandingWriteError, match="No space left"):
        writer.append([record(spec, "failed")])
    monkeypatch.setattr(landing.os, "write", real_write)
    writer.append([record(spec, "after")])  # acknowledged: must land whole
    assert writer.segment != failing_segment, "the failed segment must be retired, not appended to"
    writer.close()
    result = run_ingest(trained_home, spec)
    assert sorted(loaded_ids(trained_home)) == ["after", "before"]
    assert result.quarantined == 0  # the fragment was cut off again (ftruncate)
    assert failing_segment.read_bytes().endswith(b"\n")


def test_a_failed_sync_fails_every_waiter_and_is_not_retried_on_that_segment(tmp_path, monkeypatch):
    writer = LandingWriter(tmp_path, "inference")
    writer.append([{"n": 0}])
    first_segment = writer.segment
    real_fdatasync = os.fdatasync
    started, release = threading.Event(), threading.Event()
    synced_after_failure: list[int] = []
    failed_descriptor_inodes: set[int] = set()

    def failing_fdatasync(descriptor):
        inode = os.fstat(descriptor).st_ino
        if inode in failed_descriptor_inodes:
            synced_after_failure.append(inode)  # a retry would lie: fsyncgate
        if inode == first_segment.stat().st_ino and not failed_descriptor_inodes:
            started.set()
            release.wait(5)  # let the other appenders queue behind this sync
            failed_descriptor_inodes.add(inode)
            raise OSError(errno.EIO, "Input/output error")
        return real_fdatasync(descriptor)

    monkeypatch.setattr(landing.os, "fdatasync", failing_fdatasync)
    outcomes: dict[int, str] = {}

    def append(n):
        try:
            writer.append([{"n": n}])
            outcomes[n] = "acknowledged"
        except LandingWriteError:
            outcomes[n] = "failed"

    leader = threading.Thread(target=append, args=(1,))
    leader.start()
    assert started.wait(5)
    waiters = [threading.Thread(target=append, args=(n,)) for n in range(2, 6)]
    for thread in waiters:
        thread.start()
    release.set()
    for thread in [leader, *waiters]:
        thread.join(10)
    # The leader's block was in the failed segment; blocks written before its sync began failed
    # with it; any block written after the failure went to a new segment and is on disk.
    assert outcomes[1] == "failed"
    assert not synced_after_failure
    writer.append([{"n": 6}])
    assert writer.segment != first_segment
    writer.close()
    lines = b"".join(path.read_bytes() for path in sorted((tmp_path / "inference").glob("*.jsonl")))
    landed = {int(line.split(b":")[1].rstrip(b"}")) for line in lines.splitlines()}
    acknowledged = {n for n, outcome in outcomes.items() if outcome == "acknowledged"} | {6}
    assert acknowledged <= landed


def test_no_acknowledged_line_is_lost_while_ingest_races_rotation(trained_home, spec):
    """8 appenders, segments of a few hundred bytes (a rotation every 2 blocks), ingest in a loop."""
    writer = LandingWriter(trained_home.landing, "inference", max_segment_bytes=600)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def client(number: int) -> None:
        for index in range(650):
            request_id = f"c{number}-{index}"
            writer.append([record(spec, request_id)])
            with lock:
                acknowledged.append(request_id)

    def ingest_loop() -> None:
        try:
            while not stop.is_set():
                run_ingest(trained_home, spec)
        except BaseException as error:  # reported below
            errors.append(error)

    reader = threading.Thread(target=ingest_loop)
    reader.start()
    clients = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(300)
    stop.set()
    reader.join(120)
    writer.close()
    run_ingest(trained_home, spec)
    assert not errors
    assert len(acknowledged) == 5200
    loaded = loaded_ids(trained_home)
    missing = set(acknowledged) - set(loaded)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged lines never ingested"
    duplicated = len(loaded) - len(set(loaded))
    assert not duplicated, f"{duplicated} acknowledged lines stored twice"
    print(f"acknowledged {len(acknowledged)}, lost {len(missing)}, duplicated {duplicated}")
