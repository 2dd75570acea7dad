"""One batch pass through the Dagster definitions, as `driftmart run` and `driftmart demo` do it.

The CLI executes the same job the UI shows, on the home's own Dagster instance, so CLI and UI never
disagree and the UI lists the CLI's runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ml.spec import ModelSpec
from warehouse.connection import connect_published
from warehouse.home import Home

if TYPE_CHECKING:  # Dagster is imported when a pipeline runs, not by who reads the marts
    import dagster as dg
    import duckdb


@dataclass(frozen=True)
class PipelineOutcome:
    success: bool
    run_id: str
    failed_steps: list[str]
    warnings: list[str]

    @property
    def failure(self) -> str:
        """What went wrong, for an error message: the run and its failed steps."""
        return f"run {self.run_id} failed at {', '.join(self.failed_steps)}"


PID_TAG, HOST_TAG = "driftmart/pid", "driftmart/host"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the in-process runs whose process died (kill -9, power loss) and free their
    concurrency slots: a dead run would otherwise hold the warehouse writer pool's only slot, and
    every later run would wait for it forever. Only runs started here by `run_pipeline` (they carry
    the pid and host tags) whose process is gone are touched. Returns their run ids."""
    import dagster as dg

    released = []
    in_progress = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])
    for run in instance.get_runs(filters=in_progress):
        pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
        if pid is None or host != socket.gethostname() or _process_alive(int(pid)):
            continue
        instance.report_run_failed(run, message=f"driftmart: the process running it (pid {pid}) is gone")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(run.run_id)
    return released


def run_pipeline(
    home: Home,
    spec_path: str | None = None,
    *,
    job_name: str | None = None,
    partition_key: str | None = None,
    log_level: str = "WARNING",
    full_refresh: bool = False,
    note: str | None = None,
) -> PipelineOutcome:
    """Run a job of the definitions (default: ingest, dbt build, publish) on the home's instance;
    returns whether it succeeded and the failed checks. `full_refresh` rebuilds dbt's incremental
    models from scratch (`dbt build --full-refresh`); `note` heads `<home>/dbt/logs/last_run.log`.

    The full event log is in the home's Dagster instance (`driftmart ui`); the console shows
    `log_level` and above.
    """
    os.environ["DRIFTMART_HOME"] = str(home.root)
    if spec_path:
        os.environ["DRIFTMART_SPEC"] = str(spec_path)
    import dagster as dg

    from orchestration.assembly import build_definitions
    from orchestration.instance import instance_for
    from orchestration.jobs import DBT_OP, PIPELINE_JOB, REPORT_OP
    from orchestration.partitions import current_partition_key
    from warehouse.targets import resolve_target

    # An unreachable engine (DRIFTMART_TARGET) is one clear error before any step runs.
    resolve_target().check_available(home)
    definitions = build_definitions(str(home.root), spec_path)
    job = definitions.resolve_job_def(job_name or PIPELINE_JOB)
    if partition_key is None and job.partitions_def is not None:
        partition_key = current_partition_key(job.partitions_def)
    run_config: dict = {"loggers": {"console": {"config": {"log_level": log_level}}}, "ops": {}}
    if full_refresh and job.graph.has_node_named(DBT_OP):
        run_config["ops"][DBT_OP] = {"config": {"full_refresh": True}}
    if job.graph.has_node_named(REPORT_OP):  # a report whose inputs did not change is not made again
        run_config["ops"][REPORT_OP] = {"config": {"only_if_changed": True}}
    home.dbt_logs.mkdir(parents=True, exist_ok=True)
    # dbt's own progress lines go to a file (and to the Dagster event log), not the terminal.
    with (
        instance_for(home) as instance,
        (home.dbt_logs / "last_run.log").open("w") as console,
        contextlib.redirect_stdout(console),
    ):
        if note:
            print(note, flush=True)
        release_orphaned_runs(instance)
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            partition_key=partition_key,
            run_config=run_config,
            tags={PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()},
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


