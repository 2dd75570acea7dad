{#
    A sum of doubles whose result does not depend on the order the engine adds the rows in:
    DuckDB adds in parallel, in an order that changes from run to run, so a plain sum() can differ
    in its last bit between two builds of the same rows. DuckDB's fsum (compensated summation)
    gives the correctly rounded sum of a window's terms in practice; PostgreSQL and Spark keep sum.
#}
{% macro accurate_sum(expression) -%}
    {{ return(adapter.dispatch('accurate_sum', 'driftmart')(expression)) }}
{%- endmacro %}

{% macro default__accurate_sum(expression) -%}
    sum({{ expression }})
{%- endmacro %}

{% macro duckdb__accurate_sum(expression) -%}
    fsum({{ expression }})
{%- endmacro %}
