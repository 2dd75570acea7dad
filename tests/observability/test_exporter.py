"""The Prometheus exporter: values equal to the marts of the published copy, pipeline health, ingest
lag, and a scrape that answers (`driftmart_up 0`) when there is nothing to read."""

from __future__ import annotations

import json
import re
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from ml.spec import PERFORMANCE_METRICS as PERFORMANCE_METRICS_BY_TASK
from tests.observability.conftest import copy_home, labels, parse_samples, scrape, scrape_text
from tests.services import stop_process_group
from warehouse.landing import LandingWriter, list_segments
from warehouse.publish import read_status

# The exported names are a contract (alerts and dashboards use them): metric → mart column.
FEATURE_DRIFT_METRICS = {
    "driftmart_feature_psi": "psi",
    "driftmart_feature_js_distance": "js_distance",
    "driftmart_feature_kl_divergence": "kl_divergence",
    "driftmart_feature_hellinger": "hellinger",
    "driftmart_feature_l_infinity": "l_infinity",
    "driftmart_feature_ks_statistic": "ks_statistic",
    "driftmart_feature_wasserstein_normed": "wasserstein_normed",
    "driftmart_feature_chi2_statistic": "chi2_statistic",
    "driftmart_feature_chi2_p_value": "chi2_p_value",
    "driftmart_feature_drift_score": "drift_score",
    "driftmart_feature_drift_threshold": "threshold",
    "driftmart_feature_drifted": "is_drifted",
    "driftmart_feature_current_rows": "n_current",
    "driftmart_feature_reference_rows": "n_reference",
}
FEATURE_STATISTICS_METRICS = {
    "driftmart_feature_null_share": "null_share",
    "driftmart_feature_unseen_rows": "n_unseen",
}
DATASET_DRIFT_METRICS = {
    "driftmart_window_start_timestamp_seconds": "window_start",
    "driftmart_window_end_timestamp_seconds": "window_end",
    "driftmart_window_rows": "n_current",
    "driftmart_window_has_reference": "has_reference",
    "driftmart_window_below_min_rows": "is_below_min_rows",
    "driftmart_dataset_features": "n_features",
    "driftmart_dataset_drifted_features": "n_drifted",
    "driftmart_dataset_drift_share": "share_drifted",
    "driftmart_dataset_drift_threshold": "threshold",
    "driftmart_dataset_drifted": "is_dataset_drifted",
}
PREDICTION_DRIFT_METRICS = {
    "driftmart_prediction_drifted": "is_drifted",
    "driftmart_prediction_probability_psi": "probability_psi",
    "driftmart_prediction_probability_ks_statistic": "probability_ks_statistic",
    "driftmart_prediction_psi": "prediction_psi",
    "driftmart_prediction_js_distance": "prediction_js_distance",
    "driftmart_prediction_ks_statistic": "prediction_ks_statistic",
    "driftmart_prediction_wasserstein_normed": "prediction_wasserstein_normed",
    "driftmart_prediction_positive_rate": "positive_rate",
    "driftmart_prediction_mean_probability": "mean_probability",
    "driftmart_prediction_mean_value": "mean_prediction",
}
# marts.fct_model_performance is long (model, window, metric): per model, the latest labelled
# window's own columns; per (model, metric), its realized value.
PERFORMANCE_WINDOW_METRICS = {
    "driftmart_model_performance_window_start_timestamp_seconds": "window_start",
    "driftmart_model_labelled_rows": "n_labelled",
    "driftmart_model_label_coverage": "label_coverage",
    "driftmart_model_actual_positive_rate": "positive_rate_actual",
}
PERFORMANCE_VALUE_METRICS = {
    "driftmart_model_performance": "realized_value",
    "driftmart_model_performance_reference": "reference_value",
    "driftmart_model_performance_threshold": "threshold",
    "driftmart_model_performance_degraded": "is_degraded",
}
# The label-free estimate (CBPE): per model, its latest estimated window; per (model, metric), the values.
ESTIMATED_WINDOW_METRICS = {
    "driftmart_model_performance_estimated_window_start_timestamp_seconds": "window_start",
    "driftmart_model_estimated_rows": "n_estimated",
}
ESTIMATED_VALUE_METRICS = {
    "driftmart_model_performance_estimated": "estimated_value",
    "driftmart_model_performance_estimated_lower": "estimated_lower",
    "driftmart_model_performance_estimated_upper": "estimated_upper",
    "driftmart_model_performance_estimated_threshold": "estimated_threshold",
    "driftmart_model_performance_estimated_degraded": "is_estimated_degraded",
}
# The per-metric names from before the mart was long, still exported: gauge → metric_name.
LEGACY_PERFORMANCE_METRICS = {
    "driftmart_model_accuracy": "accuracy",
    "driftmart_model_precision": "precision",
    "driftmart_model_recall": "recall",
    "driftmart_model_f1": "f1",
    "driftmart_model_roc_auc": "roc_auc",
}
VERSION_METRICS = {
    "driftmart_model_version_created_timestamp_seconds": "created_at",
    "driftmart_model_version_validation_accuracy": "validation_accuracy",
    "driftmart_model_version_validation_roc_auc": "validation_roc_auc",
    "driftmart_model_version_validation_f1": "validation_f1",
    "driftmart_model_version_validation_log_loss": "validation_log_loss",
}


