with

source as (

    select * from {{ source('raw', 'monitored_models') }}

),

renamed as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(statistics as {{ dbt.type_string() }}) as statistics_method,
        cast(spec as {{ dbt.type_string() }}) as spec_text,
        cast(window_seconds as {{ dbt.type_int() }}) as window_seconds,
        cast(psi_threshold as {{ type_double() }}) as psi_threshold,
        cast(loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed
