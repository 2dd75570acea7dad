with

source as (

    select * from {{ source('raw', 'labels') }}

),

renamed as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(request_id as {{ dbt.type_string() }}) as request_id,
        cast(label as {{ dbt.type_string() }}) as label,  -- noqa: RF04
        cast(source as {{ dbt.type_string() }}) as source_name,
        cast(labelled_at as {{ dbt.type_timestamp() }}) as labelled_at,
        cast(loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed
