{#
    An 8-byte float. `dbt.type_float()` is 4-byte on DuckDB and Spark (docs/architecture.md §9), too coarse
    for shares and drift statistics.
#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'driftmart')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double
{%- endmacro %}

{% macro duckdb__type_double() -%}
    double
{%- endmacro %}

{% macro postgres__type_double() -%}
    double precision
{%- endmacro %}

{% macro spark__type_double() -%}
    double
{%- endmacro %}
