"""The Dagster instance of a driftmart home: `<home>/dagster`, so runs from the CLI and the UI persist
in one place and both see the same history."""

from __future__ import annotations

import dagster as dg

from warehouse.home import Home

INSTANCE_CONFIG = """\
# Written by driftmart. Warehouse writers share one pool of one slot: DuckDB has one writer per file.
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def ensure_instance_dir(home: Home) -> str:
    home.dagster_home.mkdir(parents=True, exist_ok=True)
    config = home.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_CONFIG)
    return str(home.dagster_home)


def instance_for(home: Home) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(ensure_instance_dir(home))
