{#
    Drift of the model's output per (model, window), with the same engine as the features: the
    pseudo-features `__prediction__` (categorical over the predicted values) and `__probability__`
    (numeric over the probability, binned at the reference's deciles) of
    int_window_drift_statistics_computed, against the window's reference (whose predictions and
    probabilities are the version's reference rows, or the production rows for time_range and
    previous_window references).
    is_drifted: probability_psi >= var prediction_drift_psi_threshold (0.2) or
    prediction_js_distance >= var prediction_drift_js_threshold (0.1); not judged (false) without a
    reference or below min_window_rows.
#}

with

window_references as (

    select * from {{ ref('int_window_references') }}

),

drift_statistics as (

    select * from {{ ref('int_window_drift_statistics_computed') }}

),

inference_logs as (

    select * from {{ ref('stg_raw__inference_logs') }}

),

monitored_models as (

    select * from {{ ref('stg_raw__monitored_models') }}

),

windowed_predictions as (

    select
        inference_logs.model_name,
        case
            when inference_logs.prediction is not null
                then case when inference_logs.prediction = monitored_models.positive_label then 1 else 0 end
        end as is_predicted_positive,
        {{ finite_double('inference_logs.probability') }} as probability,
        {{ window_start_at('inference_logs.scored_at', 'monitored_models.window_seconds') }} as window_start

    from inference_logs
    inner join monitored_models
        on inference_logs.model_name = monitored_models.model_name

),

window_predictions as (

    select
        model_name,
        window_start,
        avg(cast(is_predicted_positive as {{ type_double() }})) as positive_rate,
        avg(probability) as mean_probability

    from windowed_predictions
    group by
        model_name,
        window_start

),

prediction_statistics as (

    select * from drift_statistics
    where feature_name = '__prediction__'

),

probability_statistics as (

    select * from drift_statistics
    where feature_name = '__probability__'

),

joined as (

    select
        window_references.model_name,
        window_references.reference_id,
        window_references.n_rows,
        window_predictions.positive_rate,
        window_predictions.mean_probability,
        prediction_statistics.js_distance as prediction_js_distance,
        prediction_statistics.psi as prediction_psi,
        probability_statistics.psi as probability_psi,
        probability_statistics.ks_statistic as probability_ks_statistic,
        window_references.window_start,
        window_references.window_end,
        prediction_statistics.model_name is not null as has_reference,
        window_references.n_rows < monitored_models.min_window_rows as is_below_min_rows

    from window_references
    inner join monitored_models
        on window_references.model_name = monitored_models.model_name
    left join window_predictions
        on
            window_references.model_name = window_predictions.model_name
            and window_references.window_start = window_predictions.window_start
    left join prediction_statistics
        on
            window_references.model_name = prediction_statistics.model_name
            and window_references.window_start = prediction_statistics.window_start
            and window_references.reference_id = prediction_statistics.reference_id
    left join probability_statistics
        on
            window_references.model_name = probability_statistics.model_name
            and window_references.window_start = probability_statistics.window_start
            and window_references.reference_id = probability_statistics.reference_id

),

final as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(reference_id as {{ dbt.type_string() }}) as reference_id,
        cast(n_rows as {{ dbt.type_bigint() }}) as n_current,
        cast(positive_rate as {{ type_double() }}) as positive_rate,
        cast(mean_probability as {{ type_double() }}) as mean_probability,
        cast(prediction_js_distance as {{ type_double() }}) as prediction_js_distance,
        cast(prediction_psi as {{ type_double() }}) as prediction_psi,
        cast(probability_psi as {{ type_double() }}) as probability_psi,
        cast(probability_ks_statistic as {{ type_double() }}) as probability_ks_statistic,
        coalesce(
            has_reference
            and not is_below_min_rows
            and (
                probability_psi >= {{ var('prediction_drift_psi_threshold') }}
                or prediction_js_distance >= {{ var('prediction_drift_js_threshold') }}
            ),
            false
        ) as is_drifted,
        has_reference,
        is_below_min_rows,
        cast(window_start as {{ dbt.type_timestamp() }}) as window_start,
        cast(window_end as {{ dbt.type_timestamp() }}) as window_end

    from joined

)

select * from final
