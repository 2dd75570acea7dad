"""The dbt project as Dagster assets; dbt tests become asset checks.

Drift tests have severity `warn` (a signal to act, non-blocking); data-quality tests are `error`
(blocking: a failure fails the run and nothing downstream, such as publishing, runs).
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from orchestration.resources import WAREHOUSE_WRITER_POOL, DriftmartResource
from warehouse.connection import writer_lock
from warehouse.home import Home
from warehouse.targets import resolve_target

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"


def dbt_executable() -> str:
    beside_python = Path(sys.executable).with_name("dbt")
    return str(beside_python) if beside_python.exists() else "dbt"


def dbt_environment(home: Home) -> dict[str, str]:
    """What the dbt process needs: the home (the profile reads it), the target's output and settings
    (DRIFTMART_TARGET, warehouse/targets/) and logs kept inside the home."""
    return {
        "DRIFTMART_HOME": str(home.root),
        "DBT_LOG_PATH": str(home.dbt_logs),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **resolve_target().dbt_environment(home),
    }


def _project_sources() -> list[Path]:
    patterns = ("models/**/*", "macros/**/*", "tests/**/*", "dbt_project.yml", "profiles.yml")
    return [path for pattern in patterns for path in DBT_PROJECT_DIR.glob(pattern) if path.is_file()]


def ensure_manifest() -> Path:
    """`dbt parse` when the manifest is missing or older than any project file (Dagster needs it)."""
    if MANIFEST.exists():
        built = MANIFEST.stat().st_mtime
        if all(path.stat().st_mtime <= built for path in _project_sources()):
            return MANIFEST
    environment = {**os.environ, **dbt_environment(Home.resolve())}
    environment["DBT_LOG_PATH"] = str(DBT_PROJECT_DIR / "logs")
    completed = subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--quiet",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
        ],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"dbt parse failed:\n{completed.stdout}\n{completed.stderr}")
    return MANIFEST


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


def build_dbt_assets(partitions: dg.PartitionsDefinition | None = None) -> dg.AssetsDefinition:
    """The dbt project as assets, partitioned by window when the spec's window allows it."""

    @dbt_assets(
        manifest=ensure_manifest(),
        dagster_dbt_translator=TRANSLATOR,
        # dbt unit tests are developer tests (pytest runs them); production builds skip them, which
        # also avoids their failing on a first build before incremental tables exist (DESIGN.md §9).
        exclude="resource_type:unit_test",
        pool=WAREHOUSE_WRITER_POOL,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions is not None else None,
    )
    def driftmart_dbt_assets(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, driftmart: DriftmartResource
    ) -> Iterator[Any]:
        """`dbt build`: staging views, incremental bin counts, drift marts. A run for a range of
        window partitions (a backfill) also recounts those windows in full (dbt vars recount_from /
        recount_to); any run recounts the windows that received rows."""
        home = driftmart.home
        # The dbt subprocess inherits this process's environment; the profile reads DRIFTMART_HOME.
        os.environ.update(dbt_environment(home))
        arguments = ["build"]
        if context.has_partition_key:
            window = context.partition_time_window
            recount = {
                "recount_from": f"{window.start.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
                "recount_to": f"{window.end.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            }
            arguments += ["--vars", json.dumps(recount)]
        with writer_lock(home):
            invocation = dbt.cli(arguments, context=context, target_path=home.dbt_target / context.run_id)
            yield from invocation.stream()

    return driftmart_dbt_assets


def mart_asset_keys() -> list[dg.AssetKey]:
    """The marts' asset keys, read from the manifest (the same keys the translator gives)."""
    nodes = json.loads(ensure_manifest().read_text())["nodes"].values()
    return sorted(
        (
            TRANSLATOR.get_asset_key(node)
            for node in nodes
            if node["resource_type"] == "model" and node["config"].get("schema") == "marts"
        ),
        key=lambda key: key.to_user_string(),
    )


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(
        project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
    )
