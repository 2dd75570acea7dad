"""The one Dagster `Definitions` of driftmart: `dagster dev -m orchestration.definitions`.

The home and spec come from `DRIFTMART_HOME` and `DRIFTMART_SPEC` (the CLI sets both). Importing this
module builds them (Dagster looks for `defs`); `driftmart run` builds its own through
orchestration/assembly.py and never imports this module.
"""

from __future__ import annotations

from orchestration.assembly import build_definitions
from orchestration.jobs import PIPELINE_JOB, RETRAIN_JOB

__all__ = ["PIPELINE_JOB", "RETRAIN_JOB", "build_definitions", "defs"]

defs = build_definitions()
