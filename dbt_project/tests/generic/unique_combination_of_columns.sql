{#
    Fails for every combination of `combination_of_columns` that occurs more than once in the model:
    the primary-key test of a composite grain (dbt_utils cannot be installed here). With
    `new_rows_only: true` (per-row views over all history), only the rows this build adds are
    checked (macro rows_since_last_count).
#}
{% test unique_combination_of_columns(model, combination_of_columns, new_rows_only=false) %}

with

validation as (

    select
        {{ combination_of_columns | join(',\n        ') }},
        count(*) as n_records

    from {{ model }}
    {% if new_rows_only %}
        where {{ rows_since_last_count() }}
    {% endif %}
    group by
        {{ combination_of_columns | join(',\n        ') }}
    having count(*) > 1

)

select * from validation

{% endtest %}
