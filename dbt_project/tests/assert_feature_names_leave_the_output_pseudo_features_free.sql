{#
    int_inference_feature_values_unpivoted is one row per logged prediction × name, where the names
    are the model's features and the output's pseudo-features (__prediction__, __probability__,
    __probability__:<class>). Its grain follows from the keys of its inputs, each tested
    (stg_raw__inference_logs, stg_raw__model_features, stg_raw__model_classes,
    stg_raw__monitored_models), and from this: no feature takes a pseudo-feature's name (the spec
    refuses such names; this catches a writer that did not). A row-level uniqueness test over the
    view would recompute every new row × feature only to find the same (9 s per 1M predictions).
#}

select
    model_name,
    feature_name

from {{ ref('stg_raw__model_features') }}
where
    feature_name = '__prediction__'
    or substr(feature_name, 1, 15) = '__probability__'
