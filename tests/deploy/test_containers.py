"""The Dockerfile and compose.yaml, checked without a container engine: every file they name exists
(and is in the build context), every port they publish is the one the service listens on and the
one Prometheus scrapes, every command parses with the real CLI parsers, the compose Prometheus
config passes promtool, and the image's healthcheck passes against a real API and fails without
one."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import click
import pytest
import yaml

from orchestration.cli import build_parser
from tests.conftest import REPO
from tests.services import IN_CI, free_port, start_api_server, stop_process_group
from warehouse.home import Home

COMPOSE_FILE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
DRIFTMART_SERVICES = ("api", "exporter", "dagster-webserver", "dagster-daemon")
API_PORT = 8000


# --- reading the files -------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comment lines dropped (as
    Docker does, also inside a continuation)."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.strip().startswith("#") or (not pending and not line.strip()):
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        text = (pending + line).strip()
        pending = ""
        keyword, _, arguments = text.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continuation"
    return instructions


def instruction_values(keyword: str) -> list[str]:
    return [arguments for name, arguments in dockerfile_instructions() if name == keyword]


def exec_form(arguments: str) -> list[str]:
    """A JSON-array (exec form) argument list; the shell form is refused: it hides the argv."""
    parsed = json.loads(arguments)
    assert isinstance(parsed, list) and all(isinstance(part, str) for part in parsed), arguments
    return parsed


def dockerfile_env() -> dict[str, str]:
    environment: dict[str, str] = {}
    for arguments in instruction_values("ENV"):
        for assignment in shlex.split(arguments):
            name, _, value = assignment.partition("=")
            environment[name] = value
    return environment


def workdir() -> PurePosixPath:
    (directory,) = instruction_values("WORKDIR")
    return PurePosixPath(directory)


def copy_sources() -> list[tuple[str, PurePosixPath]]:
    """(source in the build context, destination in the image) of every COPY."""
    copies = []
    for arguments in instruction_values("COPY"):
        parts = [part for part in shlex.split(arguments) if not part.startswith("--")]
        *sources, destination = parts
        into_folder = destination.endswith("/") or len(sources) > 1
        for source in sources:
            target = workdir() / destination
            copies.append((source, target / PurePosixPath(source).name if into_folder else target))
    return copies


def dockerignore_patterns() -> list[str]:
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            assert not line.startswith("!"), f"exceptions are not checked here: {line}"
            patterns.append(line.rstrip("/"))
    return patterns


def is_ignored(path: str) -> bool:
    """Whether .dockerignore leaves the repository path `path` (or a folder above it) out."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    for pattern in dockerignore_patterns():
        for candidate in candidates:
            if fnmatch.fnmatchcase(candidate, pattern):
                return True
            if pattern.startswith("**/"):
                tails = ["/".join(candidate.split("/")[start:]) for start in range(len(candidate.split("/")))]
                if any(fnmatch.fnmatchcase(tail, pattern[3:]) for tail in tails):
                    return True
    return False


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())  # PyYAML resolves the `<<` merge keys


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def command_of(name: str) -> list[str]:
    service = services()[name]
    if "command" not in service:  # the image's own: the Dockerfile's CMD, or a third-party default
        return exec_form(instruction_values("CMD")[-1]) if "build" in service else []
    command = service["command"]
    assert isinstance(command, list), f"{name}: give the command as a list, so its argv is checkable"
    assert not any("$" in part for part in command), f"{name}: an interpolated command cannot be checked"
    return command


def environment_of(name: str) -> dict[str, str]:
    environment = services()[name].get("environment") or {}
    assert isinstance(environment, dict), f"{name}: give the environment as a mapping"
    image = dockerfile_env() if "build" in services()[name] else {}
    return {**image, **{key: "" if value is None else str(value) for key, value in environment.items()}}


def bind_mounts(name: str) -> list[tuple[Path, PurePosixPath, bool]]:
    """(repository path, container path, read-only) of the service's bind mounts."""
    mounts = []
    for volume in services()[name].get("volumes", []):
        assert isinstance(volume, str), f"{name}: short volume syntax expected, got {volume!r}"
        source, target, *options = volume.split(":")
        if source.startswith((".", "/")):
            mounts.append((REPO / source, PurePosixPath(target), "ro" in options))
    return mounts


def named_volumes(name: str) -> dict[str, PurePosixPath]:
    named = {}
    for volume in services()[name].get("volumes", []):
        source, target, *_ = volume.split(":")
        if not source.startswith((".", "/")):
            named[source] = PurePosixPath(target)
    return named


def repo_path_in(name: str, container_path: str) -> Path:
    """The repository file that `container_path` is inside service `name`: through a bind mount, or,
    for the driftmart image, through a COPY below the WORKDIR."""
    path = PurePosixPath(container_path)
    for source, target, _ in sorted(bind_mounts(name), key=lambda mount: -len(mount[1].parts)):
        if path == target or target in path.parents:
            return source / path.relative_to(target)
    if "build" in services()[name]:
        for source, destination in copy_sources():
            if path == destination or destination in path.parents:
                return REPO / source / path.relative_to(destination)
    raise AssertionError(f"{name}: {container_path} is neither mounted nor copied into the image")


def published_ports(name: str) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of the service's `ports`."""
    published = []
    for entry in services()[name].get("ports", []):
        assert isinstance(entry, str) and "$" not in entry, f"{name}: ports must be literal strings"
        host, host_port, container_port = entry.split(":")
        published.append((host, int(host_port), int(container_port)))
    return published


def driftmart_args(name: str):
    command = command_of(name)
    assert command[0] == "driftmart", command
    try:
        return build_parser().parse_args(command[1:])
    except SystemExit:
        pytest.fail(f"{name}: `{shlex.join(command)}` is refused by the driftmart CLI")


def click_params(command: click.Command, argv: list[str]) -> dict[str, Any]:
    try:
        return command.make_context(command.name, list(argv)).params
    except click.exceptions.ClickException as error:
        pytest.fail(f"`{command.name} {shlex.join(argv)}` is refused: {error.format_message()}")


def in_repo(name: str, argv: list[str]) -> list[str]:
    """The argv with each absolute container path replaced by the repository file it is (the CLIs
    check that their files exist)."""
    return [str(repo_path_in(name, part)) if part.startswith("/") else part for part in argv]


def webserver_params() -> dict[str, Any]:
    from dagster_webserver.cli import dagster_webserver

    command = command_of("dagster-webserver")
    assert command[0] == "dagster-webserver", command
    return click_params(dagster_webserver, in_repo("dagster-webserver", command[1:]))


def daemon_params() -> dict[str, Any]:
    from dagster._daemon.cli import create_dagster_daemon_cli

    command = command_of("dagster-daemon")
    assert command[:2] == ["dagster-daemon", "run"], command
    return click_params(create_dagster_daemon_cli().commands["run"], in_repo("dagster-daemon", command[2:]))


def listen_port(name: str) -> int | None:
    """The port the service's own command listens on (None: it listens on none)."""
    program = (command_of(name) or [""])[0]
    if program == "driftmart":
        return getattr(driftmart_args(name), "port", None)
    if program == "dagster-webserver":
        return webserver_params()["port"] or 3000  # dagster-webserver's default
    if program == "dagster-daemon":
        return None
    command = command_of(name)
    image = services()[name]["image"]
    if image.startswith("prom/prometheus"):
        addresses = [part.split("=", 1)[1] for part in command if part.startswith("--web.listen-address=")]
        return int(addresses[-1].rsplit(":", 1)[1]) if addresses else 9090
    if image.startswith("grafana/grafana"):
        return int(environment_of(name).get("GF_SERVER_HTTP_PORT", "3000"))
    raise AssertionError(f"{name}: which port does {image} listen on?")


def prometheus_config_path() -> Path:
    (config,) = [
        part.split("=", 1)[1] for part in command_of("prometheus") if part.startswith("--config.file=")
    ]
    return repo_path_in("prometheus", config)


def python_programs(text: str) -> list[str]:
    """The programs of `python -c "…"` in a shell command or exec-form argv."""
    programs = re.findall(r'python -c "((?:[^"\\]|\\.)*)"', text)
    exec_part = text.split("CMD", 1)[1].strip() if "CMD" in text else text
    if exec_part.startswith("["):
        argv = exec_form(exec_part)
        programs += [argv[index + 1] for index, part in enumerate(argv[:-1]) if part == "-c"]
    return programs


