{#
    Student's t distribution for an integer number of degrees of freedom, at compile time (plain
    Jinja floats: the result is a constant in the SQL, the same on every engine).

    student_t_quantile(p, df): the p-quantile (0.5 < p < 1), by bisection on the exact CDF.
    _student_t_cdf(t, df), t >= 0: the closed forms for integer df (Abramowitz and Stegun 26.7.3
    and 26.7.4) in theta = atan(t / sqrt(df)), whose sine and cosine are algebraic.
    _atan(x), x >= 0: three half-angle reductions, then the Taylor series.
#}

{% macro student_t_quantile(p, df) %}
    {%- if not (0.5 < p < 1) or df < 1 or df != df | int -%}
        {{ exceptions.raise_compiler_error(
            "student_t_quantile needs 0.5 < p < 1 and a positive integer df, got p=" ~ p ~ ", df=" ~ df
        ) }}
    {%- endif -%}
    {%- set bounds = namespace(low=0.0, high=1.0) -%}
    {%- for _ in range(64) if _student_t_cdf(bounds.high, df | int) < p -%}
        {%- set bounds.high = bounds.high * 2 -%}
    {%- endfor -%}
    {%- for _ in range(200) -%}
        {%- set middle = (bounds.low + bounds.high) / 2 -%}
        {%- if _student_t_cdf(middle, df | int) < p -%}
            {%- set bounds.low = middle -%}
        {%- else -%}
            {%- set bounds.high = middle -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return((bounds.low + bounds.high) / 2) }}
{% endmacro %}

{% macro _student_t_cdf(t, df) %}
    {%- set pi = 3.141592653589793 -%}
    {%- set x = t / (df ** 0.5) -%}
    {%- set cosine = 1 / ((1 + x * x) ** 0.5) -%}
    {%- set sine = x * cosine -%}
    {%- set series = namespace(term=1.0, total=1.0) -%}
    {%- if df % 2 == 1 -%}
        {#- A(t) = 2/pi (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ... up to cos^(df-3))) #}
        {%- for k in range(1, (df - 1) // 2) -%}
            {%- set series.term = series.term * (2 * k) / (2 * k + 1) * cosine * cosine -%}
            {%- set series.total = series.total + series.term -%}
        {%- endfor -%}
        {%- set inner = sine * cosine * series.total if df > 1 else 0.0 -%}
        {%- set central = 2 / pi * (_atan(x) + inner) -%}
    {%- else -%}
        {#- A(t) = sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ... up to cos^(df-2)) #}
        {%- for k in range(1, df // 2) -%}
            {%- set series.term = series.term * (2 * k - 1) / (2 * k) * cosine * cosine -%}
            {%- set series.total = series.total + series.term -%}
        {%- endfor -%}
        {%- set central = sine * series.total -%}
    {%- endif -%}
    {{ return((1 + central) / 2) }}
{% endmacro %}

{% macro _atan(x) %}
    {%- set reduced = namespace(value=x) -%}
    {%- for _ in range(3) -%}
        {%- set reduced.value = reduced.value / (1 + (1 + reduced.value * reduced.value) ** 0.5) -%}
    {%- endfor -%}
    {%- set series = namespace(power=reduced.value, total=0.0) -%}
    {%- for k in range(40) -%}
        {%- set term = series.power / (2 * k + 1) -%}
        {%- set series.total = series.total - term if k % 2 else series.total + term -%}
        {%- set series.power = series.power * reduced.value * reduced.value -%}
    {%- endfor -%}
    {{ return(8 * series.total) }}
{% endmacro %}
