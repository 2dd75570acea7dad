{#- incremental delete+insert on [model_name, reference_id] (macros/cross_db/incremental_by_key_config.sql) #}
{{ config(**incremental_by_key_config(['model_name', 'reference_id'])) }}

{#
    The bin catalogue, frozen once per (model_name, reference_id) from that reference's values
    (int_reference_feature_values) and not recomputed while it stays the same: incremental runs
    freeze the references that a window needs (int_window_references) and that are not here yet,
    and freeze again a production-row reference (previous_window, time_range) whose rows changed
    since (late rows: its reference_max_ingest_seq moved), so a home fed in batches ends with the
    bins a home fed at once has. (A feature added to a model later needs `--full-refresh`.)
    - numeric: cut points at the reference quantiles 1/n … (n-1)/n of the non-NULL values
      (n = var drift_n_quantile_bins, deciles by default), duplicates removed; bins
      [-inf, e1), [e1, e2) … [em, +inf) with lower_bound / upper_bound NULL at the open ends;
    - categorical: one bin per reference category (ordered by category) plus `__unseen__`;
    - both: a `__null__` bin last, so a rise of missing values is drift.
    n_reference_rows_in_bin counts the reference rows per bin with the same rule as the windows
    (macro assign_feature_bins); n_reference is the feature's reference row count, NULLs included.
    The numeric reference summary (population std, min, max of the non-NULL values) is frozen with
    the bins: the binned Wasserstein distance needs it.
#}

{%- set n_bins = var('drift_n_quantile_bins') | int -%}
{%- if n_bins < 2 -%}
    {{ exceptions.raise_compiler_error("var drift_n_quantile_bins must be at least 2, got " ~ n_bins) }}
{%- endif %}
{%- set decile_fractions = [] -%}
{%- for i in range(1, n_bins) %}{% do decile_fractions.append(i / n_bins) %}{% endfor %}

with

reference_values as (

    select * from {{ ref('int_reference_feature_values') }}

),

window_references as (

    select * from {{ ref('int_window_references') }}

),

needed_references as (

    select
        model_name,
        reference_id,
        max(reference_max_ingest_seq) as reference_max_ingest_seq

    from window_references
    where reference_id is not null
    group by
        model_name,
        reference_id

),

{% if is_incremental() %}

frozen_references as (

    select
        model_name,
        reference_id,
        max(reference_max_ingest_seq) as reference_max_ingest_seq

    from {{ this }}
    group by
        model_name,
        reference_id

),

{% endif %}

references_to_freeze as (

    {#- decided per reference first (a handful of rows), so only their values are read below #}
    select needed_references.*
    from needed_references
    {% if is_incremental() %}
        left join frozen_references
            on
                needed_references.model_name = frozen_references.model_name
                and needed_references.reference_id = frozen_references.reference_id
        where
            frozen_references.model_name is null
            or coalesce(needed_references.reference_max_ingest_seq, -1)
            <> coalesce(frozen_references.reference_max_ingest_seq, -1)
    {% endif %}

),

new_reference_values as (

    select reference_values.*
    from reference_values
    inner join references_to_freeze
        on
            reference_values.model_name = references_to_freeze.model_name
            and reference_values.reference_id = references_to_freeze.reference_id

),

reference_totals as (

    select
        model_name,
        reference_id,
        feature_name,
        feature_type,
        count(*) as n_reference,
        min(value_number) as reference_min,
        max(value_number) as reference_max,
        stddev_pop(value_number) as reference_std

    from new_reference_values
    group by
        model_name,
        reference_id,
        feature_name,
        feature_type

),

numeric_quantiles as (

    select
        model_name,
        reference_id,
        feature_name,
        {{ quantiles_cont('value_number', decile_fractions) }} as quantiles

    from new_reference_values
    where
        feature_type = 'numeric'
        and value_number is not null
    group by
        model_name,
        reference_id,
        feature_name

),

quantile_indexes as (

    {%- for i in range(1, n_bins) %}
        {% if not loop.first %}union all{% endif %}
        select {{ i }} as quantile_index
    {%- endfor %}

),

numeric_cut_points as (

    {#- one row per distinct cut point. One pass over numeric_quantiles rather than a union of
        n - 1 selects: engines that inline CTEs (Spark) would otherwise plan the quantiles n - 1 times
        at every use of the bins below. #}
    select distinct
        numeric_quantiles.model_name,
        numeric_quantiles.reference_id,
        numeric_quantiles.feature_name,
        case quantile_indexes.quantile_index
            {%- for i in range(1, n_bins) %}
                when {{ i }} then {{ quantile_at('numeric_quantiles.quantiles', i) }}
            {%- endfor %}
        end as cut_point

    from numeric_quantiles
    cross join quantile_indexes

),

numeric_first_bins as (

    select
        reference_totals.model_name,
        reference_totals.reference_id,
        reference_totals.feature_name,
        1 as bin_id,
        cast(null as {{ type_double() }}) as lower_bound,
        min(numeric_cut_points.cut_point) as upper_bound

    from reference_totals
    left join numeric_cut_points
        on
            reference_totals.model_name = numeric_cut_points.model_name
            and reference_totals.reference_id = numeric_cut_points.reference_id
            and reference_totals.feature_name = numeric_cut_points.feature_name
    where reference_totals.feature_type = 'numeric'
    group by
        reference_totals.model_name,
        reference_totals.reference_id,
        reference_totals.feature_name

),

numeric_following_bins as (

    select
        model_name,
        reference_id,
        feature_name,
        1 + row_number() over (
            partition by model_name, reference_id, feature_name
            order by cut_point
        ) as bin_id,
        cut_point as lower_bound,
        lead(cut_point) over (
            partition by model_name, reference_id, feature_name
            order by cut_point
        ) as upper_bound

    from numeric_cut_points

),

numeric_interval_bins as (

    select * from numeric_first_bins
    union all
    select * from numeric_following_bins

),

numeric_null_bins as (

    select
        model_name,
        reference_id,
        feature_name,
        count(*) + 1 as bin_id

    from numeric_interval_bins
    group by
        model_name,
        reference_id,
        feature_name

),

category_bins as (

    select
        model_name,
        reference_id,
        feature_name,
        value_category as category,
        row_number() over (
            partition by model_name, reference_id, feature_name
            order by value_category
        ) as bin_id

    from new_reference_values
    where
        feature_type = 'categorical'
        and value_category is not null
    group by
        model_name,
        reference_id,
        feature_name,
        value_category

),

categorical_features as (

    select
        reference_totals.model_name,
        reference_totals.reference_id,
        reference_totals.feature_name,
        count(category_bins.bin_id) as n_categories

    from reference_totals
    left join category_bins
        on
            reference_totals.model_name = category_bins.model_name
            and reference_totals.reference_id = category_bins.reference_id
            and reference_totals.feature_name = category_bins.feature_name
    where reference_totals.feature_type = 'categorical'
    group by
        reference_totals.model_name,
        reference_totals.reference_id,
        reference_totals.feature_name

),

bins as (

    select
        model_name,
        reference_id,
        feature_name,
        'numeric' as feature_type,
        bin_id,
        '['
        || coalesce({{ double_to_text('lower_bound') }}, '-inf')
        || ', '
        || coalesce({{ double_to_text('upper_bound') }}, '+inf')
        || ')' as bin_label,
        cast(null as {{ dbt.type_string() }}) as category,
        lower_bound,
        upper_bound

    from numeric_interval_bins

    union all

    select
        model_name,
        reference_id,
        feature_name,
        'numeric' as feature_type,
        bin_id,
        '__null__' as bin_label,
        cast(null as {{ dbt.type_string() }}) as category,
        cast(null as {{ type_double() }}) as lower_bound,
        cast(null as {{ type_double() }}) as upper_bound

    from numeric_null_bins

    union all

    select
        model_name,
        reference_id,
        feature_name,
        'categorical' as feature_type,
        bin_id,
        category as bin_label,
        category,
        cast(null as {{ type_double() }}) as lower_bound,
        cast(null as {{ type_double() }}) as upper_bound

    from category_bins

    union all

    select
        model_name,
        reference_id,
        feature_name,
        'categorical' as feature_type,
        n_categories + 1 as bin_id,
        '__unseen__' as bin_label,
        cast(null as {{ dbt.type_string() }}) as category,
        cast(null as {{ type_double() }}) as lower_bound,
        cast(null as {{ type_double() }}) as upper_bound

    from categorical_features

    union all

    select
        model_name,
        reference_id,
        feature_name,
        'categorical' as feature_type,
        n_categories + 2 as bin_id,
        '__null__' as bin_label,
        cast(null as {{ dbt.type_string() }}) as category,
        cast(null as {{ type_double() }}) as lower_bound,
        cast(null as {{ type_double() }}) as upper_bound

    from categorical_features

),

binned_reference_values as (

    {{ assign_feature_bins('new_reference_values', 'bins', 'reference_id') }}

),

reference_bin_counts as (

    select
        model_name,
        reference_id,
        feature_name,
        bin_id,
        count(*) as n_reference_rows_in_bin

    from binned_reference_values
    group by
        model_name,
        reference_id,
        feature_name,
        bin_id

),

final as (

    select
        bins.model_name,
        bins.reference_id,
        bins.feature_name,
        bins.feature_type,
        cast(bins.bin_id as {{ dbt.type_int() }}) as bin_id,
        bins.bin_label,
        bins.category,
        bins.lower_bound,
        bins.upper_bound,
        cast(coalesce(reference_bin_counts.n_reference_rows_in_bin, 0) as {{ dbt.type_bigint() }})
            as n_reference_rows_in_bin,
        cast(reference_totals.n_reference as {{ dbt.type_bigint() }}) as n_reference,
        cast(reference_totals.reference_std as {{ type_double() }}) as reference_std,
        cast(reference_totals.reference_min as {{ type_double() }}) as reference_min,
        cast(reference_totals.reference_max as {{ type_double() }}) as reference_max,
        cast(references_to_freeze.reference_max_ingest_seq as {{ dbt.type_bigint() }})
            as reference_max_ingest_seq

    from bins
    inner join references_to_freeze
        on
            bins.model_name = references_to_freeze.model_name
            and bins.reference_id = references_to_freeze.reference_id
    inner join reference_totals
        on
            bins.model_name = reference_totals.model_name
            and bins.reference_id = reference_totals.reference_id
            and bins.feature_name = reference_totals.feature_name
    left join reference_bin_counts
        on
            bins.model_name = reference_bin_counts.model_name
            and bins.reference_id = reference_bin_counts.reference_id
            and bins.feature_name = reference_bin_counts.feature_name
            and bins.bin_id = reference_bin_counts.bin_id

)

select * from final
