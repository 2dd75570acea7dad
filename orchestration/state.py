"""Selection by state: a `driftmart run` whose inputs have not changed since the last successful
build does not build again.

What a build read is recorded when it succeeded, in `<home>/dbt/build_state.json`:

- the dbt project (every file of models, macros, tests, `dbt_project.yml`, `profiles.yml`, installed
  packages), the versions of dbt, its adapter and DuckDB, the target, and (hashed) the value of
  every environment variable the project or the profile reads with `env_var()`;
- each raw table the project reads as a source: its columns, and for the logs (`inference_log`,
  `labels`, numbered by the monotonic `ingest_seq`) the row count and the sum and maximum of
  `ingest_seq`; for the other tables the row count and a hash of every row (`loaded_at` left out:
  the ingest step rewrites it on every pass, and no model reads it), or for a large one the row count
  and the newest `loaded_at` (those tables only ever gain whole reference sets);
- the tables dbt built (DuckDB's catalog id, row count and width of each), so a `dbt build` run by
  hand in between is noticed.

The dbt asset takes the record under the writer lock, just before dbt starts (what dbt will read)
and just after it succeeded (what it built); the publish asset promotes it to `build_state.json`
after a successful publish, atomically. A run for a subset of the dbt assets records nothing.

`unchanged_since_last_build` is the other half: the ingest step's own first work (mirroring the spec
and the registry) is done, and when no landed line waits, and the record matches what it would take
now, and the Evidently report of the model's latest window was made from a build of the same inputs
(its marker names the build), the marts and the report are already what a pass would make: the run
republishes the warehouse (so the exporter's time since the last successful run keeps counting from
now) and judges from the published marts, with no Dagster run, no dbt process and no Evidently.

A project that reads the wall clock (`current_timestamp`, `now()`, `run_started_at` …) is never
skipped: its marts could differ from one build to the next. Only the DuckDB target is skipped: on
PostgreSQL and Spark the built tables live on an engine this check does not see.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb

from ml.spec import ModelSpec
from orchestration.dbt_setup import DBT_PROJECT_DIR
from warehouse.files import write_atomic
from warehouse.home import Home

STATE_VERSION = 1
STATE_FILE = "build_state.json"
PENDING_FILE = "build_state.pending.json"
PROJECT_PATTERNS = (
    "models/**/*",
    "macros/**/*",
    "tests/**/*",
    "analyses/**/*",
    "snapshots/**/*",
    "seeds/**/*",
    "dbt_packages/**/*",
    "dbt_project.yml",
    "profiles.yml",
    "packages.yml",
    "dependencies.yml",
    "package-lock.yml",
)
SOFTWARE = ("dbt-core", "dbt-adapters", "dbt-duckdb", "duckdb")
ENV_VAR = re.compile(r"""env_var\(\s*['"]([^'"]+)['"]""")
# SQL and Jinja that read the clock: a model using one gives another answer at every build.
WALL_CLOCK = re.compile(
    r"\b(current_timestamp|current_date|current_time|localtimestamp|localtime|getdate|sysdate|"
    r"systimestamp|now\s*\(|today\s*\(|run_started_at|modules\.datetime|get_current_timestamp|"
    r"snapshot_get_time)",
    re.IGNORECASE,
)
# A table without `ingest_seq` and more rows than this is fingerprinted by count and newest
# `loaded_at` instead of a hash of every row (only raw.reference_rows grows this large).
HASHED_ROWS_LIMIT = 200_000
# Beside each Evidently report: the digest of its inputs (orchestration/assets/reports.py).
REPORT_INPUTS_FILE = ".driftmart-inputs"
SEQUENCE = "ingest_seq"
PROJECT_KEYS = ("project", "software", "target", "environment")
LOADED_AT = "loaded_at"


def state_path(home: Home) -> Path:
    return home.root / "dbt" / STATE_FILE


def pending_path(home: Home) -> Path:
    return home.root / "dbt" / PENDING_FILE


def project_files(project_dir: Path = DBT_PROJECT_DIR) -> list[Path]:
    """Every file of the dbt project a parse or a build reads (the manifest is stale when one is newer)."""
    found = {path for pattern in PROJECT_PATTERNS for path in project_dir.glob(pattern) if path.is_file()}
    return sorted(path for path in found if "__pycache__" not in path.parts)


# YAML keys whose values are prose or developer tests, never SQL a build runs.
PROSE_KEYS = {"description", "doc", "docs", "meta", "name", "unit_tests", "label", "owner"}
SQL_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/|{#.*?#}", re.DOTALL)


def _yaml_strings(node: Any) -> Iterator[str]:
    """Every string of a YAML document that is not prose (a description) or a unit test."""
    if isinstance(node, dict):
        for key, value in node.items():
            if str(key) not in PROSE_KEYS:
                yield from _yaml_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _yaml_strings(value)
    elif isinstance(node, str):
        yield node


def _code(path: Path) -> str:
    """The text of a project file that could run in a build: SQL without its comments, the
    non-prose strings of YAML, the Jinja of Markdown docs blocks."""
    text = path.read_text(errors="replace")
    if path.suffix in {".yml", ".yaml"}:
        import yaml

        try:
            return "\n".join(_yaml_strings(yaml.safe_load(text)))
        except yaml.YAMLError:
            return text
    if path.suffix == ".md":
        return "\n".join(re.findall(r"{{.*?}}|{%.*?%}", text, re.DOTALL))
    return SQL_COMMENTS.sub(" ", text)


def wall_clock_references(project_dir: Path = DBT_PROJECT_DIR) -> list[str]:
    """`file: match` of every read of the clock in the SQL, YAML and Jinja a build of the project runs."""
    found = []
    for path in project_files(project_dir):
        if path.suffix not in {".sql", ".yml", ".yaml", ".jinja", ".md"} or "dbt_packages" in path.parts:
            continue
        matches = WALL_CLOCK.finditer(_code(path))
        found += [f"{path.relative_to(project_dir)}: {match.group(0)}" for match in matches]
    return found


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def project_inputs(environment: dict[str, str], project_dir: Path = DBT_PROJECT_DIR) -> dict[str, Any]:
    """The build's inputs other than the data: project files, software, target and environment."""
    digest = hashlib.sha256()
    variables: set[str] = set()
    for path in project_files(project_dir):
        content = path.read_bytes()
        digest.update(str(path.relative_to(project_dir)).encode() + b"\0" + content + b"\0")
        if path.suffix in {".sql", ".yml", ".yaml", ".jinja"}:
            variables |= set(ENV_VAR.findall(content.decode(errors="replace")))
    return {
        "project": digest.hexdigest(),
        "software": {package: _version(package) for package in SOFTWARE},
        "target": environment.get("DRIFTMART_TARGET", "duckdb"),
        # Hashed: the profile reads PGPASSWORD, which must not be written down.
        "environment": hashlib.sha256(
            json.dumps({name: environment.get(name) for name in sorted(variables)}).encode()
        ).hexdigest(),
    }


def source_tables(manifest: dict[str, Any]) -> list[str] | None:
    """The raw tables the project reads (`raw.<name>`), or None when a source is not a raw table."""
    tables = set()
    for source in manifest.get("sources", {}).values():
        if source.get("schema") != "raw":
            return None
        tables.add(source.get("identifier") or source["name"])
    return sorted(tables)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def raw_digest(connection: duckdb.DuckDBPyConnection, tables: list[str]) -> dict[str, Any] | None:
    """Per table: its columns and a summary that changes whenever its rows do (see the module
    docstring). None when a table is missing."""
    digest: dict[str, Any] = {}
    for table in tables:
        columns = connection.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' and table_name = ? order by ordinal_position",
            [table],
        ).fetchall()
        if not columns:
            return None
        names = [name for name, _ in columns]
        relation = f"raw.{_quoted(table)}"
        if SEQUENCE in names:
            summary = connection.execute(
                f"select count(*), max({SEQUENCE}), sum({SEQUENCE})::varchar from {relation}"
            ).fetchone()
        else:
            (rows,) = connection.execute(f"select count(*) from {relation}").fetchone()
            hashed = [_quoted(name) for name in names if name != LOADED_AT]
            if rows > HASHED_ROWS_LIMIT and LOADED_AT in names:
                summary = connection.execute(
                    f"select count(*), max({LOADED_AT})::varchar from {relation}"
                ).fetchone()
            else:
                summary = connection.execute(
                    f"select count(*), coalesce(sum(hash({', '.join(hashed)})), 0)::varchar from {relation}"
                ).fetchone()
        digest[table] = {"columns": [list(column) for column in columns], "summary": list(summary)}
    return digest