def _value(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC).timestamp()
    return float(value)


def _records(home, sql: str) -> list[dict[str, Any]]:
    with duckdb.connect(str(home.published), read_only=True) as connection:
        cursor = connection.execute(sql)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _expected(records, metrics: dict[str, str], label_columns: dict[str, str]):
    """{metric: {labels: value}} from mart rows; NULL → no sample."""
    expected: dict[str, dict] = {metric: {} for metric in metrics}
    for record in records:
        key = frozenset((label, str(record[column])) for label, column in label_columns.items())
        for metric, column in metrics.items():
            if (value := _value(record[column])) is not None:
                expected[metric][key] = value
    return expected


@pytest.mark.slow
def test_values_equal_the_latest_window_of_the_marts_exactly(built_home):
    samples = scrape(built_home)
    latest = "qualify window_start = max(window_start) over (partition by {keys})"
    model, model_feature = {"model": "model_name"}, {"model": "model_name", "feature": "feature_name"}
    cases = [
        (
            f"select * from marts.fct_feature_drift {latest.format(keys='model_name, feature_name')}",
            FEATURE_DRIFT_METRICS,
            model_feature,
        ),
        (
            f"select * from marts.fct_feature_statistics {latest.format(keys='model_name, feature_name')}",
            FEATURE_STATISTICS_METRICS,
            model_feature,
        ),
        (
            f"select * from marts.fct_dataset_drift {latest.format(keys='model_name')}",
            DATASET_DRIFT_METRICS,
            model,
        ),
        (
            f"select * from marts.fct_prediction_drift {latest.format(keys='model_name')}",
            PREDICTION_DRIFT_METRICS,
            model,
        ),
        (
            "select distinct model_name, window_start, n_labelled, label_coverage, positive_rate_actual "
            "from marts.fct_model_performance where n_labelled > 0 " + latest.format(keys="model_name"),
            PERFORMANCE_WINDOW_METRICS,
            model,
        ),
        (
            "select * from marts.fct_model_performance where n_labelled > 0 "
            + latest.format(keys="model_name"),
            PERFORMANCE_VALUE_METRICS,
            {"model": "model_name", "metric": "metric_name"},
        ),
        (
            "select distinct model_name, window_start, n_estimated from marts.fct_model_performance "
            "where estimated_value is not null " + latest.format(keys="model_name"),
            ESTIMATED_WINDOW_METRICS,
            model,
        ),
        (
            "select * from marts.fct_model_performance where estimated_value is not null "
            + latest.format(keys="model_name"),
            ESTIMATED_VALUE_METRICS,
            {"model": "model_name", "metric": "metric_name"},
        ),
        (
            "select * from marts.dim_model_versions",
            VERSION_METRICS,
            {"model": "model_name", "version": "model_version"},
        ),
    ]
    compared = 0
    for sql, metrics, label_columns in cases:
        for metric, values in _expected(_records(built_home, sql), metrics, label_columns).items():
            assert samples.get(metric, {}) == values, metric  # exact: no rounding anywhere
            compared += len(values)
    assert compared > 100

    # the old per-metric gauges carry the same values as driftmart_model_performance{metric}
    performance = samples["driftmart_model_performance"]
    for gauge, metric in LEGACY_PERFORMANCE_METRICS.items():
        assert samples.get(gauge, {}) == {
            labels(model=key["model"]): value
            for key, value in ((dict(k), v) for k, v in performance.items())
            if key["metric"] == metric
        }, gauge
    assert {dict(key)["metric"] for key in performance} == set(PERFORMANCE_METRICS_BY_TASK["binary"])
    assert samples["driftmart_model_accuracy"]  # the binary demo model has every binary metric
    estimated = {dict(key)["metric"] for key in samples["driftmart_model_performance_estimated"]}
    assert estimated == {"accuracy", "precision", "recall", "f1", "roc_auc"}  # CBPE: binary, probabilities

    # the drift scenario: car_value drifted in the latest window
    drifted = {dict(key)["feature"] for key, value in samples["driftmart_feature_drifted"].items() if value}
    assert "car_value" in drifted
    assert samples["driftmart_feature_psi"][labels(model="car_loan", feature="car_value")] >= 0.2
    # statistics that do not apply are absent, not 0
    assert labels(model="car_loan", feature="car_value") not in samples["driftmart_feature_l_infinity"]
    assert labels(model="car_loan", feature="region") not in samples["driftmart_feature_ks_statistic"]