# --- the Dockerfile --------------------------------------------------------------------------


def test_the_image_is_python_3_11_slim_runs_as_a_user_and_checks_the_api():
    assert instruction_values("FROM") == ["python:3.11-slim"]
    users = instruction_values("USER")
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any(re.search(rf"useradd\b.*\b{users[-1]}\b", run) for run in instruction_values("RUN"))
    (healthcheck,) = instruction_values("HEALTHCHECK")
    assert healthcheck.split("CMD", 1)[1].strip().startswith("["), "exec form: no shell, no curl"
    assert f"127.0.0.1:{API_PORT}/health" in healthcheck
    exposed = {int(port.split("/")[0]) for value in instruction_values("EXPOSE") for port in value.split()}
    assert API_PORT in exposed
    served = {listen_port(name) for name in DRIFTMART_SERVICES} - {None}
    assert served <= exposed, f"the image listens on {served}, exposes {exposed}"


def test_the_default_command_serves_the_api_on_all_interfaces():
    (command,) = instruction_values("CMD")
    argv = exec_form(command)
    assert argv[0] == "driftmart"
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", API_PORT)


def test_the_image_installs_the_project_without_dev_extras():
    environment = dockerfile_env()
    installs = [run for run in instruction_values("RUN") if "pip install" in run]
    assert installs, "the project is never installed"
    optional = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for run in installs:
        for extras in re.findall(r"\.\[([^\]]*)\]", run):
            for extra in extras.split(","):
                assert extra.strip() in optional and extra.strip() != "dev", run
        assert "dev" not in re.findall(r"\[(\w+)\]", run)
    # In place: the dbt project is found beside the sources (orchestration/assets/dbt.py).
    assert any(re.search(r"pip install (?:\S+ )*-e \.(?:\s|$)", run) for run in installs), installs
    assert (workdir() / "dbt_project") in {destination for _, destination in copy_sources()}
    readme = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["readme"]
    assert readme in {source for source, _ in copy_sources()}, "pip needs the readme pyproject names"
    assert environment["DRIFTMART_HOME"] in [
        path for value in instruction_values("VOLUME") for path in json.loads(value)
    ]
    assert environment["DAGSTER_HOME"] == str(Home(Path(environment["DRIFTMART_HOME"])).dagster_home)


def test_every_copy_source_exists_and_is_in_the_build_context():
    copies = copy_sources()
    assert copies
    for source, _ in copies:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        assert not is_ignored(source), f"COPY {source}: excluded by .dockerignore"
    for heavy in (".venv", ".git", "warehouse/data", "dbt_project/target", "dbt_project/logs"):
        assert is_ignored(heavy), f".dockerignore must leave out {heavy}"
    assert is_ignored("ml/__pycache__/spec.cpython-311.pyc")
    assert not is_ignored("ml/spec.py")


def test_the_python_one_liners_of_the_image_compile_and_import_what_exists():
    texts = instruction_values("RUN") + instruction_values("HEALTHCHECK")
    programs = [program for text in texts for program in python_programs(text)]
    assert len(programs) >= 3, programs  # the manifest, the home's instance, the healthcheck
    for program in programs:
        tree = ast.parse(program)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module} has no {alias.name}: {program}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)


# --- compose.yaml ----------------------------------------------------------------------------


def test_compose_names_only_files_that_exist():
    document = compose()
    assert set(DRIFTMART_SERVICES) | {"prometheus", "grafana"} <= set(document["services"])
    declared_volumes = set(document.get("volumes") or {})
    for name, service in document["services"].items():
        if "build" in service:
            build = service["build"]
            context = REPO / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            assert (context / dockerfile).is_file(), f"{name}: no {dockerfile} in {context}"
        else:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image ({image})"
        for source, target, _ in bind_mounts(name):
            assert source.exists(), f"{name}: mounts {source.relative_to(REPO)} at {target}: no such path"
        assert set(named_volumes(name)) <= declared_volumes, name
        for config in service.get("configs", []):
            config_name = config if isinstance(config, str) else config["source"]
            assert (REPO / document["configs"][config_name]["file"]).is_file(), f"{name}: {config_name}"
    for config in (document.get("configs") or {}).values():
        assert (REPO / config["file"]).is_file(), config


def test_the_driftmart_services_share_one_home_and_can_be_given_a_spec():
    homes = set()
    for name in DRIFTMART_SERVICES:
        service = services()[name]
        assert "build" in service, f"{name}: runs the image of the Dockerfile"
        environment = environment_of(name)
        volumes = named_volumes(name)
        (home_volume,) = [
            volume for volume, target in volumes.items() if str(target) == environment["DRIFTMART_HOME"]
        ]
        homes.add(home_volume)
        assert environment["DAGSTER_HOME"] == str(Home(Path(environment["DRIFTMART_HOME"])).dagster_home)
        assert "DRIFTMART_SPEC" in services()[name]["environment"], f"{name}: DRIFTMART_SPEC not passed"
        specs = [mount for mount in bind_mounts(name) if mount[1] == PurePosixPath("/specs")]
        assert specs and specs[0][0] == REPO / "specs" and specs[0][2], f"{name}: ./specs read-only at /specs"
    assert len(homes) == 1, homes
    assert services()["api"]["environment"]["DRIFTMART_API_TOKEN"] == "${DRIFTMART_API_TOKEN:-}"


def test_every_driftmart_command_parses_with_the_cli():
    for name in DRIFTMART_SERVICES:
        command = command_of(name)
        if command[0] == "driftmart":
            args = driftmart_args(name)
            assert args.host == "0.0.0.0", f"{name}: must listen beyond the container's loopback"
    assert driftmart_args("api").command == "serve"
    assert driftmart_args("exporter").command == "metrics"
    # The `docker compose run … driftmart …` commands the README and compose.yaml tell users to run.
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("\n## Containers\n") :].split("\n## ", 2)[1]
    shell = "\n".join(re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL))
    comments = [line.lstrip("#") for line in COMPOSE_FILE.read_text().splitlines() if line.startswith("#")]
    shown = [
        line
        for text in (shell, "\n".join(comments))
        for line in text.replace("\\\n", " ").splitlines()
        if "docker compose run" in line
    ]
    assert len(shown) >= 3, shown
    for line in shown:
        argv = shlex.split(line, comments=True)
        argv = argv[argv.index("driftmart") + 1 :]
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"`driftmart {shlex.join(argv)}` (README/compose.yaml) is refused by the CLI")


def test_the_dagster_services_run_the_code_location_on_the_homes_instance():
    webserver, daemon = webserver_params(), daemon_params()
    (workspace,) = webserver["workspace"]
    assert daemon["workspace"] == (workspace,), "the webserver and the daemon must load the same code"
    workspace_file = Path(workspace)
    assert workspace_file == REPO / "deploy" / "dagster" / "workspace.yaml"
    assert workspace_file.is_file()
    (location,) = yaml.safe_load(workspace_file.read_text())["load_from"]
    module = importlib.import_module(location["python_module"]["module_name"])
    assert hasattr(module, location["python_module"]["attribute"])
    assert webserver["host"] == "0.0.0.0"
    for name in ("dagster-webserver", "dagster-daemon"):
        environment = environment_of(name)
        assert environment["DAGSTER_HOME"] == str(Home(Path(environment["DRIFTMART_HOME"])).dagster_home)
    assert services()["dagster-daemon"]["healthcheck"]["test"] == ["CMD", "dagster-daemon", "liveness-check"]


def test_published_ports_are_the_ports_the_services_listen_on():
    host_ports = []
    for name in services():
        port = listen_port(name)
        published = published_ports(name)
        if port is None:
            assert not published, f"{name} listens on nothing but publishes {published}"
            continue
        assert published, f"{name} listens on {port} and publishes nothing"
        for host, host_port, container_port in published:
            assert container_port == port, (
                f"{name}: publishes container port {container_port}, listens on {port}"
            )
            assert host == "127.0.0.1", f"{name}: publish on 127.0.0.1 by default, like the CLI"
            host_ports.append(host_port)
    assert len(host_ports) == len(set(host_ports)), f"host ports collide: {host_ports}"


def test_prometheus_scrapes_the_compose_services_with_the_alerts_job_names():
    config_path = prometheus_config_path()
    config = yaml.safe_load(config_path.read_text())
    for rule_file in config["rule_files"]:
        assert (config_path.parent / rule_file).is_file(), f"{rule_file} is not in the mounted folder"
    scraped = {}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                assert host in services(), f"{job['job_name']}: {target} is not a compose service"
                assert listen_port(host) == int(port), f"{target}: {host} listens on {listen_port(host)}"
                scraped[job["job_name"]] = host
    assert scraped == {"driftmart-api": "api", "driftmart-exporter": "exporter"}
    # The same job names as the host config: alerts.yml and the dashboard select on them.
    host_config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in host_config["scrape_configs"]} == set(scraped)
    assert config["rule_files"] == host_config["rule_files"]


def test_promtool_checks_the_compose_prometheus_config():
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "`promtool` is not installed (Debian package `prometheus`; .ci/run installs it)"
        if IN_CI:
            pytest.fail(f"{message}, and CI=true: this test must run in CI")
        pytest.skip(message)
    config_path = prometheus_config_path()
    completed = subprocess.run(
        [promtool, "check", "config", config_path.name],
        cwd=config_path.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"SUCCESS: {config_path.name} is valid" in completed.stdout + completed.stderr


def test_grafana_gets_the_datasource_and_dashboard_where_it_provisions_them():
    mounts = {str(target): source for source, target, _ in bind_mounts("grafana")}
    datasources = mounts["/etc/grafana/provisioning/datasources"]
    ((datasource,),) = [
        yaml.safe_load(path.read_text())["datasources"] for path in sorted(datasources.glob("*.yml"))
    ]
    original = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/driftmart.yml").read_text())
    (expected,) = original["datasources"]
    assert {key: value for key, value in datasource.items() if key != "url"} == {
        key: value for key, value in expected.items() if key != "url"
    }
    assert datasource["url"] == f"http://prometheus:{listen_port('prometheus')}"
    dashboards = mounts["/etc/grafana/provisioning/dashboards"]
    (provider,) = yaml.safe_load((dashboards / "driftmart.yml").read_text())["providers"]
    dashboard_folder = mounts[provider["options"]["path"]]
    dashboard = json.loads((dashboard_folder / "driftmart.json").read_text())

    def datasource_uids(node: Any) -> list[str]:
        if isinstance(node, list):
            return [uid for item in node for uid in datasource_uids(item)]
        if not isinstance(node, dict):
            return []
        own = [node["datasource"]["uid"]] if isinstance(node.get("datasource"), dict) else []
        return own + [uid for value in node.values() for uid in datasource_uids(value)]

    uids = [uid for uid in datasource_uids(dashboard) if not uid.startswith("-- ")]  # built-in ones
    assert uids and set(uids) == {datasource["uid"]}, set(uids)


# --- the healthchecks, for real --------------------------------------------------------------


def healthcheck_argv(test: list[str] | str, port: int, new_port: int) -> list[str]:
    argv = exec_form(test) if isinstance(test, str) else list(test)
    assert argv[0] == "CMD" and argv[1] == "python", argv
    program = argv[3]
    assert program.count(f"127.0.0.1:{port}/") == 1, program
    return [sys.executable, "-c", program.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{new_port}/")]


def run_check(argv: list[str]) -> int:
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode


def test_the_exporter_healthcheck_passes_against_a_real_exporter_and_fails_without_one(home):
    from warehouse.exporter import metrics_server

    port = listen_port("exporter")
    test = services()["exporter"]["healthcheck"]["test"]
    server = metrics_server(home, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert run_check(healthcheck_argv(test, port, server.server_address[1])) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert run_check(healthcheck_argv(test, port, free_port())) != 0


@pytest.mark.slow
def test_the_image_healthcheck_passes_against_a_real_api_and_fails_without_one(trained_home):
    (healthcheck,) = instruction_values("HEALTHCHECK")
    test = ["CMD", *exec_form(healthcheck.split("CMD", 1)[1].strip())]
    process, base = start_api_server(trained_home)
    try:
        assert run_check(healthcheck_argv(test, API_PORT, int(base.rsplit(":", 1)[1]))) == 0
    finally:
        stop_process_group(process)
    assert run_check(healthcheck_argv(test, API_PORT, free_port())) != 0
