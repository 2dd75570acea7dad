{#
    The realized metrics of each model version on its reference set (raw.reference_rows: the
    held-out rows the version was validated on, with their predictions and labels), and their
    sampling error: one row per (model_name, model_version, metric_name).
    - reference_value: the metric over the whole reference, by the SQL that measures a window
      (macros/performance/realized_metric_ctes.sql);
    - the reference is split into var('performance_reference_chunks') chunks (row number modulo
      the count: chunks of equal size whatever the reference's order); chunk_stddev is the sample
      standard deviation of the metric over the chunks where it is defined, chunk_labelled_rows
      their mean labelled rows. fct_model_performance scales the deviation to a window's labelled
      rows (sampling error ~ 1 / sqrt(rows)).
    A version whose reference has no labels has NULL values: its windows are not judged.
#}

{%- set n_chunks = var('performance_reference_chunks') | int %}

with

reference_rows as (

    select * from {{ ref('stg_raw__reference_rows') }}

),

monitored_models as (

    select * from {{ ref('stg_raw__monitored_models') }}

),

model_classes as (

    select * from {{ ref('stg_raw__model_classes') }}

),

{#- chunk 0 is the whole reference, chunks 1..n_chunks its parts #}

reference_parts as (

    select 0 as part
    union all
    select 1 as part

),

predictions as (

    select
        reference_rows.model_name,
        monitored_models.task,
        reference_rows.model_version,
        case
            when reference_parts.part = 0 then 0
            else 1 + mod(reference_rows.reference_row_id, {{ n_chunks }})
        end as chunk_index,
        reference_rows.prediction,
        reference_rows.label,
        reference_rows.probabilities_json,
        {#- a reference row without a prediction or a label cannot be scored #}
        case
            when reference_rows.label is not null and reference_rows.prediction is not null then 1 else 0
        end as is_labelled,
        case when reference_rows.prediction = monitored_models.positive_label then 1 else 0 end
            as is_predicted_positive,
        case when reference_rows.label = monitored_models.positive_label then 1 else 0 end
            as is_actual_positive,
        case when reference_rows.prediction = reference_rows.label then 1 else 0 end as is_correct,
        {{ finite_double('reference_rows.probability') }} as probability

    from reference_rows
    inner join monitored_models
        on reference_rows.model_name = monitored_models.model_name
    cross join reference_parts

),

{{ realized_metric_ctes(['model_version', 'chunk_index']) }}

metric_names as (

    {{ performance_metric_names() }}

),

chunk_values as (

    select
        realized_metrics.model_name,
        realized_metrics.model_version,
        realized_metrics.chunk_index,
        realized_metrics.n_labelled,
        metric_names.metric_name,
        {{ performance_metric_value('metric_names.metric_name', 'realized_metrics') }} as metric_value

    from realized_metrics
    inner join metric_names
        on realized_metrics.task = metric_names.task

),

chunk_spread as (

    select
        model_name,
        model_version,
        metric_name,
        count(metric_value) as n_chunks,
        stddev_samp(metric_value) as chunk_stddev,
        avg(case when metric_value is not null then cast(n_labelled as {{ type_double() }}) end)
            as chunk_labelled_rows

    from chunk_values
    where chunk_index > 0
    group by
        model_name,
        model_version,
        metric_name

),

final as (

    select
        cast(whole.model_name as {{ dbt.type_string() }}) as model_name,
        cast(whole.model_version as {{ dbt.type_int() }}) as model_version,
        cast(whole.metric_name as {{ dbt.type_string() }}) as metric_name,
        cast(whole.metric_value as {{ type_double() }}) as reference_value,
        cast(whole.n_labelled as {{ dbt.type_bigint() }}) as n_reference_labelled,
        cast(chunk_spread.n_chunks as {{ dbt.type_int() }}) as n_chunks,
        cast(chunk_spread.chunk_stddev as {{ type_double() }}) as chunk_stddev,
        cast(chunk_spread.chunk_labelled_rows as {{ type_double() }}) as chunk_labelled_rows

    from chunk_values as whole
    left join chunk_spread
        on
            whole.model_name = chunk_spread.model_name
            and whole.model_version = chunk_spread.model_version
            and whole.metric_name = chunk_spread.metric_name
    where whole.chunk_index = 0

)

select * from final
