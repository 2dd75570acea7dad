{{ config(materialized='view') }}

{#
    One row per logged prediction × monitored feature of its model, with the fixed window
    [window_start, window_end) the prediction falls in. The feature list comes from
    raw.model_features and the window length from raw.monitored_models (never a list in SQL); the
    values come from raw's typed maps (no text is parsed).

    A view, not a table: the rows × features of all history are never stored. The models that count
    windows read it for the windows they recount only, and filter on scored_at first (macro
    scored_in_windows), so a run reads the new windows' rows, whatever the history.

    Pseudo-features per prediction feed the prediction drift mart through the same binning
    engine, by the model's task (raw.monitored_models.task):
    - `__prediction__`, the prediction column: categorical (the class) for binary and multiclass
      models, numeric (the predicted value, binned at the reference's deciles) for regression;
    - binary: `__probability__` (numeric, the positive class's probability);
    - multiclass: `__probability__:<class>` (numeric) for each class of stg_raw__model_classes,
      from the probabilities JSON (NULL when the class's probability is missing).
    fct_feature_drift leaves them out; fct_prediction_drift reports them.

    segment_values (the spec's segment columns of the row) rides along for segment drift; the
    models that do not read it do not pay for it (a view: the engine prunes unused columns).
#}

with

logs as {{ inlined() }} (

    select * from {{ ref('stg_raw__inference_logs') }}

),

monitored_models as (

    select * from {{ ref('stg_raw__monitored_models') }}

),

model_features as (

    select * from {{ ref('stg_raw__model_features') }}

),

model_classes as (

    select * from {{ ref('stg_raw__model_classes') }}

),

feature_values as (

    select
        logs.model_name,
        logs.request_id,
        logs.model_version,
        model_features.feature_name,
        model_features.feature_type,
        {{ feature_value_columns('logs') }},
        monitored_models.window_seconds,
        logs.scored_at,
        logs.loaded_at,
        logs.ingest_seq,
        logs.segment_values

    from logs
    inner join monitored_models
        on logs.model_name = monitored_models.model_name
    inner join model_features
        on logs.model_name = model_features.model_name

),

prediction_values as (

    select
        logs.model_name,
        logs.request_id,
        logs.model_version,
        '__prediction__' as feature_name,
        case when monitored_models.task = 'regression' then 'numeric' else 'categorical' end as feature_type,
        case
            when monitored_models.task = 'regression' then null else logs.prediction
        end as value_category,
        case
            when monitored_models.task = 'regression'
                then {{ safe_cast_double('logs.prediction') }}
        end as value_number,
        monitored_models.window_seconds,
        logs.scored_at,
        logs.loaded_at,
        logs.ingest_seq,
        logs.segment_values

    from logs
    inner join monitored_models
        on logs.model_name = monitored_models.model_name

),

probability_values as (

    select
        logs.model_name,
        logs.request_id,
        logs.model_version,
        '__probability__' as feature_name,
        'numeric' as feature_type,
        cast(null as {{ dbt.type_string() }}) as value_category,
        {{ finite_double('logs.probability') }} as value_number,
        monitored_models.window_seconds,
        logs.scored_at,
        logs.loaded_at,
        logs.ingest_seq,
        logs.segment_values

    from logs
    inner join monitored_models
        on logs.model_name = monitored_models.model_name
    where monitored_models.task = 'binary'

),

class_probability_values as (

    select
        logs.model_name,
        logs.request_id,
        logs.model_version,
        '__probability__:' || model_classes.class_label as feature_name,
        'numeric' as feature_type,
        cast(null as {{ dbt.type_string() }}) as value_category,
        {%- set class_probability = json_extract_field(
            'logs.probabilities_json', 'model_classes.class_label'
        ) %}
        {{ safe_cast_double(class_probability) }} as value_number,
        monitored_models.window_seconds,
        logs.scored_at,
        logs.loaded_at,
        logs.ingest_seq,
        logs.segment_values

    from logs
    inner join monitored_models
        on logs.model_name = monitored_models.model_name
    inner join model_classes
        on logs.model_name = model_classes.model_name
    where monitored_models.task = 'multiclass'

),

all_values as (

    select * from feature_values
    union all
    select * from prediction_values
    union all
    select * from probability_values
    union all
    select * from class_probability_values

),

typed as (

    select
        model_name,
        request_id,
        model_version,
        feature_name,
        feature_type,
        value_category,
        value_number,
        window_seconds,
        scored_at,
        loaded_at,
        ingest_seq,
        segment_values,
        {{ window_start_at('scored_at', 'window_seconds') }} as window_start

    from all_values

),

final as (

    select
        model_name,
        request_id,
        model_version,
        feature_name,
        feature_type,
        value_category,
        value_number,
        window_start,
        {{ dbt.dateadd('second', 'window_seconds', 'window_start') }} as window_end,
        scored_at,
        loaded_at,
        ingest_seq,
        segment_values

    from typed

)

select * from final
