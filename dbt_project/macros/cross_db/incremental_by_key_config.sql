{#
    Config of a model whose runs replace whole groups of rows, keyed by `unique_key` (e.g. every
    row of the windows a run recounts, or every row of a re-loaded request): the row-level
    `delete+insert` incremental strategy where the engine has one. Used as
    `{{ config(**incremental_by_key_config(['model_name', 'window_start'])) }}`.
#}
{% macro incremental_by_key_config(unique_key) -%}
    {{ return(adapter.dispatch('incremental_by_key_config', 'driftmart')(unique_key)) }}
{%- endmacro %}

{% macro default__incremental_by_key_config(unique_key) -%}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'delete+insert',
        'unique_key': unique_key,
        'on_schema_change': 'fail',
    }) }}
{%- endmacro %}

{#
    Spark: a table format with row-level changes (Delta, the default on Databricks, Iceberg, Hudi)
    keeps the incremental semantics with `merge` on the same key. Plain Parquet (Spark's local
    default here, var `spark_file_format`) has only `append` and `insert_overwrite`, and dynamic
    partition overwrite can replace whole partitions but not rows: it fits the window-keyed models
    only at the price of a folder per (model, window) and it cannot express the per-request key at
    all. So on Parquet these models are rebuilt as tables on every run; every incremental rule here
    recounts a group in full from the same inputs, so the rebuilt table holds the same rows the
    incremental runs converge to (the frozen reference bins, which must not be recomputed, stay
    `append`, which Parquet supports).
#}
{% macro spark__incremental_by_key_config(unique_key) -%}
    {#- the same expression as `+file_format` in dbt_project.yml -#}
    {%- set file_format = var('spark_file_format', 'delta' if target.type == 'databricks' else 'parquet') -%}
    {%- if file_format in ('delta', 'iceberg', 'hudi') -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'merge',
            'unique_key': unique_key,
            'on_schema_change': 'fail',
        }) }}
    {%- else -%}
        {{ return({'materialized': 'table'}) }}
    {%- endif -%}
{%- endmacro %}
