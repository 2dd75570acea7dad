{#
    on-run-start: make the `raw` sources readable on engines that do not hold the raw tables
    themselves. DuckDB reads them in its own file and PostgreSQL receives them through the sync
    (warehouse/targets/), so only Spark acts: each raw table the models read is the Parquet export
    `$DRIFTMART_HOME/spark/raw/<table>/` that warehouse/targets/spark.py writes before dbt runs,
    registered as an external table. Re-created on every run (dropping an external table keeps its
    files), so the table's schema always follows the file's, even after the raw store gained a column.
#}
{% macro register_raw_sources() -%}
    {{ return(adapter.dispatch('register_raw_sources', 'driftmart')()) }}
{%- endmacro %}

{% macro default__register_raw_sources() -%}
{%- endmacro %}

{% macro spark__register_raw_sources() -%}
    {%- if execute -%}
        {%- set raw_dir = env_var('DRIFTMART_HOME', 'warehouse/data') ~ '/spark/raw' -%}
        {%- set tables = [] -%}
        {%- for node in graph.nodes.values() -%}
            {%- for parent in node.depends_on.nodes if parent.startswith('source.driftmart.raw.') -%}
                {%- set table = parent.split('.')[-1] -%}
                {%- if table not in tables -%}{%- do tables.append(table) -%}{%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- do run_query('create schema if not exists raw') -%}
        {%- for table in tables | sort -%}
            {%- do run_query('drop table if exists raw.' ~ table) -%}
            {%- do run_query(
                'create table raw.' ~ table ~ " using parquet location '"
                ~ (raw_dir ~ '/' ~ table) | replace("'", "\\'") ~ "'"
            ) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
