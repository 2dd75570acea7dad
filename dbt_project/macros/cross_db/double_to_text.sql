{#
    A double as text, the same on every engine: the shortest text that reads back as the same
    double, written like DuckDB's cast (and Python's repr): integral values keep a `.0` (`10.0`),
    exponents from 1e16 and below 1e-4 (`1e+16`, `1.5e-05`), `nan`, `inf`, `-inf`. Used where a
    number becomes part of a label (e.g. a bin's `[0.0, 10.0)`), which a plain cast would make
    engine-dependent.
#}
{% macro double_to_text(expression) -%}
    {{ return(adapter.dispatch('double_to_text', 'driftmart')(expression)) }}
{%- endmacro %}

{% macro default__double_to_text(expression) -%}
    cast(cast({{ expression }} as {{ type_double() }}) as {{ dbt.type_string() }})
{%- endmacro %}

{#
    PostgreSQL's own shortest text (extra_float_digits >= 1, the default since PostgreSQL 12) has the
    same digits, but drops the `.0` of integral values and switches to an exponent from 1e15, one
    decade earlier: those two cases are rewritten.
#}
{% macro postgres__double_to_text(expression) -%}
    {%- set text -%}cast(cast({{ expression }} as double precision) as text){%- endset -%}
    {%- set mantissa -%}regexp_replace({{ text }}, 'e\+15$', ''){%- endset -%}
    {%- set digits -%}replace(ltrim({{ mantissa }}, '-'), '.', ''){%- endset -%}
    case
        when {{ text }} ~ '^-?[0-9]+$' then {{ text }} || '.0'
        when {{ text }} ~ 'e\+15$'
            then
                case when {{ text }} like '-%' then '-' else '' end
                || rpad(substr({{ digits }}, 1, 16), 16, '0')
                || '.'
                || coalesce(nullif(substr({{ digits }}, 17), ''), '0')
        when {{ text }} = 'NaN' then 'nan'
        when {{ text }} = 'Infinity' then 'inf'
        when {{ text }} = '-Infinity' then '-inf'
        else {{ text }}
    end
{%- endmacro %}
