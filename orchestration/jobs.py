"""Names of the Dagster jobs, importable without loading Dagster or the definitions."""

PIPELINE_JOB = "driftmart_pipeline"
RETRAIN_JOB = "driftmart_retrain"
# The op of the dbt assets (orchestration/assets/dbt.py): run config for it goes under this name.
DBT_OP = "driftmart_dbt_assets"
# The op of the Evidently report asset (orchestration/assets/reports.py).
REPORT_OP = "reports__evidently_drift"
