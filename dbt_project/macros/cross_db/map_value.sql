{#
    The value under `key_expression` in one of raw's typed feature maps (feature_numbers: double,
    feature_categories: text), NULL when the key is absent or its value is NULL. DuckDB and Spark
    store native maps; PostgreSQL receives them as jsonb objects from the raw store.
#}
{% macro map_value(map_column, key_expression, value_type='text') -%}
    {{ return(adapter.dispatch('map_value', 'driftmart')(map_column, key_expression, value_type)) }}
{%- endmacro %}

{% macro default__map_value(map_column, key_expression, value_type) -%}
    {{ map_column }}[{{ key_expression }}]
{%- endmacro %}

{% macro postgres__map_value(map_column, key_expression, value_type) -%}
    {%- if value_type == 'double' -%}
        cast(({{ map_column }} ->> {{ key_expression }}) as double precision)
    {%- else -%}
        ({{ map_column }} ->> {{ key_expression }})
    {%- endif -%}
{%- endmacro %}

{% macro spark__map_value(map_column, key_expression, value_type) -%}
    element_at({{ map_column }}, {{ key_expression }})
{%- endmacro %}
