{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['model_name', 'window_start'],
        on_schema_change='fail',
    )
}}

{#
    Rows per (model, window, feature, frozen bin): the small count table every drift statistic is
    computed from. Every bin of the catalogue appears for every window, with zero counts.

    Reference version: a window is judged against the newest model version of its rows, i.e. the
    newest version with a frozen reference that is not newer than the window's max model_version
    (any catalogued version when all the window's versions are NULL). All rows of the window are
    binned with that version's bins, so a window spanning a retrain stays one window.

    Incremental (delete+insert on model_name, window_start): a run recounts, in full, only the
    windows that received rows loaded after the newest max_loaded_at already here (late rows
    re-count their whole window), plus windows not here yet (e.g. whose reference arrived late).
#}

with

feature_values as (

    select * from {{ ref('int_inference_feature_values_unpivoted') }}

),

reference_bins as (

    select * from {{ ref('int_reference_bins_frozen') }}

),

{% if is_incremental() %}

counted_windows as (

    select
        model_name,
        window_start,
        max(max_loaded_at) as max_loaded_at

    from {{ this }}
    group by
        model_name,
        window_start

),

{% endif %}

windows_to_count as (

    select distinct
        feature_values.model_name,
        feature_values.window_start

    from feature_values
    {% if is_incremental() %}
        left join counted_windows
            on
                feature_values.model_name = counted_windows.model_name
                and feature_values.window_start = counted_windows.window_start
        where
            counted_windows.model_name is null
            or feature_values.loaded_at > (select max(max_loaded_at) from counted_windows)
    {% endif %}

),

window_values as (

    select feature_values.*
    from feature_values
    inner join windows_to_count
        on
            feature_values.model_name = windows_to_count.model_name
            and feature_values.window_start = windows_to_count.window_start

),

window_model_versions as (

    select
        model_name,
        window_start,
        window_end,
        max(model_version) as max_model_version,
        max(loaded_at) as max_loaded_at

    from window_values
    group by
        model_name,
        window_start,
        window_end

),

catalogued_versions as (

    select distinct
        model_name,
        model_version

    from reference_bins

),

window_reference_versions as (

    select
        window_model_versions.model_name,
        window_model_versions.window_start,
        window_model_versions.window_end,
        window_model_versions.max_loaded_at,
        max(catalogued_versions.model_version) as reference_version

    from window_model_versions
    inner join catalogued_versions
        on
            window_model_versions.model_name = catalogued_versions.model_name
            and (
                window_model_versions.max_model_version is null
                or window_model_versions.max_model_version >= catalogued_versions.model_version
            )
    group by
        window_model_versions.model_name,
        window_model_versions.window_start,
        window_model_versions.window_end,
        window_model_versions.max_loaded_at

),

values_to_bin as (

    select
        window_values.model_name,
        window_values.feature_name,
        window_values.feature_type,
        window_values.value_category,
        window_values.value_number,
        window_reference_versions.reference_version,
        window_values.window_start

    from window_values
    inner join window_reference_versions
        on
            window_values.model_name = window_reference_versions.model_name
            and window_values.window_start = window_reference_versions.window_start

),

binned_values as (

    {{ assign_feature_bins('values_to_bin', 'reference_bins', 'reference_version') }}

),

bin_counts as (

    select
        model_name,
        feature_name,
        window_start,
        bin_id,
        count(*) as n_rows

    from binned_values
    group by
        model_name,
        feature_name,
        window_start,
        bin_id

),

window_bins as (

    select
        window_reference_versions.model_name,
        window_reference_versions.reference_version,
        reference_bins.feature_name,
        reference_bins.bin_id,
        window_reference_versions.window_start,
        window_reference_versions.window_end,
        window_reference_versions.max_loaded_at

    from window_reference_versions
    inner join reference_bins
        on
            window_reference_versions.model_name = reference_bins.model_name
            and window_reference_versions.reference_version = reference_bins.model_version

),

final as (

    select
        window_bins.model_name,
        cast(window_bins.reference_version as {{ dbt.type_int() }}) as reference_version,
        window_bins.feature_name,
        cast(window_bins.bin_id as {{ dbt.type_int() }}) as bin_id,
        cast(coalesce(bin_counts.n_rows, 0) as {{ dbt.type_bigint() }}) as n_rows,
        window_bins.window_start,
        window_bins.window_end,
        window_bins.max_loaded_at

    from window_bins
    left join bin_counts
        on
            window_bins.model_name = bin_counts.model_name
            and window_bins.feature_name = bin_counts.feature_name
            and window_bins.window_start = bin_counts.window_start
            and window_bins.bin_id = bin_counts.bin_id

)

select * from final
