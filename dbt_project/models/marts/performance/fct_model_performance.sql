{#
    Realized quality of each model's predictions per window (windows by scored_at), in long form:
    one row per (model_name, window_start, metric_name) for every window with predictions and
    every metric of the model's task (metric_names below; ml.spec.PERFORMANCE_METRICS lists the
    same), realized_value NULL while it is undefined (no labels yet, a zero denominator).
    Ground truth: raw.labels joined on (model_name, request_id), compared with the predictions as
    text (classifiers) or as numbers (regression). Every metric is over the labelled rows only
    (a full rebuild: labels arrive late for any window).
    - binary (positive class raw.monitored_models.positive_label): accuracy, precision, recall,
      f1 (NULL on a zero denominator) and roc_auc of the probability;
    - multiclass: accuracy; macro_precision, macro_recall, macro_f1 (unweighted means over the
      classes seen in the window's labelled rows, as labels or as predictions; a class's precision
      or recall with a zero denominator counts 0, as scikit-learn's zero_division default),
      weighted_f1 (weighted by each class's labelled rows) and roc_auc: the mean of the
      one-vs-rest AUCs of the classes of stg_raw__model_classes, NULL unless every class has
      both positive and negative labelled rows with a probability;
    - regression, over the labelled rows whose prediction and label are both finite numbers: mae,
      rmse, mape (|error| / max(|label|, float64 eps), as scikit-learn) and r2 (NULL below 2
      rows; 1 for a perfect fit of a constant label, 0 for an imperfect one, as scikit-learn).
    AUCs are rank-based (Mann–Whitney U, average ranks for ties) over the labelled rows with a
    finite probability. The metrics are computed by macros/performance/realized_metric_ctes.sql,
    the SQL that measures the reference too (int_reference_performance).

    Degradation (concept drift, or anything else that makes the predictions worse): each window
    is compared with the reference of the model version that served it (int_window_references:
    the newest version with reference rows not newer than the window's newest logged version).
    sampling_error is the standard error of the difference realized_value - reference_value: the
    spread of the metric over the reference's chunks, scaled to the window's labelled rows n and
    to the reference's N, chunk_stddev * sqrt(chunk_labelled_rows / n + chunk_labelled_rows / N).
    threshold is reference_value - t * sampling_error (+ for the error metrics mae, rmse and mape),
    t Student's quantile at 1 - var('performance_degradation_alpha') for
    var('performance_reference_chunks') - 1 degrees of freedom (a prediction interval: the spread
    is estimated from the chunks), or var('performance_degradation_multiplier') when set.
    is_degraded when realized_value is past it, judged only with at least the spec's
    min_window_rows labelled rows and a defined reference spread.

    Estimated without labels (binary classifiers with probabilities: int_estimated_performance,
    CBPE), present from the first run: estimated_value over the window's n_estimated calibrated
    rows; estimated_lower / estimated_upper the estimate -/+ t * chunk_stddev *
    sqrt(chunk_labelled_rows / n_estimated), within [0, 1]; estimated_threshold and
    is_estimated_degraded as threshold and is_degraded, with n_estimated rows in place of the
    labelled ones.
#}

{%- set multiplier = var('performance_degradation_multiplier') or student_t_quantile(
    1 - var('performance_degradation_alpha'), var('performance_reference_chunks') - 1
) %}
{#- the error metrics: lower is better, so degradation is a rise #}
{%- set error_metrics = "'mae', 'rmse', 'mape'" %}

with

inference_logs as (

    select * from {{ ref('stg_raw__inference_logs') }}

),

labels as (

    select * from {{ ref('stg_raw__labels') }}

),

monitored_models as (

    select * from {{ ref('stg_raw__monitored_models') }}

),

model_classes as (

    select * from {{ ref('stg_raw__model_classes') }}

),

window_references as (

    select * from {{ ref('int_window_references') }}

),

reference_performance as (

    select * from {{ ref('int_reference_performance') }}

),

estimated_performance as (

    select * from {{ ref('int_estimated_performance') }}

),

metric_names as (

    {{ performance_metric_names() }}

),

predictions as (

    select
        inference_logs.model_name,
        monitored_models.task,
        monitored_models.positive_label,
        inference_logs.prediction,
        labels.label,
        inference_logs.probabilities_json,
        case when labels.request_id is not null then 1 else 0 end as is_labelled,
        case when inference_logs.prediction = monitored_models.positive_label then 1 else 0 end
            as is_predicted_positive,
        case when labels.label = monitored_models.positive_label then 1 else 0 end as is_actual_positive,
        case when inference_logs.prediction = labels.label then 1 else 0 end as is_correct,
        {{ finite_double('inference_logs.probability') }} as probability,
        {{ window_start_at('inference_logs.scored_at', 'monitored_models.window_seconds') }} as window_start

    from inference_logs
    inner join monitored_models
        on inference_logs.model_name = monitored_models.model_name
    left join labels
        on
            inference_logs.model_name = labels.model_name
            and inference_logs.request_id = labels.request_id

),

{{ realized_metric_ctes(['window_start']) }}

window_metrics as (

    select
        realized_metrics.model_name,
        realized_metrics.task,
        realized_metrics.window_start,
        realized_metrics.n_predictions,
        realized_metrics.n_labelled,
        realized_metrics.label_coverage,
        realized_metrics.positive_rate_actual,
        metric_names.metric_name,
        {{ performance_metric_value('metric_names.metric_name', 'realized_metrics') }} as realized_value,
        monitored_models.window_seconds,
        monitored_models.min_window_rows,
        window_references.serving_version

    from realized_metrics
    inner join metric_names
        on realized_metrics.task = metric_names.task
    inner join monitored_models
        on realized_metrics.model_name = monitored_models.model_name
    left join window_references
        on
            realized_metrics.model_name = window_references.model_name
            and realized_metrics.window_start = window_references.window_start

),

judged as (

    select
        window_metrics.*,
        reference_performance.reference_value,
        case
            when window_metrics.n_labelled > 0
                then {{ reference_spread_at('window_metrics.n_labelled') }}
        end as sampling_error,
        estimated_performance.estimated_value,
        estimated_performance.n_estimated,
        {#- the estimate's own spread (a band around it), and that of its difference from the
            reference (its threshold), as for the realized value but over the estimated rows
            (n_estimated is NULL without an estimate, never 0) #}
        {{ reference_spread_at('estimated_performance.n_estimated', with_reference=false) }}
            as estimated_sampling_error,
        {{ reference_spread_at('estimated_performance.n_estimated') }} as estimated_difference_error

    from window_metrics
    left join reference_performance
        on
            window_metrics.model_name = reference_performance.model_name
            and window_metrics.serving_version = reference_performance.model_version
            and window_metrics.metric_name = reference_performance.metric_name
    left join estimated_performance
        on
            window_metrics.model_name = estimated_performance.model_name
            and window_metrics.window_start = estimated_performance.window_start
            and window_metrics.metric_name = estimated_performance.metric_name

),

thresholds as (

    select
        *,
        coalesce(metric_name in ({{ error_metrics }}), false) as is_error_metric,
        case
            when metric_name in ({{ error_metrics }})
                then reference_value + {{ multiplier }} * sampling_error
            else reference_value - {{ multiplier }} * sampling_error
        end as threshold,
        reference_value - {{ multiplier }} * estimated_difference_error as estimated_threshold

    from judged

),

final as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(task as {{ dbt.type_string() }}) as task,  -- noqa: RF04
        cast(metric_name as {{ dbt.type_string() }}) as metric_name,
        cast(realized_value as {{ type_double() }}) as realized_value,
        cast(serving_version as {{ dbt.type_int() }}) as reference_version,
        cast(reference_value as {{ type_double() }}) as reference_value,
        cast(sampling_error as {{ type_double() }}) as sampling_error,
        cast(threshold as {{ type_double() }}) as threshold,
        coalesce(
            n_labelled >= min_window_rows
            and case when is_error_metric then realized_value > threshold else realized_value < threshold end,
            false
        ) as is_degraded,
        cast(estimated_value as {{ type_double() }}) as estimated_value,
        {#- greatest and least skip NULLs: the band only where the estimate and its spread exist #}
        cast(
            case
                when estimated_value is not null and estimated_sampling_error is not null
                    then greatest(estimated_value - {{ multiplier }} * estimated_sampling_error, 0)
            end as {{ type_double() }}
        ) as estimated_lower,
        cast(
            case
                when estimated_value is not null and estimated_sampling_error is not null
                    then least(estimated_value + {{ multiplier }} * estimated_sampling_error, 1)
            end as {{ type_double() }}
        ) as estimated_upper,
        cast(estimated_threshold as {{ type_double() }}) as estimated_threshold,
        coalesce(n_estimated >= min_window_rows and estimated_value < estimated_threshold, false)
            as is_estimated_degraded,
        cast(coalesce(n_estimated, 0) as {{ dbt.type_bigint() }}) as n_estimated,
        cast(n_predictions as {{ dbt.type_bigint() }}) as n_predictions,
        cast(n_labelled as {{ dbt.type_bigint() }}) as n_labelled,
        cast(label_coverage as {{ type_double() }}) as label_coverage,
        cast(positive_rate_actual as {{ type_double() }}) as positive_rate_actual,
        cast(window_start as {{ dbt.type_timestamp() }}) as window_start,
        cast(
            {{ dbt.dateadd('second', 'window_seconds', 'window_start') }}
            as {{ dbt.type_timestamp() }}
        ) as window_end

    from thresholds

)

select * from final
