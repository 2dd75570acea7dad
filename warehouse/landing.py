"""The landing zone: append-only JSON-lines segment files that the API writes and ingest reads.

The API never opens the warehouse (DuckDB allows one writer); it appends here, and a 200 means the
line is on disk (`fsync` before answering). Each writer process owns its own segment files and holds
an exclusive `flock` on the one it is appending to, so a reader can tell a live segment (lock held)
from a finished one (lock free: rotated, closed, or its writer died). A segment is never appended to
by a second process: after a crash the new process starts a new segment, and only the last line of
the dead one can be torn.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from warehouse.files import fsync_directory

STREAMS: tuple[str, ...] = ("inference", "feedback")
SEGMENT_SUFFIX = ".jsonl"
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024


class LandingWriter:
    """Appends records to one stream's segment files; thread-safe within a process.

    Group commit: concurrent `append`s each write their block, then share one `fdatasync` — a
    caller returns once a sync that started after its write has finished, so every caller still
    returns only when its own lines are on disk, and N concurrent requests cost one sync, not N.
    """

    _sequence = itertools.count()

    def __init__(self, landing: Path, stream: str, *, max_segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        if stream not in STREAMS:
            raise ValueError(f"unknown landing stream {stream!r}; expected one of {STREAMS}")
        self.directory = landing / stream
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_segment_bytes = max_segment_bytes
        self._lock = threading.Lock()  # guards the descriptor, the size and the write counter
        self._synced = threading.Condition()  # guards the sync counters below
        self._descriptor: int | None = None
        self._size = 0
        self._written = 0  # blocks written so far (in this process, all segments)
        self._durable = 0  # blocks known to be on disk
        self._syncing = False
        self.segment: Path | None = None
        self.syncs = 0  # fdatasync calls made: fewer than appends when commits were grouped

    def _open_segment(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{os.getpid()}-{next(self._sequence):06d}{SEGMENT_SUFFIX}"
        path = self.directory / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fsync_directory(self.directory)  # the new file's name is durable before any 200
        self._descriptor, self._size, self.segment = descriptor, 0, path

    def _close_segment(self) -> None:
        if self._descriptor is not None:
            os.fdatasync(self._descriptor)  # blocks still waiting for a group sync are on disk now
            os.close(self._descriptor)  # closing releases the flock: the segment is finished
        self._descriptor, self.segment = None, None

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write the records as one block; returns once they are on disk (fdatasync)."""
        if not records:
            return
        block = b"".join(
            json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n" for record in records
        )
        with self._lock:
            if self._descriptor is None or self._size >= self.max_segment_bytes:
                self._close_segment()
                with self._synced:
                    self._durable = self._written  # _close_segment synced everything written
                self._open_segment()
            written = os.write(self._descriptor, block)  # type: ignore[arg-type]
            while written < len(block):
                written += os.write(self._descriptor, block[written:])  # type: ignore[arg-type]
            self._size += len(block)
            self._written += 1
            mine = self._written
        self._wait_durable(mine)

    def _wait_durable(self, block: int) -> None:
        """Return once block number `block` is on disk: lead a sync, or wait for the one running."""
        with self._synced:
            while self._durable < block:
                if self._syncing:
                    self._synced.wait()
                    continue
                self._syncing = True
                self._synced.release()
                try:
                    with self._lock:  # a consistent (segment, blocks written) pair
                        # A duplicate stays valid if another thread rotates the segment meanwhile.
                        descriptor = None if self._descriptor is None else os.dup(self._descriptor)
                        covered = self._written
                    if descriptor is not None:
                        try:
                            os.fdatasync(descriptor)
                        finally:
                            os.close(descriptor)
                        self.syncs += 1
                finally:
                    self._synced.acquire()
                    self._syncing = False
                    self._synced.notify_all()
                self._durable = max(self._durable, covered)

    def close(self) -> None:
        with self._lock:
            self._close_segment()


@dataclass(frozen=True)
class SegmentRead:
    """The complete lines of a segment from an offset on, and what to do with its tail."""

    lines: list[tuple[int, bytes]]  # (byte offset of the line, line without the newline)
    end_offset: int  # offset after the last complete line
    torn_tail: bytes | None  # bytes after the last newline of a finished segment
    is_finished: bool  # no writer holds the segment: nothing more will be appended


def is_segment_live(path: Path) -> bool:
    """True while a writer process holds the segment's lock."""
    with path.open("rb") as file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)
        return False


def list_segments(landing: Path, stream: str) -> list[Path]:
    directory = landing / stream
    if not directory.exists():
        return []
    return sorted(directory.glob(f"*{SEGMENT_SUFFIX}"))


def read_segment(path: Path, offset: int) -> SegmentRead:
    """Read the complete lines after `offset`.

    Liveness is checked before reading: if the writer had already let go, every byte is final, and
    bytes after the last newline are a torn line to quarantine. If it is live, an unfinished last
    line is simply left for the next ingest.
    """
    is_finished = not is_segment_live(path)
    with path.open("rb") as file:
        file.seek(offset)
        data = file.read()
    last_newline = data.rfind(b"\n")
    complete = data[: last_newline + 1]
    tail = data[last_newline + 1 :]
    lines = []
    position = offset
    for line in complete.split(b"\n")[:-1]:
        lines.append((position, line))
        position += len(line) + 1
    return SegmentRead(
        lines=lines,
        end_offset=offset + len(complete),
        torn_tail=tail if (tail and is_finished) else None,
        is_finished=is_finished,
    )
