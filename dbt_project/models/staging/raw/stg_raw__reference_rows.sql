with

source as (

    select * from {{ source('raw', 'reference_rows') }}

),

renamed as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(model_version as {{ dbt.type_int() }}) as model_version,
        cast(row_number as {{ dbt.type_int() }}) as reference_row_id,
        feature_numbers,
        feature_categories,
        segment_values,
        cast(prediction as {{ dbt.type_string() }}) as prediction,
        cast(label as {{ dbt.type_string() }}) as label,  -- noqa: RF04
        cast(probability as {{ type_double() }}) as probability,
        cast(probabilities as {{ dbt.type_string() }}) as probabilities_json,
        cast(loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed
