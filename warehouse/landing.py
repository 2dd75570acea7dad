"""The landing zone: append-only JSON-lines segment files that the API writes and ingest reads.

The API never opens the warehouse (DuckDB allows one writer); it appends here, and a 200 means the
line is on disk (`fsync` before answering). Each writer process owns its own segment files and holds
an exclusive `flock` on the one it is appending to, so a reader can tell a live segment (lock held)
from a finished one (lock free: rotated, closed, or its writer died). A segment is never appended to
by a second process: after a crash the new process starts a new segment, and only the last line of
the dead one can be torn.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from warehouse.files import fsync_directory

STREAMS: tuple[str, ...] = ("inference", "feedback")
SEGMENT_SUFFIX = ".jsonl"
# A segment being created: hidden (and not matching SEGMENT_SUFFIX) until its writer holds its lock.
CREATING_SUFFIX = ".creating"
logger = logging.getLogger("driftmart.landing")
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024


class LandingWriteError(OSError):
    """A block that could not be written and synced: it was not acknowledged (and must not be)."""


class LandingWriter:
    """Appends records to one stream's segment files; thread-safe within a process.

    Group commit: concurrent `append`s each write their block, then share one `fdatasync` — a
    caller returns once a sync that started after its write has finished, so every caller still
    returns only when its own lines are on disk, and N concurrent requests cost one sync, not N.

    A segment becomes visible to ingest only once its writer holds it: it is created under a
    hidden temporary name, locked, then renamed. Otherwise an ingest listing the folder in between
    would see an unlocked empty file, take it as finished, and never read what is appended to it.

    A failed write or sync is never acknowledged: the block is cut off again (`ftruncate`), the
    segment is retired and the next block starts a new one, so no record is glued onto a torn
    fragment; every caller waiting for a failed sync fails too. A sync is never retried on the
    same segment: after an fsync error Linux may report later syncs as successful although the
    pages were dropped.
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
        self._failed: list[tuple[int, int]] = []  # (after, upto]: blocks whose sync failed
        self._syncing = False
        self.segment: Path | None = None
        self.syncs = 0  # fdatasync calls made: fewer than appends when commits were grouped

    def _open_segment(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{os.getpid()}-{next(self._sequence):06d}{SEGMENT_SUFFIX}"
        path = self.directory / name
        creating = self.directory / f".{name}{CREATING_SUFFIX}"
        descriptor = os.open(creating, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else can see the file yet
            os.rename(creating, path)  # visible to ingest only now, already locked
            fsync_directory(self.directory)  # the new file's name is durable before any 200
        except BaseException:
            os.close(descriptor)
            creating.unlink(missing_ok=True)
            raise
        self._descriptor, self._size, self.segment = descriptor, 0, path

    def _retire_segment(self, *, truncate_to: int | None = None, sync_failed: bool = False) -> None:
        """Sync and close the current segment (closing frees its lock: the segment is finished).
        Its blocks not yet on disk become durable if the sync succeeds, failed otherwise.
        Call with `_lock` held."""
        if self._descriptor is None:
            return
        descriptor, self._descriptor, self.segment = self._descriptor, None, None
        synced = False
        try:
            if truncate_to is not None:
                os.ftruncate(descriptor, truncate_to)
            if not sync_failed:
                os.fdatasync(descriptor)  # blocks still waiting for a group sync are on disk now
                synced = True
        except OSError as error:
            logger.error(
                "landing segment of %s could not be synced and is retired: %s", self.directory, error
            )
        finally:
            os.close(descriptor)
        with self._synced:
            if synced:
                self._durable = max(self._durable, self._written)
            elif self._written > self._durable:
                self._failed.append((self._durable, self._written))
            self._synced.notify_all()

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write the records as one block; returns once they are on disk (fdatasync).

        Raises LandingWriteError if they could not be written or synced: then they are not on
        disk as a whole, and the caller must not acknowledge them."""
        if not records:
            return
        block = b"".join(
            json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n" for record in records
        )
        with self._lock:
            if self._descriptor is None or self._size >= self.max_segment_bytes:
                self._retire_segment()
                self._open_segment()
            start = self._size
            try:
                written = 0
                while written < len(block):
                    written += os.write(self._descriptor, block[written:])  # type: ignore[arg-type]
            except OSError as error:
                self._retire_segment(truncate_to=start)  # no fragment for the next block to glue onto
                raise LandingWriteError(error.errno, f"landing write failed: {error.strerror}") from error
            self._size += len(block)
            self._written += 1
            mine = self._written
        self._wait_durable(mine)

    def _has_failed(self, block: int) -> bool:
        return any(after < block <= upto for after, upto in self._failed)

    def _wait_durable(self, block: int) -> None:
        """Return once block number `block` is on disk: lead a sync, or wait for the one running."""
        with self._synced:
            while True:
                if self._has_failed(block):
                    raise LandingWriteError(errno.EIO, "landing sync failed: the block may not be on disk")
                if self._durable >= block:
                    return
                if self._syncing:
                    self._synced.wait()
                    continue
                self._syncing = True
                self._synced.release()
                failure: OSError | None = None
                covered: int | None = None
                try:
                    with self._lock:  # a consistent (segment, blocks written) pair
                        # A duplicate stays valid if another thread rotates the segment meanwhile.
                        descriptor = None if self._descriptor is None else os.dup(self._descriptor)
                        segment = self.segment
                        if descriptor is not None:
                            covered = self._written
                    if descriptor is not None:
                        try:
                            os.fdatasync(descriptor)
                        except OSError as error:
                            failure = error
                        finally:
                            os.close(descriptor)
                        self.syncs += 1
                    if failure is not None:
                        with self._lock:
                            if self.segment == segment:
                                self._retire_segment(sync_failed=True)
                finally:
                    self._synced.acquire()
                    self._syncing = False
                    self._synced.notify_all()
                if covered is not None:
                    if failure is None:
                        self._durable = max(self._durable, covered)
                    elif covered > self._durable:
                        self._failed.append((self._durable, covered))

    def close(self) -> None:
        with self._lock:
            self._retire_segment()


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
