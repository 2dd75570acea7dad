{#
    Backfills: `or <window_start column> in [recount_from, recount_to)` when the run passes the vars
    `recount_from` and `recount_to` (ISO timestamps; Dagster sends a partition's time window), so the
    incremental models recount those windows in full even though no new rows arrived for them.
    Renders nothing without the vars.
#}
{% macro in_recount_range(column) %}
    {%- set recount_from = var('recount_from', none) -%}
    {%- set recount_to = var('recount_to', none) -%}
    {%- if recount_from is not none and recount_to is not none -%}
        or (
            {{ column }} >= cast('{{ recount_from }}' as {{ dbt.type_timestamp() }})
            and {{ column }} < cast('{{ recount_to }}' as {{ dbt.type_timestamp() }})
        )
    {%- endif -%}
{% endmacro %}
