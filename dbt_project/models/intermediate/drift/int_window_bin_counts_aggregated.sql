{#- incremental delete+insert on [model_name, window_start] (macros/cross_db/incremental_by_key_config.sql) #}
{{ config(**incremental_by_key_config(['model_name', 'window_start'])) }}

{#
    Rows per (model, window, feature, frozen bin) on both sides: the window's rows (n_rows) and the
    reference's rows (n_reference_rows), binned alike with the frozen bins of the window's reference
    (int_window_references.reference_id). The small table every drift statistic is computed from.
    Every bin of the catalogue appears for every window, with zero counts. Windows without a
    usable reference are not counted here.

    Reference counts: model_version and time_range references are immutable once frozen, so their
    counts are the frozen catalogue's; a previous_window reference is a live window, so its rows are
    recounted (in the frozen bins) whenever the window judged against it is recounted.

    Incremental (delete+insert on model_name, window_start): a run recounts, in full, only the
    windows of macro windows_to_recount: new here (or whose reference became usable), whose rows
    (and, for previous_window, their reference window's rows) are newer than the newest counted
    here, or whose reference_id changed.
#}

with

feature_values as (

    select * from {{ ref('int_inference_feature_values_unpivoted') }}

),

reference_values as (

    select * from {{ ref('int_reference_feature_values') }}

),

window_references as (

    select * from {{ ref('int_window_references') }}

),

reference_bins as (

    select * from {{ ref('int_reference_bins_frozen') }}

),

usable_windows as (

    select * from window_references
    where reference_id is not null

),

windows_to_count as (

    {{ windows_to_recount('usable_windows') }}

),

window_values as (

    select
        feature_values.model_name,
        feature_values.feature_name,
        feature_values.feature_type,
        feature_values.value_category,
        feature_values.value_number,
        windows_to_count.reference_id,
        feature_values.window_start

    from feature_values
    inner join windows_to_count
        on
            feature_values.model_name = windows_to_count.model_name
            and feature_values.window_start = windows_to_count.window_start
    where {{ scored_in_windows('feature_values.scored_at', 'windows_to_count') }}

),

binned_window_values as (

    {{ assign_feature_bins('window_values', 'reference_bins', 'reference_id') }}

),

window_bin_counts as (

    select
        model_name,
        feature_name,
        window_start,
        bin_id,
        count(*) as n_rows

    from binned_window_values
    group by
        model_name,
        feature_name,
        window_start,
        bin_id

),

live_references as (

    select distinct
        model_name,
        reference_id

    from windows_to_count
    where reference_kind = 'previous_window'

),

live_reference_values as (

    select reference_values.*
    from reference_values
    inner join live_references
        on
            reference_values.model_name = live_references.model_name
            and reference_values.reference_id = live_references.reference_id

),

binned_live_reference_values as (

    {{ assign_feature_bins('live_reference_values', 'reference_bins', 'reference_id') }}

),

live_reference_bin_counts as (

    select
        model_name,
        reference_id,
        feature_name,
        bin_id,
        count(*) as n_reference_rows

    from binned_live_reference_values
    group by
        model_name,
        reference_id,
        feature_name,
        bin_id

),

window_bins as (

    select
        windows_to_count.model_name,
        windows_to_count.reference_id,
        windows_to_count.reference_kind,
        reference_bins.feature_name,
        reference_bins.bin_id,
        reference_bins.n_reference_rows_in_bin,
        windows_to_count.window_start,
        windows_to_count.window_end,
        windows_to_count.max_ingest_seq

    from windows_to_count
    inner join reference_bins
        on
            windows_to_count.model_name = reference_bins.model_name
            and windows_to_count.reference_id = reference_bins.reference_id

),

final as (

    select
        window_bins.model_name,
        window_bins.reference_id,
        window_bins.feature_name,
        cast(window_bins.bin_id as {{ dbt.type_int() }}) as bin_id,
        cast(coalesce(window_bin_counts.n_rows, 0) as {{ dbt.type_bigint() }}) as n_rows,
        cast(
            case
                when window_bins.reference_kind = 'previous_window'
                    then coalesce(live_reference_bin_counts.n_reference_rows, 0)
                else window_bins.n_reference_rows_in_bin
            end as {{ dbt.type_bigint() }}
        ) as n_reference_rows,
        window_bins.window_start,
        window_bins.window_end,
        window_bins.max_ingest_seq

    from window_bins
    left join window_bin_counts
        on
            window_bins.model_name = window_bin_counts.model_name
            and window_bins.feature_name = window_bin_counts.feature_name
            and window_bins.window_start = window_bin_counts.window_start
            and window_bins.bin_id = window_bin_counts.bin_id
    left join live_reference_bin_counts
        on
            window_bins.model_name = live_reference_bin_counts.model_name
            and window_bins.reference_id = live_reference_bin_counts.reference_id
            and window_bins.feature_name = live_reference_bin_counts.feature_name
            and window_bins.bin_id = live_reference_bin_counts.bin_id

)

select * from final
