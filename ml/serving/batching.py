"""Request combining: concurrent requests share one model call and one durable log write.

A scikit-learn pipeline costs nearly the same for 1 row as for 16 (its per-call overhead dominates),
and so does an fdatasync. So each request thread queues its rows and then takes the leader lock:
whoever gets it runs everything queued so far as one batch, and the threads whose rows went in that
batch find their answers ready. Under no concurrency a request runs alone, with no added wait; under
load, the batches grow by themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Row = TypeVar("Row")
Answer = TypeVar("Answer")


@dataclass
class _Job(Generic[Row, Answer]):
    rows: Sequence[Row]
    answers: list[Answer] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


class Combiner(Generic[Row, Answer]):
    """Runs `work(rows) -> answers` (one answer per row, in order) on combined batches."""

    def __init__(self, work: Callable[[list[Row]], list[Answer]]) -> None:
        self._work = work
        self._leader = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Job[Row, Answer]] = []
        self.batches = 0  # calls of `work`: fewer than requests when requests were combined

    def submit(self, rows: Sequence[Row]) -> list[Answer]:
        job: _Job[Row, Answer] = _Job(rows)
        with self._queue_lock:
            self._queue.append(job)
        with self._leader:
            if not job.done:  # nobody took it yet: lead a batch of everything queued
                with self._queue_lock:
                    jobs, self._queue = self._queue, []
                self._run(jobs)
        if job.error is not None:
            raise job.error
        return job.answers

    def _run(self, jobs: list[_Job[Row, Answer]]) -> None:
        rows = [row for job in jobs for row in job.rows]
        try:
            answers = self._work(rows)
            if len(answers) != len(rows):
                raise RuntimeError(f"{len(answers)} answers for {len(rows)} rows")
        except BaseException as error:  # every request of the batch fails the same way
            for job in jobs:
                job.error, job.done = error, True
            return
        finally:
            self.batches += 1
        start = 0
        for job in jobs:
            job.answers, job.done = answers[start : start + len(job.rows)], True
            start += len(job.rows)
