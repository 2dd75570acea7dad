{#
    The classes of each multiclass model: one row per key of its spec's `class_probabilities`
    ({class label as text: probability column}, raw.monitored_models.spec), the keys under which
    raw.inference_log.probabilities and raw.reference_rows.probabilities hold each class's
    probability. Binary and regression models have no rows.
#}

with

monitored_models as (

    select * from {{ ref('stg_raw__monitored_models') }}

),

multiclass_models as (

    select
        model_name,
        spec_text

    from monitored_models
    where task = 'multiclass'

),

class_labels as (

    select
        model_name,
        {{ json_object_keys('spec_text', 'class_probabilities') }} as class_label

    from multiclass_models

),

final as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(class_label as {{ dbt.type_string() }}) as class_label

    from class_labels

)

select * from final
