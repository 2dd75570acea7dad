{#
    Start of the fixed window containing `timestamp_expression`: windows of `window_seconds` seconds
    aligned to the Unix epoch (1970-01-01 00:00:00 UTC), half-open [start, start + length).
    Timestamps are UTC without a time zone (docs/architecture.md §3.3); Spark needs its session
    time zone at UTC.
#}
{% macro window_start_at(timestamp_expression, window_seconds) -%}
    {{ return(adapter.dispatch('window_start_at', 'driftmart')(timestamp_expression, window_seconds)) }}
{%- endmacro %}

{% macro default__window_start_at(timestamp_expression, window_seconds) -%}
    {%- set epoch -%}cast('1970-01-01 00:00:00' as {{ dbt.type_timestamp() }}){%- endset -%}
    {%- set seconds_since_epoch = dbt.datediff(epoch, timestamp_expression, 'second') -%}
    {%- set window_index -%}
        cast(floor({{ seconds_since_epoch }} / cast({{ window_seconds }} as {{ type_double() }})) as {{ dbt.type_bigint() }})
    {%- endset -%}
    {{ dbt.dateadd('second', window_index ~ ' * ' ~ window_seconds, epoch) }}
{%- endmacro %}

{% macro duckdb__window_start_at(timestamp_expression, window_seconds) -%}
    make_timestamp(
        cast(floor(epoch_us({{ timestamp_expression }}) / (cast({{ window_seconds }} as double) * 1000000)) as bigint)
        * cast({{ window_seconds }} as bigint) * 1000000
    )
{%- endmacro %}

{% macro postgres__window_start_at(timestamp_expression, window_seconds) -%}
    (
        to_timestamp(
            floor(extract(epoch from {{ timestamp_expression }}) / cast({{ window_seconds }} as double precision))
            * {{ window_seconds }}
        ) at time zone 'UTC'
    )
{%- endmacro %}

{% macro spark__window_start_at(timestamp_expression, window_seconds) -%}
    timestamp_seconds(
        cast(floor(unix_timestamp({{ timestamp_expression }}) / cast({{ window_seconds }} as double)) as bigint)
        * {{ window_seconds }}
    )
{%- endmacro %}
