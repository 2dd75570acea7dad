{#
    Quality of each model's predictions per window (windows by scored_at), from the delayed ground
    truth: raw.labels joined on (model_name, request_id). Labels and predictions are text and are
    compared as text; the positive class is raw.monitored_models.positive_label.
    Classification metrics over the labelled rows (a NULL prediction is neither positive nor
    correct); roc_auc from the labelled rows with a finite probability, rank-based (Mann–Whitney U
    with average ranks for ties), NULL when one class is absent. A full rebuild: labels arrive
    late for any window.
#}

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

predictions as (

    select
        inference_logs.model_name,
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
        window_start,
        window_seconds

),

scored_labels as (

    select
        model_name,
        window_start,
        probability,
        is_actual_positive

    from predictions
    where
        is_labelled = 1
        and probability is not null

),

ranked_labels as (

    select
        model_name,
        window_start,
        is_actual_positive,
        {#- average rank of ties: the first rank of the tie group plus half its extra size #}
        rank() over (partition by model_name, window_start order by probability)
        + cast(
            count(*) over (partition by model_name, window_start, probability) - 1 as {{ type_double() }}
        ) / 2 as average_rank

    from scored_labels

),

rank_sums as (

    select
        model_name,
        window_start,
        cast(sum(is_actual_positive) as {{ type_double() }}) as n_positive,
        cast(sum(1 - is_actual_positive) as {{ type_double() }}) as n_negative,
        sum(case when is_actual_positive = 1 then average_rank else 0 end) as positive_rank_sum

    from ranked_labels
    group by
        model_name,
        window_start

),

roc_auc as (

    select
        model_name,
        window_start,
        (positive_rank_sum - n_positive * (n_positive + 1) / 2)
        / nullif(n_positive * n_negative, 0) as roc_auc

    from rank_sums

),

final as (

    select
        cast(window_counts.model_name as {{ dbt.type_string() }}) as model_name,
        cast(window_counts.n_predictions as {{ dbt.type_bigint() }}) as n_predictions,
        cast(window_counts.n_labelled as {{ dbt.type_bigint() }}) as n_labelled,
        cast(
            cast(window_counts.n_labelled as {{ type_double() }})
            / nullif(cast(window_counts.n_predictions as {{ type_double() }}), 0)
            as {{ type_double() }}
        ) as label_coverage,
        cast(
            cast(window_counts.n_actual_positive as {{ type_double() }})
            / nullif(cast(window_counts.n_labelled as {{ type_double() }}), 0)
            as {{ type_double() }}
        ) as positive_rate_actual,
        cast(
            cast(window_counts.n_correct as {{ type_double() }})
            / nullif(cast(window_counts.n_labelled as {{ type_double() }}), 0)
            as {{ type_double() }}
        ) as accuracy,
        cast(
            cast(window_counts.n_true_positive as {{ type_double() }})
            / nullif(cast(window_counts.n_predicted_positive as {{ type_double() }}), 0)
            as {{ type_double() }}
        ) as precision,  -- noqa: RF04
        cast(
            cast(window_counts.n_true_positive as {{ type_double() }})
            / nullif(cast(window_counts.n_actual_positive as {{ type_double() }}), 0)
            as {{ type_double() }}
        ) as recall,
        cast(
            cast(2 * window_counts.n_true_positive as {{ type_double() }})
            / nullif(cast(window_counts.n_positive_predictions_and_labels as {{ type_double() }}), 0)
            as {{ type_double() }}
        ) as f1,
        cast(roc_auc.roc_auc as {{ type_double() }}) as roc_auc,
        cast(window_counts.window_start as {{ dbt.type_timestamp() }}) as window_start,
        cast(
            {{ dbt.dateadd('second', 'window_counts.window_seconds', 'window_counts.window_start') }}
            as {{ dbt.type_timestamp() }}
        ) as window_end

    from window_counts
    left join roc_auc
        on
            window_counts.model_name = roc_auc.model_name
            and window_counts.window_start = roc_auc.window_start

)

select * from final
