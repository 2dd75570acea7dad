{#
    The dataset drift check. Fails for every row of fct_dataset_drift whose is_dataset_drifted is
    true (the share of drifted features reached the model's dataset_drift_share), one failing row
    per (model_name, window_start).
    Configured with severity "{{ var('drift_test_severity') }}" (warn by default) and
    store_failures: drift is a signal to act on (retrain), not a data-quality stop (docs/architecture.md §8).
    `column_name` (default is_dataset_drifted) is the boolean verdict column.
#}
{% test dataset_drift_not_detected(model, column_name='is_dataset_drifted') %}

{{ verdict_rows(model, column_name) }}

{% endtest %}
