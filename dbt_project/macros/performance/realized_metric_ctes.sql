{#
    The realized metrics of labelled predictions, per group: the CTEs from `group_counts` to
    `realized_metrics`, emitted into the calling model's `with` (each ends in a comma). Used by
    marts/performance/fct_model_performance.sql (groups: the windows) and
    intermediate/performance/int_reference_performance.sql (groups: a reference and its chunks), so
    a window and the reference it is compared with are measured by the same SQL.

    The caller defines three CTEs first:
    - `predictions`: one row per prediction, with model_name, task, the `keys` columns, prediction,
      label, probability (finite or NULL), probabilities_json, and the 0/1 columns is_labelled,
      is_predicted_positive, is_actual_positive and is_correct (fct_model_performance's
      `predictions` spells out their meaning);
    - `monitored_models` (stg_raw__monitored_models) and `model_classes` (stg_raw__model_classes),
      for the classes a ROC AUC scores.
    `realized_metrics` then has one row per (model_name, task, keys...) of `predictions`: n_predictions,
    n_labelled, label_coverage, positive_rate_actual and one column per metric of
    performance_metrics() (NULL when not defined for the task or the rows). The definitions are in
    fct_model_performance's header.
#}

{% macro performance_metrics() %}
    {#- The realized metrics of each task; ml.spec.PERFORMANCE_METRICS lists the same #}
    {{ return({
        'binary': ['accuracy', 'precision', 'recall', 'f1', 'roc_auc'],
        'multiclass': ['accuracy', 'macro_precision', 'macro_recall', 'macro_f1', 'weighted_f1', 'roc_auc'],
        'regression': ['mae', 'rmse', 'mape', 'r2'],
    }) }}
{% endmacro %}

{% macro performance_metric_names() %}
    {#- (task, metric_name) of every metric of every task, as rows: a union of selects #}
    {%- for task, names in performance_metrics().items() %}
        {%- set task_loop = loop %}
        {%- for name in names %}
            {% if not (task_loop.first and loop.first) %}union all{% endif %}
            select
                '{{ task }}' as task,  -- noqa: RF04
                '{{ name }}' as metric_name
        {%- endfor %}
    {%- endfor %}
{% endmacro %}

{% macro performance_metric_columns() %}
    {#- Every metric name once, in the order of performance_metrics() #}
    {%- set columns = [] -%}
    {%- for names in performance_metrics().values() -%}
        {%- for name in names if name not in columns %}{% do columns.append(name) %}{% endfor -%}
    {%- endfor -%}
    {{ return(columns) }}
{% endmacro %}

{% macro _performance_keys_of(relation, keys) -%}
    {%- for key in keys %}{{ relation }}.{{ key }}{% if not loop.last %}, {% endif %}{% endfor -%}
{%- endmacro %}

{% macro _performance_keys_match(left, right, keys) -%}
    {%- for key in keys %}{% if not loop.first %} and {% endif %}{{ left }}.{{ key }} = {{ right }}.{{ key }}
    {%- endfor -%}
{%- endmacro %}

{% macro realized_metric_ctes(keys) %}
{%- set key_list = keys | join(', ') -%}
{%- set float64_epsilon = 'cast(2.220446049250313e-16 as ' ~ type_double() ~ ')' -%}

group_counts as (

    select
        model_name,
        task,
        {{ key_list }},
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
        {{ key_list }}

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
        {{ key_list }},
        label as class_label

    from multiclass_predictions
    where label is not null

    union

    select
        model_name,
        {{ key_list }},
        prediction as class_label

    from multiclass_predictions
    where prediction is not null

),

actual_class_counts as (

    select
        model_name,
        {{ key_list }},
        label as class_label,
        count(*) as n_actual

    from multiclass_predictions
    where label is not null
    group by
        model_name,
        {{ key_list }},
        label

),

predicted_class_counts as (

    select
        model_name,
        {{ key_list }},
        prediction as class_label,
        count(*) as n_predicted,
        sum(is_correct) as n_true_positive

    from multiclass_predictions
    where prediction is not null
    group by
        model_name,
        {{ key_list }},
        prediction

),

class_counts as (

    select
        observed_classes.model_name,
        {{ _performance_keys_of('observed_classes', keys) }},
        observed_classes.class_label,
        cast(coalesce(actual_class_counts.n_actual, 0) as {{ type_double() }}) as n_actual,
        cast(coalesce(predicted_class_counts.n_predicted, 0) as {{ type_double() }}) as n_predicted,
        cast(coalesce(predicted_class_counts.n_true_positive, 0) as {{ type_double() }}) as n_true_positive

    from observed_classes
    left join actual_class_counts
        on
            observed_classes.model_name = actual_class_counts.model_name
            and {{ _performance_keys_match('observed_classes', 'actual_class_counts', keys) }}
            and observed_classes.class_label = actual_class_counts.class_label
    left join predicted_class_counts
        on
            observed_classes.model_name = predicted_class_counts.model_name
            and {{ _performance_keys_match('observed_classes', 'predicted_class_counts', keys) }}
            and observed_classes.class_label = predicted_class_counts.class_label

),

class_scores as (

    select
        model_name,
        {{ key_list }},
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
        partition by model_name, {{ key_list }} order by class_label
        rows between unbounded preceding and current row
    )
{%- endset %}

class_score_sums as (

    select
        model_name,
        {{ key_list }},
        row_number() over (partition by model_name, {{ key_list }} order by class_label) as class_position,
        count(*) over (partition by model_name, {{ key_list }}) as n_classes_seen,
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
        {{ key_list }},
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
        {{ _performance_keys_of('labelled_predictions', keys) }},
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
        {{ key_list }},
        class_label,
        is_actual_positive,
        {#- average rank of ties: the first rank of the tie group plus half its extra size #}
        rank() over (partition by model_name, {{ key_list }}, class_label order by probability)
        + cast(
            count(*) over (partition by model_name, {{ key_list }}, class_label, probability) - 1
            as {{ type_double() }}
        ) / 2 as average_rank

    from class_probabilities
    where probability is not null

),

rank_sums as (

    select
        model_name,
        {{ key_list }},
        class_label,
        cast(sum(is_actual_positive) as {{ type_double() }}) as n_positive,
        cast(sum(1 - is_actual_positive) as {{ type_double() }}) as n_negative,
        sum(case when is_actual_positive = 1 then average_rank else 0 end) as positive_rank_sum

    from ranked_probabilities
    group by
        model_name,
        {{ key_list }},
        class_label

),

class_roc_auc as (

    select
        model_name,
        {{ key_list }},
        class_label,
        (positive_rank_sum - n_positive * (n_positive + 1) / 2)
        / nullif(n_positive * n_negative, 0) as class_roc_auc

    from rank_sums

),

class_roc_auc_sums as (

    select
        model_name,
        {{ key_list }},
        row_number() over (partition by model_name, {{ key_list }} order by class_label) as class_position,
        count(*) over (partition by model_name, {{ key_list }}) as n_classes_scored,
        count(class_roc_auc) over (partition by model_name, {{ key_list }}) as n_classes_with_auc,
        sum(class_roc_auc) {{ in_class_order }} as roc_auc_sum

    from class_roc_auc

),

roc_auc as (

    select
        class_roc_auc_sums.model_name,
        {{ _performance_keys_of('class_roc_auc_sums', keys) }},
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
        {{ key_list }},
        {{ safe_cast_double('label') }} as actual_value,
        {{ safe_cast_double('prediction') }} as predicted_value

    from labelled_predictions
    where task = 'regression'

),

finite_regression_pairs as (

    select
        *,
        {#- two passes (the mean, then the squared deviations): no cancellation #}
        avg(actual_value) over (partition by model_name, {{ key_list }}) as mean_actual_value

    from regression_pairs
    where
        actual_value is not null
        and predicted_value is not null

),

regression_sums as (

    select
        model_name,
        {{ key_list }},
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
        {{ key_list }}

),

regression_metrics as (

    select
        model_name,
        {{ key_list }},
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

realized_metrics as (

    select
        group_counts.model_name,
        group_counts.task,
        {{ _performance_keys_of('group_counts', keys) }},
        group_counts.n_predictions,
        group_counts.n_labelled,
        cast(group_counts.n_labelled as {{ type_double() }})
        / nullif(cast(group_counts.n_predictions as {{ type_double() }}), 0) as label_coverage,
        case
            when group_counts.task = 'binary'
                then
                    cast(group_counts.n_actual_positive as {{ type_double() }})
                    / nullif(cast(group_counts.n_labelled as {{ type_double() }}), 0)
        end as positive_rate_actual,
        cast(group_counts.n_correct as {{ type_double() }})
        / nullif(cast(group_counts.n_labelled as {{ type_double() }}), 0) as accuracy,
        cast(group_counts.n_true_positive as {{ type_double() }})
        / nullif(cast(group_counts.n_predicted_positive as {{ type_double() }}), 0)
            as precision,  -- noqa: RF04
        cast(group_counts.n_true_positive as {{ type_double() }})
        / nullif(cast(group_counts.n_actual_positive as {{ type_double() }}), 0) as recall,
        cast(2 * group_counts.n_true_positive as {{ type_double() }})
        / nullif(cast(group_counts.n_positive_predictions_and_labels as {{ type_double() }}), 0) as f1,
        roc_auc.roc_auc,
        multiclass_metrics.macro_precision,
        multiclass_metrics.macro_recall,
        multiclass_metrics.macro_f1,
        multiclass_metrics.weighted_f1,
        regression_metrics.mae,
        regression_metrics.rmse,
        regression_metrics.mape,
        regression_metrics.r2

    from group_counts
    left join roc_auc
        on
            group_counts.model_name = roc_auc.model_name
            and {{ _performance_keys_match('group_counts', 'roc_auc', keys) }}
    left join multiclass_metrics
        on
            group_counts.model_name = multiclass_metrics.model_name
            and {{ _performance_keys_match('group_counts', 'multiclass_metrics', keys) }}
    left join regression_metrics
        on
            group_counts.model_name = regression_metrics.model_name
            and {{ _performance_keys_match('group_counts', 'regression_metrics', keys) }}

),

{% endmacro %}

{% macro performance_metric_value(metric_name, relation) -%}
    {#- The value of the metric named by `metric_name` from realized_metrics' wide columns #}
    case {{ metric_name }}
        {%- for name in performance_metric_columns() %}
            when '{{ name }}' then {{ relation }}.{{ name }}
        {%- endfor %}
    end
{%- endmacro %}

{% macro reference_spread_at(rows, reference='reference_performance', with_reference=true) -%}
    {#- The reference chunks' spread of a metric scaled to `rows` rows (sampling error ~ 1 / sqrt(rows)):
        chunk_stddev * sqrt(chunk_labelled_rows / rows), plus the reference's own term
        chunk_labelled_rows / n_reference_labelled when `with_reference` (the spread of a difference
        from the reference value). `rows` must not be 0. -#}
    {{ reference }}.chunk_stddev
    * sqrt(
        {{ reference }}.chunk_labelled_rows / {{ rows }}
        {%- if with_reference %}
        + {{ reference }}.chunk_labelled_rows / {{ reference }}.n_reference_labelled
        {%- endif %}
    )
{%- endmacro %}
