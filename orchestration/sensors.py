"""Sensors and schedules: new landed data → the pipeline; failed drift checks → a retrain.

The sensors run by default under `driftmart ui` (its daemon evaluates them); `driftmart run` does
the same work directly. The window schedule is off by default: turn it on where data lands without
the API (imports, another writer), and it runs the pipeline once each window closes.
"""

import dagster as dg

from orchestration.automation import retrain_decision
from orchestration.partitions import current_partition_key
from orchestration.resources import DriftmartResource
from warehouse.landing import STREAMS, list_segments


def landed_bytes(driftmart: DriftmartResource) -> int:
    """Total size of the landing zone: it only grows (append-only segments), so any change is new data."""
    home = driftmart.home
    return sum(path.stat().st_size for stream in STREAMS for path in list_segments(home.landing, stream))


def build_landing_sensor(job, partitions: dg.PartitionsDefinition | None) -> dg.SensorDefinition:
    @dg.sensor(
        name="landed_data_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs the pipeline when the API has landed new predictions or labels.",
    )
    def landed_data_sensor(context: dg.SensorEvaluationContext, driftmart: DriftmartResource):
        size = landed_bytes(driftmart)
        if context.cursor is not None and int(context.cursor) == size:
            return dg.SkipReason("no new landed data")
        context.update_cursor(str(size))
        if size == 0:
            return dg.SkipReason("the landing zone is empty")
        return dg.RunRequest(run_key=f"landed:{size}", partition_key=current_partition_key(partitions))

    return landed_data_sensor


def build_window_schedule(job, partitions: dg.PartitionsDefinition | None) -> list[dg.ScheduleDefinition]:
    """A run at the end of every window (for its partition), when the window is a partition."""
    if partitions is None:
        return []
    return [
        dg.build_schedule_from_partitioned_job(
            job,
            name="window_schedule",
            default_status=dg.DefaultScheduleStatus.STOPPED,
            description="Runs the pipeline as each window closes "
            "(off by default: the landing sensor covers API traffic).",
        )
    ]


def build_retrain_sensor(job) -> dg.SensorDefinition:
    @dg.sensor(
        name="drift_retrain_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests a retrain when drift checks fail (see orchestration/automation.py).",
    )
    def drift_retrain_sensor(context: dg.SensorEvaluationContext, driftmart: DriftmartResource):
        decision = retrain_decision(driftmart.home, driftmart.spec())
        if not decision.needed:
            return dg.SkipReason(decision.reason)
        return dg.RunRequest(run_key=decision.run_key, tags={"driftmart/trigger": decision.reason})

    return drift_retrain_sensor
