{#- incremental delete+insert on [model_name, window_start] (macros/cross_db/incremental_by_key_config.sql) #}
{{ config(**incremental_by_key_config(['model_name', 'window_start'])) }}

{#
    Evidently-compatible drift (docs/architecture.md §5): per (model, feature, window) of the models
    whose spec says `statistics: evidently`, the numbers Evidently 0.7.23 gives for the window's rows
    (current) against the window's reference rows: PSI, Jensen–Shannon distance and normalised Wasserstein,
    replicated step by step from its source. The algorithm and the source lines it follows are in
    _evidently__docs.md (doc block int_feature_drift_evidently).

    Every step works on (value, count) pairs, not on rows: distinct values are counted per side
    first, so a reference set is joined to each window as its distinct values only.

    Incremental (delete+insert on model_name, window_start): a run computes, in full, only the
    windows not here yet, the windows whose int_window_references.max_ingest_seq (their rows and, for
    previous_window references, the reference window's rows) is newer than when they were computed
    here, and the windows whose reference_id changed (a newer reference version, a time range that
    became usable). Windows already here are otherwise left alone. `--full-refresh` recomputes all.
#}

with

monitored_models as (

    select * from {{ ref('stg_raw__monitored_models') }}

),

current_feature_values as (

    select * from {{ ref('int_inference_feature_values_unpivoted') }}

),

window_references as (

    select * from {{ ref('int_window_references') }}

),

reference_feature_values as (

    select * from {{ ref('int_reference_feature_values') }}

),

evidently_models as (

    select model_name
    from monitored_models
    where statistics_method = 'evidently'

),

{% if is_incremental() %}

    computed_windows as (

        select
            model_name,
            window_start,
            max(reference_id) as reference_id,
            max(max_ingest_seq) as max_ingest_seq

        from {{ this }}
        group by
            model_name,
            window_start

    ),

{% endif %}

windows_to_compute as (

    select
        window_references.model_name,
        window_references.reference_id,
        window_references.window_start,
        window_references.window_end,
        window_references.max_ingest_seq

    from window_references
    inner join evidently_models
        on window_references.model_name = evidently_models.model_name
    {% if is_incremental() %}
        left join computed_windows
            on
                window_references.model_name = computed_windows.model_name
                and window_references.window_start = computed_windows.window_start
        where
            computed_windows.model_name is null
            or window_references.max_ingest_seq > computed_windows.max_ingest_seq
            or coalesce(window_references.reference_id, '') <> coalesce(computed_windows.reference_id, '')
            {{ in_recount_range('window_references.window_start') }}
    {% endif %}

),

{# A value of the feature's own type only. NULL (missing, JSON null, not a finite number) stays a
   group of its own: counted for the integer test, dropped from every statistic. #}
current_values as (

    select
        current_feature_values.model_name,
        current_feature_values.feature_name,
        current_feature_values.window_start,
        current_feature_values.feature_type,
        case
            when
                current_feature_values.feature_type = 'categorical'
                then current_feature_values.value_category
        end as value_category,
        case
            when current_feature_values.feature_type = 'numeric' then current_feature_values.value_number
        end as value_number

    from current_feature_values
    inner join windows_to_compute
        on
            current_feature_values.model_name = windows_to_compute.model_name
            and current_feature_values.window_start = windows_to_compute.window_start
    where {{ scored_in_windows('current_feature_values.scored_at', 'windows_to_compute') }}

),

current_values_counted as (

    select
        model_name,
        feature_name,
        window_start,
        feature_type,
        value_category,
        value_number,
        count(*) as n_rows

    from current_values
    group by
        model_name,
        feature_name,
        feature_type,
        value_category,
        value_number,
        window_start

),

used_references as (

    select distinct
        model_name,
        reference_id

    from windows_to_compute
    where reference_id is not null

),

reference_values_counted as (

    select
        reference_feature_values.model_name,
        reference_feature_values.reference_id,
        reference_feature_values.feature_name,
        reference_feature_values.value_category,
        reference_feature_values.value_number,
        count(*) as n_rows

    from reference_feature_values
    inner join used_references
        on
            reference_feature_values.model_name = used_references.model_name
            and reference_feature_values.reference_id = used_references.reference_id
    group by
        reference_feature_values.model_name,
        reference_feature_values.reference_id,
        reference_feature_values.feature_name,
        reference_feature_values.value_category,
        reference_feature_values.value_number

),

{# The grain: every (model, feature, window) with rows, with the window's reference. #}
feature_windows as (

    select distinct
        windows_to_compute.model_name,
        windows_to_compute.reference_id,
        current_values_counted.feature_name,
        current_values_counted.feature_type,
        windows_to_compute.window_start,
        windows_to_compute.window_end,
        windows_to_compute.max_ingest_seq

    from current_values_counted
    inner join windows_to_compute
        on
            current_values_counted.model_name = windows_to_compute.model_name
            and current_values_counted.window_start = windows_to_compute.window_start

),

sample_values as (

    select
        model_name,
        feature_name,
        window_start,
        feature_type,
        value_category,
        value_number,
        0 as n_reference_rows,
        n_rows as n_current_rows

    from current_values_counted

    union all

    select
        feature_windows.model_name,
        feature_windows.feature_name,
        feature_windows.window_start,
        feature_windows.feature_type,
        case
            when feature_windows.feature_type = 'categorical' then reference_values_counted.value_category
        end as value_category,
        case
            when feature_windows.feature_type = 'numeric' then reference_values_counted.value_number
        end as value_number,
        reference_values_counted.n_rows as n_reference_rows,
        0 as n_current_rows

    from feature_windows
    inner join reference_values_counted
        on
            feature_windows.model_name = reference_values_counted.model_name
            and feature_windows.reference_id = reference_values_counted.reference_id
            and feature_windows.feature_name = reference_values_counted.feature_name

),

{# One row per distinct value of the union of both sides, with its count on each side. #}
values_merged as (

    select
        model_name,
        feature_name,
        window_start,
        feature_type,
        value_category,
        value_number,
        sum(n_reference_rows) as n_reference_rows,
        sum(n_current_rows) as n_current_rows,
        case when value_category is null and value_number is null then 1 else 0 end as is_missing

    from sample_values
    group by
        model_name,
        feature_name,
        feature_type,
        value_category,
        value_number,
        window_start

),

{#
    Per (model, feature, window): the sizes once missing values are dropped (Evidently drops NaN and
    ±inf per side), the reference's distinct values (pandas nunique), the joint range, the
    reference's sum for its mean, and what the integer test needs.
#}
sample_summaries as (

    select
        model_name,
        feature_name,
        window_start,
        sum(case when is_missing = 0 then n_reference_rows else 0 end) as n_reference,
        sum(case when is_missing = 0 then n_current_rows else 0 end) as n_current,
        sum(case when is_missing = 1 then n_reference_rows + n_current_rows else 0 end) as n_missing,
        sum(case when is_missing = 0 and n_reference_rows > 0 then 1 else 0 end) as n_reference_distinct,
        min(value_number) as min_value,
        max(value_number) as max_value,
        min(case when value_number <> floor(value_number) then 0 else 1 end) as is_integral,
        sum(cast(n_reference_rows as {{ type_double() }}) * value_number) as reference_value_sum

    from values_merged
    group by
        model_name,
        feature_name,
        window_start

),

window_samples as (

    select
        feature_windows.model_name,
        feature_windows.reference_id,
        feature_windows.feature_name,
        feature_windows.feature_type,
        coalesce(sample_summaries.n_reference, 0) as n_reference,
        coalesce(sample_summaries.n_current, 0) as n_current,
        sample_summaries.min_value,
        sample_summaries.max_value - sample_summaries.min_value as value_range,
        sample_summaries.reference_value_sum
        / cast(nullif(sample_summaries.n_reference, 0) as {{ type_double() }}) as reference_mean,
        {# get_binned_data: `feature_type == Numerical and reference_data.nunique() > 20` #}
        case
            when
                feature_windows.feature_type = 'numeric'
                and sample_summaries.n_reference_distinct > 20
                and sample_summaries.n_current > 0
                then 1
            else 0
        end as is_sturges_binned,
        {# pandas gives an int64 column only when no value is missing: _evidently__docs.md #}
        case
            when
                feature_windows.feature_type = 'numeric'
                and sample_summaries.n_missing = 0
                and sample_summaries.is_integral = 1
                then 1
            else 0
        end as is_integer_valued,
        feature_windows.window_start,
        feature_windows.window_end,
        feature_windows.max_ingest_seq

    from feature_windows
    left join sample_summaries
        on
            feature_windows.model_name = sample_summaries.model_name
            and feature_windows.feature_name = sample_summaries.feature_name
            and feature_windows.window_start = sample_summaries.window_start

),

{#
    np.histogram_bin_edges(reference ++ current, bins='sturges') (numpy lib/_histograms_impl.py,
    _hist_bin_sturges and _get_bin_edges): width = ptp / (log2(n) + 1.0), raised to 1 when the
    array has an integer dtype and width < 1; n_bins = ceil(ptp / width).
#}
sturges_widths as (

    select
        *,
        case
            when is_sturges_binned = 1
                then
                    value_range
                    / (
                        {{ evidently_log2('cast(n_reference + n_current as ' ~ type_double() ~ ')') }}
                        + cast(1 as {{ type_double() }})
                    )
        end as sturges_width

    from window_samples

),

binning_plans as (

    select
        *,
        case
            when is_sturges_binned = 1
                then cast(
                    ceil(
                        value_range
                        / case
                            when
                                is_integer_valued = 1 and sturges_width < 1
                                then cast(1 as {{ type_double() }})
                            else sturges_width
                        end
                    ) as {{ dbt.type_int() }}
                )
        end as n_sturges_bins

    from sturges_widths

),

{#
    np.linspace(min, max, n_bins + 1): step = ptp / n_bins, edge i = i * step + min, the last edge
    = max. np.histogram with these edges puts a value in the last bin whose lower edge is <= it (the
    last bin closed on the right). floor((value - min) / step) is that bin or next to it; the next
    CTE settles it against the two edges around it, computed as linspace computes them.
#}
sturges_values_guessed as (

    select
        values_merged.model_name,
        values_merged.feature_name,
        values_merged.window_start,
        values_merged.value_number,
        values_merged.n_reference_rows,
        values_merged.n_current_rows,
        binning_plans.min_value,
        binning_plans.n_sturges_bins,
        binning_plans.value_range / cast(binning_plans.n_sturges_bins as {{ type_double() }}) as bin_step,
        least(
            greatest(
                cast(
                    floor(
                        (values_merged.value_number - binning_plans.min_value)
                        / (
                            binning_plans.value_range
                            / cast(binning_plans.n_sturges_bins as {{ type_double() }})
                        )
                    ) as {{ dbt.type_int() }}
                ),
                0
            ),
            binning_plans.n_sturges_bins - 1
        ) as guessed_bin_index

    from values_merged
    inner join binning_plans
        on
            values_merged.model_name = binning_plans.model_name
            and values_merged.feature_name = binning_plans.feature_name
            and values_merged.window_start = binning_plans.window_start
    where
        values_merged.is_missing = 0
        and binning_plans.is_sturges_binned = 1

),

{# get_binned_data otherwise: one bin per distinct value of the union of both sides. #}
distinct_values_binned as (

    select
        values_merged.model_name,
        values_merged.feature_name,
        values_merged.window_start,
        values_merged.n_reference_rows,
        values_merged.n_current_rows,
        row_number() over (
            partition by values_merged.model_name, values_merged.feature_name, values_merged.window_start
            order by values_merged.value_number, values_merged.value_category
        ) as bin_index

    from values_merged
    inner join binning_plans
        on
            values_merged.model_name = binning_plans.model_name
            and values_merged.feature_name = binning_plans.feature_name
            and values_merged.window_start = binning_plans.window_start
    where
        values_merged.is_missing = 0
        and binning_plans.is_sturges_binned = 0

),

values_binned as (

    select
        model_name,
        feature_name,
        window_start,
        n_reference_rows,
        n_current_rows,
        case
            when value_number < cast(guessed_bin_index as {{ type_double() }}) * bin_step + min_value
                then guessed_bin_index - 1
            when
                guessed_bin_index < n_sturges_bins - 1
                and value_number >= cast(guessed_bin_index + 1 as {{ type_double() }}) * bin_step + min_value
                then guessed_bin_index + 1
            else guessed_bin_index
        end as bin_index

    from sturges_values_guessed

    union all

    select
        model_name,
        feature_name,
        window_start,
        n_reference_rows,
        n_current_rows,
        bin_index

    from distinct_values_binned

),

bins_counted as (

    select
        model_name,
        feature_name,
        window_start,
        bin_index,
        sum(n_reference_rows) as n_reference_rows,
        sum(n_current_rows) as n_current_rows

    from values_binned
    group by
        model_name,
        feature_name,
        bin_index,
        window_start

),

{# Shares are count / n per side (np.histogram(...)[0] / len(data); value_counts / len). #}
bin_shares as (

    select
        bins_counted.model_name,
        bins_counted.feature_name,
        bins_counted.window_start,
        bins_counted.bin_index,
        cast(bins_counted.n_reference_rows as {{ type_double() }})
        / cast(nullif(binning_plans.n_reference, 0) as {{ type_double() }}) as reference_share,
        cast(bins_counted.n_current_rows as {{ type_double() }})
        / cast(nullif(binning_plans.n_current, 0) as {{ type_double() }}) as current_share

    from bins_counted
    inner join binning_plans
        on
            bins_counted.model_name = binning_plans.model_name
            and bins_counted.feature_name = binning_plans.feature_name
            and bins_counted.window_start = binning_plans.window_start

),

{#
    Per side: what its zero shares become for PSI (get_binned_data, feel_zeroes=True), and the
    share total scipy's jensenshannon divides by. Sturges bins empty on both sides have no row in
    bin_shares: they are counted here and, for PSI, hold each side's zero-share fill.
#}
share_totals as (

    select
        bin_shares.model_name,
        bin_shares.feature_name,
        bin_shares.window_start,
        min(case when bin_shares.reference_share > 0 then bin_shares.reference_share end)
            as min_reference_share,
        min(case when bin_shares.current_share > 0 then bin_shares.current_share end)
            as min_current_share,
        sum(bin_shares.reference_share) as reference_share_total,
        sum(bin_shares.current_share) as current_share_total,
        coalesce(max(binning_plans.n_sturges_bins), count(*)) as n_bins,
        coalesce(max(binning_plans.n_sturges_bins) - count(*), 0) as n_bins_empty_on_both_sides

    from bin_shares
    inner join binning_plans
        on
            bin_shares.model_name = binning_plans.model_name
            and bin_shares.feature_name = binning_plans.feature_name
            and bin_shares.window_start = binning_plans.window_start
    group by
        bin_shares.model_name,
        bin_shares.feature_name,
        bin_shares.window_start

),

share_summaries as (

    select
        *,
        {{ evidently_zero_share_fill('min_reference_share') }} as reference_zero_fill,
        {{ evidently_zero_share_fill('min_current_share') }} as current_zero_fill

    from share_totals

),

filled_bin_shares as (

    select
        bin_shares.model_name,
        bin_shares.feature_name,
        bin_shares.window_start,
        bin_shares.reference_share,
        bin_shares.current_share,
        case
            when bin_shares.reference_share > 0 then bin_shares.reference_share
            else share_summaries.reference_zero_fill
        end as reference_share_filled,
        case
            when bin_shares.current_share > 0 then bin_shares.current_share
            else share_summaries.current_zero_fill
        end as current_share_filled,
        bin_shares.reference_share / share_summaries.reference_share_total as reference_probability,
        bin_shares.current_share / share_summaries.current_share_total as current_probability

    from bin_shares
    inner join share_summaries
        on
            bin_shares.model_name = share_summaries.model_name
            and bin_shares.feature_name = share_summaries.feature_name
            and bin_shares.window_start = share_summaries.window_start

),

{#
    psi.py: PSI = sum((p_ref - p_cur) * ln(p_ref / p_cur)) over the zero-filled shares.
    jensenshannon.py → scipy.spatial.distance.jensenshannon (base e) over the unfilled shares:
    p = p / sum(p), q = q / sum(q), m = (p + q) / 2, js = sum(rel_entr(p, m)) + sum(rel_entr(q, m)),
    rel_entr(x, y) = x * ln(x / y) for x > 0 and 0 for x = 0; distance = sqrt(js / 2).
#}
bin_terms as (

    select
        model_name,
        feature_name,
        window_start,
        (reference_share_filled - current_share_filled)
        * ln(reference_share_filled / current_share_filled) as psi_term,
        case
            when reference_probability > 0
                then
                    reference_probability
                    * ln(reference_probability / ((reference_probability + current_probability) / 2))
            else 0
        end as reference_relative_entropy,
        case
            when current_probability > 0
                then
                    current_probability
                    * ln(current_probability / ((reference_probability + current_probability) / 2))
            else 0
        end as current_relative_entropy

    from filled_bin_shares

),

binned_statistics as (

    select
        bin_terms.model_name,
        bin_terms.feature_name,
        bin_terms.window_start,
        max(share_summaries.n_bins) as n_bins,
        sum(bin_terms.psi_term)
        + max(
            share_summaries.n_bins_empty_on_both_sides
            * (share_summaries.reference_zero_fill - share_summaries.current_zero_fill)
            * ln(share_summaries.reference_zero_fill / share_summaries.current_zero_fill)
        ) as psi,
        sum(bin_terms.reference_relative_entropy)
        + sum(bin_terms.current_relative_entropy) as js_divergence_doubled

    from bin_terms
    inner join share_summaries
        on
            bin_terms.model_name = share_summaries.model_name
            and bin_terms.feature_name = share_summaries.feature_name
            and bin_terms.window_start = share_summaries.window_start
    group by
        bin_terms.model_name,
        bin_terms.feature_name,
        bin_terms.window_start

),

{#
    scipy.stats.wasserstein_distance(reference, current) (_cdf_distance, p = 1): over the sorted
    distinct values x_k of both sides, sum(|F_ref(x_k) - F_cur(x_k)| * (x_{k+1} - x_k)) with
    F(x) = (count of values <= x) / n, from integer counts as scipy computes it. The reference's
    squared deviations give np.std(reference) (ddof 0) in the next CTE.
#}
cumulative_counts as (

    select
        values_merged.model_name,
        values_merged.feature_name,
        values_merged.window_start,
        values_merged.value_number,
        sum(values_merged.n_reference_rows) over (
            partition by values_merged.model_name, values_merged.feature_name, values_merged.window_start
            order by values_merged.value_number
            rows between unbounded preceding and current row
        ) as n_reference_at_or_below,
        sum(values_merged.n_current_rows) over (
            partition by values_merged.model_name, values_merged.feature_name, values_merged.window_start
            order by values_merged.value_number
            rows between unbounded preceding and current row
        ) as n_current_at_or_below,
        lead(values_merged.value_number) over (
            partition by values_merged.model_name, values_merged.feature_name, values_merged.window_start
            order by values_merged.value_number
        ) as next_value_number,
        cast(values_merged.n_reference_rows as {{ type_double() }})
        * (values_merged.value_number - binning_plans.reference_mean)
        * (values_merged.value_number - binning_plans.reference_mean) as reference_squared_deviation,
        binning_plans.n_reference,
        binning_plans.n_current

    from values_merged
    inner join binning_plans
        on
            values_merged.model_name = binning_plans.model_name
            and values_merged.feature_name = binning_plans.feature_name
            and values_merged.window_start = binning_plans.window_start
    where
        values_merged.is_missing = 0
        and values_merged.feature_type = 'numeric'
        and binning_plans.n_reference > 0
        and binning_plans.n_current > 0

),

wasserstein_statistics as (

    select
        model_name,
        feature_name,
        window_start,
        sum(
            abs(
                cast(n_reference_at_or_below as {{ type_double() }})
                / cast(n_reference as {{ type_double() }})
                - cast(n_current_at_or_below as {{ type_double() }}) / cast(n_current as {{ type_double() }})
            )
            * (next_value_number - value_number)
        ) as wasserstein_distance,
        sqrt(sum(reference_squared_deviation) / cast(max(n_reference) as {{ type_double() }}))
            as reference_std

    from cumulative_counts
    group by
        model_name,
        feature_name,
        window_start

),

final as (

    select
        binning_plans.model_name,
        binning_plans.reference_id,
        binning_plans.feature_name,
        binning_plans.feature_type,
        cast(binning_plans.n_reference as {{ dbt.type_bigint() }}) as n_reference,
        cast(binning_plans.n_current as {{ dbt.type_bigint() }}) as n_current,
        {# Evidently refuses an empty side ("An empty column ... was provided"): all NULL then. #}
        case
            when binning_plans.n_reference > 0 and binning_plans.n_current > 0
                then cast(binned_statistics.n_bins as {{ dbt.type_int() }})
        end as n_bins,
        case
            when binning_plans.n_reference > 0 and binning_plans.n_current > 0
                then binned_statistics.psi
        end as psi,
        {# rounding can leave js a hair below 0 for near-identical shares: numpy would give NaN #}
        case
            when binning_plans.n_reference > 0 and binning_plans.n_current > 0
                then sqrt(
                    case
                        when
                            binned_statistics.js_divergence_doubled > 0
                            then binned_statistics.js_divergence_doubled
                        else 0
                    end / 2
                )
        end as js_distance,
        {# wasserstein_distance_norm.py: W1 / max(np.std(reference), 0.001) #}
        wasserstein_statistics.wasserstein_distance
        / case
            when wasserstein_statistics.reference_std > cast(1e-3 as {{ type_double() }})
                then wasserstein_statistics.reference_std
            else cast(1e-3 as {{ type_double() }})
        end as wasserstein_normed,
        binning_plans.is_sturges_binned = 1 as is_sturges_binned,
        binning_plans.is_integer_valued = 1 as is_integer_valued,
        binning_plans.window_start,
        binning_plans.window_end,
        binning_plans.max_ingest_seq

    from binning_plans
    left join binned_statistics
        on
            binning_plans.model_name = binned_statistics.model_name
            and binning_plans.feature_name = binned_statistics.feature_name
            and binning_plans.window_start = binned_statistics.window_start
    left join wasserstein_statistics
        on
            binning_plans.model_name = wasserstein_statistics.model_name
            and binning_plans.feature_name = wasserstein_statistics.feature_name
            and binning_plans.window_start = wasserstein_statistics.window_start

)

select * from final