@pytest.mark.slow
def test_model_info_raw_counters_and_pipeline_health(built_home):
    now = time.time()
    samples = scrape(built_home, clock=lambda: now)
    versions = _records(built_home, "select * from marts.dim_model_versions")
    assert samples["driftmart_model_version_info"] == {
        labels(
            model=v["model_name"], version=str(v["model_version"]), status=v["status"], trigger=v["trigger"]
        ): 1.0
        for v in versions
    }
    champion = next(v for v in versions if v["status"] == "champion")
    assert samples["driftmart_model_champion_version"] == {
        labels(model="car_loan"): float(champion["model_version"])
    }
    features = _records(
        built_home,
        "select * from marts.fct_feature_drift "
        "qualify window_start = max(window_start) over (partition by model_name, feature_name)",
    )
    assert samples["driftmart_feature_info"] == {
        labels(
            model=f["model_name"],
            feature=f["feature_name"],
            feature_type=f["feature_type"],
            drift_method=f["drift_method"],
            statistics_method=f["statistics_method"],
            reference_id=f["reference_id"],
        ): 1.0
        for f in features
    }
    (inference,) = _records(
        built_home,
        "select count(*) as n, max(loaded_at) as loaded, max(scored_at) as scored from raw.inference_log",
    )
    assert samples["driftmart_inference_rows_total"] == {labels(model="car_loan"): float(inference["n"])}
    assert samples["driftmart_last_ingest_timestamp_seconds"] == {
        labels(model="car_loan"): _value(inference["loaded"])
    }
    assert samples["driftmart_last_scored_timestamp_seconds"] == {
        labels(model="car_loan"): _value(inference["scored"])
    }
    (label_rows,) = _records(built_home, "select count(*) as n from raw.labels")
    assert samples["driftmart_label_rows_total"] == {labels(model="car_loan"): float(label_rows["n"])}
    assert samples["driftmart_quarantined_lines_total"] == {
        labels(stream="inference"): 0.0,
        labels(stream="feedback"): 0.0,
    }
    status = read_status(built_home)
    assert status is not None
    assert samples["driftmart_last_success_timestamp_seconds"] == {
        frozenset(): status["published_at_epoch_seconds"]
    }
    assert samples["driftmart_seconds_since_last_success"] == {
        frozenset(): now - status["published_at_epoch_seconds"]
    }
    assert samples["driftmart_up"] == {frozenset(): 1.0}
    assert samples["driftmart_exporter_scrape_error"] == {frozenset(): 0.0}
    # everything landed is ingested and published: no lag
    for metric in ("driftmart_ingest_pending_bytes", "driftmart_ingest_oldest_pending_age_seconds"):
        assert samples[metric] == {labels(stream="inference"): 0.0, labels(stream="feedback"): 0.0}


@pytest.mark.slow
def test_every_family_has_help_a_conventional_name_and_type(built_home):
    text = scrape_text(built_home)
    helps = dict(re.findall(r"^# HELP (\S+) (.+)$", text, flags=re.MULTILINE))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE))
    assert helps.keys() == types.keys() and len(helps) > 50
    for name, help_text in helps.items():
        assert re.fullmatch(r"driftmart_[a-z0-9_]+", name), name
        assert len(help_text) > 15, name
        if types[name] == "counter":
            assert name.endswith("_total"), name
        elif name.endswith("_seconds") and "timestamp" not in name:
            assert types[name] == "gauge"
    assert types["driftmart_quarantined_lines_total"] == "counter"
    assert (
        "driftmart_model_performance_estimated" in helps["driftmart_model_accuracy"]
    )  # where the estimate is


