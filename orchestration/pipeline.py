"""One batch pass through the Dagster definitions, as `driftmart run` and `driftmart demo` do it.

The CLI executes the same job the UI shows, on the home's own Dagster instance, so CLI and UI never
disagree and the UI lists the CLI's runs.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import dagster as dg

from ml.spec import ModelSpec
from warehouse.connection import connect_published
from warehouse.home import Home


@dataclass(frozen=True)
class PipelineOutcome:
    success: bool
    run_id: str
    failed_steps: list[str]
    warnings: list[str]


def run_pipeline(home: Home, spec_path: str | None = None, *, log_level: str = "WARNING") -> PipelineOutcome:
    """Ingest, dbt build and publish; returns whether the run succeeded and the failed checks.

    The full event log is in the home's Dagster instance (`driftmart ui`); the console shows
    `log_level` and above.
    """
    os.environ["DRIFTMART_HOME"] = str(home.root)
    if spec_path:
        os.environ["DRIFTMART_SPEC"] = str(spec_path)
    from orchestration.definitions import PIPELINE_JOB, build_definitions
    from orchestration.instance import instance_for

    definitions = build_definitions(str(home.root), spec_path)
    job = definitions.resolve_job_def(PIPELINE_JOB)
    home.dbt_logs.mkdir(parents=True, exist_ok=True)
    # dbt's own progress lines go to a file (and to the Dagster event log), not the terminal.
    with (
        instance_for(home) as instance,
        (home.dbt_logs / "last_run.log").open("w") as console,
        contextlib.redirect_stdout(console),
    ):
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
        failed_steps = [
            event.step_key or ""
            for event in result.all_events
            if event.event_type == dg.DagsterEventType.STEP_FAILURE
        ]
        warnings = [
            f"{evaluation.asset_key.to_user_string()}: {evaluation.check_name}"
            for evaluation in result.get_asset_check_evaluations()
            if not evaluation.passed
        ]
    return PipelineOutcome(result.success, result.run_id, failed_steps, warnings)


def latest_feature_drift(home: Home, spec: ModelSpec) -> list[tuple]:
    """fct_feature_drift rows of the published copy, in window order."""
    with connect_published(home) as connection:
        return connection.execute(
            """
            select window_start, feature_name, feature_type, n_current, psi, threshold, is_drifted
            from marts.fct_feature_drift
            where model_name = ?
            order by window_start, feature_name
            """,
            [spec.model],
        ).fetchall()
