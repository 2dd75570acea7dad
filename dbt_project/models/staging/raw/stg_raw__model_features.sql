with

source as (

    select * from {{ source('raw', 'model_features') }}

),

renamed as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(feature_name as {{ dbt.type_string() }}) as feature_name,
        cast(feature_type as {{ dbt.type_string() }}) as feature_type,
        cast(drift_method as {{ dbt.type_string() }}) as drift_method,
        cast(feature_position as {{ dbt.type_int() }}) as feature_position,
        cast(drift_threshold as {{ type_double() }}) as drift_threshold,
        cast(loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed
