{#
    A string to a finite double, or NULL when it does not parse as a number or is NaN / ±infinity.
    Used for numeric feature values: a value that is not a finite number counts as missing.
#}
{% macro safe_cast_double(expression) -%}
    {{ return(adapter.dispatch('safe_cast_double', 'driftmart')(expression)) }}
{%- endmacro %}

{% macro default__safe_cast_double(expression) -%}
    case
        when cast({{ expression }} as {{ type_double() }}) between -1.7976931348623157e308 and 1.7976931348623157e308
            then cast({{ expression }} as {{ type_double() }})
    end
{%- endmacro %}

{% macro duckdb__safe_cast_double(expression) -%}
    case
        when isfinite(try_cast({{ expression }} as double))
            then try_cast({{ expression }} as double)
    end
{%- endmacro %}

{% macro postgres__safe_cast_double(expression) -%}
    case
        when {{ expression }} ~ '^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$'
            then cast({{ expression }} as double precision)
    end
{%- endmacro %}

{% macro spark__safe_cast_double(expression) -%}
    case
        when try_cast({{ expression }} as double) between -1.7976931348623157e308 and 1.7976931348623157e308
            then try_cast({{ expression }} as double)
    end
{%- endmacro %}