def built_tables(connection: duckdb.DuckDBPyConnection) -> list[list[Any]]:
    """The tables outside `raw` (what dbt builds): catalog id, rows and columns. A build replaces
    table models (new ids) and grows incremental ones, so any build changes this list."""
    return [
        list(row)
        for row in connection.execute(
            "select schema_name, table_name, table_oid, estimated_size, column_count from duckdb_tables() "
            "where database_name = current_database() and schema_name not in ('raw', '_driftmart') "
            "order by 1, 2"
        ).fetchall()
    ]


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        content = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return content if isinstance(content, dict) and content.get("version") == STATE_VERSION else None


def _write_json(path: Path, content: dict[str, Any]) -> None:
    write_atomic(path, (json.dumps(content, indent=2, sort_keys=True) + "\n").encode())


def before_build(home: Home, environment: dict[str, str], manifest: dict[str, Any]) -> dict[str, Any] | None:
    """What the build is about to read, taken under the writer lock with no connection open
    afterwards (dbt needs the file). None when the run cannot be skipped next time anyway."""
    if environment.get("DRIFTMART_TARGET", "duckdb") != "duckdb" or not home.warehouse.exists():
        return None
    tables = source_tables(manifest)
    if tables is None:
        return None
    inputs = project_inputs(environment)
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        raw = raw_digest(connection, tables)
    return None if raw is None else {**inputs, "raw": raw}


