{#
    Performance estimated without labels: confidence-based performance estimation (CBPE, as
    NannyML's) for binary classifiers with probabilities, one row per (model_name, window_start,
    metric_name) for every window with calibrated rows.

    Each logged probability is calibrated by its own model version's isotonic fit on that
    version's reference set (stg_raw__score_calibrations; a score outside the fitted range takes
    the nearest end). If the calibrated probability p is right, a row predicted positive is a true
    positive with probability p and a false positive with 1 - p; a row predicted negative a false
    negative with p and a true negative with 1 - p. Summed over the window, that is the expected
    confusion matrix, and from it accuracy, precision, recall and f1 (NULL on a zero denominator).
    roc_auc is the area under the expected ROC curve (the raw scores as thresholds, the expected
    positives and negatives above each): sum over pairs of p_i (1 - p_j) [score_i > score_j] (a tie,
    a row with itself included, counts one half) over sum(p) sum(1 - p).

    The segment of a score is found by one sort instead of a range join (a fit on a large
    reference has thousands of segments): the segments' lower ends and the scores in one ordered
    list per model version, where each score takes the greatest segment index before it.

    CBPE cannot see concept drift: it assumes P(label | score) is what it was on the reference;
    when the truth moves while the scores stay confident, the estimate stays where it was.
#}

with

inference_logs as (

    select * from {{ ref('stg_raw__inference_logs') }}

),

monitored_models as (

    select * from {{ ref('stg_raw__monitored_models') }}

),

score_calibrations as (

    select * from {{ ref('stg_raw__score_calibrations') }}

),

calibration_bounds as (

    select
        model_name,
        model_version,
        min(score_from) as lowest_score,
        max(score_to) as highest_score

    from score_calibrations
    group by
        model_name,
        model_version

),

scored as (

    select
        inference_logs.model_name,
        inference_logs.model_version,
        {{ window_start_at('inference_logs.scored_at', 'monitored_models.window_seconds') }} as window_start,
        inference_logs.probability as score,
        least(
            greatest(inference_logs.probability, calibration_bounds.lowest_score),
            calibration_bounds.highest_score
        ) as clipped_score,
        case when inference_logs.prediction = monitored_models.positive_label then 1 else 0 end
            as is_predicted_positive

    from inference_logs
    inner join monitored_models
        on inference_logs.model_name = monitored_models.model_name
    inner join calibration_bounds
        on
            inference_logs.model_name = calibration_bounds.model_name
            and inference_logs.model_version = calibration_bounds.model_version
    where
        monitored_models.task = 'binary'
        and inference_logs.prediction is not null
        and {{ finite_double('inference_logs.probability') }} is not null

),

