with

source as (

    select * from {{ source('raw', 'model_segments') }}

),

renamed as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(segment_name as {{ dbt.type_string() }}) as segment_name,
        cast(segment_position as {{ dbt.type_int() }}) as segment_position,
        cast(top_k as {{ dbt.type_int() }}) as top_k,
        cast(min_rows as {{ dbt.type_int() }}) as min_rows,  -- noqa: RF04
        cast(fdr as {{ type_double() }}) as fdr,
        cast(loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed
