{#
    The value under a key of a JSON object held as text, as a string (JSON null and a missing key
    give NULL). `key_expression` is a SQL expression (a column or a quoted literal), so the key can
    come from a table such as raw.model_features. Keys are the user's column names, kept exactly:
    any text (spaces, dots, quotes, backslashes, `$`, `[`, non-ASCII), so no adapter splices a key
    into a JSON path as it is:
    - DuckDB: a JSON pointer (RFC 6901), `/` + the key with `~` written `~0` and `/` written `~1`;
    - PostgreSQL: `->>` takes the key itself;
    - Spark: `get_json_object`'s path cannot hold every key (`$['k']` stops at a quote, `$.k` at a
      dot or bracket, neither escapes), so the object is read as a map<string, string> and the key
      looked up (the same text `get_json_object` gives: numbers as written, strings unquoted);
    - others: the SQL/JSON path `$."key"` with `\` and `"` escaped.
#}
{% macro json_extract_field(json_column, key_expression) -%}
    {{ return(adapter.dispatch('json_extract_field', 'driftmart')(json_column, key_expression)) }}
{%- endmacro %}

{% macro default__json_extract_field(json_column, key_expression) -%}
    json_value(
        {{ json_column }},
        '$."' || replace(replace({{ key_expression }}, '\', '\\'), '"', '\"') || '"'
    )
{%- endmacro %}

{% macro duckdb__json_extract_field(json_column, key_expression) -%}
    json_extract_string(
        {{ json_column }}, '/' || replace(replace({{ key_expression }}, '~', '~0'), '/', '~1')
    )
{%- endmacro %}

{% macro postgres__json_extract_field(json_column, key_expression) -%}
    (cast({{ json_column }} as json) ->> {{ key_expression }})
{%- endmacro %}

{% macro spark__json_extract_field(json_column, key_expression) -%}
    element_at(from_json({{ json_column }}, 'map<string, string>'), {{ key_expression }})
{%- endmacro %}
