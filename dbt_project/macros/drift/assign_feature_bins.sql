{#
    The one binning rule, shared by the reference counts (int_reference_bins_frozen) and the window
    counts (int_window_bin_counts_aggregated), so both sides of every distance are binned alike.

    Returns a select of every row of `feature_values` (columns model_name, feature_name,
    feature_type, value_number, value_category and `reference_column`) with the `bin_id` of the bin
    of `bins` (the frozen catalogue's columns) it falls in, for the reference_id in
    `reference_column`:
    - numeric, not NULL: the interval bin with lower_bound <= value < upper_bound (a range join;
      a NULL bound is an open end, so values below the reference minimum or above its maximum land
      in the end bins);
    - categorical, not NULL: the bin of its category, or `__unseen__` when the reference never saw it;
    - NULL (missing, JSON null, or a numeric value that is not a finite number): the `__null__` bin.
    Every row gets exactly one bin, so no row is dropped.
#}
{% macro assign_feature_bins(feature_values, bins, reference_column) %}
    select
        feature_values.*,
        bins.bin_id
    from {{ feature_values }} as feature_values
    inner join {{ bins }} as bins
        on
            feature_values.model_name = bins.model_name
            and feature_values.{{ reference_column }} = bins.reference_id
            and feature_values.feature_name = bins.feature_name
            and bins.bin_label <> '__null__'
            and feature_values.value_number >= coalesce(bins.lower_bound, cast('-infinity' as {{ type_double() }}))
            and feature_values.value_number < coalesce(bins.upper_bound, cast('infinity' as {{ type_double() }}))
    where feature_values.feature_type = 'numeric'

    union all

    select
        feature_values.*,
        coalesce(category_bins.bin_id, unseen_bins.bin_id) as bin_id
    from {{ feature_values }} as feature_values
    inner join {{ bins }} as unseen_bins
        on
            feature_values.model_name = unseen_bins.model_name
            and feature_values.{{ reference_column }} = unseen_bins.reference_id
            and feature_values.feature_name = unseen_bins.feature_name
            and unseen_bins.category is null
            and unseen_bins.bin_label = '__unseen__'
    left join {{ bins }} as category_bins
        on
            feature_values.model_name = category_bins.model_name
            and feature_values.{{ reference_column }} = category_bins.reference_id
            and feature_values.feature_name = category_bins.feature_name
            and feature_values.value_category = category_bins.category
    where
        feature_values.feature_type = 'categorical'
        and feature_values.value_category is not null

    union all

    select
        feature_values.*,
        null_bins.bin_id
    from {{ feature_values }} as feature_values
    inner join {{ bins }} as null_bins
        on
            feature_values.model_name = null_bins.model_name
            and feature_values.{{ reference_column }} = null_bins.reference_id
            and feature_values.feature_name = null_bins.feature_name
            and null_bins.category is null
            and null_bins.bin_label = '__null__'
    where
        (feature_values.feature_type = 'numeric' and feature_values.value_number is null)
        or (feature_values.feature_type = 'categorical' and feature_values.value_category is null)
{% endmacro %}
