{#
    The rows of `windows` (int_window_references' columns: model_name, window_start,
    reference_id, max_ingest_seq, …) that an incremental model keyed on (model_name, window_start)
    must count (again) in this run:
    - windows not in the model yet (new, or whose reference became usable);
    - windows whose reference_id changed (a newer reference version, a changed spec);
    - windows whose max_ingest_seq is after the newest max_ingest_seq the model holds: late rows
      recount their window (and, for previous_window references, the window after it);
    - windows in a backfill's recount range (macro in_recount_range).
    The model's own table must have reference_id and max_ingest_seq. A full build counts all.
#}
{% macro windows_to_recount(windows) -%}
    select windows.*
    from {{ windows }} as windows
    {%- if is_incremental() %}
        left join (
            select
                model_name,
                window_start,
                max(reference_id) as reference_id
            from {{ this }}
            group by
                model_name,
                window_start
        ) as counted
            on
                windows.model_name = counted.model_name
                and windows.window_start = counted.window_start
        where
            counted.model_name is null
            or coalesce(windows.reference_id, '') <> coalesce(counted.reference_id, '')
            or windows.max_ingest_seq > (select max(watermark.max_ingest_seq) from {{ this }} as watermark)
            {{ in_recount_range('windows.window_start') }}
    {%- endif %}
{%- endmacro %}
