with

source as (

    select * from {{ source('raw', 'score_calibration') }}

),

renamed as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(model_version as {{ dbt.type_int() }}) as model_version,
        cast(segment as {{ dbt.type_int() }}) as segment_index,
        cast(score_from as {{ type_double() }}) as score_from,
        cast(score_to as {{ type_double() }}) as score_to,
        cast(calibrated_from as {{ type_double() }}) as calibrated_from,
        cast(calibrated_to as {{ type_double() }}) as calibrated_to,
        cast(loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed
