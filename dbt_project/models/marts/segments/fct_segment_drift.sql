{#
    Segment drift: every feature's drift within every segment (segment column × value, see
    int_segment_bin_counts) of every window, as a test with a p-value, and the Benjamini-Hochberg
    q-value over all of the model's segment tests, so that many tests do not mean many false alarms.
    Per (model, segment_name, segment_value, feature_name, window_start), over the bins b with rows
    on either side, window count c_b (n = Σ c_b), reference count r_b (m = Σ r_b), t_b = c_b + r_b:
    - drift_score: the PSI of the segment's window against the segment's reference, shares floored
      at var drift_share_epsilon as in fct_feature_drift;
    - chi2_statistic: Pearson's χ² test of homogeneity of the 2 × k table (the window's and the
      reference's rows of the segment are two samples of one distribution under no drift):
      Σ (c_b − n t_b / N)² / (n t_b / N) + (r_b − m t_b / N)² / (m t_b / N), N = n + m;
      chi2_df = k − 1; p_value = P[χ²_df >= chi2_statistic] (macro chi2_p_value_ctes), NULL when the
      test is not made (is_below_min_rows: fewer than min_rows rows on a side; or a single bin);
    - q_value: Benjamini-Hochberg over the model's tests with a p-value (m_tests of them, p sorted
      ascending, rank i): q_(i) = min(1, min_{j >= i} m_tests p_(j) / j); is_drifted: q_value <= fdr
      (spec segment_drift.fdr). The family is every segment test in this table, every window, so a
      home built at once and one built run by run agree; the q-values of earlier windows can move a
      little as the family grows.
    Rebuilt in full on every run from the (small, incremental) bin counts.
#}

{%- set epsilon = 'cast(' ~ var('drift_share_epsilon') ~ ' as ' ~ type_double() ~ ')' -%}
{%- set max_terms = var('drift_chi2_max_terms') | int -%}
{%- set keys = ['model_name', 'segment_name', 'segment_value', 'feature_name', 'window_start'] -%}
{%- set cell = 'partition by ' ~ keys | join(', ') -%}
{%- set running = cell ~ ' order by bin_id rows between unbounded preceding and current row' %}

with

bin_counts as (

    select * from {{ ref('int_segment_bin_counts') }}

),

window_references as (

    select * from {{ ref('int_window_references') }}

),

model_segments as (

    select * from {{ ref('stg_raw__model_segments') }}

),

numbers as (

    {{ dbt.generate_series(max_terms) }}

),

current_counts as (

    {#- the window's current reference and the spec's current segment columns only #}
    select
        bin_counts.*,
        model_segments.min_rows,
        model_segments.fdr

    from bin_counts
    inner join window_references
        on
            bin_counts.model_name = window_references.model_name
            and bin_counts.window_start = window_references.window_start
            and bin_counts.reference_id = window_references.reference_id
    inner join model_segments
        on
            bin_counts.model_name = model_segments.model_name
            and bin_counts.segment_name = model_segments.segment_name

),

cell_totals as (

    select
        *,
        cast(n_rows + n_reference_rows as {{ type_double() }}) as n_bin,
        cast(sum(n_rows) over ({{ cell }}) as {{ type_double() }}) as n_current,
        cast(sum(n_reference_rows) over ({{ cell }}) as {{ type_double() }}) as n_reference

    from current_counts

),

bin_contributions as (

    select
        *,
        greatest(n_rows / nullif(n_current, 0), {{ epsilon }}) as current_share_floored,
        greatest(n_reference_rows / nullif(n_reference, 0), {{ epsilon }}) as reference_share_floored,
        n_current * n_bin / nullif(n_current + n_reference, 0) as expected_current,
        n_reference * n_bin / nullif(n_current + n_reference, 0) as expected_reference

    from cell_totals

),

bin_terms as (

    select
        *,
        (current_share_floored - reference_share_floored)
        * ln(current_share_floored / reference_share_floored) as psi_term,
        case
            when n_current > 0 and n_reference > 0
                then
                    (n_rows - expected_current) * (n_rows - expected_current) / expected_current
                    + (n_reference_rows - expected_reference)
                    * (n_reference_rows - expected_reference)
                    / expected_reference
        end as chi2_term

    from bin_contributions

),

running_sums as (

    {#- sums in bin order, read at the last bin: reproducible on the same data (a hash aggregate is not) #}
    select
        model_name,
        segment_name,
        segment_value,
        feature_name,
        feature_type,
        reference_id,
        window_start,
        window_end,
        n_current,
        n_reference,
        min_rows,
        fdr,
        row_number() over ({{ cell }} order by bin_id desc) as bins_after,
        sum(psi_term) over ({{ running }}) as psi,
        sum(chi2_term) over ({{ running }}) as chi2_statistic,
        count(*) over ({{ cell }}) - 1 as chi2_df

    from bin_terms

),

segment_tests as (

    select
        *,
        n_current < min_rows or n_reference < min_rows as is_below_min_rows

    from running_sums
    where bins_after = 1

),

tested as (

    select * from segment_tests
    where
        not is_below_min_rows
        and chi2_df >= 1

),

{{ chi2_p_value_ctes('tested', keys, max_terms) }},

p_values as (

    select
        segment_tests.*,
        case
            when segment_tests.is_below_min_rows or segment_tests.chi2_df < 1 then null
            when segment_tests.chi2_df > {{ 2 * max_terms }} then null
            when segment_tests.chi2_statistic = 0 then 1.0
            else chi2_p_values.chi2_p_value
        end as p_value

    from segment_tests
    left join chi2_p_values
        on
            segment_tests.model_name = chi2_p_values.model_name
            and segment_tests.segment_name = chi2_p_values.segment_name
            and segment_tests.segment_value = chi2_p_values.segment_value
            and segment_tests.feature_name = chi2_p_values.feature_name
            and segment_tests.window_start = chi2_p_values.window_start

),

ranked as (

    select
        model_name,
        segment_name,
        segment_value,
        feature_name,
        window_start,
        p_value,
        count(*) over (partition by model_name) as n_tests,
        row_number() over (
            partition by model_name
            order by p_value, segment_name, segment_value, feature_name, window_start
        ) as p_rank

    from p_values
    where p_value is not null

),

q_values as (

    select
        model_name,
        segment_name,
        segment_value,
        feature_name,
        window_start,
        least(
            1.0,
            min(n_tests * p_value / p_rank) over (
                partition by model_name
                order by p_rank desc
                rows between unbounded preceding and current row
            )
        ) as q_value

    from ranked

),

final as (

    select
        p_values.model_name,
        p_values.segment_name,
        p_values.segment_value,
        p_values.feature_name,
        p_values.feature_type,
        p_values.reference_id,
        p_values.window_start,
        p_values.window_end,
        cast(p_values.n_current as {{ dbt.type_bigint() }}) as n_current,
        cast(p_values.n_reference as {{ dbt.type_bigint() }}) as n_reference,
        cast(p_values.psi as {{ type_double() }}) as drift_score,
        cast(
            case when p_values.chi2_df >= 1 then p_values.chi2_statistic end as {{ type_double() }}
        ) as chi2_statistic,
        cast(p_values.chi2_df as {{ dbt.type_int() }}) as chi2_df,
        cast(p_values.p_value as {{ type_double() }}) as p_value,
        cast(q_values.q_value as {{ type_double() }}) as q_value,
        cast(p_values.fdr as {{ type_double() }}) as fdr,
        p_values.is_below_min_rows,
        coalesce(q_values.q_value <= p_values.fdr, false) as is_drifted

    from p_values
    left join q_values
        on
            p_values.model_name = q_values.model_name
            and p_values.segment_name = q_values.segment_name
            and p_values.segment_value = q_values.segment_value
            and p_values.feature_name = q_values.feature_name
            and p_values.window_start = q_values.window_start

)

select * from final
