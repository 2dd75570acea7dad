{#
    A double column as itself when it is a finite number, else NULL (NaN and ±infinity count as
    missing, like non-finite feature values). NaN compares above every number and infinity sits
    outside the finite range on DuckDB, PostgreSQL and Spark alike, so one `between` does it.
#}
{% macro finite_double(expression) -%}
    case
        when {{ expression }} between -1.7976931348623157e308 and 1.7976931348623157e308
            then cast({{ expression }} as {{ type_double() }})
    end
{%- endmacro %}
