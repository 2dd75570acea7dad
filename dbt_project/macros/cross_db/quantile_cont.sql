{#
    Continuous quantiles (linear interpolation between order statistics, numpy's default "linear"
    method) of a numeric expression within the current group. NULLs are ignored.

    quantiles_cont(expression, quantiles) computes several quantiles (constants in [0, 1]) in one
    aggregate and returns them as an array; quantile_at(array, i) reads the i-th (1-based). One
    aggregate holds the group's values once: n separate quantile aggregates hold them n times, and
    DuckDB cannot spill them (nine deciles of a 1M-row reference x 20 features ran out of 2 GB).
#}

{% macro quantiles_cont(expression, quantiles) -%}
    {{ return(adapter.dispatch('quantiles_cont', 'driftmart')(expression, quantiles)) }}
{%- endmacro %}

{% macro default__quantiles_cont(expression, quantiles) -%}
    percentile_cont(array[{{ quantiles | join(', ') }}]) within group (order by {{ expression }})
{%- endmacro %}

{% macro duckdb__quantiles_cont(expression, quantiles) -%}
    quantile_cont({{ expression }}, [{{ quantiles | join(', ') }}])
{%- endmacro %}

{% macro spark__quantiles_cont(expression, quantiles) -%}
    percentile({{ expression }}, array({{ quantiles | join(', ') }}))
{%- endmacro %}

{% macro quantile_at(quantiles, index) -%}
    {{ return(adapter.dispatch('quantile_at', 'driftmart')(quantiles, index)) }}
{%- endmacro %}

{% macro default__quantile_at(quantiles, index) -%}
    ({{ quantiles }})[{{ index }}]
{%- endmacro %}

{% macro spark__quantile_at(quantiles, index) -%}
    element_at({{ quantiles }}, {{ index }})
{%- endmacro %}
