{#
    The CTEs that compute the χ² p-value Q(ν/2, x/2) (macros/drift/chi2_upper_tail.sql) of every
    row of the CTE `statistics` (columns `keys`, chi2_statistic, chi2_df), ending in the CTE
    `chi2_p_values` (`keys`, chi2_p_value) for the rows with 1 <= chi2_df <= 2 max_terms and
    chi2_statistic > 0 (a zero statistic has p = 1; the caller says so). Expects a CTE `numbers`
    of 1 … max_terms (dbt.generate_series). Placed in a model's WITH list:
    `{{ chi2_p_value_ctes('feature_statistics', ['model_name', 'feature_name', 'window_start'], 200) }},`
#}
{% macro chi2_p_value_ctes(statistics, keys, max_terms) %}
{%- set erfc_series_terms = 80 -%}
{%- set cell = 'partition by ' ~ keys | join(', ') %}
chi2_inputs as (

    select
        {%- for key in keys %}
        {{ key }},
        {%- endfor %}
        chi2_statistic / 2 as half_chi2,
        cast(floor(chi2_df / 2.0) as {{ dbt.type_int() }}) as half_df_floor,
        chi2_df - 2 * cast(floor(chi2_df / 2.0) as {{ dbt.type_int() }}) as is_df_odd

    from {{ statistics }}
    where
        chi2_df >= 1
        and chi2_df <= {{ 2 * max_terms }}
        and chi2_statistic > 0

),

chi2_cells as (

    select
        *,
        {#- the terms k of the sums below: k < j (ν even); 1 <= k <= j or the erfc series length (ν odd) #}
        ln(half_chi2) as ln_half_chi2,
        case when is_df_odd = 1 then 1 else 0 end as first_term,
        case
            when is_df_odd = 0 then half_df_floor - 1
            when half_chi2 < 4 and half_df_floor < {{ erfc_series_terms }} then {{ erfc_series_terms }}
            else half_df_floor
        end as last_term

    from chi2_inputs

),

log_gamma as (

    {#- k, ln k! and ln Γ(k + 1/2) for k = 0 … max_terms #}
    select
        0 as k,
        cast(0 as {{ type_double() }}) as ln_factorial,
        cast(0.5723649429247001 as {{ type_double() }}) as ln_gamma_half

    union all

    select
        cast(generated_number as {{ dbt.type_int() }}) as k,
        sum(ln(cast(generated_number as {{ type_double() }}))) over (
            order by generated_number rows between unbounded preceding and current row
        ) as ln_factorial,
        0.5723649429247001 + sum(ln(cast(generated_number as {{ type_double() }}) - 0.5)) over (
            order by generated_number rows between unbounded preceding and current row
        ) as ln_gamma_half

    from numbers

),

chi2_log_terms as (

    select
        {%- for key in keys %}
        chi2_cells.{{ key }},
        {%- endfor %}
        log_gamma.k,
        chi2_cells.half_df_floor,
        chi2_cells.is_df_odd,
        case
            when chi2_cells.is_df_odd = 0
                then -chi2_cells.half_chi2 + log_gamma.k * chi2_cells.ln_half_chi2 - log_gamma.ln_factorial
            else
                -chi2_cells.half_chi2
                + (log_gamma.k - 0.5) * chi2_cells.ln_half_chi2
                - log_gamma.ln_gamma_half
        end as ln_term

    from chi2_cells
    inner join log_gamma
        on log_gamma.k between chi2_cells.first_term and chi2_cells.last_term

),

chi2_terms as (

    select
        *,
        {{ exp_or_zero('ln_term') }} as term

    from chi2_log_terms

),

chi2_running_sums as (

    select
        {%- for key in keys %}
        {{ key }},
        {%- endfor %}
        row_number() over ({{ cell }} order by k desc) as terms_after,
        sum(case when k < half_df_floor + is_df_odd then term else 0 end) over (
            {{ cell }} order by k rows between unbounded preceding and current row
        ) as finite_sum,
        sum(case when is_df_odd = 1 then term else 0 end) over (
            {{ cell }} order by k rows between unbounded preceding and current row
        ) as erf_series_sum

    from chi2_terms

),

chi2_sums as (

    select * from chi2_running_sums
    where terms_after = 1

),

erfc_terms as (

    select
        {%- for key in keys %}
        chi2_cells.{{ key }},
        {%- endfor %}
        numbers.generated_number as n,
        numbers.generated_number * {{ erfc_trapezoid_step() }} as node,
        chi2_cells.half_chi2

    from chi2_cells
    inner join numbers
        on numbers.generated_number <= {{ erfc_trapezoid_terms() }}
    where
        chi2_cells.is_df_odd = 1
        and chi2_cells.half_chi2 >= 4

),

erfc_running_sums as (

    select
        {%- for key in keys %}
        {{ key }},
        {%- endfor %}
        row_number() over ({{ cell }} order by n desc) as terms_after,
        sum({{ exp_or_zero('-node * node') }} / (node * node + half_chi2)) over (
            {{ cell }} order by n rows between unbounded preceding and current row
        ) as erfc_sum

    from erfc_terms

),

erfc_sums as (

    select * from erfc_running_sums
    where terms_after = 1

),

chi2_p_values as (

    select
        {%- for key in keys %}
        chi2_cells.{{ key }},
        {%- endfor %}
        least(
            1.0,
            coalesce(chi2_sums.finite_sum, 0.0)
            + case
                when chi2_cells.is_df_odd = 0 then 0.0
                when chi2_cells.half_chi2 < 4 then 1.0 - chi2_sums.erf_series_sum
                else {{ erfc_trapezoid('chi2_cells.half_chi2', 'erfc_sums.erfc_sum') }}
            end
        ) as chi2_p_value

    from chi2_cells
    left join chi2_sums
        on
            {%- for key in keys %}
            {{ 'and ' if not loop.first }}chi2_cells.{{ key }} = chi2_sums.{{ key }}
            {%- endfor %}
    left join erfc_sums
        on
            {%- for key in keys %}
            {{ 'and ' if not loop.first }}chi2_cells.{{ key }} = erfc_sums.{{ key }}
            {%- endfor %}

)
{% endmacro %}
