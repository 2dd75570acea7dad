{#
    Dataset drift per (model, window): the share of the model's monitored features that drifted in
    the window (fct_feature_drift), against the model's dataset_drift_share. A window without a
    usable reference or with fewer rows than min_window_rows is not judged (is_dataset_drifted
    false, flagged), like its features.
#}

with

feature_drift as (

    select * from {{ ref('fct_feature_drift') }}

),

monitored_models as (

    select * from {{ ref('stg_raw__monitored_models') }}

),

window_counts as (

    select
        model_name,
        window_start,
        window_end,
        max(n_current) as n_current,
        count(*) as n_features,
        sum(case when is_drifted then 1 else 0 end) as n_drifted,
        max(case when has_reference then 1 else 0 end) as has_reference,
        max(case when is_below_min_rows then 1 else 0 end) as is_below_min_rows

    from feature_drift
    group by
        model_name,
        window_start,
        window_end

),

window_drift as (

    select
        *,
        cast(n_drifted as {{ type_double() }}) / nullif(cast(n_features as {{ type_double() }}), 0)
            as share_drifted

    from window_counts

),

final as (

    select
        cast(window_drift.model_name as {{ dbt.type_string() }}) as model_name,
        cast(window_drift.n_current as {{ dbt.type_bigint() }}) as n_current,
        cast(window_drift.n_features as {{ dbt.type_int() }}) as n_features,
        cast(window_drift.n_drifted as {{ dbt.type_int() }}) as n_drifted,
        cast(window_drift.share_drifted as {{ type_double() }}) as share_drifted,
        cast(monitored_models.dataset_drift_share as {{ type_double() }}) as threshold,
        coalesce(
            window_drift.has_reference = 1
            and window_drift.is_below_min_rows = 0
            and window_drift.share_drifted >= monitored_models.dataset_drift_share,
            false
        ) as is_dataset_drifted,
        window_drift.has_reference = 1 as has_reference,
        window_drift.is_below_min_rows = 1 as is_below_min_rows,
        cast(window_drift.window_start as {{ dbt.type_timestamp() }}) as window_start,
        cast(window_drift.window_end as {{ dbt.type_timestamp() }}) as window_end

    from window_drift
    inner join monitored_models
        on window_drift.model_name = monitored_models.model_name

)

select * from final
