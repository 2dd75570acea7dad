"""Benchmark: the model API under load, with durable logging and without it.

Starts real server processes (uvicorn, as `driftmart serve` does) on a trained demo model:

- `logging`: the real API — every prediction is appended to the landing zone and fdatasync'ed
  (group commit) before the 200;
- `no logging`: the same app with the landing writer replaced by one that drops records (for this
  benchmark only: it shows what durability costs).

For each it measures the closed-loop maximum throughput (8 concurrent clients, median of
`--repeat` runs), then holds a steady open-loop rate (`--rate`, default half the logging maximum)
for `--duration` seconds and reports p50/p99 latency — measured from each request's scheduled send
time, so a stall counts against the server — and the errors (any non-200 or transport error).
Printed side by side with the ratio. Not a test: the machine is shared and noisy.

    .venv/bin/python bench/bench_api_load.py --duration 180 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONCURRENCY = 8


def serve(home: str, port: int, logging: bool) -> None:
    """The server process: `driftmart serve`'s app, optionally without durable logging."""
    import uvicorn

    import ml.serving.app as app_module
    from ml.spec import load_spec
    from warehouse.home import Home

    if not logging:

        class DroppingWriter:
            def __init__(self, *args, **kwargs):
                pass

            def append(self, records):
                pass

            def close(self):
                pass

        app_module.LandingWriter = DroppingWriter  # type: ignore[misc,assignment]
    app = app_module.create_app(Home.resolve(home), load_spec())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def prepare_home(root: Path) -> Path:
    from ml import registry
    from ml.datasets import training_set
    from ml.spec import load_spec
    from ml.train import train_model
    from warehouse.home import Home

    home = Home.resolve(root / "home").ensure()
    spec = load_spec()
    registry.register(home, spec, train_model(spec, training_set()), trigger="initial")
    return home.root


def request_bodies(n: int) -> list[dict]:
    from ml.datasets import generate
    from ml.spec import load_spec
    from tests.conftest import traffic_records

    spec = load_spec()
    rows = traffic_records(generate("no_drift", days=1, rows_per_day=n, seed=1), spec.target)
    return [{key: value for key, value in row.items() if key != spec.timestamp} for row in rows]


class Server:
    def __init__(self, home: Path, logging: bool) -> None:
        from tests.services import free_port

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        flag = "on" if logging else "off"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(home), str(self.port), flag], start_new_session=True
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


async def closed_loop(base: str, bodies: list[dict], seconds: float) -> float:
    """Requests per second with CONCURRENCY clients sending back to back."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient, offset: int) -> None:
        nonlocal done
        index = offset
        while time.perf_counter() < stop_at:
            response = await client.post("/predict", json=bodies[index % len(bodies)])
            response.raise_for_status()
            done += 1
            index += CONCURRENCY

    started = time.perf_counter()
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client, offset) for offset in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


async def open_loop(base: str, bodies: list[dict], rate: float, seconds: float) -> dict[str, float]:
    """Requests sent at a steady `rate` for `seconds`; latency from each request's scheduled time."""
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        start = time.perf_counter() + 0.5

        async def one(index: int) -> None:
            nonlocal errors
            scheduled = start + index / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            try:
                response = await client.post("/predict", json=bodies[index % len(bodies)])
                if response.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - scheduled)

        await asyncio.gather(*(one(index) for index in range(total)))
        elapsed = time.perf_counter() - start
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": float(total),
        "achieved req/s": total / elapsed,
        "p50 ms": quantiles[49] * 1000,
        "p99 ms": quantiles[98] * 1000,
        "errors": float(errors),
    }


def durable_write_ms(base: str) -> float:
    """Mean landing write (write + fdatasync, grouped) from the API's own histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics").text
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("stream") == "inference"
    }
    count = values.get("driftmart_api_log_write_duration_seconds_count", 0.0)
    return 1000 * values.get("driftmart_api_log_write_duration_seconds_sum", 0.0) / count if count else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=180, help="seconds of the steady-rate phase")
    parser.add_argument("--rate", type=float, help="steady rate, req/s (default: half the logging maximum)")
    parser.add_argument("--burst-seconds", type=float, default=15, help="seconds of each closed-loop run")
    parser.add_argument("--repeat", type=int, default=3, help="closed-loop runs per configuration")
    parser.add_argument("--serve", nargs=3, metavar=("HOME", "PORT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        home, port, mode = args.serve
        serve(home, int(port), logging=mode == "on")
        return

    bodies = request_bodies(2000)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as temporary:
        home = prepare_home(Path(temporary))
        maxima = {}
        for name, logging in (("logging", True), ("no logging", False)):
            server = Server(home, logging)
            try:
                asyncio.run(closed_loop(server.base, bodies, 3))  # warm-up
                runs = [
                    asyncio.run(closed_loop(server.base, bodies, args.burst_seconds))
                    for _ in range(args.repeat)
                ]
                maxima[name] = statistics.median(runs)
                print(f"{name}: closed-loop req/s {[round(run) for run in runs]}", flush=True)
            finally:
                server.stop()
        rate = args.rate or round(maxima["logging"] / 2)
        for name, logging in (("logging", True), ("no logging", False)):
            server = Server(home, logging)
            try:
                steady = asyncio.run(open_loop(server.base, bodies, rate, args.duration))
                write_ms = durable_write_ms(server.base) if logging else 0.0
            finally:
                server.stop()
            results[name] = {
                "max req/s (8 clients, median)": maxima[name],
                "steady rate req/s": rate,
                **steady,
            }
            results[name]["durable write ms (mean)"] = write_ms
            print(f"{name}: steady {steady}", flush=True)

    print(f"\nAPI load: {args.duration:.0f} s at a steady rate, {CONCURRENCY} clients for the maximum")
    print(f"{'metric':34} {'logging':>12} {'no logging':>12} {'ratio':>8}")
    for metric in results["logging"]:
        with_log, without = results["logging"][metric], results["no logging"][metric]
        ratio = f"{with_log / without:.2f}" if without else "-"
        print(f"{metric:34} {with_log:12.2f} {without:12.2f} {ratio:>8}")


if __name__ == "__main__":
    main()
