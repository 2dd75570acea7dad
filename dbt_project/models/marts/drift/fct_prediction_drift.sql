{#
    Drift of the model's output per (model, window), with the same engine as the features: the
    prediction pseudo-features of int_window_drift_statistics_computed against the window's
    reference (whose predictions and probabilities are the version's reference rows, or the
    production rows for time_range and previous_window references), by the model's task:
    - binary: `__prediction__` (categorical, the predicted classes) and `__probability__` (numeric,
      the positive class's probability binned at the reference's deciles);
    - multiclass: `__prediction__` (the class mix) and `__probability__:<class>` per class:
      probability_psi and probability_ks_statistic are the largest over the classes, and
      probability_psi_class names the class with the largest PSI;
    - regression: `__prediction__` is numeric (the predicted value binned at the reference's
      deciles): prediction_psi, prediction_ks_statistic, prediction_wasserstein_normed. No class
      is read into a regression model's predictions (positive_rate and the probability columns
      are NULL).
    is_drifted, when judged (a reference and at least min_window_rows rows; false otherwise):
    classifiers, probability_psi >= var prediction_drift_psi_threshold (0.2) or
    prediction_js_distance >= var prediction_drift_js_threshold (0.1); regression, prediction_psi
    >= var prediction_drift_psi_threshold.
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
            when monitored_models.task = 'binary' and inference_logs.prediction is not null
                then case when inference_logs.prediction = monitored_models.positive_label then 1 else 0 end
        end as is_predicted_positive,
        case
            when monitored_models.task = 'binary' then {{ finite_double('inference_logs.probability') }}
        end as probability,
        case
            when monitored_models.task = 'regression' then {{ safe_cast_double('inference_logs.prediction') }}
        end as predicted_value,
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
        avg(probability) as mean_probability,
        avg(predicted_value) as mean_prediction

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

class_probability_statistics as (

    select
        *,
        {#- the text after the 16 characters of the prefix `__probability__:` #}
        substr(feature_name, 17) as class_label,
        row_number() over (
            partition by model_name, reference_id, window_start
            order by case when psi is null then 1 else 0 end asc, psi desc, feature_name asc
        ) as psi_rank

    from drift_statistics
    where substr(feature_name, 1, 16) = '__probability__:'

),

class_probability_summaries as (

    select
        model_name,
        reference_id,
        window_start,
        max(psi) as probability_psi,
        max(ks_statistic) as probability_ks_statistic,
        max(case when psi_rank = 1 and psi is not null then class_label end) as probability_psi_class

    from class_probability_statistics
    group by
        model_name,
        reference_id,
        window_start

),

joined as (

    select
        window_references.model_name,
        monitored_models.task,
        window_references.reference_id,
        window_references.n_rows,
        window_predictions.positive_rate,
        window_predictions.mean_probability,
        window_predictions.mean_prediction,
        prediction_statistics.js_distance as prediction_js_distance,
        prediction_statistics.psi as prediction_psi,
        prediction_statistics.ks_statistic as prediction_ks_statistic,
        prediction_statistics.wasserstein_normed as prediction_wasserstein_normed,
        window_references.window_start,
        window_references.window_end,
        case
            when monitored_models.task = 'multiclass' then class_probability_summaries.probability_psi
            when monitored_models.task = 'regression' then null
            else probability_statistics.psi
        end as probability_psi,
        case
            when monitored_models.task = 'multiclass'
                then class_probability_summaries.probability_ks_statistic
            when monitored_models.task = 'regression' then null
            else probability_statistics.ks_statistic
        end as probability_ks_statistic,
        case
            when monitored_models.task = 'multiclass' then class_probability_summaries.probability_psi_class
        end as probability_psi_class,
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
    left join class_probability_summaries
        on
            window_references.model_name = class_probability_summaries.model_name
            and window_references.window_start = class_probability_summaries.window_start
            and window_references.reference_id = class_probability_summaries.reference_id

),

final as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(task as {{ dbt.type_string() }}) as task,  -- noqa: RF04
        cast(reference_id as {{ dbt.type_string() }}) as reference_id,
        cast(n_rows as {{ dbt.type_bigint() }}) as n_current,
        cast(positive_rate as {{ type_double() }}) as positive_rate,
        cast(mean_probability as {{ type_double() }}) as mean_probability,
        cast(mean_prediction as {{ type_double() }}) as mean_prediction,
        cast(prediction_js_distance as {{ type_double() }}) as prediction_js_distance,
        cast(prediction_psi as {{ type_double() }}) as prediction_psi,
        cast(prediction_ks_statistic as {{ type_double() }}) as prediction_ks_statistic,
        cast(prediction_wasserstein_normed as {{ type_double() }}) as prediction_wasserstein_normed,
        cast(probability_psi as {{ type_double() }}) as probability_psi,
        cast(probability_ks_statistic as {{ type_double() }}) as probability_ks_statistic,
        cast(probability_psi_class as {{ dbt.type_string() }}) as probability_psi_class,
        coalesce(
            has_reference
            and not is_below_min_rows
            and case
                when task = 'regression'
                    then prediction_psi >= {{ var('prediction_drift_psi_threshold') }}
                else
                    probability_psi >= {{ var('prediction_drift_psi_threshold') }}
                    or prediction_js_distance >= {{ var('prediction_drift_js_threshold') }}
            end,
            false
        ) as is_drifted,
        has_reference,
        is_below_min_rows,
        cast(window_start as {{ dbt.type_timestamp() }}) as window_start,
        cast(window_end as {{ dbt.type_timestamp() }}) as window_end

    from joined

)

select * from final
