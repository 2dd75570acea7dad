"""How driftmart runs dbt: the project, the executable, its environment and its target folder.

Kept apart from the dbt assets (orchestration/assets/dbt.py), which import Dagster and dagster-dbt:
the build state check of `driftmart run` (orchestration/state.py) needs the same environment
without loading either.
"""

from __future__ import annotations

import sys
from pathlib import Path

from warehouse.connection import MEMORY_LIMIT_ENV, THREADS_ENV, duckdb_memory_limit, duckdb_threads
from warehouse.home import Home
from warehouse.targets import resolve_target, target_name

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"


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
        # The profile's DuckDB settings: the same threads and memory limit as driftmart's connections.
        THREADS_ENV: str(duckdb_threads()),
        MEMORY_LIMIT_ENV: duckdb_memory_limit(),
        **resolve_target().dbt_environment(home),
    }


def dbt_target_path(home: Home) -> Path:
    """dbt's target folder for this home and target: the same on every run, so dbt's partial parsing
    (`partial_parse.msgpack`) is reused and a build parses only what changed. Runs on one home take
    the writer lock around dbt, so two never share the folder at once."""
    return home.dbt_target / target_name()
