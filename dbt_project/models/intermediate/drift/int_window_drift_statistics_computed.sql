{#
    Every drift statistic of every feature (pseudo-features `__prediction__` and `__probability__`
    included) of every counted window against its reference, from the bin count table
    (int_window_bin_counts_aggregated) and the frozen reference summary only, never from rows.
    The formulas, epsilon floors and approximations are documented in the marts' doc blocks
    (models/marts/drift/_drift__docs.md); in short, per bin b with window count c_b, reference count
    r_b, shares p_b = c_b / n, q_b = r_b / m, floored shares p~ = max(p, ε), q~ = max(q, ε):
    - psi = Σ (p~ - q~) ln(p~ / q~); kl_divergence = Σ p~ ln(p~ / q~);
      js_distance = sqrt(½ Σ p~ ln(p~ / m~) + ½ Σ q~ ln(q~ / m~)), m~ = (p~ + q~) / 2;
    - hellinger = sqrt(½ Σ (√p - √q)²); l_infinity (categorical) = max |p - q|;
    - numeric, over the ordered interval bins (NULL bin left out, shares renormalised to the
      non-NULL rows): ks_statistic = max |F_cur - F_ref| at the bin edges; wasserstein_normed =
      ∫ |F_cur - F_ref| dx with the CDFs linear inside each bin (values uniform in their bin), the
      open end bins closed at the reference min / max, divided by the reference std (ddof 0);
    - chi2_statistic = Σ (c_b - n q~_b)² / (n q~_b) over bins with rows on either side,
      chi2_df = (bins with reference rows) - 1, chi2_p_value = Q(df / 2, chi2 / 2).
#}

{%- set epsilon = 'cast(' ~ var('drift_share_epsilon') ~ ' as ' ~ type_double() ~ ')' -%}
{%- set max_terms = var('drift_chi2_max_terms') | int -%}
{%- set erfc_series_terms = 80 -%}
{%- if max_terms < erfc_series_terms -%}
    {{ exceptions.raise_compiler_error("var drift_chi2_max_terms must be at least " ~ erfc_series_terms ~ ", got " ~ max_terms) }}
{%- endif %}

with

window_bin_counts as (

    select * from {{ ref('int_window_bin_counts_aggregated') }}

),

window_references as (

    select * from {{ ref('int_window_references') }}

),

reference_bins as (

    select * from {{ ref('int_reference_bins_frozen') }}

),

numbers as (

    {{ dbt.generate_series(max_terms) }}

),

current_counts as (

    {#- the window's current reference only (a window whose reference changed may keep stale counts) #}
    select window_bin_counts.*
    from window_bin_counts
    inner join window_references
        on
            window_bin_counts.model_name = window_references.model_name
            and window_bin_counts.window_start = window_references.window_start
            and window_bin_counts.reference_id = window_references.reference_id

),

bin_counts as (

    select
        current_counts.model_name,
        current_counts.feature_name,
        reference_bins.feature_type,
        current_counts.reference_id,
        current_counts.bin_id,
        case
            when reference_bins.feature_type = 'numeric' and reference_bins.bin_label <> '__null__'
                then 1
            else 0
        end as is_interval_bin,
        coalesce(reference_bins.lower_bound, reference_bins.reference_min) as interval_lower,
        coalesce(reference_bins.upper_bound, reference_bins.reference_max) as interval_upper,
        reference_bins.reference_std,
        cast(current_counts.n_rows as {{ type_double() }}) as n_rows,
        cast(current_counts.n_reference_rows as {{ type_double() }}) as n_reference_rows,
        current_counts.window_start,
        current_counts.window_end

    from current_counts
    inner join reference_bins
        on
            current_counts.model_name = reference_bins.model_name
            and current_counts.reference_id = reference_bins.reference_id
            and current_counts.feature_name = reference_bins.feature_name
            and current_counts.bin_id = reference_bins.bin_id

),

bin_totals as (

    select
        *,
        sum(n_rows) over (partition by model_name, feature_name, window_start) as n_current,
        sum(n_reference_rows) over (partition by model_name, feature_name, window_start) as n_reference,
        sum(n_rows * is_interval_bin) over (partition by model_name, feature_name, window_start)
            as n_current_not_null,
        sum(n_reference_rows * is_interval_bin) over (partition by model_name, feature_name, window_start)
            as n_reference_not_null,
        sum(n_rows * is_interval_bin) over (
            partition by model_name, feature_name, window_start
            order by bin_id
            rows between unbounded preceding and current row
        ) as cumulative_rows,
        sum(n_reference_rows * is_interval_bin) over (
            partition by model_name, feature_name, window_start
            order by bin_id
            rows between unbounded preceding and current row
        ) as cumulative_reference_rows

    from bin_counts

),

bin_shares as (

    select
        *,
        n_rows / nullif(n_current, 0) as current_share,
        n_reference_rows / nullif(n_reference, 0) as reference_share,
        greatest(n_rows / nullif(n_current, 0), {{ epsilon }}) as current_share_floored,
        greatest(n_reference_rows / nullif(n_reference, 0), {{ epsilon }}) as reference_share_floored,
        cumulative_rows / nullif(n_current_not_null, 0)
        - cumulative_reference_rows / nullif(n_reference_not_null, 0) as cdf_difference

    from bin_totals

),

bin_terms as (

    select
        *,
        coalesce(
            lag(cdf_difference) over (
                partition by model_name, feature_name, window_start, is_interval_bin
                order by bin_id
            ),
            0.0
        ) as cdf_difference_at_lower,
        interval_upper - interval_lower as interval_width,
        (current_share_floored + reference_share_floored) / 2 as mixture_share_floored,
        n_current * reference_share_floored as expected_rows

    from bin_shares

),

bin_contributions as (

    select
        *,
        (current_share_floored - reference_share_floored)
        * ln(current_share_floored / reference_share_floored) as psi_term,
        current_share_floored * ln(current_share_floored / reference_share_floored) as kl_term,
        current_share_floored * ln(current_share_floored / mixture_share_floored)
        + reference_share_floored * ln(reference_share_floored / mixture_share_floored) as js_term,
        (sqrt(current_share) - sqrt(reference_share)) * (sqrt(current_share) - sqrt(reference_share))
            as hellinger_term,
        abs(current_share - reference_share) as share_difference,
        {#- ∫ |D| over the bin with D linear from cdf_difference_at_lower to cdf_difference #}
        case
            when is_interval_bin = 0 then null
            when cdf_difference_at_lower * cdf_difference >= 0
                then interval_width * (abs(cdf_difference_at_lower) + abs(cdf_difference)) / 2
            else
                interval_width
                * (cdf_difference_at_lower * cdf_difference_at_lower + cdf_difference * cdf_difference)
                / (2 * (abs(cdf_difference_at_lower) + abs(cdf_difference)))
        end as wasserstein_term,
        case
            when n_rows > 0 or n_reference_rows > 0
                then (n_rows - expected_rows) * (n_rows - expected_rows) / expected_rows
        end as chi2_term

    from bin_terms

),

{#-
    Sums run in bin order (a running sum, read at the last bin) rather than as a plain group-by
    sum: a parallel hash aggregate adds doubles in a varying order, so its last digits change from
    run to run on the same data (and exact unit tests flake); the running sum is reproducible on the
    same data (its last bit can still depend on the size of the table the engine evaluates).
#}
{%- set cell = 'partition by model_name, feature_name, window_start' %}
{%- set running = cell ~ ' order by bin_id rows between unbounded preceding and current row' %}

running_sums as (

    select
        model_name,
        feature_name,
        feature_type,
        reference_id,
        window_start,
        window_end,
        n_reference,
        n_current,
        n_current_not_null,
        n_reference_not_null,
        reference_std,
        row_number() over ({{ cell }} order by bin_id desc) as bins_after,
        sum(psi_term) over ({{ running }}) as psi,
        sum(kl_term) over ({{ running }}) as kl_divergence,
        sum(js_term) over ({{ running }}) / 2 as js_divergence,
        sum(hellinger_term) over ({{ running }}) / 2 as hellinger_squared,
        max(share_difference) over ({{ cell }}) as l_infinity,
        max(case when is_interval_bin = 1 then abs(cdf_difference) end) over ({{ cell }}) as ks_statistic,
        sum(wasserstein_term) over ({{ running }}) as wasserstein_distance,
        sum(chi2_term) over ({{ running }}) as chi2_statistic,
        sum(case when n_reference_rows > 0 then 1 else 0 end) over ({{ cell }}) - 1 as chi2_df

    from bin_contributions

),

feature_statistics as (

    select * from running_sums
    where bins_after = 1

),

{{ chi2_p_value_ctes('feature_statistics', ['model_name', 'feature_name', 'window_start'], max_terms) }},

final as (

    select
        feature_statistics.model_name,
        feature_statistics.feature_name,
        feature_statistics.feature_type,
        feature_statistics.reference_id,
        cast(feature_statistics.n_reference as {{ dbt.type_bigint() }}) as n_reference,
        cast(feature_statistics.n_current as {{ dbt.type_bigint() }}) as n_current,
        cast(feature_statistics.psi as {{ type_double() }}) as psi,
        cast(sqrt(greatest(feature_statistics.js_divergence, 0.0)) as {{ type_double() }}) as js_distance,
        cast(feature_statistics.kl_divergence as {{ type_double() }}) as kl_divergence,
        cast(sqrt(greatest(feature_statistics.hellinger_squared, 0.0)) as {{ type_double() }}) as hellinger,
        cast(
            case when feature_statistics.feature_type = 'categorical' then feature_statistics.l_infinity end
            as {{ type_double() }}
        ) as l_infinity,
        cast(
            case
                when
                    feature_statistics.feature_type = 'numeric'
                    and feature_statistics.n_current_not_null > 0
                    and feature_statistics.n_reference_not_null > 0
                    then feature_statistics.ks_statistic
            end as {{ type_double() }}
        ) as ks_statistic,
        cast(
            case
                when
                    feature_statistics.feature_type = 'numeric'
                    and feature_statistics.n_current_not_null > 0
                    and feature_statistics.n_reference_not_null > 0
                    then feature_statistics.wasserstein_distance / nullif(feature_statistics.reference_std, 0)
            end as {{ type_double() }}
        ) as wasserstein_normed,
        cast(
            case when feature_statistics.chi2_df >= 1 then feature_statistics.chi2_statistic end
            as {{ type_double() }}
        ) as chi2_statistic,
        cast(
            case
                when feature_statistics.chi2_df not between 1 and {{ 2 * max_terms }} then null
                when feature_statistics.chi2_statistic = 0 then 1.0
                else chi2_p_values.chi2_p_value
            end as {{ type_double() }}
        ) as chi2_p_value,
        cast(feature_statistics.chi2_df as {{ dbt.type_int() }}) as chi2_df,
        feature_statistics.window_start,
        feature_statistics.window_end

    from feature_statistics
    left join chi2_p_values
        on
            feature_statistics.model_name = chi2_p_values.model_name
            and feature_statistics.feature_name = chi2_p_values.feature_name
            and feature_statistics.window_start = chi2_p_values.window_start

)

select * from final
