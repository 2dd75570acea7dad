{#
    The degradation check. Fails for every row of fct_model_performance whose is_degraded is true
    (the realized metric fell past its threshold: the reference's value minus its sampling error
    allowance), one failing row per (model_name, window_start, metric_name).
    Configured like the drift checks: severity "{{ var('drift_test_severity') }}" (warn by
    default) and store_failures, a signal to act on (retrain) rather than a data-quality stop.
    `column_name` (default is_degraded) is the boolean verdict column.
#}
{% test performance_not_degraded(model, column_name='is_degraded') %}

{{ verdict_rows(model, column_name) }}

{% endtest %}
