{#
    Fails for every combination of `combination_of_columns` that occurs more than once in the model:
    the primary-key test of a composite grain (dbt_utils cannot be installed here).
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

with

validation as (

    select
        {{ combination_of_columns | join(',\n        ') }},
        count(*) as n_records

    from {{ model }}
    group by
        {{ combination_of_columns | join(',\n        ') }}
    having count(*) > 1

)

select * from validation

{% endtest %}
