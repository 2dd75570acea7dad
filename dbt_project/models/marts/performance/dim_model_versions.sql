{#
    One row per (model_name, model_version) of the model registry mirror: when and why the version
    was trained, its status, the class of its estimator, its own validation metrics (from the
    metrics JSON) and, for a challenger, the comparison with the champion on held-out recent rows
    that decided it.
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
        cast(estimator as {{ dbt.type_string() }}) as estimator,
        cast(artifact_sha256 as {{ dbt.type_string() }}) as artifact_sha256,
        cast(n_training_rows as {{ dbt.type_int() }}) as n_training_rows,
        cast(n_reference_rows as {{ dbt.type_int() }}) as n_reference_rows,
        {{ safe_cast_double(json_extract_field('metrics_json', "'accuracy'")) }} as validation_accuracy,
        {{ safe_cast_double(json_extract_field('metrics_json', "'roc_auc'")) }} as validation_roc_auc,
        {{ safe_cast_double(json_extract_field('metrics_json', "'f1'")) }} as validation_f1,
        {{ safe_cast_double(json_extract_field('metrics_json', "'log_loss'")) }} as validation_log_loss,
        cast({{ json_extract_field('validation_json', "'metric'") }} as {{ dbt.type_string() }})
            as holdout_metric,
        {{ safe_cast_double(json_extract_field('validation_json', "'champion_version'")) }}
            as holdout_champion_version,
        {{ safe_cast_double(json_extract_field('validation_json', "'n_holdout'")) }} as n_holdout_rows,
        {{ safe_cast_double(json_extract_field('validation_json', "'champion_score'")) }}
            as holdout_champion_score,
        {{ safe_cast_double(json_extract_field('validation_json', "'challenger_score'")) }}
            as holdout_challenger_score,
        cast(decision_reason as {{ dbt.type_string() }}) as decision_reason,
        status = 'champion' as is_champion,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(decided_at as {{ dbt.type_timestamp() }}) as decided_at

    from model_versions

)

select * from final