def after_build(home: Home, run_id: str, inputs: dict[str, Any]) -> None:
    """The build succeeded: keep what it read and built until the publish confirms it."""
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        built = built_tables(connection)
    _write_json(
        pending_path(home), {"version": STATE_VERSION, "run_id": run_id, "inputs": inputs, "built": built}
    )


def after_publish(home: Home, run_id: str) -> bool:
    """The build of `run_id` is published: its record, with the tables as the run left them, becomes
    the home's build state. A build of another run, or none, in between leaves the state as it was."""
    pending = read_json(pending_path(home))
    if pending is None or pending.get("run_id") != run_id:
        return False
    # The steps between the build and the publish (the multivariate drift) write tables too: the
    # state is what the whole run left, taken now (the caller holds the writer lock).
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        pending["built"] = built_tables(connection)
    pending["recorded_at"] = datetime.now(UTC).isoformat()
    _write_json(state_path(home), pending)
    pending_path(home).unlink(missing_ok=True)
    return True


def forget(home: Home) -> None:
    """Whatever the next run finds, it builds (a failed or partial build leaves a state behind)."""
    state_path(home).unlink(missing_ok=True)


def _landing_waits(connection: duckdb.DuckDBPyConnection, home: Home) -> bool:
    """Would the ingest step load anything? True when a landed segment holds bytes it has not
    loaded, or a finished segment is not marked complete yet (conservative: then a run builds)."""
    from warehouse.landing import STREAMS, is_segment_live, list_segments

    loaded = {
        segment: (bytes_loaded, is_complete)
        for segment, bytes_loaded, is_complete in connection.execute(
            "select segment, bytes_loaded, is_complete from raw.landing_manifest"
        ).fetchall()
    }
    for stream in STREAMS:
        for segment in list_segments(home.landing, stream):
            bytes_loaded, is_complete = loaded.get(str(segment.relative_to(home.landing)), (0, False))
            if is_complete:
                continue
            if segment.stat().st_size != bytes_loaded or not is_segment_live(segment):
                return True
    return False


