{#
    Drift of each monitored feature in each window against its frozen reference bins:
    PSI = sum over bins of (p_cur - p_ref) * ln(p_cur / p_ref), where p_cur and p_ref are the
    window's and the reference's share of rows in the bin (NULL and unseen bins included), each
    floored at var drift_share_epsilon (default 0.0001) before the log, so a bin empty on one side
    gives a large but finite term. The threshold is the model's psi_threshold.
#}

with

window_bin_counts as (

    select * from {{ ref('int_window_bin_counts_aggregated') }}

),

reference_bins as (

    select * from {{ ref('int_reference_bins_frozen') }}

),

monitored_models as (

    select * from {{ ref('stg_raw__monitored_models') }}

),

window_totals as (

    select
        model_name,
        feature_name,
        window_start,
        sum(n_rows) as n_current

    from window_bin_counts
    group by
        model_name,
        feature_name,
        window_start

),

bin_shares as (

    select
        window_bin_counts.model_name,
        window_bin_counts.feature_name,
        reference_bins.feature_type,
        window_bin_counts.reference_version,
        reference_bins.n_reference,
        window_totals.n_current,
        greatest(
            cast(window_bin_counts.n_rows as {{ type_double() }})
            / nullif(cast(window_totals.n_current as {{ type_double() }}), 0),
            cast({{ var('drift_share_epsilon') }} as {{ type_double() }})
        ) as current_share,
        greatest(
            cast(reference_bins.n_reference_rows_in_bin as {{ type_double() }})
            / nullif(cast(reference_bins.n_reference as {{ type_double() }}), 0),
            cast({{ var('drift_share_epsilon') }} as {{ type_double() }})
        ) as reference_share,
        window_bin_counts.window_start,
        window_bin_counts.window_end

    from window_bin_counts
    inner join reference_bins
        on
            window_bin_counts.model_name = reference_bins.model_name
            and window_bin_counts.reference_version = reference_bins.model_version
            and window_bin_counts.feature_name = reference_bins.feature_name
            and window_bin_counts.bin_id = reference_bins.bin_id
    inner join window_totals
        on
            window_bin_counts.model_name = window_totals.model_name
            and window_bin_counts.feature_name = window_totals.feature_name
            and window_bin_counts.window_start = window_totals.window_start

),

feature_psi as (

    select
        model_name,
        feature_name,
        feature_type,
        reference_version,
        n_reference,
        n_current,
        window_start,
        window_end,
        sum((current_share - reference_share) * ln(current_share / reference_share)) as psi

    from bin_shares
    group by
        model_name,
        feature_name,
        feature_type,
        reference_version,
        n_reference,
        n_current,
        window_start,
        window_end

),

final as (

    select
        cast(feature_psi.model_name as {{ dbt.type_string() }}) as model_name,
        cast(feature_psi.feature_name as {{ dbt.type_string() }}) as feature_name,
        cast(feature_psi.feature_type as {{ dbt.type_string() }}) as feature_type,
        cast('psi' as {{ dbt.type_string() }}) as drift_method,
        cast(feature_psi.reference_version as {{ dbt.type_int() }}) as reference_version,
        cast(feature_psi.n_reference as {{ dbt.type_bigint() }}) as n_reference,
        cast(feature_psi.n_current as {{ dbt.type_bigint() }}) as n_current,
        cast(feature_psi.psi as {{ type_double() }}) as psi,
        cast(feature_psi.psi as {{ type_double() }}) as drift_score,
        cast(monitored_models.psi_threshold as {{ type_double() }}) as threshold,
        feature_psi.psi >= monitored_models.psi_threshold as is_drifted,
        cast(feature_psi.window_start as {{ dbt.type_timestamp() }}) as window_start,
        cast(feature_psi.window_end as {{ dbt.type_timestamp() }}) as window_end

    from feature_psi
    inner join monitored_models
        on feature_psi.model_name = monitored_models.model_name

)

select * from final
