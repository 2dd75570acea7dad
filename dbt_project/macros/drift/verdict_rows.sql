{#
    The body of the drift checks (tests/generic/*_drift_not_detected.sql): every row of `model`
    whose boolean verdict `column_name` is true. One failing row per drifted grain row.
#}
{% macro verdict_rows(model, column_name) %}

with

validation as (

    select *
    from {{ model }}
    where {{ column_name }}

)

select * from validation

{% endmacro %}
