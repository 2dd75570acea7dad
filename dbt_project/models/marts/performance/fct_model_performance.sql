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
    finite probability. The grain is fixed by metric_names × the windows: further per-metric
    columns (estimates, reference values, thresholds) join on (model_name, window_start,
    metric_name).
#}

{%- set float64_epsilon = 'cast(2.220446049250313e-16 as ' ~ type_double() ~ ')' -%}
{%- set performance_metrics = {
    'binary': ['accuracy', 'precision', 'recall', 'f1', 'roc_auc'],
    'multiclass': ['accuracy', 'macro_precision', 'macro_recall', 'macro_f1', 'weighted_f1', 'roc_auc'],
    'regression': ['mae', 'rmse', 'mape', 'r2'],
} -%}
{%- set performance_metric_pairs = [] -%}
{%- set metric_columns = [] -%}
{%- for task, names in performance_metrics.items() -%}
    {%- for name in names -%}
        {%- do performance_metric_pairs.append((task, name)) -%}
        {%- if name not in metric_columns %}{% do metric_columns.append(name) %}{% endif -%}
    {%- endfor -%}
{%- endfor %}

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

metric_names as (

    {#- the realized metrics of each task, as ml.spec.PERFORMANCE_METRICS lists them #}
    {%- for task, name in performance_metric_pairs %}
        {% if not loop.first %}union all{% endif %}
        select
            '{{ task }}' as task,  -- noqa: RF04
            '{{ name }}' as metric_name
    {%- endfor %}

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
        {{ window_start_at('inference_logs.scored_at', 'monitored_models.window_seconds') }} as window_start,
        monitored_models.window_seconds

    from inference_logs
    inner join monitored_models
        on inference_logs.model_name = monitored_models.model_name
    left join labels
        on
            inference_logs.model_name = labels.model_name
            and inference_logs.request_id = labels.request_id

),

window_counts as (

    select
        model_name,
        task,
        window_start,
        window_seconds,
        count(*) as n_predictions,
        sum(is_labelled) as n_labelled,
        sum(is_labelled * is_actual_positive) as n_actual_positive,
        sum(is_labelled * is_correct) as n_correct,
        sum(is_labelled * is_predicted_positive) as n_predicted_positive,
        sum(is_labelled * is_predicted_positive * is_actual_positive) as n_true_positive,
        {#- 2 TP + FP + FN, the F1 denominator #}
        sum(is_labelled * (is_predicted_positive + is_actual_positive)) as n_positive_predictions_and_labels

    from predictions
    group by
        model_name,
        task,
        window_start,
        window_seconds

),

labelled_predictions as (

    select * from predictions
    where is_labelled = 1

),

{#- multiclass: per-class counts over the classes seen in the window (labels or predictions) #}

multiclass_predictions as (

    select * from labelled_predictions
    where task = 'multiclass'

),

observed_classes as (

    select
        model_name,
        window_start,
        label as class_label

    from multiclass_predictions
    where label is not null

    union

    select
        model_name,
        window_start,
        prediction as class_label

    from multiclass_predictions
    where prediction is not null

),

actual_class_counts as (

    select
        model_name,
        window_start,
        label as class_label,
        count(*) as n_actual

    from multiclass_predictions
    where label is not null
    group by
        model_name,
        window_start,
        label

),

predicted_class_counts as (

    select
        model_name,
        window_start,
        prediction as class_label,
        count(*) as n_predicted,
        sum(is_correct) as n_true_positive

    from multiclass_predictions
    where prediction is not null
    group by
        model_name,
        window_start,
        prediction

),

class_counts as (

    select
        observed_classes.model_name,
        observed_classes.window_start,
        observed_classes.class_label,
        cast(coalesce(actual_class_counts.n_actual, 0) as {{ type_double() }}) as n_actual,
        cast(coalesce(predicted_class_counts.n_predicted, 0) as {{ type_double() }}) as n_predicted,
        cast(coalesce(predicted_class_counts.n_true_positive, 0) as {{ type_double() }}) as n_true_positive

    from observed_classes
    left join actual_class_counts
        on
            observed_classes.model_name = actual_class_counts.model_name
            and observed_classes.window_start = actual_class_counts.window_start
            and observed_classes.class_label = actual_class_counts.class_label
    left join predicted_class_counts
        on
            observed_classes.model_name = predicted_class_counts.model_name
            and observed_classes.window_start = predicted_class_counts.window_start
            and observed_classes.class_label = predicted_class_counts.class_label

),

class_scores as (

    select
        model_name,
        window_start,
        class_label,
        n_actual,
        coalesce(n_true_positive / nullif(n_predicted, 0), 0.0) as class_precision,
        coalesce(n_true_positive / nullif(n_actual, 0), 0.0) as class_recall,
        {#- n_predicted + n_actual > 0 for every class seen #}
        coalesce(2 * n_true_positive / nullif(n_predicted + n_actual, 0), 0.0) as class_f1

    from class_counts

),

{#- Means over classes are running sums in class order, read at the last class: a plain avg()
    adds in whatever order the rows arrive, and the last digit then changes from run to run #}
{%- set in_class_order -%}
    over (
        partition by model_name, window_start order by class_label
        rows between unbounded preceding and current row
    )
{%- endset %}

class_score_sums as (

    select
        model_name,
        window_start,
        row_number() over (partition by model_name, window_start order by class_label) as class_position,
        count(*) over (partition by model_name, window_start) as n_classes_seen,
        sum(class_precision) {{ in_class_order }} as precision_sum,
        sum(class_recall) {{ in_class_order }} as recall_sum,
        sum(class_f1) {{ in_class_order }} as f1_sum,
        sum(n_actual * class_f1) {{ in_class_order }} as weighted_f1_sum,
        sum(n_actual) {{ in_class_order }} as n_actual_sum

    from class_scores

),

multiclass_metrics as (

    select
        model_name,
        window_start,
        precision_sum / n_classes_seen as macro_precision,
        recall_sum / n_classes_seen as macro_recall,
        f1_sum / n_classes_seen as macro_f1,
        weighted_f1_sum / nullif(n_actual_sum, 0) as weighted_f1

    from class_score_sums
    where class_position = n_classes_seen

),

{#- ROC AUC, one-vs-rest per scored class: binary, the positive class with `probability`;
    multiclass, every class of the spec with its probability from the probabilities JSON #}

scored_classes as (

    select
        model_name,
        positive_label as class_label

    from monitored_models
    where task = 'binary'

    union all

    select
        model_classes.model_name,
        model_classes.class_label

    from model_classes
    inner join monitored_models
        on model_classes.model_name = monitored_models.model_name
    where monitored_models.task = 'multiclass'

),

model_class_counts as (

    select
        model_name,
        count(*) as n_classes

    from scored_classes
    group by model_name

),

class_probabilities as (

    select
        labelled_predictions.model_name,
        labelled_predictions.window_start,
        scored_classes.class_label,
        case when labelled_predictions.label = scored_classes.class_label then 1 else 0 end
            as is_actual_positive,
        {%- set class_probability = json_extract_field(
            'labelled_predictions.probabilities_json', 'scored_classes.class_label'
        ) %}
        case
            when labelled_predictions.task = 'binary' then labelled_predictions.probability
            else {{ safe_cast_double(class_probability) }}
        end as probability

    from labelled_predictions
    inner join scored_classes
        on labelled_predictions.model_name = scored_classes.model_name

),

ranked_probabilities as (

    select
        model_name,
        window_start,
        class_label,
        is_actual_positive,
        {#- average rank of ties: the first rank of the tie group plus half its extra size #}
        rank() over (partition by model_name, window_start, class_label order by probability)
        + cast(
            count(*) over (partition by model_name, window_start, class_label, probability) - 1
            as {{ type_double() }}
        ) / 2 as average_rank

    from class_probabilities
    where probability is not null

),

rank_sums as (

    select
        model_name,
        window_start,
        class_label,
        cast(sum(is_actual_positive) as {{ type_double() }}) as n_positive,
        cast(sum(1 - is_actual_positive) as {{ type_double() }}) as n_negative,
        sum(case when is_actual_positive = 1 then average_rank else 0 end) as positive_rank_sum

    from ranked_probabilities
    group by
        model_name,
        window_start,
        class_label

),

class_roc_auc as (

    select
        model_name,
        window_start,
        class_label,
        (positive_rank_sum - n_positive * (n_positive + 1) / 2)
        / nullif(n_positive * n_negative, 0) as class_roc_auc

    from rank_sums

),

class_roc_auc_sums as (

    select
        model_name,
        window_start,
        row_number() over (partition by model_name, window_start order by class_label) as class_position,
        count(*) over (partition by model_name, window_start) as n_classes_scored,
        count(class_roc_auc) over (partition by model_name, window_start) as n_classes_with_auc,
        sum(class_roc_auc) {{ in_class_order }} as roc_auc_sum

    from class_roc_auc

),

roc_auc as (

    select
        class_roc_auc_sums.model_name,
        class_roc_auc_sums.window_start,
        case
            when class_roc_auc_sums.n_classes_with_auc = model_class_counts.n_classes
                then class_roc_auc_sums.roc_auc_sum / class_roc_auc_sums.n_classes_with_auc
        end as roc_auc

    from class_roc_auc_sums
    inner join model_class_counts
        on class_roc_auc_sums.model_name = model_class_counts.model_name
    where class_roc_auc_sums.class_position = class_roc_auc_sums.n_classes_scored

),

{#- regression: errors over the labelled rows with a finite prediction and label #}

regression_pairs as (

    select
        model_name,
        window_start,
        {{ safe_cast_double('label') }} as actual_value,
        {{ safe_cast_double('prediction') }} as predicted_value

    from labelled_predictions
    where task = 'regression'

),

finite_regression_pairs as (

    select
        *,
        {#- two passes (the mean, then the squared deviations): no cancellation #}
        avg(actual_value) over (partition by model_name, window_start) as mean_actual_value

    from regression_pairs
    where
        actual_value is not null
        and predicted_value is not null

),

regression_sums as (

    select
        model_name,
        window_start,
        count(*) as n_pairs,
        {{ accurate_sum('abs(actual_value - predicted_value)') }} as sum_absolute_error,
        {{ accurate_sum('(actual_value - predicted_value) * (actual_value - predicted_value)') }}
            as sum_squared_error,
        {{ accurate_sum(
            'abs(actual_value - predicted_value) / greatest(abs(actual_value), ' ~ float64_epsilon ~ ')'
        ) }} as sum_absolute_percentage_error,
        {{ accurate_sum('(actual_value - mean_actual_value) * (actual_value - mean_actual_value)') }}
            as total_sum_of_squares

    from finite_regression_pairs
    group by
        model_name,
        window_start

),

regression_metrics as (

    select
        model_name,
        window_start,
        sum_absolute_error / n_pairs as mae,
        sqrt(sum_squared_error / n_pairs) as rmse,
        sum_absolute_percentage_error / n_pairs as mape,
        case
            when n_pairs < 2 then null
            when total_sum_of_squares = 0 then case when sum_squared_error = 0 then 1.0 else 0.0 end
            else 1 - sum_squared_error / total_sum_of_squares
        end as r2

    from regression_sums

),

window_metrics as (

    select
        window_counts.model_name,
        window_counts.task,
        window_counts.window_start,
        window_counts.window_seconds,
        window_counts.n_predictions,
        window_counts.n_labelled,
        cast(window_counts.n_labelled as {{ type_double() }})
        / nullif(cast(window_counts.n_predictions as {{ type_double() }}), 0) as label_coverage,
        case
            when window_counts.task = 'binary'
                then
                    cast(window_counts.n_actual_positive as {{ type_double() }})
                    / nullif(cast(window_counts.n_labelled as {{ type_double() }}), 0)
        end as positive_rate_actual,
        cast(window_counts.n_correct as {{ type_double() }})
        / nullif(cast(window_counts.n_labelled as {{ type_double() }}), 0) as accuracy,
        cast(window_counts.n_true_positive as {{ type_double() }})
        / nullif(cast(window_counts.n_predicted_positive as {{ type_double() }}), 0)
            as precision,  -- noqa: RF04
        cast(window_counts.n_true_positive as {{ type_double() }})
        / nullif(cast(window_counts.n_actual_positive as {{ type_double() }}), 0) as recall,
        cast(2 * window_counts.n_true_positive as {{ type_double() }})
        / nullif(cast(window_counts.n_positive_predictions_and_labels as {{ type_double() }}), 0) as f1,
        roc_auc.roc_auc,
        multiclass_metrics.macro_precision,
        multiclass_metrics.macro_recall,
        multiclass_metrics.macro_f1,
        multiclass_metrics.weighted_f1,
        regression_metrics.mae,
        regression_metrics.rmse,
        regression_metrics.mape,
        regression_metrics.r2

    from window_counts
    left join roc_auc
        on
            window_counts.model_name = roc_auc.model_name
            and window_counts.window_start = roc_auc.window_start
    left join multiclass_metrics
        on
            window_counts.model_name = multiclass_metrics.model_name
            and window_counts.window_start = multiclass_metrics.window_start
    left join regression_metrics
        on
            window_counts.model_name = regression_metrics.model_name
            and window_counts.window_start = regression_metrics.window_start

),

final as (

    select
        cast(window_metrics.model_name as {{ dbt.type_string() }}) as model_name,
        cast(window_metrics.task as {{ dbt.type_string() }}) as task,  -- noqa: RF04
        cast(metric_names.metric_name as {{ dbt.type_string() }}) as metric_name,
        cast(
            case metric_names.metric_name
                {%- for name in metric_columns %}
                    when '{{ name }}' then window_metrics.{{ name }}
                {%- endfor %}
            end as {{ type_double() }}
        ) as realized_value,
        cast(window_metrics.n_predictions as {{ dbt.type_bigint() }}) as n_predictions,
        cast(window_metrics.n_labelled as {{ dbt.type_bigint() }}) as n_labelled,
        cast(window_metrics.label_coverage as {{ type_double() }}) as label_coverage,
        cast(window_metrics.positive_rate_actual as {{ type_double() }}) as positive_rate_actual,
        cast(window_metrics.window_start as {{ dbt.type_timestamp() }}) as window_start,
        cast(
            {{ dbt.dateadd('second', 'window_metrics.window_seconds', 'window_metrics.window_start') }}
            as {{ dbt.type_timestamp() }}
        ) as window_end

    from window_metrics
    inner join metric_names
        on window_metrics.task = metric_names.task

)

select * from final