ordered_points as (

    {#- point_kind 0: a segment's lower end, ordered before a score equal to it #}
    select
        model_name,
        model_version,
        score_from as position_score,
        0 as point_kind,
        segment_index,
        cast(null as {{ dbt.type_timestamp() }}) as window_start,
        cast(null as {{ type_double() }}) as score,
        cast(null as {{ dbt.type_int() }}) as is_predicted_positive

    from score_calibrations

    union all

    select
        model_name,
        model_version,
        clipped_score as position_score,
        1 as point_kind,
        cast(null as {{ dbt.type_int() }}) as segment_index,
        window_start,
        score,
        is_predicted_positive

    from scored

),

located as (

    select
        model_name,
        model_version,
        point_kind,
        position_score,
        window_start,
        score,
        is_predicted_positive,
        max(segment_index) over (
            partition by model_name, model_version
            order by position_score, point_kind
            rows between unbounded preceding and current row
        ) as segment_index

    from ordered_points

),

calibrated as (

    select
        located.model_name,
        located.window_start,
        located.score,
        located.is_predicted_positive,
        case
            when segments.score_to > segments.score_from
                then
                    segments.calibrated_from
                    + (located.position_score - segments.score_from)
                    * (segments.calibrated_to - segments.calibrated_from)
                    / (segments.score_to - segments.score_from)
            else segments.calibrated_from
        end as expected_positive

    from located
    inner join score_calibrations as segments
        on
            located.model_name = segments.model_name
            and located.model_version = segments.model_version
            and located.segment_index = segments.segment_index
    where located.point_kind = 1

),

expected_confusion as (

    select
        model_name,
        window_start,
        count(*) as n_estimated,
        sum(is_predicted_positive * expected_positive) as expected_tp,
        sum(is_predicted_positive * (1 - expected_positive)) as expected_fp,
        sum((1 - is_predicted_positive) * expected_positive) as expected_fn,
        sum((1 - is_predicted_positive) * (1 - expected_positive)) as expected_tn

    from calibrated
    group by
        model_name,
        window_start

),

score_masses as (

    {#- per distinct raw score: the expected positives and negatives at it #}
    select
        model_name,
        window_start,
        score,
        sum(expected_positive) as positive_mass,
        sum(1 - expected_positive) as negative_mass

    from calibrated
    group by
        model_name,
        window_start,
        score

),

ranked_masses as (

    select
        model_name,
        window_start,
        positive_mass,
        negative_mass,
        coalesce(
            sum(positive_mass) over (
                partition by model_name, window_start
                order by score desc
                rows between unbounded preceding and 1 preceding
            ),
            0
        ) as positive_mass_above

    from score_masses

),

expected_auc as (

    select
        model_name,
        window_start,
        case
            when sum(positive_mass) > 0 and sum(negative_mass) > 0
                then
                    sum(negative_mass * (positive_mass_above + 0.5 * positive_mass))
                    / (sum(positive_mass) * sum(negative_mass))
        end as roc_auc

    from ranked_masses
    group by
        model_name,
        window_start

),

estimates as (

    select
        expected_confusion.model_name,
        expected_confusion.window_start,
        expected_confusion.n_estimated,
        expected_auc.roc_auc,
        (expected_confusion.expected_tp + expected_confusion.expected_tn)
        / expected_confusion.n_estimated as accuracy,
        case
            when expected_confusion.expected_tp + expected_confusion.expected_fp > 0
                then
                    expected_confusion.expected_tp
                    / (expected_confusion.expected_tp + expected_confusion.expected_fp)
        end as metric_precision,
        case
            when expected_confusion.expected_tp + expected_confusion.expected_fn > 0
                then
                    expected_confusion.expected_tp
                    / (expected_confusion.expected_tp + expected_confusion.expected_fn)
        end as recall,
        case
            when
                2 * expected_confusion.expected_tp + expected_confusion.expected_fp
                + expected_confusion.expected_fn > 0
                then
                    2 * expected_confusion.expected_tp
                    / (
                        2 * expected_confusion.expected_tp + expected_confusion.expected_fp
                        + expected_confusion.expected_fn
                    )
        end as f1

    from expected_confusion
    inner join expected_auc
        on
            expected_confusion.model_name = expected_auc.model_name
            and expected_confusion.window_start = expected_auc.window_start

),

final as (

    {%- set metrics = {
        'accuracy': 'accuracy',
        'precision': 'metric_precision',
        'recall': 'recall',
        'f1': 'f1',
        'roc_auc': 'roc_auc',
    } %}
    {%- for metric_name, column in metrics.items() %}
        {% if not loop.first %}union all{% endif %}
        select
            cast(model_name as {{ dbt.type_string() }}) as model_name,
            cast(window_start as {{ dbt.type_timestamp() }}) as window_start,
            cast({{ column }} as {{ type_double() }}) as estimated_value,
            cast(n_estimated as {{ dbt.type_bigint() }}) as n_estimated,
            cast('{{ metric_name }}' as {{ dbt.type_string() }}) as metric_name
        from estimates
    {%- endfor %}

)

select * from final
