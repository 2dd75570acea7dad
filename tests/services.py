"""Services the tests start themselves on free localhost ports: a throwaway PostgreSQL cluster.

A missing service fails the test in CI (`CI=true`: the suite must run there) and skips it with the
reason elsewhere (a developer machine without PostgreSQL's server binaries).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_USER = "driftmart"
POSTGRES_DATABASE = "driftmart"


def require_service(available: bool, message: str) -> None:
    """Fail (in CI) or skip (elsewhere) with `message` unless `available`."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{message}, and CI=true: this test must run in CI")
    pytest.skip(message)


DRIFTMART = str(Path(sys.executable).with_name("driftmart"))


def start_api_server(home, timeout: float = 60, spec=None) -> tuple[subprocess.Popen, str]:
    """A real `driftmart serve` on a free port, in its own session; returns it and its base URL once
    /health answers. Stop it with stop_process_group. `spec`: a spec file (default: the demo's)."""

    port = free_port()
    process = subprocess.Popen(
        # warning: an access log nobody reads would fill the stderr pipe and stall the server
        [DRIFTMART, "--home", str(home.root), "serve", "--port", str(port), "--log-level", "warning"]
        + (["--spec", str(spec)] if spec is not None else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_answering(
        process,
        f"{base}/health",
        timeout,
        "driftmart serve did not come up",
        lambda: process.stderr.read().decode(),
    )
    return process, base


def wait_until_answering(
    process: subprocess.Popen, url: str, timeout: float, message: str, exited: Callable[[], str]
) -> None:
    """Poll `url` until it answers 200; fails with `exited()` if `process` ends first, with
    `message` after `timeout` seconds."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, exited()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


def stop_process_group(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 30) -> None:
    """Stop a server started with start_new_session=True and everything it started: `sig` to the
    group, then SIGKILL if it is still there after `grace` seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bindir() -> Path | None:
    """Where `initdb` and `pg_ctl` are: `pg_config --bindir`, else Debian's /usr/lib/postgresql/<v>/bin
    (the server package does not ship pg_config), else None."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        completed = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if completed.returncode == 0:
            candidates.append(Path(completed.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None


def _as_cluster_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its binaries as the `postgres` user then."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def throwaway_postgres(durable: bool = False) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL cluster in a new temporary folder (one the `postgres` user can reach when
    we are root, which pytest's 0700 tmp_path is not), listening on 127.0.0.1:<free port> with trust
    authentication; yields the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE).
    The cluster is stopped (immediately) and its files removed on exit. `durable` keeps fsync on."""
    bindir = postgres_bindir()
    require_service(
        bindir is not None,
        "PostgreSQL server binaries not found (`pg_config --bindir` with initdb and pg_ctl; "
        "Debian package postgresql)",
    )
    assert bindir is not None
    if os.geteuid() == 0:
        require_service(_has_user("postgres"), "running as root needs the `postgres` user to own the cluster")
    directory = Path(tempfile.mkdtemp(prefix="driftmart-postgres-"))
    data, sockets = directory / "data", directory / "sockets"
    sockets.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (directory, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = free_port()
    subprocess.run(
        _as_cluster_owner(
            [str(bindir / "initdb"), "-D", str(data), "-U", POSTGRES_USER, "-A", "trust", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    # Tests skip fsync (a throwaway cluster); benchmarks ask for a durable one, as in production.
    fsync = "on" if durable else "off"
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync={fsync} -c max_connections=50"
    log = directory / "postgres.log"
    started = subprocess.run(
        _as_cluster_owner(
            [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        raise RuntimeError(
            f"pg_ctl start failed: {started.stderr}\n{log.read_text() if log.exists() else ''}"
        )
    environment = {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PGUSER": POSTGRES_USER,
        "PGPASSWORD": "",
        "PGDATABASE": POSTGRES_DATABASE,
    }
    try:
        subprocess.run(
            [
                str(bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                POSTGRES_USER,
                POSTGRES_DATABASE,
            ],
            check=True,
            capture_output=True,
        )
        yield environment
    finally:
        subprocess.run(
            _as_cluster_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(directory, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
