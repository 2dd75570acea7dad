"""The Dagster `Definitions` of driftmart, built on demand.

`orchestration.definitions` (what `dagster dev -m orchestration.definitions` and the deployment load)
builds them once at import; `driftmart run` builds them here, once per pass, only when it runs the
pipeline. Nothing heavy is imported to build them: Evidently, scikit-learn and the model registry
are imported by the steps that use them.
"""

from __future__ import annotations

import os

import dagster as dg

from ml.spec import load_spec
from orchestration.assets.dbt import build_dbt_assets, dbt_resource
from orchestration.assets.ingest import external_sources, raw_tables
from orchestration.assets.model import challenger_model, champion_model
from orchestration.assets.multivariate import multivariate_drift
from orchestration.assets.publish import published_warehouse
from orchestration.assets.reports import evidently_report
from orchestration.checks import (
    dataset_drift_latest_window,
    landing_quarantine_share,
    performance_estimated_latest_window,
    performance_latest_labelled_window,
)
from orchestration.jobs import PIPELINE_JOB, RETRAIN_JOB
from orchestration.partitions import window_partitions
from orchestration.resources import DriftmartResource
from orchestration.sensors import build_landing_sensor, build_retrain_sensor, build_window_schedule
from warehouse.home import Home
from warehouse.specs import sole_spec_path


def build_definitions(home: str | None = None, spec_path: str | None = None) -> dg.Definitions:
    # No spec named: the remembered spec of the home's only model (warehouse/specs.py), else the demo's.
    spec_path = spec_path or os.environ.get("DRIFTMART_SPEC", "") or sole_spec_path(Home.resolve(home))
    partitions = window_partitions(load_spec(spec_path or None))
    dbt_assets = build_dbt_assets(partitions)
    pipeline_job = dg.define_asset_job(
        PIPELINE_JOB,
        selection=dg.AssetSelection.assets(
            raw_tables, dbt_assets, multivariate_drift, published_warehouse, evidently_report
        ),
        description="One batch pass: ingest landed logs, dbt build (drift marts and checks), "
        "multivariate drift, publish, "
        "Evidently report of the latest window. Launched for a range of window partitions, it also "
        "recounts those windows (a backfill).",
    )
    retrain_job = dg.define_asset_job(
        RETRAIN_JOB,
        selection=dg.AssetSelection.assets(challenger_model, champion_model),
        description="Train a challenger, validate it against the champion, promote or reject it.",
    )
    return dg.Definitions(
        assets=[
            *external_sources,
            raw_tables,
            dbt_assets,
            multivariate_drift,
            published_warehouse,
            evidently_report,
            challenger_model,
            champion_model,
        ],
        asset_checks=[
            dataset_drift_latest_window,
            performance_latest_labelled_window,
            performance_estimated_latest_window,
            landing_quarantine_share,
        ],
        jobs=[pipeline_job, retrain_job],
        sensors=[build_landing_sensor(pipeline_job, partitions), build_retrain_sensor(retrain_job)],
        schedules=build_window_schedule(pipeline_job, partitions),
        resources={
            "driftmart": DriftmartResource(home_dir=str(Home.resolve(home).root), spec_path=spec_path),
            "dbt": dbt_resource(),
        },
    )