@dataclass(frozen=True)
class DriftCell:
    window_start: datetime
    feature_name: str
    n_current: int
    drift_method: str
    drift_score: float | None
    threshold: float
    is_drifted: bool
    is_below_min_rows: bool


@dataclass(frozen=True)
class Degradation:
    """A window's realized metric past its threshold (marts.fct_model_performance.is_degraded), or
    its label-free estimate below the estimate's threshold (is_estimated_degraded): then `value`
    is estimated_value, `threshold` estimated_threshold and `n_rows` n_estimated."""

    window_start: datetime
    metric_name: str
    value: float
    reference_value: float
    threshold: float
    n_rows: int  # the labelled rows, or the estimated rows


@dataclass(frozen=True)
class SegmentDrifted:
    """A feature's drift within one segment of a window (marts.fct_segment_drift.is_drifted)."""

    window_start: datetime
    segment_name: str
    segment_value: str
    feature_name: str
    drift_score: float
    q_value: float
    n_current: int


@dataclass(frozen=True)
class DriftReport:
    """The drift of the windows a run looked at, read back from the published marts."""

    cells: list[DriftCell]
    dataset_drifted: dict[datetime, tuple[float, bool]]  # window → (share drifted, is drifted)
    prediction_drifted: dict[datetime, bool]
    degraded: list[Degradation] = field(default_factory=list)  # also windows whose labels are new
    estimated_degraded: list[Degradation] = field(default_factory=list)  # CBPE, before labels
    segments_drifted: list[SegmentDrifted] = field(default_factory=list)

    @property
    def windows(self) -> list[datetime]:
        return sorted({cell.window_start for cell in self.cells})

    @property
    def input_drift_found(self) -> bool:
        return (
            any(cell.is_drifted for cell in self.cells)
            or any(drifted for _, drifted in self.dataset_drifted.values())
            or any(self.prediction_drifted.values())
        )

    @property
    def drift_found(self) -> bool:
        """Input drift (also within a segment), degraded realized performance (concept drift) or a
        degraded estimate: what `run` exits 1 on."""
        return (
            self.input_drift_found
            or bool(self.segments_drifted)
            or bool(self.degraded)
            or bool(self.estimated_degraded)
        )


WATERMARK_FILE = "last_run.json"


def read_watermark(home: Home, spec: ModelSpec) -> datetime | None:
    """The newest `loaded_at` that the previous successful `driftmart run` had seen."""
    path = home.root / WATERMARK_FILE
    if not path.exists():
        return None
    seen = json.loads(path.read_text()).get(spec.model)
    return datetime.fromisoformat(seen) if seen else None


def write_watermark(home: Home, spec: ModelSpec) -> None:
    with connect_published(home) as connection:
        (newest,) = connection.execute(
            "select max(loaded_at) from raw.inference_log where model_name = ?", [spec.model]
        ).fetchall()[0]
    path = home.root / WATERMARK_FILE
    marks = json.loads(path.read_text()) if path.exists() else {}
    marks[spec.model] = newest.isoformat() if newest else None
    path.write_text(json.dumps(marks, indent=2) + "\n")


# marts.fct_model_performance's columns of a Degradation: (verdict, value, threshold, rows).
REALIZED_DEGRADATION = ("is_degraded", "realized_value", "threshold", "n_labelled")
ESTIMATED_DEGRADATION = ("is_estimated_degraded", "estimated_value", "estimated_threshold", "n_estimated")


def _degradations(
    connection: duckdb.DuckDBPyConnection,
    columns: tuple[str, str, str, str],
    windows: str,
    parameters: dict[str, Any],
) -> list[Degradation]:
    """The metric rows of the model's `windows` (a query of window starts) whose verdict column holds."""
    verdict, value, threshold, rows = columns
    found = connection.execute(
        f"""
        select window_start, metric_name, {value}, reference_value, {threshold}, {rows}
        from marts.fct_model_performance
        where model_name = $model and {verdict} and window_start in ({windows})
        order by window_start, metric_name
        """,
        parameters,
    ).fetchall()
    return [Degradation(*row) for row in found]


def _segments_drifted(
    connection: duckdb.DuckDBPyConnection, windows: str, parameters: dict[str, Any]
) -> list[SegmentDrifted]:
    """The drifted segment tests of the model's `windows` (none in a copy published before
    marts.fct_segment_drift existed)."""
    (exists,) = connection.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'marts' and table_name = 'fct_segment_drift'"
    ).fetchone()
    if not exists:
        return []
    found = connection.execute(
        f"""
        select window_start, segment_name, segment_value, feature_name, drift_score, q_value, n_current
        from marts.fct_segment_drift
        where model_name = $model and is_drifted and window_start in ({windows})
        order by window_start, segment_name, segment_value, feature_name
        """,
        parameters,
    ).fetchall()
    return [SegmentDrifted(*row) for row in found]


def drift_report(
    home: Home, spec: ModelSpec, *, since: datetime | None = None, latest: bool = False
) -> DriftReport:
    """Drift of every window (default), of the windows that received rows loaded after `since`, or
    of the latest window only; from the published copy."""
    with connect_published(home) as connection:
        windows = "select window_start from marts.fct_dataset_drift where model_name = $model"
        if since is not None:
            windows = """
                select distinct drift.window_start
                from marts.fct_dataset_drift as drift
                inner join raw.inference_log as logs
                    on logs.model_name = drift.model_name
                    and logs.scored_at >= drift.window_start
                    and logs.scored_at < drift.window_end
                where drift.model_name = $model and logs.loaded_at > $since
            """
        elif latest:
            windows = "select max(window_start) from marts.fct_dataset_drift where model_name = $model"
        parameters = {"model": spec.model} | ({"since": since} if since is not None else {})
        cells = connection.execute(
            f"""
            select window_start, feature_name, n_current, drift_method, drift_score, threshold,
                   is_drifted, is_below_min_rows
            from marts.fct_feature_drift
            where model_name = $model and window_start in ({windows})
            order by window_start
            """,
            parameters,
        ).fetchall()
        dataset = connection.execute(
            f"""
            select window_start, share_drifted, is_dataset_drifted from marts.fct_dataset_drift
            where model_name = $model and window_start in ({windows})
            """,
            parameters,
        ).fetchall()
        prediction = connection.execute(
            f"""
            select window_start, is_drifted from marts.fct_prediction_drift
            where model_name = $model and window_start in ({windows})
            """,
            parameters,
        ).fetchall()
        estimated = _degradations(connection, ESTIMATED_DEGRADATION, windows, parameters)
        segments = _segments_drifted(connection, windows, parameters)
        if since is not None:
            # Labels arrive late: a window is judged again when labels of its requests are new.
            windows = f"""
                {windows}
                union
                select distinct performance.window_start
                from marts.fct_model_performance as performance
                inner join raw.inference_log as logs
                    on logs.model_name = performance.model_name
                    and logs.scored_at >= performance.window_start
                    and logs.scored_at < performance.window_end
                inner join raw.labels as labels
                    on labels.model_name = logs.model_name and labels.request_id = logs.request_id
                where performance.model_name = $model and labels.loaded_at > $since
            """
        degraded = _degradations(connection, REALIZED_DEGRADATION, windows, parameters)
    order = {name: position for position, name in enumerate(spec.features)}
    return DriftReport(
        cells=sorted(
            (DriftCell(*row) for row in cells), key=lambda c: (c.window_start, order.get(c.feature_name, 0))
        ),
        dataset_drifted={row[0]: (row[1], row[2]) for row in dataset},
        prediction_drifted={row[0]: row[1] for row in prediction},
        degraded=degraded,
        estimated_degraded=estimated,
        segments_drifted=segments,
    )
