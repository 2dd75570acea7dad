"""The Prometheus exporter of the drift marts (`driftmart metrics`, default port 9108).

On every scrape a custom collector opens the **published copy** read-only (never the live
warehouse: docs/architecture.md §4, so a scrape never waits for, nor blocks, a run), reads the latest window
of each model (and feature) from the marts, closes the copy, and exports the values as they are in
the marts: no rounding, no recomputation. A NULL in a mart (a statistic that does not apply to the
feature type, a window without labels) is no sample, never a made-up 0.

Also exported: the time since the last successful run (`published/status.json`, written by
publish), the ingest lag (landing segment sizes on disk against `raw.landing_manifest.bytes_loaded`
of the published copy: bytes landed but not yet visible to readers), quarantined lines, and
`driftmart_up`: 0 when there is no published copy yet or it cannot be read (the scrape still
answers).

Label conventions: `model` (model_name), `feature` (feature_name), `metric` (metric_name of
marts.fct_model_performance: `driftmart_model_performance{model,metric}`), `version`, `stream`
(landing stream). Timestamps are `*_timestamp_seconds` (Unix time, UTC).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import duckdb
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from warehouse.home import Home
from warehouse.landing import STREAMS, list_segments
from warehouse.publish import read_status

logger = logging.getLogger("driftmart.exporter")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9108

Family = GaugeMetricFamily | CounterMetricFamily


@dataclass(frozen=True)
class Column:
    """One mart column exported as a gauge: `name` with `help`, labelled like its query's rows."""

    column: str
    name: str
    help: str


SOURCE_FEATURE_DRIFT = "marts.fct_feature_drift, latest window per (model, feature)"
FEATURE_DRIFT_COLUMNS = (
    Column("psi", "driftmart_feature_psi", "Population stability index"),
    Column("js_distance", "driftmart_feature_js_distance", "Jensen-Shannon distance (natural log)"),
    Column(
        "kl_divergence", "driftmart_feature_kl_divergence", "Kullback-Leibler divergence KL(current||ref)"
    ),
    Column("hellinger", "driftmart_feature_hellinger", "Hellinger distance"),
    Column("l_infinity", "driftmart_feature_l_infinity", "L-infinity distance (categorical features)"),
    Column("ks_statistic", "driftmart_feature_ks_statistic", "Binned Kolmogorov-Smirnov statistic (numeric)"),
    Column(
        "wasserstein_normed",
        "driftmart_feature_wasserstein_normed",
        "Wasserstein-1 distance over the reference standard deviation (numeric)",
    ),
    Column("chi2_statistic", "driftmart_feature_chi2_statistic", "Chi-squared statistic"),
    Column("chi2_p_value", "driftmart_feature_chi2_p_value", "Chi-squared p-value"),
    Column(
        "drift_score",
        "driftmart_feature_drift_score",
        "The statistic named by the feature's drift method (see driftmart_feature_info)",
    ),
    Column(
        "threshold",
        "driftmart_feature_drift_threshold",
        "Drift threshold of the feature's drift method (chi2_p_value: drifted below it; others: at or above)",
    ),
    Column(
        "is_drifted", "driftmart_feature_drifted", "1 if the feature drifted, else 0 (also 0 if not judged)"
    ),
    Column("n_current", "driftmart_feature_current_rows", "Rows of the window"),
    Column("n_reference", "driftmart_feature_reference_rows", "Rows of the reference"),
)

SOURCE_FEATURE_STATISTICS = "marts.fct_feature_statistics, latest window per (model, feature)"
FEATURE_STATISTICS_COLUMNS = (
    Column(
        "null_share", "driftmart_feature_null_share", "Share of the window's rows with the feature missing"
    ),
    Column(
        "n_unseen",
        "driftmart_feature_unseen_rows",
        "Rows with a category the reference never saw (categorical features)",
    ),
)

