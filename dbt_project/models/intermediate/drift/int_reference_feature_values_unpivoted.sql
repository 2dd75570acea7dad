{#
    One row per reference row × monitored feature of its model: the reference sets of all model
    versions in long form, typed like the current rows (int_inference_feature_values_unpivoted).
#}

with

reference_rows as (

    select * from {{ ref('stg_raw__reference_rows') }}

),

model_features as (

    select * from {{ ref('stg_raw__model_features') }}

),

feature_values as (

    select
        reference_rows.model_name,
        reference_rows.model_version,
        reference_rows.reference_row_id,
        model_features.feature_name,
        model_features.feature_type,
        {{ json_extract_field('reference_rows.features_json', 'model_features.feature_name') }}
            as value_text,
        reference_rows.loaded_at

    from reference_rows
    inner join model_features
        on reference_rows.model_name = model_features.model_name

),

final as (

    select
        model_name,
        model_version,
        reference_row_id,
        feature_name,
        feature_type,
        case when feature_type = 'categorical' then value_text end as value_category,
        case when feature_type = 'numeric' then {{ safe_cast_double('value_text') }} end as value_number,
        loaded_at

    from feature_values

)

select * from final
