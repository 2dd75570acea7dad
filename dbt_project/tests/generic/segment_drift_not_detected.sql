{#
    The segment drift check. Fails for every row of fct_segment_drift whose is_drifted is true (a
    feature's distribution within one segment moved, at the spec's false discovery rate), one
    failing row per (model_name, segment_name, segment_value, feature_name, window_start).
    Severity "{{ var('drift_test_severity') }}" (warn by default) and store_failures, like the
    other drift checks (docs/architecture.md §8).
#}
{% test segment_drift_not_detected(model, column_name='is_drifted') %}

{{ verdict_rows(model, column_name) }}

{% endtest %}
