{#
    `as not materialized` for a CTE over a per-row source that several parts of a view read: DuckDB
    (and PostgreSQL) would otherwise materialize it, computing it over all history before any
    consumer's filter can reach the scan. Spark inlines CTEs anyway and has no such keyword.
    Usage: `logs as {{ inlined() }} (...)`.
#}
{% macro inlined() -%}
    {{ return(adapter.dispatch('inlined', 'driftmart')()) }}
{%- endmacro %}

{% macro default__inlined() -%}
    not materialized
{%- endmacro %}

{% macro spark__inlined() -%}
{%- endmacro %}