SOURCE_DATASET_DRIFT = "marts.fct_dataset_drift, latest window per model"
DATASET_DRIFT_COLUMNS = (
    Column(
        "window_start", "driftmart_window_start_timestamp_seconds", "Start of the latest window (Unix time)"
    ),
    Column("window_end", "driftmart_window_end_timestamp_seconds", "End (exclusive) of the latest window"),
    Column("n_current", "driftmart_window_rows", "Predictions in the latest window"),
    Column("has_reference", "driftmart_window_has_reference", "1 if the window has a usable reference"),
    Column(
        "is_below_min_rows",
        "driftmart_window_below_min_rows",
        "1 if the window has fewer rows than min_window_rows (not judged)",
    ),
    Column("n_features", "driftmart_dataset_features", "Monitored features"),
    Column("n_drifted", "driftmart_dataset_drifted_features", "Drifted features"),
    Column("share_drifted", "driftmart_dataset_drift_share", "Share of the monitored features that drifted"),
    Column(
        "threshold", "driftmart_dataset_drift_threshold", "Share of drifted features that is dataset drift"
    ),
    Column("is_dataset_drifted", "driftmart_dataset_drifted", "1 if the dataset drifted, else 0"),
)

SOURCE_PREDICTION_DRIFT = "marts.fct_prediction_drift, latest window per model"
PREDICTION_DRIFT_COLUMNS = (
    Column("is_drifted", "driftmart_prediction_drifted", "1 if the model's output drifted, else 0"),
    Column("probability_psi", "driftmart_prediction_probability_psi", "PSI of the predicted probability"),
    Column(
        "probability_ks_statistic",
        "driftmart_prediction_probability_ks_statistic",
        "Binned KS statistic of the predicted probability",
    ),
    Column(
        "prediction_psi",
        "driftmart_prediction_psi",
        "PSI of the predicted class mix (regression: of the predicted value over its reference deciles)",
    ),
    Column(
        "prediction_js_distance", "driftmart_prediction_js_distance", "JS distance of the predicted class mix"
    ),
    Column(
        "prediction_ks_statistic",
        "driftmart_prediction_ks_statistic",
        "Binned KS statistic of the predicted value (regression models)",
    ),
    Column(
        "prediction_wasserstein_normed",
        "driftmart_prediction_wasserstein_normed",
        "Wasserstein-1 distance of the predicted value over the reference standard deviation (regression)",
    ),
    Column("positive_rate", "driftmart_prediction_positive_rate", "Share of positive predictions (binary)"),
    Column(
        "mean_probability", "driftmart_prediction_mean_probability", "Mean predicted probability (binary)"
    ),
    Column("mean_prediction", "driftmart_prediction_mean_value", "Mean predicted value (regression models)"),
)

