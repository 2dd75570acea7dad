{#- incremental delete+insert on [model_name, request_id] (macros/cross_db/incremental_by_key_config.sql) #}
{{ config(**incremental_by_key_config(['model_name', 'request_id'])) }}

{#
    One row per logged prediction × monitored feature of its model, with the fixed window
    [window_start, window_end) the prediction falls in. The feature list comes from
    raw.model_features and the window length from raw.monitored_models (never a list in SQL).
    Incremental: only rows loaded after the newest loaded_at already here are unpivoted (ingest is
    the single writer and runs before dbt, DESIGN.md §4, so a batch is never half-seen); a re-loaded
    request replaces its rows (delete+insert on model_name, request_id). A change of a model's
    feature list or window length needs `--full-refresh`.

    Pseudo-features per prediction feed the prediction drift mart through the same binning
    engine, by the model's task (raw.monitored_models.task):
    - `__prediction__`, the prediction column: categorical (the class) for binary and multiclass
      models, numeric (the predicted value, binned at the reference's deciles) for regression;
    - binary: `__probability__` (numeric, the positive class's probability);
    - multiclass: `__probability__:<class>` (numeric) for each class of stg_raw__model_classes,
      from the probabilities JSON (NULL when the class's probability is missing).
    fct_feature_drift leaves them out; fct_prediction_drift reports them. A change of a model's task
    or classes needs `--full-refresh`, like its feature list.
#}

with

inference_logs as (

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

new_inference_logs as (

    select * from inference_logs
    {% if is_incremental() %}
        where
            loaded_at > (
                select coalesce(max(loaded_at), cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }}))
                from {{ this }}
            )
    {% endif %}

),

feature_values as (

    select
        new_inference_logs.model_name,
        new_inference_logs.request_id,
        new_inference_logs.model_version,
        model_features.feature_name,
        model_features.feature_type,
        {{ json_extract_field('new_inference_logs.features_json', 'model_features.feature_name') }}
            as value_text,
        monitored_models.window_seconds,
        new_inference_logs.scored_at,
        new_inference_logs.loaded_at

    from new_inference_logs
    inner join monitored_models
        on new_inference_logs.model_name = monitored_models.model_name
    inner join model_features
        on new_inference_logs.model_name = model_features.model_name

),

typed_feature_values as (

    select
        model_name,
        request_id,
        model_version,
        feature_name,
        feature_type,
        case when feature_type = 'categorical' then value_text end as value_category,
        case when feature_type = 'numeric' then {{ safe_cast_double('value_text') }} end as value_number,
        window_seconds,
        scored_at,
        loaded_at

    from feature_values

),

prediction_values as (

    select
        new_inference_logs.model_name,
        new_inference_logs.request_id,
        new_inference_logs.model_version,
        '__prediction__' as feature_name,
        case when monitored_models.task = 'regression' then 'numeric' else 'categorical' end as feature_type,
        case
            when monitored_models.task = 'regression' then null else new_inference_logs.prediction
        end as value_category,
        case
            when monitored_models.task = 'regression'
                then {{ safe_cast_double('new_inference_logs.prediction') }}
        end as value_number,
        monitored_models.window_seconds,
        new_inference_logs.scored_at,
        new_inference_logs.loaded_at

    from new_inference_logs
    inner join monitored_models
        on new_inference_logs.model_name = monitored_models.model_name

),

probability_values as (

    select
        new_inference_logs.model_name,
        new_inference_logs.request_id,
        new_inference_logs.model_version,
        '__probability__' as feature_name,
        'numeric' as feature_type,
        cast(null as {{ dbt.type_string() }}) as value_category,
        {{ finite_double('new_inference_logs.probability') }} as value_number,
        monitored_models.window_seconds,
        new_inference_logs.scored_at,
        new_inference_logs.loaded_at

    from new_inference_logs
    inner join monitored_models
        on new_inference_logs.model_name = monitored_models.model_name
    where monitored_models.task = 'binary'

),

class_probability_values as (

    select
        new_inference_logs.model_name,
        new_inference_logs.request_id,
        new_inference_logs.model_version,
        '__probability__:' || model_classes.class_label as feature_name,
        'numeric' as feature_type,
        cast(null as {{ dbt.type_string() }}) as value_category,
        {%- set class_probability = json_extract_field(
            'new_inference_logs.probabilities_json', 'model_classes.class_label'
        ) %}
        {{ safe_cast_double(class_probability) }} as value_number,
        monitored_models.window_seconds,
        new_inference_logs.scored_at,
        new_inference_logs.loaded_at

    from new_inference_logs
    inner join monitored_models
        on new_inference_logs.model_name = monitored_models.model_name
    inner join model_classes
        on new_inference_logs.model_name = model_classes.model_name
    where monitored_models.task = 'multiclass'

),

all_values as (

    select * from typed_feature_values
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
        loaded_at

    from typed

)

select * from final
