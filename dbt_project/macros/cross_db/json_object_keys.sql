{#
    A set-returning select-list expression: one output row per key of the JSON object stored under
    the top-level key `field` (a literal name) of `json_column` (JSON held as text), the key as a
    string. Zero rows when the field is missing, JSON null or an empty object. Used as
    `select model_name, {{ json_object_keys('spec_text', 'class_probabilities') }} as class_label
    from ...`; at most one per select (Spark allows a single generator per select).
#}
{% macro json_object_keys(json_column, field) -%}
    {{ return(adapter.dispatch('json_object_keys', 'driftmart')(json_column, field)) }}
{%- endmacro %}

{% macro default__json_object_keys(json_column, field) -%}
    unnest(json_keys(json_extract({{ json_column }}, '$.{{ field }}')))
{%- endmacro %}

{% macro postgres__json_object_keys(json_column, field) -%}
    json_object_keys(cast({{ json_column }} as json) -> '{{ field }}')
{%- endmacro %}

{% macro spark__json_object_keys(json_column, field) -%}
    explode(json_object_keys(get_json_object({{ json_column }}, '$.{{ field }}')))
{%- endmacro %}
