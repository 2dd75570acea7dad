with

source as (

    select * from {{ source('raw', 'inference_log') }}

),

renamed as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(request_id as {{ dbt.type_string() }}) as request_id,
        cast(model_version as {{ dbt.type_int() }}) as model_version,
        feature_numbers,
        feature_categories,
        segment_values,
        cast(prediction as {{ dbt.type_string() }}) as prediction,
        cast(source as {{ dbt.type_string() }}) as source_name,
        cast(probability as {{ type_double() }}) as probability,
        cast(probabilities as {{ dbt.type_string() }}) as probabilities_json,
        cast(scored_at as {{ dbt.type_timestamp() }}) as scored_at,
        cast(received_at as {{ dbt.type_timestamp() }}) as received_at,
        cast(loaded_at as {{ dbt.type_timestamp() }}) as loaded_at,
        cast(ingest_seq as {{ dbt.type_bigint() }}) as ingest_seq

    from source

)

select * from renamed