ESTIMATED_NOTE = (
    "Realized, from delayed labels; the label-free estimate (CBPE, binary classifiers with "
    "probabilities) of the latest window is driftmart_model_performance_estimated"
)
SOURCE_PERFORMANCE = "marts.fct_model_performance, latest window with labels per model"
# marts.fct_model_performance is long, one row per (model, window, metric): the window's own columns
# are one sample per model, the realized values one per (model, metric).
PERFORMANCE_WINDOW_COLUMNS = (
    Column(
        "window_start", "driftmart_model_performance_window_start_timestamp_seconds", "Start of that window"
    ),
    Column("n_labelled", "driftmart_model_labelled_rows", "Labelled predictions"),
    Column("label_coverage", "driftmart_model_label_coverage", "Share of predictions with a label"),
    Column(
        "positive_rate_actual", "driftmart_model_actual_positive_rate", "Share of positive labels (binary)"
    ),
)
PERFORMANCE_VALUE = Column(
    "realized_value",
    "driftmart_model_performance",
    "Realized value of each performance metric of the model's task (label metric: accuracy, precision, "
    "recall, f1, roc_auc; macro_precision, macro_recall, macro_f1, weighted_f1; mae, rmse, mape, r2). "
    + ESTIMATED_NOTE,
)
PERFORMANCE_DEGRADATION_COLUMNS = (
    Column(
        "reference_value",
        "driftmart_model_performance_reference",
        "The metric on the reference set of the model version that served the window",
    ),
    Column(
        "threshold",
        "driftmart_model_performance_threshold",
        "Degradation threshold: the reference value minus (error metrics: plus) its sampling error allowance",
    ),
    Column(
        "is_degraded",
        "driftmart_model_performance_degraded",
        "1 if the realized metric is past its threshold (concept drift or worse), else 0",
    ),
)
SOURCE_ESTIMATED = "marts.fct_model_performance, latest window with an estimate per model"
# The label-free estimate is there before the labels: the latest window that has one, per model.
ESTIMATED_WINDOW_COLUMNS = (
    Column(
        "window_start",
        "driftmart_model_performance_estimated_window_start_timestamp_seconds",
        "Start of the latest window with a performance estimate",
    ),
    Column("n_estimated", "driftmart_model_estimated_rows", "Rows the performance estimate is over"),
)
ESTIMATED_VALUE_COLUMNS = (
    Column(
        "estimated_value",
        "driftmart_model_performance_estimated",
        "Performance estimated without labels (CBPE: the expected confusion matrix of the calibrated "
        "probabilities; binary classifiers: accuracy, precision, recall, f1, roc_auc)",
    ),
    Column(
        "estimated_lower", "driftmart_model_performance_estimated_lower", "Lower end of the estimate's band"
    ),
    Column(
        "estimated_upper", "driftmart_model_performance_estimated_upper", "Upper end of the estimate's band"
    ),
    Column(
        "estimated_threshold",
        "driftmart_model_performance_estimated_threshold",
        "Degradation threshold of the estimate (the realized rule over the estimated rows)",
    ),
    Column(
        "is_estimated_degraded",
        "driftmart_model_performance_estimated_degraded",
        "1 if the estimated metric is below its threshold (a warning before the labels), else 0",
    ),
)
# The names from before the mart was long: one gauge per metric, kept for dashboards and alerts
# written against them (the same value as driftmart_model_performance{metric="<name>"}).
LEGACY_PERFORMANCE_GAUGES = {
    "accuracy": Column("realized_value", "driftmart_model_accuracy", f"Accuracy. {ESTIMATED_NOTE}"),
    "precision": Column("realized_value", "driftmart_model_precision", f"Precision. {ESTIMATED_NOTE}"),
    "recall": Column("realized_value", "driftmart_model_recall", f"Recall. {ESTIMATED_NOTE}"),
    "f1": Column("realized_value", "driftmart_model_f1", f"F1 score. {ESTIMATED_NOTE}"),
    "roc_auc": Column("realized_value", "driftmart_model_roc_auc", f"ROC AUC. {ESTIMATED_NOTE}"),
}

SOURCE_SEGMENT_DRIFT = "marts.fct_segment_drift, latest window with segment tests per model"
SEGMENT_DRIFT_COLUMNS = (
    Column(
        "window_start",
        "driftmart_segment_window_start_timestamp_seconds",
        "Start of the latest window with segment tests (Unix time)",
    ),
    Column("n_tests", "driftmart_segment_tests", "Segment x feature tests made in that window"),
    Column(
        "n_drifted",
        "driftmart_segment_drifted",
        "Segment x feature tests drifted in that window (Benjamini-Hochberg q-value at most the spec's fdr)",
    ),
)

SOURCE_VERSIONS = "marts.dim_model_versions"
VERSION_COLUMNS = (
    Column("created_at", "driftmart_model_version_created_timestamp_seconds", "When the version was trained"),
    Column("validation_accuracy", "driftmart_model_version_validation_accuracy", "Validation accuracy"),
    Column("validation_roc_auc", "driftmart_model_version_validation_roc_auc", "Validation ROC AUC"),
    Column("validation_f1", "driftmart_model_version_validation_f1", "Validation F1 score"),
    Column("validation_log_loss", "driftmart_model_version_validation_log_loss", "Validation log loss"),
)

LATEST_FEATURE_DRIFT_SQL = """
    with latest as (
        select model_name, feature_name, max(window_start) as window_start
        from marts.fct_feature_drift
        group by model_name, feature_name
    )
    select drift.*
    from marts.fct_feature_drift as drift
    inner join latest
        on drift.model_name = latest.model_name
        and drift.feature_name = latest.feature_name
        and drift.window_start = latest.window_start
    order by drift.model_name, drift.feature_name
"""
LATEST_FEATURE_STATISTICS_SQL = LATEST_FEATURE_DRIFT_SQL.replace(
    "fct_feature_drift", "fct_feature_statistics"
)
LATEST_WINDOW_SQL = """
    with latest as (
        select model_name, max(window_start) as window_start from {table} {where} group by model_name
    )
    select mart.*
    from {table} as mart
    inner join latest on mart.model_name = latest.model_name and mart.window_start = latest.window_start
    order by mart.model_name
"""
LATEST_DATASET_DRIFT_SQL = LATEST_WINDOW_SQL.format(table="marts.fct_dataset_drift", where="")
LATEST_PREDICTION_DRIFT_SQL = LATEST_WINDOW_SQL.format(table="marts.fct_prediction_drift", where="")


def _latest_performance_sql(condition: str, columns: tuple[str, ...]) -> str:
    """The rows of marts.fct_model_performance (alias `mart`) where `condition` holds, of each
    model's latest window with such rows ((model_name, window_start, metric_name) is unique);
    columns named, so a copy published before the mart was long is refused."""
    return f"""
    with latest as (
        select mart.model_name, max(mart.window_start) as window_start
        from marts.fct_model_performance as mart where {condition} group by mart.model_name
    )
    select {", ".join(f"mart.{column}" for column in columns)}
    from marts.fct_model_performance as mart
    inner join latest on mart.model_name = latest.model_name and mart.window_start = latest.window_start
    where {condition}
    order by mart.model_name, mart.metric_name
"""


# The latest window with labels (n_labelled is the window's: every metric row of it is kept).
LATEST_PERFORMANCE_SQL = _latest_performance_sql(
    "mart.n_labelled > 0",
    (
        "model_name",
        "metric_name",
        "realized_value",
        "reference_value",
        "threshold",
        "is_degraded",
        "window_start",
        "n_labelled",
        "label_coverage",
        "positive_rate_actual",
    ),
)
# The latest window with an estimate, and its metrics that have one.
LATEST_ESTIMATED_SQL = _latest_performance_sql(
    "mart.estimated_value is not null",
    (
        "model_name",
        "metric_name",
        "estimated_value",
        "estimated_lower",
        "estimated_upper",
        "estimated_threshold",
        "is_estimated_degraded",
        "window_start",
        "n_estimated",
    ),
)
LATEST_SEGMENT_DRIFT_SQL = """
    with latest as (
        select model_name, max(window_start) as window_start
        from marts.fct_segment_drift
        where p_value is not null
        group by model_name
    )
    select mart.model_name, mart.window_start, count(mart.p_value) as n_tests,
           count(*) filter (where mart.is_drifted) as n_drifted
    from marts.fct_segment_drift as mart
    inner join latest on mart.model_name = latest.model_name and mart.window_start = latest.window_start
    group by mart.model_name, mart.window_start
    order by mart.model_name
"""
HAS_SEGMENT_DRIFT_SQL = """
    select count(*) from information_schema.tables
    where table_schema = 'marts' and table_name = 'fct_segment_drift'
"""
VERSIONS_SQL = "select * from marts.dim_model_versions order by model_name, model_version"
INFERENCE_SQL = """
    select model_name, count(*) as n_rows, max(loaded_at) as last_loaded_at, max(scored_at) as last_scored_at
    from raw.inference_log group by model_name order by model_name
"""
LABELS_SQL = "select model_name, count(*) as n_rows from raw.labels group by model_name order by model_name"
QUARANTINE_SQL = """
    select split_part(source, '/', 1) as stream, count(*) as n_lines
    from raw.quarantine group by stream order by stream
"""
MANIFEST_SQL = "select segment, bytes_loaded from raw.landing_manifest"


def _number(value: Any) -> float | None:
    """A mart value as a sample value: booleans 0/1, timestamps (naive UTC) as Unix seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


def _records(connection: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = connection.execute(sql)
    columns = [description[0] for description in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _gauges(
    records: list[dict[str, Any]], columns: Iterable[Column], labels: dict[str, str], source: str
) -> Iterator[GaugeMetricFamily]:
    """One gauge per column; one sample per record (labels: metric label → record key), NULLs skipped."""
    for column in columns:
        family = GaugeMetricFamily(column.name, f"{column.help}. Source: {source}.", labels=list(labels))
        for record in records:
            value = _number(record[column.column])
            if value is not None:
                family.add_metric([str(record[key]) for key in labels.values()], value)
        yield family


@dataclass(frozen=True)
class IngestLag:
    stream: str
    pending_bytes: int
    pending_segments: int
    oldest_pending_at: float | None  # Unix time of the oldest landed line not yet published


def _landed_at(segment: Path, offset: int) -> float:
    """When the first line at `offset` was landed: its `received_at`, else the segment's creation stamp."""
    try:
        with segment.open("rb") as file:
            file.seek(offset)
            line = file.readline(1 << 20)
        received = json.loads(line).get("received_at")
        moment = datetime.fromisoformat(received)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    try:  # segment names start with their UTC creation time: 20260301T120000123456-<pid>-<n>.jsonl
        return (
            datetime.strptime(segment.name.split("-")[0], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC).timestamp()
        )
    except ValueError:
        return segment.stat().st_mtime


def ingest_lag(home: Home, bytes_loaded: dict[str, int]) -> list[IngestLag]:
    """Per landing stream: bytes on disk beyond what the published manifest says is loaded."""
    lags = []
    for stream in STREAMS:
        pending_bytes, pending_segments, oldest = 0, 0, None
        for segment in list_segments(home.landing, stream):
            name = str(segment.relative_to(home.landing))
            loaded = bytes_loaded.get(name, 0)
            try:
                size = segment.stat().st_size
            except FileNotFoundError:
                continue
            if size <= loaded:
                continue
            pending_bytes += size - loaded
            pending_segments += 1
            landed_at = _landed_at(segment, loaded)
            oldest = landed_at if oldest is None else min(oldest, landed_at)
        lags.append(IngestLag(stream, pending_bytes, pending_segments, oldest))
    return lags


