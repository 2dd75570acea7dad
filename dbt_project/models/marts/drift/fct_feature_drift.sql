{#
    Drift of each monitored feature of each model in each window against the window's reference
    (int_window_references), one row per (model_name, feature_name, window_start) for every window
    with rows. Statistics come from int_window_drift_statistics_computed (the bin count tables);
    for models with statistics = 'evidently', psi, js_distance and wasserstein_normed come from
    int_feature_drift_evidently instead (as they are there, NULL included).

    Judgement: drift_score is the statistic named by the feature's drift_method; is_drifted is
    drift_score >= threshold (chi2_p_value: drift_score < threshold), and false whenever the window
    is not judged: no usable reference (has_reference false, statistics NULL), fewer rows than
    min_window_rows (is_below_min_rows, statistics shown), or a NULL drift_score.
    Pseudo-features (`__prediction__`, `__probability__`) are left out: see fct_prediction_drift.
#}

with

window_references as (

    select * from {{ ref('int_window_references') }}

),

drift_statistics as (

    select * from {{ ref('int_window_drift_statistics_computed') }}

),

evidently_statistics as (

    select * from {{ ref('int_feature_drift_evidently') }}

),

model_features as (

    select * from {{ ref('stg_raw__model_features') }}

),

monitored_models as (

    select * from {{ ref('stg_raw__monitored_models') }}

),

window_features as (

    select
        window_references.model_name,
        model_features.feature_name,
        model_features.feature_type,
        model_features.drift_method,
        model_features.drift_threshold,
        monitored_models.statistics_method,
        monitored_models.min_window_rows,
        window_references.reference_id,
        window_references.reference_version,
        window_references.n_rows,
        window_references.window_start,
        window_references.window_end

    from window_references
    inner join model_features
        on window_references.model_name = model_features.model_name
    inner join monitored_models
        on window_references.model_name = monitored_models.model_name

),

statistics as (

    select
        window_features.*,
        drift_statistics.n_reference,
        drift_statistics.kl_divergence,
        drift_statistics.hellinger,
        drift_statistics.l_infinity,
        drift_statistics.ks_statistic,
        drift_statistics.chi2_statistic,
        drift_statistics.chi2_p_value,
        case
            when window_features.statistics_method = 'evidently' then evidently_statistics.psi
            else drift_statistics.psi
        end as psi,
        case
            when window_features.statistics_method = 'evidently' then evidently_statistics.js_distance
            else drift_statistics.js_distance
        end as js_distance,
        case
            when window_features.statistics_method = 'evidently' then evidently_statistics.wasserstein_normed
            else drift_statistics.wasserstein_normed
        end as wasserstein_normed,
        drift_statistics.model_name is not null as has_reference,
        window_features.n_rows < window_features.min_window_rows as is_below_min_rows

    from window_features
    left join drift_statistics
        on
            window_features.model_name = drift_statistics.model_name
            and window_features.feature_name = drift_statistics.feature_name
            and window_features.window_start = drift_statistics.window_start
            and window_features.reference_id = drift_statistics.reference_id
    left join evidently_statistics
        on
            window_features.model_name = evidently_statistics.model_name
            and window_features.feature_name = evidently_statistics.feature_name
            and window_features.window_start = evidently_statistics.window_start

),

scored as (

    select
        *,
        case drift_method
            when 'psi' then psi
            when 'js_distance' then js_distance
            when 'kl_divergence' then kl_divergence
            when 'hellinger' then hellinger
            when 'l_infinity' then l_infinity
            when 'ks_statistic' then ks_statistic
            when 'wasserstein_normed' then wasserstein_normed
            when 'chi2_p_value' then chi2_p_value
        end as drift_score

    from statistics

),

final as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(feature_name as {{ dbt.type_string() }}) as feature_name,
        cast(feature_type as {{ dbt.type_string() }}) as feature_type,
        cast(reference_id as {{ dbt.type_string() }}) as reference_id,
        cast(drift_method as {{ dbt.type_string() }}) as drift_method,
        cast(statistics_method as {{ dbt.type_string() }}) as statistics_method,
        cast(reference_version as {{ dbt.type_int() }}) as reference_version,
        cast(n_reference as {{ dbt.type_bigint() }}) as n_reference,
        cast(n_rows as {{ dbt.type_bigint() }}) as n_current,
        cast(psi as {{ type_double() }}) as psi,
        cast(js_distance as {{ type_double() }}) as js_distance,
        cast(kl_divergence as {{ type_double() }}) as kl_divergence,
        cast(hellinger as {{ type_double() }}) as hellinger,
        cast(l_infinity as {{ type_double() }}) as l_infinity,
        cast(ks_statistic as {{ type_double() }}) as ks_statistic,
        cast(wasserstein_normed as {{ type_double() }}) as wasserstein_normed,
        cast(chi2_statistic as {{ type_double() }}) as chi2_statistic,
        cast(chi2_p_value as {{ type_double() }}) as chi2_p_value,
        cast(drift_score as {{ type_double() }}) as drift_score,
        cast(drift_threshold as {{ type_double() }}) as threshold,
        coalesce(
            has_reference
            and not is_below_min_rows
            and case
                when drift_method = 'chi2_p_value' then drift_score < drift_threshold
                else drift_score >= drift_threshold
            end,
            false
        ) as is_drifted,
        has_reference,
        is_below_min_rows,
        cast(window_start as {{ dbt.type_timestamp() }}) as window_start,
        cast(window_end as {{ dbt.type_timestamp() }}) as window_end

    from scored

)

select * from final
