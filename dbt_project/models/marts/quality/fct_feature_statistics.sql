{#- incremental delete+insert on [model_name, window_start] (macros/cross_db/incremental_by_key_config.sql) #}
{{ config(**incremental_by_key_config(['model_name', 'window_start'])) }}

{#
    Data quality of each monitored feature in each window: row and NULL counts, numeric summary
    (mean, population std, min, max, quartiles of the non-NULL values) and categorical cardinality
    (distinct values, rows with a category the window's reference never saw).
    Incremental like the window counts (delete+insert on model_name, window_start): new windows,
    windows whose max_ingest_seq moved past the newest here, and windows whose reference changed are
    recomputed in full from the unpivoted rows.
#}

with

feature_values as (

    select * from {{ ref('int_inference_feature_values_unpivoted') }}

),

window_references as (

    select * from {{ ref('int_window_references') }}

),

reference_bins as (

    select * from {{ ref('int_reference_bins_frozen') }}

),

windows_to_compute as (

    {{ windows_to_recount('window_references') }}

),

window_values as (

    select
        feature_values.model_name,
        feature_values.feature_name,
        feature_values.feature_type,
        feature_values.value_category,
        feature_values.value_number,
        windows_to_compute.reference_id,
        windows_to_compute.max_ingest_seq,
        feature_values.window_start,
        feature_values.window_end

    from feature_values
    inner join windows_to_compute
        on
            feature_values.model_name = windows_to_compute.model_name
            and feature_values.window_start = windows_to_compute.window_start
    where
        {{ scored_in_windows('feature_values.scored_at', 'windows_to_compute') }}
        and feature_values.feature_name not in ('__prediction__', '__probability__')
        and substr(feature_values.feature_name, 1, 16) <> '__probability__:'

),

reference_categories as (

    select
        model_name,
        reference_id,
        feature_name,
        category

    from reference_bins
    where category is not null

),

classified_values as (

    select
        window_values.*,
        case
            when window_values.feature_type = 'numeric' and window_values.value_number is null then 1
            when window_values.feature_type = 'categorical' and window_values.value_category is null then 1
            else 0
        end as is_null,
        case
            when
                window_values.value_category is not null
                and window_values.reference_id is not null
                and reference_categories.category is null
                then 1
            else 0
        end as is_unseen

    from window_values
    left join reference_categories
        on
            window_values.model_name = reference_categories.model_name
            and window_values.reference_id = reference_categories.reference_id
            and window_values.feature_name = reference_categories.feature_name
            and window_values.value_category = reference_categories.category

),

counts as (

    select
        model_name,
        feature_name,
        feature_type,
        reference_id,
        window_start,
        window_end,
        max_ingest_seq,
        count(*) as n_rows,
        sum(is_null) as n_null,
        sum(is_unseen) as n_unseen,
        count(distinct value_category) as n_distinct_categories,
        count(distinct value_number) as n_distinct_numbers

    from classified_values
    group by
        model_name,
        feature_name,
        feature_type,
        reference_id,
        window_start,
        window_end,
        max_ingest_seq

),

numeric_values as (

    select * from window_values
    where
        feature_type = 'numeric'
        and value_number is not null

),

numeric_means as (

    select
        model_name,
        feature_name,
        window_start,
        avg(value_number) as mean_value

    from numeric_values
    group by
        model_name,
        feature_name,
        window_start

),

numeric_deviations as (

    {#- two passes (the mean, then the mean squared deviation): no cancellation, unlike E[x²] - E[x]² #}
    select
        numeric_values.*,
        numeric_means.mean_value,
        (numeric_values.value_number - numeric_means.mean_value)
        * (numeric_values.value_number - numeric_means.mean_value) as squared_deviation

    from numeric_values
    inner join numeric_means
        on
            numeric_values.model_name = numeric_means.model_name
            and numeric_values.feature_name = numeric_means.feature_name
            and numeric_values.window_start = numeric_means.window_start

),

numeric_summaries as (

    select
        model_name,
        feature_name,
        window_start,
        max(mean_value) as mean_value,
        sqrt(avg(squared_deviation)) as std_value,
        min(value_number) as min_value,
        max(value_number) as max_value,
        {{ quantiles_cont('value_number', [0.25, 0.5, 0.75]) }} as quartiles

    from numeric_deviations
    group by
        model_name,
        feature_name,
        window_start

),

final as (

    select
        cast(counts.model_name as {{ dbt.type_string() }}) as model_name,
        cast(counts.feature_name as {{ dbt.type_string() }}) as feature_name,
        cast(counts.feature_type as {{ dbt.type_string() }}) as feature_type,
        cast(counts.reference_id as {{ dbt.type_string() }}) as reference_id,
        cast(counts.n_rows as {{ dbt.type_bigint() }}) as n_rows,
        cast(counts.n_null as {{ dbt.type_bigint() }}) as n_null,
        cast(
            cast(counts.n_null as {{ type_double() }}) / nullif(cast(counts.n_rows as {{ type_double() }}), 0)
            as {{ type_double() }}
        ) as null_share,
        cast(numeric_summaries.mean_value as {{ type_double() }}) as mean,
        cast(numeric_summaries.std_value as {{ type_double() }}) as std,
        cast(numeric_summaries.min_value as {{ type_double() }}) as min,
        cast(numeric_summaries.max_value as {{ type_double() }}) as max,
        cast({{ quantile_at('numeric_summaries.quartiles', 1) }} as {{ type_double() }}) as p25,
        cast({{ quantile_at('numeric_summaries.quartiles', 2) }} as {{ type_double() }}) as p50,
        cast({{ quantile_at('numeric_summaries.quartiles', 3) }} as {{ type_double() }}) as p75,
        cast(
            case
                when counts.feature_type = 'categorical' then counts.n_distinct_categories
                else counts.n_distinct_numbers
            end as {{ dbt.type_bigint() }}
        ) as n_distinct,
        cast(
            case
                when counts.feature_type = 'categorical' and counts.reference_id is not null
                    then counts.n_unseen
            end as {{ dbt.type_bigint() }}
        ) as n_unseen,
        cast(counts.window_start as {{ dbt.type_timestamp() }}) as window_start,
        cast(counts.window_end as {{ dbt.type_timestamp() }}) as window_end,
        cast(counts.max_ingest_seq as {{ dbt.type_bigint() }}) as max_ingest_seq

    from counts
    left join numeric_summaries
        on
            counts.model_name = numeric_summaries.model_name
            and counts.feature_name = numeric_summaries.feature_name
            and counts.window_start = numeric_summaries.window_start

)

select * from final
