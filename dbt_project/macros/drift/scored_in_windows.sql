{#
    `<column> >= the earliest start of the windows in the relation `windows`: a filter on a per-row
    view's scored_at that the engine applies while it scans raw, before any row is unpivoted or
    joined, so a run that recounts the newest windows does not read the rows of older history. It
    only narrows (a row scored before a window's start is in no later window); the exact
    (model, window) join still decides which rows count. `start_column` names the windows' start.
#}
{% macro scored_in_windows(column, windows, start_column='window_start') -%}
    {{ column }} >= (select min(earliest.{{ start_column }}) from {{ windows }} as earliest)
{%- endmacro %}
