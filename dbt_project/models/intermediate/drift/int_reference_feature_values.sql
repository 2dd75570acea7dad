{{
    config(
        materialized='view',
    )
}}

{#
    The reference values of every reference_id, in long form (one row per reference row × monitored
    feature, the prediction pseudo-features of int_inference_feature_values_unpivoted included:
    `__prediction__`, typed by the model's task, and `__probability__` or `__probability__:<class>`),
    typed like the window rows:
    - model_version models: each version's reference rows (raw.reference_rows),
      reference_id `model_version:<v>`;
    - time_range models: the model's own inference rows scored in [reference_start_at,
      reference_end_at), reference_id `time_range:<start>/<end>`;
    - previous_window models: the inference rows of every window that is the reference of a later
      window (int_window_references), reference_id `window:<window_start>`.
    segment_values (the row's segment columns) rides along for segment drift.
    A view: the production-row references are the inference rows themselves, not a copy. The
    frozen bins read it once per new reference_id; the window counts read previous-window
    references when they recount.
#}

with

reference_rows as {{ inlined() }} (

    select * from {{ ref('stg_raw__reference_rows') }}

),

model_features as (

    select * from {{ ref('stg_raw__model_features') }}

),

monitored_models as (

    select * from {{ ref('stg_raw__monitored_models') }}

),

model_classes as (

    select * from {{ ref('stg_raw__model_classes') }}

),

inference_values as {{ inlined() }} (

    select * from {{ ref('int_inference_feature_values_unpivoted') }}

),

window_references as (

    select * from {{ ref('int_window_references') }}

),

version_rows as {{ inlined() }} (

    select
        reference_rows.*,
        monitored_models.task

    from reference_rows
    inner join monitored_models
        on reference_rows.model_name = monitored_models.model_name
    where monitored_models.reference_kind = 'model_version'

),

version_feature_values as (

    select
        version_rows.model_name,
        version_rows.model_version,
        version_rows.reference_row_id,
        model_features.feature_name,
        model_features.feature_type,
        {{ feature_value_columns('version_rows') }},
        version_rows.segment_values

    from version_rows
    inner join model_features
        on version_rows.model_name = model_features.model_name

),

version_values as (

    select
        model_name,
        model_version,
        reference_row_id,
        feature_name,
        feature_type,
        value_category,
        value_number,
        segment_values

    from version_feature_values

    union all

    select
        model_name,
        model_version,
        reference_row_id,
        '__prediction__' as feature_name,
        case when task = 'regression' then 'numeric' else 'categorical' end as feature_type,
        case when task = 'regression' then null else prediction end as value_category,
        case when task = 'regression' then {{ safe_cast_double('prediction') }} end as value_number,
        segment_values

    from version_rows

    union all

    select
        model_name,
        model_version,
        reference_row_id,
        '__probability__' as feature_name,
        'numeric' as feature_type,
        cast(null as {{ dbt.type_string() }}) as value_category,
        {{ finite_double('probability') }} as value_number,
        segment_values

    from version_rows
    where task = 'binary'

    union all

    select
        version_rows.model_name,
        version_rows.model_version,
        version_rows.reference_row_id,
        '__probability__:' || model_classes.class_label as feature_name,
        'numeric' as feature_type,
        cast(null as {{ dbt.type_string() }}) as value_category,
        {%- set class_probability = json_extract_field(
            'version_rows.probabilities_json', 'model_classes.class_label'
        ) %}
        {{ safe_cast_double(class_probability) }} as value_number,
        version_rows.segment_values

    from version_rows
    inner join model_classes
        on version_rows.model_name = model_classes.model_name
    where version_rows.task = 'multiclass'

),

model_version_references as (

    select
        model_name,
        'model_version:' || cast(model_version as {{ dbt.type_string() }}) as reference_id,
        'model_version' as reference_kind,
        cast(reference_row_id as {{ dbt.type_string() }}) as reference_row_id,
        feature_name,
        feature_type,
        value_category,
        value_number,
        segment_values

    from version_values

),

time_range_references as (

    select
        inference_values.model_name,
        'time_range:'
        || {{ timestamp_to_text('monitored_models.reference_start_at') }}
        || '/'
        || {{ timestamp_to_text('monitored_models.reference_end_at') }} as reference_id,
        'time_range' as reference_kind,
        inference_values.request_id as reference_row_id,
        inference_values.feature_name,
        inference_values.feature_type,
        inference_values.value_category,
        inference_values.value_number,
        inference_values.segment_values

    from inference_values
    inner join monitored_models
        on inference_values.model_name = monitored_models.model_name
    where
        monitored_models.reference_kind = 'time_range'
        and inference_values.scored_at >= monitored_models.reference_start_at
        and inference_values.scored_at < monitored_models.reference_end_at

),

reference_windows as (

    {#- the windows that are some window's reference, with their id built once per window #}
    select distinct
        model_name,
        reference_id,
        reference_window_start

    from window_references
    where
        reference_kind = 'previous_window'
        and reference_id is not null

),

previous_window_references as (

    select
        inference_values.model_name,
        reference_windows.reference_id,
        'previous_window' as reference_kind,
        inference_values.request_id as reference_row_id,
        inference_values.feature_name,
        inference_values.feature_type,
        inference_values.value_category,
        inference_values.value_number,
        inference_values.segment_values

    from inference_values
    inner join reference_windows
        on
            inference_values.model_name = reference_windows.model_name
            and inference_values.window_start = reference_windows.reference_window_start

),

final as (

    select * from model_version_references
    union all
    select * from time_range_references
    union all
    select * from previous_window_references

)

select * from final
