{#
    Pieces of the χ² p-value, Q(ν/2, x/2) = P[χ²_ν >= x] (the upper regularised incomplete gamma
    function), in portable SQL. ν (degrees of freedom) is an integer, so a = ν/2 is an integer or a
    half-integer and Q has closed forms with positive terms only (no 1 − P cancellation, so small
    p-values keep their relative precision); with y = x/2:
    - ν even, a = j:        Q = Σ_{k=0}^{j-1} exp(-y + k·ln y - ln k!)            (Poisson tail)
    - ν odd,  a = j + 1/2:  Q = erfc(√y) + Σ_{k=1}^{j} exp(-y + (k-1/2)·ln y - ln Γ(k+1/2))
    erfc(√y) = 1 - Σ_{k>=1} exp(-y + (k-1/2)·ln y - ln Γ(k+1/2)) (the power series of P(1/2, y),
    positive terms) for y < 4, and an exponentially convergent trapezoid sum (macro below) for
    y >= 4. ln k! and ln Γ(k+1/2) are running sums of logs over a numbers table. Checked against
    scipy.stats.chi2.sf (tests/dbt).
#}

{#- exp() that gives 0 instead of raising on underflow (PostgreSQL raises below about -745). -#}
{% macro exp_or_zero(expression) -%}
    case when {{ expression }} < -700 then 0.0 else exp({{ expression }}) end
{%- endmacro %}

{#-
    erfc(√y) for y >= 4 by the Matta–Reichel trapezoid sum (an exponentially convergent form of
    erfc(z) = (2z/π) e^{-z²} ∫_0^∞ e^{-u²} / (z² + u²) du with step h = 1/2), as an expression over
    `sum_expression`, the value of Σ_{n=1}^{20} exp(-(n h)²) / ((n h)² + y); the pole term
    2 / (1 - exp(2πz/h)) matters for z < π/h only. Relative error below 2e-15 for 2 <= z <= 26
    (checked against scipy.special.erfc); beyond, exp(-y) underflows to 0 anyway.
-#}
{% macro erfc_trapezoid(half_chi2, sum_expression) -%}
    2 * {{ erfc_trapezoid_step() }} * sqrt({{ half_chi2 }}) * {{ exp_or_zero('-' ~ half_chi2) }} / 3.141592653589793
    * (1 / (2 * {{ half_chi2 }}) + {{ sum_expression }})
    + case
        when sqrt({{ half_chi2 }}) < 3.141592653589793 / {{ erfc_trapezoid_step() }}
            then 2 / (1 - exp(2 * 3.141592653589793 * sqrt({{ half_chi2 }}) / {{ erfc_trapezoid_step() }}))
        else 0
    end
{%- endmacro %}

{% macro erfc_trapezoid_step() -%}0.5{%- endmacro %}

{% macro erfc_trapezoid_terms() -%}20{%- endmacro %}
