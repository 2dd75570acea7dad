{#
    The drift check: fails for every row whose drift score (`column_name`, e.g. psi) is at or above
    the row's own threshold (`threshold_column`). Configure it with severity warn and
    store_failures: drift is a signal to act on (retrain), not a data-quality stop (DESIGN.md §8).
#}
{% test psi_below_threshold(model, column_name, threshold_column) %}

with

validation as (

    select *
    from {{ model }}
    where {{ column_name }} >= {{ threshold_column }}

)

select * from validation

{% endtest %}
