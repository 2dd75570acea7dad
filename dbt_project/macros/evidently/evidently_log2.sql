{#
    Base-2 logarithm of a positive row count, as numpy's np.log2 gives it, for the Sturges rule
    (width = range / (log2(n) + 1)). Only exactness at powers of two matters: elsewhere log2(n) of an
    integer n (below 2^40) is never within 100 ulps of an integer, so a last-bit difference cannot move
    ceil(range / width); at n = 2^k it is exactly k, and ceil(range / (range / (k + 1))) can land on
    either side of k + 1, so an approximation there could change the number of bins.
#}
{% macro evidently_log2(expression) -%}
    {{ return(adapter.dispatch('evidently_log2', 'driftmart')(expression)) }}
{%- endmacro %}

{# ln(n) / ln(2) can be an ulp off at a power of two: snap to the integer k when 2^k = n. #}
{% macro default__evidently_log2(expression) -%}
    {%- set two = 'cast(2 as ' ~ type_double() ~ ')' -%}
    {%- set approximate = 'ln(' ~ expression ~ ') / ln(' ~ two ~ ')' -%}
    case
        when power({{ two }}, round({{ approximate }})) = {{ expression }} then round({{ approximate }})
        else {{ approximate }}
    end
{%- endmacro %}

{% macro duckdb__evidently_log2(expression) -%}
    log2({{ expression }})
{%- endmacro %}

{% macro spark__evidently_log2(expression) -%}
    log2({{ expression }})
{%- endmacro %}