def inputs_key(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def published_build_key(home: Home) -> str | None:
    """The key of the build whose marts the published copy holds, when it is the recorded one."""
    from warehouse.publish import read_status

    recorded, status = read_json(state_path(home)), read_status(home)
    if recorded is None or status is None or status.get("run_id") != recorded["run_id"]:
        return None
    return inputs_key(recorded["inputs"])


def report_marker(digest: str, build_key: str | None) -> str:
    """What `.driftmart-inputs` holds: the digest of the report's inputs, and the key of the build
    whose published marts it was made from (or confirmed against)."""
    return f"{digest}\n{build_key or ''}\n"


def _report_is_current(home: Home, spec: ModelSpec, recorded: dict[str, Any]) -> str | None:
    """None when the Evidently report of the latest window was made (or confirmed) from the marts
    of a build of these very inputs, else why not: then the report step would make it again."""
    from ml.reports import report_directory
    from warehouse.connection import NothingPublishedError, connect_published

    try:
        with connect_published(home) as connection:
            latest = latest_reported_window(connection, spec)
    except (NothingPublishedError, duckdb.Error) as error:
        return f"the published copy cannot be read ({error})"
    if latest is None:
        return "no window to report"
    marker = report_directory(home, spec.model, latest) / REPORT_INPUTS_FILE
    lines = marker.read_text().splitlines() if marker.exists() else []
    if len(lines) < 2 or lines[1] != inputs_key(recorded["inputs"]):
        return f"the Evidently report of {latest:%Y-%m-%d %H:%M} is not of the last build"
    return None


def latest_reported_window(
    connection: duckdb.DuckDBPyConnection, spec: ModelSpec, now: datetime | None = None
) -> datetime | None:
    """The newest *judged* window of the model, the one the pipeline's Evidently report covers:
    driftmart judged it (it has a reference and not fewer rows than `min_window_rows`: the marts'
    `has_reference and not is_below_min_rows`, as orchestration/automation.py `judged_windows`
    selects) and it is closed (its end at or before `now`, default the clock in UTC: an open window
    still gains rows). None when no window is judged yet."""
    closed_by = now if now is not None else datetime.now(UTC).replace(tzinfo=None)
    (latest,) = connection.execute(
        """
        select max(window_start) from marts.fct_feature_drift
        where model_name = ? and has_reference and not is_below_min_rows and window_end <= ?
        """,
        [spec.model, closed_by],
    ).fetchone()
    return latest


def unchanged_since_last_build(home: Home, spec: ModelSpec) -> tuple[bool, str]:
    """(True, why) when nothing a build reads changed since the last successful one, after mirroring
    the spec and the registry and republishing the warehouse; else (False, what changed).
    Mirrors, checks and publishes as the pipeline would, each under the writer lock."""
    from orchestration.dbt_setup import dbt_environment
    from warehouse.connection import connect_writer, writer_lock
    from warehouse.ingest import mirror_model
    from warehouse.publish import publish

    recorded = state_path(home)
    state = read_json(recorded)
    if state is None:
        return False, "no successful build recorded"
    environment = {**os.environ, **dbt_environment(home)}
    if environment.get("DRIFTMART_TARGET", "duckdb") != "duckdb":
        return False, f"target {environment['DRIFTMART_TARGET']}: only DuckDB builds are skipped"
    clock = wall_clock_references()
    if clock:
        return False, f"the dbt project reads the clock ({clock[0]})"
    inputs = state["inputs"]
    if project_inputs(environment) != {key: inputs[key] for key in PROJECT_KEYS}:
        return False, "the dbt project, its software or its environment changed"
    stale = _report_is_current(home, spec, state)
    if stale:
        return False, stale
    mirror_model(home, spec)  # the ingest step's first work: the spec and the registry as they are now
    # One hold of the writer lock for the comparison and the publish: no write can come in between.
    with writer_lock(home):
        connection = connect_writer(home)
        try:
            changed = _what_changed(connection, home, state)
        finally:
            connection.close()
        if changed:
            return False, changed
        publish(home, run_id=state["run_id"])
    return True, f"nothing changed since the build of run {state['run_id']} ({state['recorded_at']})"


def _what_changed(connection: duckdb.DuckDBPyConnection, home: Home, state: dict[str, Any]) -> str | None:
    if _landing_waits(connection, home):
        return "landed lines wait to be loaded"
    if raw_digest(connection, list(state["inputs"]["raw"])) != state["inputs"]["raw"]:
        return "raw rows changed"
    if built_tables(connection) != state["built"]:
        return "the built tables changed since the last build"
    return None
