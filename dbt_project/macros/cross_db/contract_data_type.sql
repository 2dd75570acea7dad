{#
    The engine's name for a `data_type` written in a model contract (the `_*__models.yml` files).
    Contracts use DuckDB's names (`double`, `varchar`, `bigint` …); PostgreSQL has no `double` (it is
    `double precision`), so its contracted tables would not even be created, and its `varchar` is not
    the `text` that string expressions give. dbt does no type aliasing
    of its own, so the postgres__ overrides of dbt's contract macros below translate each column's
    type on the way into SQL: the empty-schema query that checks the contract and the table's DDL.
#}
{% macro contract_data_type(data_type) -%}
    {{ return(adapter.dispatch('contract_data_type', 'driftmart')(data_type)) }}
{%- endmacro %}

{% macro default__contract_data_type(data_type) -%}
    {{ return(data_type) }}
{%- endmacro %}

{% macro postgres__contract_data_type(data_type) -%}
    {#- `text`, not `varchar`: an incremental model's new rows arrive typed `text` and
        on_schema_change='fail' would see `character varying` ≠ `text` as a schema change. -#}
    {{ return({'double': 'double precision', 'varchar': 'text'}.get((data_type or '') | trim | lower, data_type)) }}
{%- endmacro %}

{# The model's contracted columns with each data_type translated (a copy: the model is not changed). #}
{% macro contract_columns(columns) -%}
    {%- set translated = {} -%}
    {%- for name, column in columns.items() -%}
        {%- set copy = {} -%}
        {%- do copy.update(column) -%}
        {%- if column.get('data_type') -%}
            {%- do copy.update({'data_type': contract_data_type(column['data_type'])}) -%}
        {%- endif -%}
        {%- do translated.update({name: copy}) -%}
    {%- endfor -%}
    {{ return(translated) }}
{%- endmacro %}

{# Overrides of dbt's own (namespace `dbt`) contract macros on PostgreSQL: the root project's
   postgres__ versions win over the adapter's, with the same output apart from the types. #}
{% macro postgres__get_empty_schema_sql(columns) -%}
    {{ return(dbt.default__get_empty_schema_sql(contract_columns(columns))) }}
{%- endmacro %}

{% macro postgres__get_table_columns_and_constraints() -%}
    {%- set raw_column_constraints = adapter.render_raw_columns_constraints(
        raw_columns=contract_columns(model['columns'])
    ) -%}
    {%- set raw_model_constraints = adapter.render_raw_model_constraints(raw_constraints=model['constraints']) -%}
    (
    {% for c in raw_column_constraints -%}
        {{ c }}{{ "," if not loop.last or raw_model_constraints }}
    {% endfor %}
    {% for c in raw_model_constraints -%}
        {{ c }}{{ "," if not loop.last }}
    {% endfor -%}
    )
{%- endmacro %}
