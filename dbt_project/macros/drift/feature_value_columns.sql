{#
    A monitored feature's value out of raw's typed maps for the row `row_alias`, joined to its
    model_features row `features_alias`: `value_category` (text, categorical features) and
    `value_number` (a finite double, numeric features; NaN and ±infinity are missing). The one rule
    for production rows and reference rows alike.
#}
{% macro feature_value_columns(row_alias, features_alias='model_features') -%}
    case
        when {{ features_alias }}.feature_type = 'categorical'
            then {{ map_value(row_alias ~ '.feature_categories', features_alias ~ '.feature_name') }}
    end as value_category,
    case
        when {{ features_alias }}.feature_type = 'numeric'
            then {{ finite_double(
                map_value(row_alias ~ '.feature_numbers', features_alias ~ '.feature_name', 'double')
            ) }}
    end as value_number
{%- endmacro %}
