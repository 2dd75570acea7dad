with

source as (

    select * from {{ source('raw', 'monitored_models') }}

),

renamed as (

    select
        cast(model_name as {{ dbt.type_string() }}) as model_name,
        cast(reference_kind as {{ dbt.type_string() }}) as reference_kind,
        cast(statistics as {{ dbt.type_string() }}) as statistics_method,
        cast(positive_label as {{ dbt.type_string() }}) as positive_label,
        {#- rows written before the task column existed are binary models #}
        cast(coalesce(task, 'binary') as {{ dbt.type_string() }}) as task,  -- noqa: RF04
        cast(spec as {{ dbt.type_string() }}) as spec_text,
        cast(window_seconds as {{ dbt.type_int() }}) as window_seconds,
        cast(min_window_rows as {{ dbt.type_int() }}) as min_window_rows,
        cast(dataset_drift_share as {{ type_double() }}) as dataset_drift_share,
        cast(reference_start_at as {{ dbt.type_timestamp() }}) as reference_start_at,
        cast(reference_end_at as {{ dbt.type_timestamp() }}) as reference_end_at,
        cast(loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed
