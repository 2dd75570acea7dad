import threading
import time

import pytest

from ml.serving.batching import Combiner


def test_concurrent_requests_are_combined_and_each_gets_its_own_answers_in_order():
    calls = []

    def work(rows):
        calls.append(len(rows))
        time.sleep(0.01)  # a model call: long enough for others to queue behind it
        return [row * 10 for row in rows]

    combiner = Combiner(work)
    results = {}

    def request(number):
        rows = [number * 100 + index for index in range(number % 3 + 1)]
        results[number] = (rows, combiner.submit(rows))

    threads = [threading.Thread(target=request, args=(number,)) for number in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(answers == [row * 10 for row in rows] for rows, answers in results.values())
    assert sum(calls) == sum(len(rows) for rows, _ in results.values())
    assert combiner.batches == len(calls) < 32 / 2, calls


def test_a_failing_batch_fails_every_request_in_it_and_the_next_batch_runs():
    fail = threading.Event()
    fail.set()

    def work(rows):
        if fail.is_set():
            raise OSError("disk full")
        return rows

    combiner = Combiner(work)
    with pytest.raises(OSError, match="disk full"):
        combiner.submit([1])
    fail.clear()
    assert combiner.submit([2, 3]) == [2, 3]


def test_a_lone_request_runs_at_once():
    combiner = Combiner(lambda rows: [row + 1 for row in rows])
    assert combiner.submit([1, 2]) == [2, 3]
    assert combiner.batches == 1
