{#
    Model contracts on Spark (macros/cross_db/contract_data_type.sql has the why and the PostgreSQL
    side): Spark wants a length for `varchar`, and its string type is `string`. dbt-spark checks a
    contract with dbt's empty-schema query and no typed DDL on Parquet, so only that query needs the
    translated types.
#}
{% macro spark__contract_data_type(data_type) -%}
    {{ return({'varchar': 'string', 'text': 'string'}.get((data_type or '') | trim | lower, data_type)) }}
{%- endmacro %}

{% macro spark__get_empty_schema_sql(columns) -%}
    {{ return(dbt.default__get_empty_schema_sql(contract_columns(columns))) }}
{%- endmacro %}
