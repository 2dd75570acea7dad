{#
    dbt's not_null for a per-row view over all history: only the rows this build adds are checked
    (macro rows_since_last_count), so a build's test cost follows its new rows, not history.
#}
{% test not_null_in_new_rows(model, column_name) %}

select {{ column_name }}
from {{ model }}
where
    {{ column_name }} is null
    and {{ rows_since_last_count() }}

{% endtest %}
