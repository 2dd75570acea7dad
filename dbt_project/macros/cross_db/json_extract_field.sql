{#
    The value under a key of a JSON object held as text, as a string (JSON null and a missing key
    give NULL). `key_expression` is a SQL expression (a column or a quoted literal), so the key can
    come from a table such as raw.model_features. Keys are spec identifiers ([a-z_][a-z0-9_]*), safe
    in a JSON path.
#}
{% macro json_extract_field(json_column, key_expression) -%}
    {{ return(adapter.dispatch('json_extract_field', 'driftmart')(json_column, key_expression)) }}
{%- endmacro %}

{% macro default__json_extract_field(json_column, key_expression) -%}
    json_value({{ json_column }}, '$.' || {{ key_expression }})
{%- endmacro %}

{% macro duckdb__json_extract_field(json_column, key_expression) -%}
    json_extract_string({{ json_column }}, '$.' || {{ key_expression }})
{%- endmacro %}

{% macro postgres__json_extract_field(json_column, key_expression) -%}
    (cast({{ json_column }} as json) ->> {{ key_expression }})
{%- endmacro %}

{% macro spark__json_extract_field(json_column, key_expression) -%}
    get_json_object({{ json_column }}, concat('$.', {{ key_expression }}))
{%- endmacro %}
