{#- incremental delete+insert on [model_name, window_start] (macros/cross_db/incremental_by_key_config.sql) #}
{{ config(**incremental_by_key_config(['model_name', 'window_start'])) }}

{#
    Rows per (model, window, segment column, segment value, feature, frozen bin) on both sides,
    for the models whose spec names `segments`: the window's rows of the segment (n_rows) and the
    reference's rows of the same segment (n_reference_rows), binned alike with the frozen bins of
    the window's reference (the bins of the whole reference: a segment is judged on the same
    scale as the model). What fct_segment_drift tests.

    Segment values: per segment column and reference, the top_k values with the most reference
    rows (at least min_rows of them) are segments of their own, ties broken by the value; every
    other value (and a value the reference never saw) is `__other__`; a missing value is the value
    `__missing__`. A feature that is itself the segment column is not tested within it.

    Bins with rows on neither side are left out. Incremental like int_window_bin_counts_aggregated
    (macro windows_to_recount); the reference side is counted again with each recounted window
    (the rows of the reference's segments, not of history).
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

model_segments as (

    select * from {{ ref('stg_raw__model_segments') }}

),

model_features as (

    select * from {{ ref('stg_raw__model_features') }}

),

segmented_windows as (

    select window_references.*
    from window_references
    where
        window_references.reference_id is not null
        and window_references.model_name in (select model_segments.model_name from model_segments)

),

windows_to_count as (

    {{ windows_to_recount('segmented_windows') }}

),

counted_references as (

    select distinct
        model_name,
        reference_id

    from windows_to_count

),

reference_segment_values as (

    select
        reference_values.model_name,
        reference_values.reference_id,
        reference_values.reference_row_id,
        model_segments.segment_name,
        reference_values.feature_name,
        reference_values.feature_type,
        reference_values.value_category,
        reference_values.value_number,
        model_segments.top_k,
        model_segments.min_rows,
        coalesce(
            {{ map_value('reference_values.segment_values', 'model_segments.segment_name') }}, '__missing__'
        ) as raw_segment_value

    from reference_values
    inner join counted_references
        on
            reference_values.model_name = counted_references.model_name
            and reference_values.reference_id = counted_references.reference_id
    inner join model_features
        on
            reference_values.model_name = model_features.model_name
            and reference_values.feature_name = model_features.feature_name
    inner join model_segments
        on
            reference_values.model_name = model_segments.model_name
            and reference_values.feature_name <> model_segments.segment_name

),

segment_volumes as (

    select
        model_name,
        reference_id,
        segment_name,
        raw_segment_value,
        max(top_k) as top_k,
        max(min_rows) as min_rows,  -- noqa: RF04
        count(distinct reference_row_id) as n_reference_rows

    from reference_segment_values
    group by
        model_name,
        reference_id,
        segment_name,
        raw_segment_value

),

ranked_segments as (

    select
        *,
        row_number() over (
            partition by model_name, reference_id, segment_name
            order by n_reference_rows desc, raw_segment_value asc
        ) as volume_rank

    from segment_volumes

),

kept_segments as (

    select
        model_name,
        reference_id,
        segment_name,
        raw_segment_value

    from ranked_segments
    where
        volume_rank <= top_k
        and n_reference_rows >= min_rows

),

window_segment_values as (

    select
        feature_values.model_name,
        windows_to_count.reference_id,
        model_segments.segment_name,
        feature_values.feature_name,
        feature_values.feature_type,
        feature_values.value_category,
        feature_values.value_number,
        feature_values.window_start,
        coalesce(
            {{ map_value('feature_values.segment_values', 'model_segments.segment_name') }}, '__missing__'
        ) as raw_segment_value

    from feature_values
    inner join windows_to_count
        on
            feature_values.model_name = windows_to_count.model_name
            and feature_values.window_start = windows_to_count.window_start
    inner join model_features
        on
            feature_values.model_name = model_features.model_name
            and feature_values.feature_name = model_features.feature_name
    inner join model_segments
        on
            feature_values.model_name = model_segments.model_name
            and feature_values.feature_name <> model_segments.segment_name
    where {{ scored_in_windows('feature_values.scored_at', 'windows_to_count') }}

),

segment_values as (

    select
        model_name,
        reference_id,
        segment_name,
        raw_segment_value,
        feature_name,
        feature_type,
        value_category,
        value_number,
        cast(null as {{ dbt.type_timestamp() }}) as window_start,
        'reference' as side

    from reference_segment_values

    union all

    select
        model_name,
        reference_id,
        segment_name,
        raw_segment_value,
        feature_name,
        feature_type,
        value_category,
        value_number,
        window_start,
        'window' as side

    from window_segment_values

),

labelled_values as (

    {#- both sides labelled and binned by one path, so a segment's rows are counted alike #}
    select
        segment_values.model_name,
        segment_values.reference_id,
        segment_values.segment_name,
        segment_values.feature_name,
        segment_values.feature_type,
        segment_values.value_category,
        segment_values.value_number,
        segment_values.window_start,
        segment_values.side,
        coalesce(kept_segments.raw_segment_value, '__other__') as segment_value

    from segment_values
    left join kept_segments
        on
            segment_values.model_name = kept_segments.model_name
            and segment_values.reference_id = kept_segments.reference_id
            and segment_values.segment_name = kept_segments.segment_name
            and segment_values.raw_segment_value = kept_segments.raw_segment_value

),

binned_values as (

    {{ assign_feature_bins('labelled_values', 'reference_bins', 'reference_id') }}

),

side_bin_counts as (

    select
        model_name,
        reference_id,
        side,
        window_start,
        segment_name,
        segment_value,
        feature_name,
        bin_id,
        count(*) as n_rows

    from binned_values
    group by
        model_name,
        reference_id,
        side,
        window_start,
        segment_name,
        segment_value,
        feature_name,
        bin_id

),

window_bin_counts as (

    select * from side_bin_counts
    where side = 'window'

),

window_reference_bin_counts as (

    select
        windows_to_count.model_name,
        windows_to_count.window_start,
        reference_bin_counts.segment_name,
        reference_bin_counts.segment_value,
        reference_bin_counts.feature_name,
        reference_bin_counts.bin_id,
        reference_bin_counts.n_rows as n_reference_rows

    from windows_to_count
    inner join side_bin_counts as reference_bin_counts
        on
            windows_to_count.model_name = reference_bin_counts.model_name
            and windows_to_count.reference_id = reference_bin_counts.reference_id
            and reference_bin_counts.side = 'reference'

),

bin_keys as (

    select
        model_name,
        window_start,
        segment_name,
        segment_value,
        feature_name,
        bin_id

    from window_reference_bin_counts

    union

    select
        model_name,
        window_start,
        segment_name,
        segment_value,
        feature_name,
        bin_id

    from window_bin_counts

),

final as (

    select
        bin_keys.model_name,
        windows_to_count.reference_id,
        bin_keys.segment_name,
        bin_keys.segment_value,
        bin_keys.feature_name,
        model_features.feature_type,
        cast(bin_keys.bin_id as {{ dbt.type_int() }}) as bin_id,
        cast(coalesce(window_bin_counts.n_rows, 0) as {{ dbt.type_bigint() }}) as n_rows,
        cast(
            coalesce(window_reference_bin_counts.n_reference_rows, 0) as {{ dbt.type_bigint() }}
        ) as n_reference_rows,
        windows_to_count.window_start,
        windows_to_count.window_end,
        windows_to_count.max_ingest_seq

    from bin_keys
    inner join windows_to_count
        on
            bin_keys.model_name = windows_to_count.model_name
            and bin_keys.window_start = windows_to_count.window_start
    inner join model_features
        on
            bin_keys.model_name = model_features.model_name
            and bin_keys.feature_name = model_features.feature_name
    left join window_bin_counts
        on
            bin_keys.model_name = window_bin_counts.model_name
            and bin_keys.window_start = window_bin_counts.window_start
            and bin_keys.segment_name = window_bin_counts.segment_name
            and bin_keys.segment_value = window_bin_counts.segment_value
            and bin_keys.feature_name = window_bin_counts.feature_name
            and bin_keys.bin_id = window_bin_counts.bin_id
    left join window_reference_bin_counts
        on
            bin_keys.model_name = window_reference_bin_counts.model_name
            and bin_keys.window_start = window_reference_bin_counts.window_start
            and bin_keys.segment_name = window_reference_bin_counts.segment_name
            and bin_keys.segment_value = window_reference_bin_counts.segment_value
            and bin_keys.feature_name = window_reference_bin_counts.feature_name
            and bin_keys.bin_id = window_reference_bin_counts.bin_id

)

select * from final
