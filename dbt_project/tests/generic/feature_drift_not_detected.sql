{#
    The feature drift check. Fails for every row of fct_feature_drift whose is_drifted is true (the
    feature's drift_score crossed its threshold in a judged window), one failing row per
    (model_name, feature_name, window_start).
    Configured with severity "{{ var('drift_test_severity') }}" (warn by default) and
    store_failures: drift is a signal to act on (retrain), not a data-quality stop (docs/architecture.md §8).
    `column_name` (default is_drifted) is the boolean verdict column.
#}
{% test feature_drift_not_detected(model, column_name='is_drifted') %}

{{ verdict_rows(model, column_name) }}

{% endtest %}
