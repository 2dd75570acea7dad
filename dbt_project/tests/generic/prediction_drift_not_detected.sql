{#
    The prediction drift check. Fails for every row of fct_prediction_drift whose is_drifted is true
    (the predicted class mix or the score distribution moved), one failing row per (model_name,
    window_start).
    Configured with severity "{{ var('drift_test_severity') }}" (warn by default) and
    store_failures: drift is a signal to act on (retrain), not a data-quality stop (docs/architecture.md §8).
    `column_name` (default is_drifted) is the boolean verdict column.
#}
{% test prediction_drift_not_detected(model, column_name='is_drifted') %}

{{ verdict_rows(model, column_name) }}

{% endtest %}