def test_a_home_without_a_published_copy_scrapes_as_down_not_as_an_error(home):
    writer = LandingWriter(home.landing, "inference")
    writer.append([{"model": "car_loan", "request_id": "1", "received_at": datetime.now(UTC).isoformat()}])
    writer.close()
    samples = scrape(home)
    assert samples["driftmart_up"] == {frozenset(): 0.0}
    assert samples["driftmart_exporter_scrape_error"] == {frozenset(): 0.0}
    assert "driftmart_feature_psi" not in samples
    assert "driftmart_seconds_since_last_success" not in samples
    # nothing is published, so every landed byte is pending
    (segment,) = list_segments(home.landing, "inference")
    assert samples["driftmart_ingest_pending_bytes"][labels(stream="inference")] == segment.stat().st_size


def test_an_unreadable_published_copy_scrapes_as_down_with_an_error(home):
    home.published.write_bytes(b"this is not a DuckDB file" * 100)
    samples = scrape(home)
    assert samples["driftmart_up"] == {frozenset(): 0.0}
    assert samples["driftmart_exporter_scrape_error"] == {frozenset(): 1.0}


@pytest.mark.slow
def test_ingest_lag_counts_bytes_on_disk_beyond_the_published_manifest(built_home, tmp_path):
    home = copy_home(built_home, tmp_path / "home")
    now = time.time()
    # 1. a new segment the published copy has never seen, landed two hours ago
    landed_at = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=2)
    writer = LandingWriter(home.landing, "inference")
    writer.append(
        [
            {"model": "car_loan", "request_id": f"late-{i}", "received_at": landed_at.isoformat()}
            for i in range(3)
        ]
    )
    new_segment = writer.segment
    writer.close()
    # 2. a feedback segment whose last line the published copy has not loaded yet
    (feedback,) = list_segments(home.landing, "feedback")
    content = feedback.read_bytes()
    last_line_offset = content.rstrip(b"\n").rfind(b"\n") + 1
    last_received = json.loads(content[last_line_offset:])["received_at"]
    segment_name = str(feedback.relative_to(home.landing))
    with duckdb.connect(str(home.published)) as connection:  # a test-only edit of our own copy
        connection.execute(
            "update raw.landing_manifest set bytes_loaded = ? where segment = ?",
            [last_line_offset, segment_name],
        )

    samples = scrape(home, clock=lambda: now)
    assert samples["driftmart_ingest_pending_bytes"] == {
        labels(stream="inference"): float(new_segment.stat().st_size),
        labels(stream="feedback"): float(len(content) - last_line_offset),
    }
    assert samples["driftmart_ingest_pending_segments"] == {
        labels(stream="inference"): 1.0,
        labels(stream="feedback"): 1.0,
    }
    ages = samples["driftmart_ingest_oldest_pending_age_seconds"]
    assert ages[labels(stream="inference")] == pytest.approx(now - landed_at.replace(tzinfo=UTC).timestamp())
    expected_feedback_age = now - datetime.fromisoformat(last_received).replace(tzinfo=UTC).timestamp()
    assert ages[labels(stream="feedback")] == pytest.approx(expected_feedback_age)


@pytest.mark.slow
def test_quarantined_lines_are_counted_by_stream(built_home, tmp_path):
    home = copy_home(built_home, tmp_path / "home")
    with duckdb.connect(str(home.published)) as connection:  # a test-only edit of our own copy
        connection.executemany(
            "insert into raw.quarantine values (?, ?, 'not valid JSON', '{', now())",
            [["inference/a.jsonl", 0], ["inference/a.jsonl", 10], ["feedback/b.jsonl", 0]],
        )
    samples = scrape(home)
    assert samples["driftmart_quarantined_lines_total"] == {
        labels(stream="inference"): 2.0,
        labels(stream="feedback"): 1.0,
    }


@pytest.mark.slow
def test_driftmart_metrics_serves_the_exporter_over_http(built_home):
    driftmart = str(Path(sys.executable).with_name("driftmart"))
    process = subprocess.Popen(
        [driftmart, "--home", str(built_home.root), "metrics", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "driftmart metrics printed nothing within 60 s"
        banner = process.stdout.readline()
        url = re.search(r"http://\S+/metrics", banner)
        assert url, banner
        response = httpx.get(url.group(0), timeout=30)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples = parse_samples(response.text)
        assert samples["driftmart_up"] == {frozenset(): 1.0}
        assert samples["driftmart_feature_drifted"][labels(model="car_loan", feature="car_value")] == 1.0
    finally:
        stop_process_group(process, signal.SIGINT)  # Ctrl-C
    assert process.returncode == 130, process.stderr.read()
