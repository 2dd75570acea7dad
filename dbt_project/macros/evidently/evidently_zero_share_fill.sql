{#
    The share Evidently puts in place of a zero share on one side of its binned data
    (legacy/calculations/stattests/utils.py, get_binned_data with feel_zeroes=True):
    min_nonzero / 10**6 when that side's smallest non-zero share is <= 0.0001, else 0.0001.
    `min_nonzero_share` is the side's smallest non-zero share (count / n of the side).
#}
{% macro evidently_zero_share_fill(min_nonzero_share) -%}
    case
        when {{ min_nonzero_share }} <= cast(1e-4 as {{ type_double() }})
            then {{ min_nonzero_share }} / cast(1e6 as {{ type_double() }})
        else cast(1e-4 as {{ type_double() }})
    end
{%- endmacro %}
