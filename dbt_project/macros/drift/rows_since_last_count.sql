{#
    The filter of the data tests of the per-row views (int_inference_feature_values_unpivoted):
    only the rows loaded after the newest ingest_seq the window counts have counted, i.e. what this
    build adds. Rendered when the test runs: the counts table then still holds the previous build's
    watermark. A full refresh, or no counts table yet, tests every row.
#}
{% macro rows_since_last_count() -%}
    {%- if not execute or flags.FULL_REFRESH -%}
        1 = 1
    {%- else -%}
        {%- set counts = adapter.get_relation(
            database=target.database,
            schema='intermediate',
            identifier='int_window_bin_counts_aggregated',
        ) -%}
        {%- if counts is none -%}
            1 = 1
        {%- else -%}
            ingest_seq > (select coalesce(max(max_ingest_seq), -1) from {{ counts }})
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
