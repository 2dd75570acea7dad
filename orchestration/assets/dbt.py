"""The dbt project as Dagster assets; dbt tests become asset checks.

Drift tests have severity `warn` (a signal to act, non-blocking); data-quality tests are `error`
(blocking: a failure fails the run and nothing downstream, such as publishing, runs).
"""

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from packaging import version

from orchestration import state
from orchestration.dbt_setup import DBT_PROJECT_DIR, dbt_environment, dbt_executable, dbt_target_path
from orchestration.jobs import DBT_OP
from orchestration.resources import WAREHOUSE_WRITER_POOL, DriftmartResource
from warehouse.connection import writer_lock
from warehouse.home import Home

MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"


def ensure_manifest() -> Path:
    """`dbt parse` when the manifest is missing or older than any project file (Dagster needs it)."""
    if MANIFEST.exists():
        built = MANIFEST.stat().st_mtime
        if all(path.stat().st_mtime <= built for path in state.project_files()):
            return MANIFEST
    environment = {**os.environ, **dbt_environment(Home.resolve())}
    environment["DBT_LOG_PATH"] = str(DBT_PROJECT_DIR / "logs")
    # Parsed into a folder of its own, then moved into place in one rename: two processes that
    # find the manifest stale at once never read a half-written one.
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".parse-", dir=MANIFEST.parent) as target:
        completed = subprocess.run(
            [
                dbt_executable(),
                "parse",
                "--quiet",
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                target,
            ],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"dbt parse failed:\n{completed.stdout}\n{completed.stderr}")
        os.replace(Path(target) / MANIFEST.name, MANIFEST)
    return MANIFEST


@cache
def _manifest_at(path: Path, modified_ns: int) -> dict[str, Any]:
    return json.loads(path.read_text())


def load_manifest() -> dict[str, Any]:
    """The parsed manifest (read once per version of the file: the dbt assets, the publish asset's
    dependencies and the build state all need it)."""
    path = ensure_manifest()
    return _manifest_at(path, path.stat().st_mtime_ns)


class DriftmartDbtCli(DbtCliResource):
    """dagster-dbt's dbt resource without two start-up costs that driftmart does not need: a
    `dbt --version` subprocess before every invocation (the dbt beside this Python is the dbt-core
    package installed with it, whose version is known), and an in-process dbt adapter (dagster-dbt
    opens one only to fetch row counts or column metadata, which driftmart does not ask for)."""

    @property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) == Path(sys.executable).with_name("dbt"):
            return version.parse(metadata.version("dbt-core"))
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args):
        return None


class DbtBuildConfig(dg.Config):
    """How the run calls dbt."""

    full_refresh: bool = False  # `dbt build --full-refresh`: rebuild the incremental models from scratch


class DriftmartDbtTranslator(DagsterDbtTranslator):
    """Models are keyed `<schema>/<name>` (e.g. `marts/fct_feature_drift`) and grouped by layer."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["config"]["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return "raw"
        return dbt_resource_props["config"]["schema"]


TRANSLATOR = DriftmartDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def _recorded(context: dg.AssetExecutionContext, step, *args):
    """A step of the build state (orchestration/state.py), for a build of every model and test;
    it never fails the build: without a record, the next run builds."""
    everything = (
        context.selected_asset_keys == context.assets_def.keys
        and context.selected_asset_check_keys == context.assets_def.check_keys
    )
    if not everything:
        return None
    try:
        return step(*args)
    except (duckdb.Error, OSError, ValueError, KeyError) as error:
        context.log.warning(f"build state not recorded ({type(error).__name__}: {error})")
        return None


def build_dbt_assets(partitions: dg.PartitionsDefinition | None = None) -> dg.AssetsDefinition:
    """The dbt project as assets, partitioned by window when the spec's window allows it."""

    @dbt_assets(
        manifest=load_manifest(),
        name=DBT_OP,
        dagster_dbt_translator=TRANSLATOR,
        # dbt unit tests are developer tests (pytest runs them); production builds skip them, which
        # also avoids their failing on a first build before incremental tables exist
        # (docs/architecture.md §9).
        exclude="resource_type:unit_test",
        pool=WAREHOUSE_WRITER_POOL,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions is not None else None,
    )
    def driftmart_dbt_assets(
        context: dg.AssetExecutionContext,
        dbt: DbtCliResource,
        driftmart: DriftmartResource,
        config: DbtBuildConfig,
    ) -> Iterator[Any]:
        """`dbt build`: staging views, incremental bin counts, drift marts. A run for a range of
        window partitions (a backfill) also recounts those windows in full (dbt vars recount_from /
        recount_to); any run recounts the windows that received rows. A build of every model and
        test is recorded (orchestration/state.py) so that a later run with nothing new can skip it."""
        home = driftmart.home
        # The dbt subprocess inherits this process's environment; the profile reads DRIFTMART_HOME.
        os.environ.update(dbt_environment(home))
        arguments = ["build"]
        if config.full_refresh:
            arguments.append("--full-refresh")
        if context.has_partition_key:
            window = context.partition_time_window
            recount = {
                "recount_from": f"{window.start.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
                "recount_to": f"{window.end.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            }
            arguments += ["--vars", json.dumps(recount)]
        with writer_lock(home):
            state.pending_path(home).unlink(missing_ok=True)
            inputs = _recorded(context, state.before_build, home, dict(os.environ), load_manifest())
            invocation = dbt.cli(arguments, context=context, target_path=dbt_target_path(home))
            yield from invocation.stream()
            if inputs is not None:
                _recorded(context, state.after_build, home, context.run_id, inputs)

    return driftmart_dbt_assets


def mart_asset_keys() -> list[dg.AssetKey]:
    """The marts' asset keys, read from the manifest (the same keys the translator gives)."""
    nodes = load_manifest()["nodes"].values()
    return sorted(
        (
            TRANSLATOR.get_asset_key(node)
            for node in nodes
            if node["resource_type"] == "model" and node["config"].get("schema") == "marts"
        ),
        key=lambda key: key.to_user_string(),
    )


def dbt_resource() -> DbtCliResource:
    return DriftmartDbtCli(
        project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
    )
