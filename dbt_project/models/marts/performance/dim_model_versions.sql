{#
    One row per (model_name, model_version) of the model registry mirror: when and why the version
    was trained, its status and the validation metrics that decided it (from the metrics JSON).
    is_champion: the version serving as champion (status = 'champion').
#}

with

model_versions as (

    select * from {{ ref('stg_raw__model_versions') }}

),

final as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(model_version as {{ dbt.type_int() }}) as model_version,
        cast(trigger as {{ dbt.type_string() }}) as trigger,  -- noqa: RF04
        cast(status as {{ dbt.type_string() }}) as status,
        cast(artifact_sha256 as {{ dbt.type_string() }}) as artifact_sha256,
        cast(n_training_rows as {{ dbt.type_int() }}) as n_training_rows,
        cast(n_reference_rows as {{ dbt.type_int() }}) as n_reference_rows,
        {{ safe_cast_double(json_extract_field('metrics_json', "'accuracy'")) }} as validation_accuracy,
        {{ safe_cast_double(json_extract_field('metrics_json', "'roc_auc'")) }} as validation_roc_auc,
        {{ safe_cast_double(json_extract_field('metrics_json', "'f1'")) }} as validation_f1,
        {{ safe_cast_double(json_extract_field('metrics_json', "'log_loss'")) }} as validation_log_loss,
        status = 'champion' as is_champion,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at

    from model_versions

)

select * from final