class DriftmartCollector(Collector):
    """Reads the published copy of one driftmart home on every `collect()` (every scrape)."""

    def __init__(self, home: Home, clock: Callable[[], float] = time.time) -> None:
        self.home = home
        self.clock = clock

    def describe(self) -> list[Family]:
        return []  # unknown until a scrape: families depend on the published copy

    def collect(self) -> Iterator[Family]:
        started = time.perf_counter()
        now = self.clock()
        families: list[Family] = []
        up, error = 0.0, 0.0
        bytes_loaded: dict[str, int] = {}
        if self.home.published.exists():
            try:
                with duckdb.connect(str(self.home.published), read_only=True) as connection:
                    families.extend(self._marts(connection))
                    bytes_loaded = dict(connection.execute(MANIFEST_SQL).fetchall())
                up = 1.0
            except duckdb.Error as failure:  # e.g. a copy published by an older driftmart
                logger.warning("cannot read %s: %s", self.home.published, failure)
                families, error = [], 1.0
        families.extend(self._pipeline(now))
        try:
            families.extend(self._ingest(bytes_loaded))
        except OSError as failure:  # an unreadable landing zone: report it, keep the other metrics
            logger.warning("cannot read the landing zone %s: %s", self.home.landing, failure)
            error = 1.0
        families.append(
            _single("driftmart_up", "1 if the published warehouse copy was read on this scrape, else 0.", up)
        )
        families.append(
            _single(
                "driftmart_exporter_scrape_error",
                "1 if reading the published copy (when it exists) or the landing zone failed on this scrape.",
                error,
            )
        )
        families.append(
            _single(
                "driftmart_exporter_scrape_duration_seconds",
                "Time this scrape took to read the published copy and the landing zone.",
                time.perf_counter() - started,
            )
        )
        yield from families

    def _marts(self, connection: duckdb.DuckDBPyConnection) -> Iterator[Family]:
        model_feature = {"model": "model_name", "feature": "feature_name"}
        model = {"model": "model_name"}
        features = _records(connection, LATEST_FEATURE_DRIFT_SQL)
        yield from _gauges(features, FEATURE_DRIFT_COLUMNS, model_feature, SOURCE_FEATURE_DRIFT)
        info = GaugeMetricFamily(
            "driftmart_feature_info",
            "Always 1: how the feature of the latest window is judged. Source: marts.fct_feature_drift.",
            labels=["model", "feature", "feature_type", "drift_method", "statistics_method", "reference_id"],
        )
        for record in features:
            info.add_metric(
                [
                    record["model_name"],
                    record["feature_name"],
                    record["feature_type"],
                    record["drift_method"],
                    record["statistics_method"],
                    record["reference_id"] or "",
                ],
                1.0,
            )
        yield info
        statistics = _records(connection, LATEST_FEATURE_STATISTICS_SQL)
        yield from _gauges(statistics, FEATURE_STATISTICS_COLUMNS, model_feature, SOURCE_FEATURE_STATISTICS)
        dataset = _records(connection, LATEST_DATASET_DRIFT_SQL)
        yield from _gauges(dataset, DATASET_DRIFT_COLUMNS, model, SOURCE_DATASET_DRIFT)
        prediction = _records(connection, LATEST_PREDICTION_DRIFT_SQL)
        yield from _gauges(prediction, PREDICTION_DRIFT_COLUMNS, model, SOURCE_PREDICTION_DRIFT)
        performance = _records(connection, LATEST_PERFORMANCE_SQL)
        windows = list({record["model_name"]: record for record in performance}.values())
        yield from _gauges(windows, PERFORMANCE_WINDOW_COLUMNS, model, SOURCE_PERFORMANCE)
        model_metric = {"model": "model_name", "metric": "metric_name"}
        yield from _gauges(
            performance,
            (PERFORMANCE_VALUE, *PERFORMANCE_DEGRADATION_COLUMNS),
            model_metric,
            SOURCE_PERFORMANCE,
        )
        for metric, column in LEGACY_PERFORMANCE_GAUGES.items():
            rows = [record for record in performance if record["metric_name"] == metric]
            yield from _gauges(rows, (column,), model, SOURCE_PERFORMANCE)
        estimated = _records(connection, LATEST_ESTIMATED_SQL)
        windows = list({record["model_name"]: record for record in estimated}.values())
        yield from _gauges(windows, ESTIMATED_WINDOW_COLUMNS, model, SOURCE_ESTIMATED)
        yield from _gauges(estimated, ESTIMATED_VALUE_COLUMNS, model_metric, SOURCE_ESTIMATED)
        # Every model with windows: 0 tests and 0 drifted when it has no segment tests (no
        # `segments` in its spec, or a copy published before the segment mart existed).
        has_segments = connection.execute(HAS_SEGMENT_DRIFT_SQL).fetchall()[0][0]
        tested = _records(connection, LATEST_SEGMENT_DRIFT_SQL) if has_segments else []
        by_model = {record["model_name"]: record for record in tested}
        segments = [
            by_model.get(name, {"model_name": name, "window_start": None, "n_tests": 0, "n_drifted": 0})
            for name in sorted({record["model_name"] for record in dataset} | set(by_model))
        ]
        yield from _gauges(segments, SEGMENT_DRIFT_COLUMNS, model, SOURCE_SEGMENT_DRIFT)
        yield from self._versions(_records(connection, VERSIONS_SQL))
        yield from self._raw(connection)

    def _versions(self, versions: list[dict[str, Any]]) -> Iterator[Family]:
        model_version = {"model": "model_name", "version": "model_version"}
        yield from _gauges(versions, VERSION_COLUMNS, model_version, SOURCE_VERSIONS)
        info = GaugeMetricFamily(
            "driftmart_model_version_info",
            f"Always 1: status and trigger of each registered model version. Source: {SOURCE_VERSIONS}.",
            labels=["model", "version", "status", "trigger"],
        )
        champion = GaugeMetricFamily(
            "driftmart_model_champion_version",
            f"Version number of the model's champion. Source: {SOURCE_VERSIONS}.",
            labels=["model"],
        )
        for version in versions:
            info.add_metric(
                [version["model_name"], str(version["model_version"]), version["status"], version["trigger"]],
                1.0,
            )
            if version["status"] == "champion":
                champion.add_metric([version["model_name"]], float(version["model_version"]))
        yield info
        yield champion

    def _raw(self, connection: duckdb.DuckDBPyConnection) -> Iterator[Family]:
        inference = _records(connection, INFERENCE_SQL)
        rows = CounterMetricFamily(
            "driftmart_inference_rows",
            "Predictions in the published warehouse. Source: raw.inference_log.",
            labels=["model"],
        )
        loaded = GaugeMetricFamily(
            "driftmart_last_ingest_timestamp_seconds",
            "Newest loaded_at of the model's predictions. Source: raw.inference_log.",
            labels=["model"],
        )
        scored = GaugeMetricFamily(
            "driftmart_last_scored_timestamp_seconds",
            "Newest scored_at of the model's predictions. Source: raw.inference_log.",
            labels=["model"],
        )
        for record in inference:
            rows.add_metric([record["model_name"]], float(record["n_rows"]))
            loaded.add_metric([record["model_name"]], _number(record["last_loaded_at"]))
            scored.add_metric([record["model_name"]], _number(record["last_scored_at"]))
        yield from (rows, loaded, scored)
        labels = CounterMetricFamily(
            "driftmart_label_rows",
            "Labels (delayed ground truth) in the published warehouse. Source: raw.labels.",
            labels=["model"],
        )
        for model_name, n_rows in connection.execute(LABELS_SQL).fetchall():
            labels.add_metric([model_name], float(n_rows))
        yield labels
        quarantined = dict(connection.execute(QUARANTINE_SQL).fetchall())
        quarantine = CounterMetricFamily(
            "driftmart_quarantined_lines",
            "Landed lines that could not be loaded, by landing stream. Source: raw.quarantine.",
            labels=["stream"],
        )
        for stream in sorted({*STREAMS, *quarantined}):
            quarantine.add_metric([stream], float(quarantined.get(stream, 0)))
        yield quarantine

    def _pipeline(self, now: float) -> Iterator[Family]:
        status = read_status(self.home)
        published_at = None
        if status and status.get("published_at_epoch_seconds") is not None:
            published_at = float(status["published_at_epoch_seconds"])
        elif self.home.published.exists():  # a copy from before status.json existed
            published_at = self.home.published.stat().st_mtime
        if published_at is None:
            return
        yield _single(
            "driftmart_last_success_timestamp_seconds",
            "When the last successful pipeline run published the warehouse (Unix time).",
            published_at,
        )
        yield _single(
            "driftmart_seconds_since_last_success",
            "Seconds since the last successful pipeline run published the warehouse.",
            max(0.0, now - published_at),
        )

    def _ingest(self, bytes_loaded: dict[str, int]) -> Iterator[Family]:
        lags = ingest_lag(self.home, bytes_loaded)
        help_suffix = "landed (durably logged) but not yet in the published warehouse, by landing stream"
        pending = GaugeMetricFamily(
            "driftmart_ingest_pending_bytes", f"Bytes {help_suffix}.", labels=["stream"]
        )
        segments = GaugeMetricFamily(
            "driftmart_ingest_pending_segments",
            f"Landing segments with bytes {help_suffix}.",
            labels=["stream"],
        )
        age = GaugeMetricFamily(
            "driftmart_ingest_oldest_pending_age_seconds",
            f"Age of the oldest line {help_suffix}; 0 when nothing is pending.",
            labels=["stream"],
        )
        now = self.clock()
        for lag in lags:
            pending.add_metric([lag.stream], float(lag.pending_bytes))
            segments.add_metric([lag.stream], float(lag.pending_segments))
            oldest_age = 0.0 if lag.oldest_pending_at is None else max(0.0, now - lag.oldest_pending_at)
            age.add_metric([lag.stream], oldest_age)
        yield from (pending, segments, age)


def _single(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def exporter_registry(home: Home, clock: Callable[[], float] = time.time) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DriftmartCollector(home, clock))
    return registry


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the terminal."""


def metrics_server(home: Home, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> WSGIServer:
    """A threaded HTTP server answering `/metrics` for `home`; port 0 picks a free port.
    Call `serve_forever()` on it (and `shutdown()` from another thread to stop)."""
    app = make_wsgi_app(exporter_registry(home))
    return make_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
