with

source as (

    select * from {{ source('raw', 'model_registry') }}

),

renamed as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(model_version as {{ dbt.type_int() }}) as model_version,
        cast(trigger as {{ dbt.type_string() }}) as trigger,  -- noqa: RF04
        cast(status as {{ dbt.type_string() }}) as status,
        cast(artifact_sha256 as {{ dbt.type_string() }}) as artifact_sha256,
        cast(metrics as {{ dbt.type_string() }}) as metrics_json,
        cast(spec_fingerprint as {{ dbt.type_string() }}) as spec_fingerprint,
        cast(n_training_rows as {{ dbt.type_int() }}) as n_training_rows,
        cast(n_reference_rows as {{ dbt.type_int() }}) as n_reference_rows,
        cast(validation as {{ dbt.type_string() }}) as validation_json,
        cast(decision_reason as {{ dbt.type_string() }}) as decision_reason,
        cast(history as {{ dbt.type_string() }}) as history_json,
        cast(estimator as {{ dbt.type_string() }}) as estimator,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(decided_at as {{ dbt.type_timestamp() }}) as decided_at,
        cast(loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed
