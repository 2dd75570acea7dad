{#
    A timestamp as ISO-8601 text to the second, `YYYY-MM-DDTHH:MM:SS` (no time zone: timestamps are
    UTC, docs/architecture.md §3.3). Used to build reference ids such as `window:2024-03-01T00:00:00`, so the
    text must be the same on every engine (a plain cast is not: formats differ).
#}
{% macro timestamp_to_text(expression) -%}
    {{ return(adapter.dispatch('timestamp_to_text', 'driftmart')(expression)) }}
{%- endmacro %}

{% macro default__timestamp_to_text(expression) -%}
    replace(cast(cast({{ expression }} as {{ dbt.type_timestamp() }}) as {{ dbt.type_string() }}), ' ', 'T')
{%- endmacro %}

{% macro duckdb__timestamp_to_text(expression) -%}
    strftime({{ expression }}, '%Y-%m-%dT%H:%M:%S')
{%- endmacro %}

{% macro postgres__timestamp_to_text(expression) -%}
    to_char({{ expression }}, 'YYYY-MM-DD"T"HH24:MI:SS')
{%- endmacro %}

{% macro spark__timestamp_to_text(expression) -%}
    date_format({{ expression }}, "yyyy-MM-dd'T'HH:mm:ss")
{%- endmacro %}
