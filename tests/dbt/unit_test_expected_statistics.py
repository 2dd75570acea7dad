"""Expected values of the dbt unit tests of the drift statistics, computed independently of the SQL:
with numpy/scipy (tests/dbt/driftmart_dbt_helpers.py: drift_statistics, scipy.stats.chi2.sf) and,
for js_distance and chi2_p_value, exactly (rational shares, 60-digit logarithms and incomplete
gamma series, rounded once to a double: exact_js_distance, exact_chi2_p_value).

The fixtures below are the unit tests' inputs (bin count tables and frozen bins). Run

    .venv/bin/python tests/dbt/unit_test_expected_statistics.py

to print the expected rows, or with `--write` to regenerate
dbt_project/models/intermediate/drift/_drift__statistics_unit_tests.yml from them.
tests/dbt/test_unit_test_expectations.py checks that the YAML in the repository still equals what
this script computes, and that each of its js_distance / chi2_p_value values is within 1e-12
relative of the exact value.
"""

from __future__ import annotations

import decimal
import math
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.dbt import driftmart_dbt_helpers as helpers

YAML_PATH = (
    helpers.DBT_PROJECT_DIR / "models" / "intermediate" / "drift" / "_drift__statistics_unit_tests.yml"
)
MODEL = "int_window_drift_statistics_computed"
REFERENCE = "model_version:1"

# Bin catalogues: feature -> (type, bins). Numeric bins: (label, lower, upper), then the summary.
NUMERIC_BINS: dict[str, dict[str, Any]] = {
    # [-inf, 1), [1, 2), [2, +inf), __null__; reference min -0.5, max 3.5, std 0.9
    "x": {"edges": [1.0, 2.0], "min": -0.5, "max": 3.5, "std": 0.9},
    # a single-valued reference: [-inf, 5), [5, +inf), __null__; std 0
    "y": {"edges": [5.0], "min": 5.0, "max": 5.0, "std": 0.0},
}
CATEGORICAL_BINS: dict[str, list[str]] = {"c": ["a", "b"]}

# (feature, window): (reference counts, current counts) in bin_id order.
EVERY_STATISTIC: dict[tuple[str, str], tuple[list[int], list[int]]] = {
    # numeric with NULLs the reference lacks
    ("x", "2024-01-01"): ([30, 40, 30, 0], [10, 20, 60, 10]),
    # a window where every value is NULL: no KS / Wasserstein
    ("x", "2024-01-02"): ([30, 40, 30, 0], [0, 0, 0, 50]),
    # categorical: half of the window is a category the reference never saw (__unseen__)
    ("c", "2024-01-01"): ([50, 50, 0, 0], [20, 30, 50, 0]),
    # the reference's exact shares: every statistic 0, p-value 1
    ("c", "2024-01-02"): ([50, 50, 0, 0], [25, 25, 0, 0]),
    # single-valued reference (std 0): Wasserstein NULL, KS defined
    ("y", "2024-01-01"): ([0, 4, 1], [3, 2, 0]),
}

# Chi-squared p-values: categorical features k<df> with df + 1 reference categories; (feature,
# window): (reference counts, current counts) of the categories (__unseen__ and __null__ empty).
CHI2_P_VALUES: dict[tuple[str, str], tuple[list[int], list[int]]] = {
    ("k1", "2024-01-01"): ([50, 50], [52, 48]),  # df 1, x = 0.16: the erfc power series
    ("k1", "2024-01-02"): ([50, 50], [70, 30]),  # df 1, x = 16: the erfc continued fraction
    ("k1", "2024-01-03"): ([500, 500], [800, 200]),  # df 1, x = 360: p ~ 1e-80
    ("k1", "2024-01-04"): ([50, 50], [2000, 0]),  # df 1, x = 2000: p underflows to 0
    ("k2", "2024-01-01"): ([40, 30, 30], [30, 40, 30]),  # df 2: exp(-x/2)
    ("k3", "2024-01-01"): ([25, 25, 25, 25], [40, 20, 20, 20]),  # df 3, x = 12
    ("k4", "2024-01-01"): ([20, 20, 20, 20, 20], [30, 20, 20, 20, 10]),  # df 4, x = 10
    ("k4", "2024-01-02"): ([20, 20, 20, 20, 20], [100, 0, 0, 0, 0]),  # df 4, x = 400: p ~ 1e-85
    ("k9", "2024-01-01"): ([10] * 10, [12, 8, 10, 10, 10, 10, 10, 10, 11, 9]),  # df 9, x = 1
    ("k9", "2024-01-02"): ([10] * 10, [30, 0, 10, 10, 10, 10, 10, 10, 10, 0]),  # df 9, x = 60
}
CHI2_FEATURES = {"k1": 2, "k2": 3, "k3": 4, "k4": 5, "k9": 10}

# js_distance and chi2_p_value are also computed exactly (exact_values below: rational shares,
# logarithms and the incomplete gamma function to 60 significant digits, then rounded once to the
# nearest double), because numpy/scipy's own doubles can be many ulps off (24 for js_distance k9).
# dbt unit tests compare doubles exactly (the SQL's 0.6891565167793519 against the correctly rounded
# 0.6891565167793516 fails `dbt test`), so a statistic's YAML value is numpy/scipy's or the exact
# one, whichever of the two independent values the SQL gives bit for bit. Where the SQL gives
# neither, the YAML has to carry the SQL's own double: SQL_DOUBLES, each of which expected_rows()
# (and tests/dbt/test_unit_test_expectations.py, on the YAML) holds to within 1e-12 relative of the
# exact value (the comment after each: the exact value, which `dbt test` would reject there).
SQL_DOUBLES: dict[tuple[str, str, str], float] = {
    ("k9", "2024-01-01", "chi2_p_value"): 0.9994375026978326,  # exact 0.9994375026978325
    ("k3", "2024-01-01", "chi2_p_value"): 0.007383160505359766,  # exact 0.007383160505359769
    ("k4", "2024-01-02", "chi2_p_value"): 2.781632018740873e-85,  # exact 2.7816320187408423e-85
    ("k9", "2024-01-02", "chi2_p_value"): 1.340678048395964e-09,  # exact 1.3406780483959613e-09
    ("k1", "2024-01-01", "chi2_p_value"): 0.6891565167793519,  # exact 0.6891565167793516
    ("k1", "2024-01-03", "chi2_p_value"): 2.8156843046193894e-80,  # exact 2.815684304619389e-80
    ("k9", "2024-01-01", "js_distance"): 0.03553322951070072,  # exact 0.035533229510700884
}
# Where numpy/scipy's double is not the SQL's but the exact value is: the YAML carries the exact one.
EXACT_IN_YAML = {("x", "2024-01-01", "js_distance"), ("k4", "2024-01-01", "chi2_p_value")}
EXACT_COLUMNS = ("js_distance", "chi2_p_value")
RELATIVE_TOLERANCE = 1e-12
# Significant digits of the exact computations: 60, plus for the p-value the log10(e) y digits that
# 1 - P(a, y) can lose to cancellation (Q is not much below e^-y where P is near 1).
EXACT_DIGITS = 60

STATISTIC_COLUMNS = (
    "n_reference",
    "n_current",
    "psi",
    "js_distance",
    "kl_divergence",
    "hellinger",
    "l_infinity",
    "ks_statistic",
    "wasserstein_normed",
    "chi2_statistic",
    "chi2_p_value",
    "chi2_df",
)


def feature_bins(feature: str) -> helpers.FeatureBins:
    if feature in NUMERIC_BINS:
        spec = NUMERIC_BINS[feature]
        return helpers.FeatureBins(
            "numeric",
            edges=np.array(spec["edges"]),
            minimum=spec["min"],
            maximum=spec["max"],
            std=spec["std"],
        )
    if feature in CATEGORICAL_BINS:
        return helpers.FeatureBins("categorical", categories=CATEGORICAL_BINS[feature])
    return helpers.FeatureBins(
        "categorical", categories=[f"v{i}" for i in range(1, CHI2_FEATURES[feature] + 1)]
    )


def _bin_rows(feature: str) -> list[dict[str, Any]]:
    bins = feature_bins(feature)
    rows = []
    if bins.feature_type == "numeric":
        edges = [None, *bins.edges, None]
        for position in range(len(edges) - 1):
            lower, upper = edges[position], edges[position + 1]
            label = f"[{'-inf' if lower is None else lower}, {'+inf' if upper is None else upper})"
            rows.append({"bin_label": label, "lower_bound": lower, "upper_bound": upper})
        rows.append({"bin_label": "__null__", "lower_bound": None, "upper_bound": None})
        summary = {"reference_std": bins.std, "reference_min": bins.minimum, "reference_max": bins.maximum}
    else:
        rows = [{"bin_label": c, "category": c} for c in bins.categories]
        rows += [{"bin_label": "__unseen__", "category": None}, {"bin_label": "__null__", "category": None}]
        summary = {}
    return [
        {
            "model_name": "m",
            "reference_id": REFERENCE,
            "feature_name": feature,
            "feature_type": bins.feature_type,
            "bin_id": bin_id,
            **row,
            **summary,
        }
        for bin_id, row in enumerate(rows, start=1)
    ]


def _padded(feature: str, counts: list[int]) -> list[int]:
    """Pad categorical counts of the chi² features with the empty __unseen__ and __null__ bins."""
    return [*counts, 0, 0] if feature in CHI2_FEATURES else counts


def _decimal(value: Fraction) -> decimal.Decimal:
    return decimal.Decimal(value.numerator) / decimal.Decimal(value.denominator)


def _pi() -> decimal.Decimal:
    """pi to the context's precision (the recipe of Python's decimal documentation)."""
    decimal.getcontext().prec += 2
    three = decimal.Decimal(3)
    last, total, term, n, na, d, da = 0, three, three, 1, 0, 0, 24
    while total != last:
        last = total
        n, na = n + na, na + 8
        d, da = d + da, da + 32
        term = (term * n) / d
        total += term
    decimal.getcontext().prec -= 2
    return +total


def exact_js_distance(reference_counts: list[int], current_counts: list[int]) -> float:
    """js_distance = sqrt(½ Σ p~ ln(p~ / m~) + ½ Σ q~ ln(q~ / m~)) of the rational shares p = c / n,
    q = r / m floored at ε (the exact value of the double drift_share_epsilon), m~ = (p~ + q~) / 2,
    to EXACT_DIGITS significant digits, rounded once to a double."""
    epsilon = Fraction(helpers.EPSILON)
    n, m = sum(current_counts), sum(reference_counts)
    with decimal.localcontext() as context:
        context.prec = EXACT_DIGITS
        total = decimal.Decimal(0)
        for current, reference in zip(current_counts, reference_counts, strict=True):
            p, q = max(Fraction(current, n), epsilon), max(Fraction(reference, m), epsilon)
            mixture = (p + q) / 2
            total += _decimal(p) * _decimal(p / mixture).ln() + _decimal(q) * _decimal(q / mixture).ln()
        return float((total / 2).sqrt())


def exact_chi2_p_value(chi2_statistic: float, df: int) -> float:
    """Q(df / 2, x / 2) = 1 - P(a, y) at the double x, from P(a, y) = y^a e^-y / Γ(a + 1)
    Σ_n y^n / ((a + 1) ... (a + n)) (Abramowitz & Stegun 6.5.29) to EXACT_DIGITS significant digits
    of Q, Γ(a + 1) = a! or √π (1/2)(3/2) ... a, rounded once to a double. No closed form, no erfc:
    not the SQL's way."""
    a, y = Fraction(df, 2), Fraction(chi2_statistic) / 2
    # Γ(a, y) <= y^(a-1) e^-y / (1 - (a - 1) / y) for y > a - 1: at y > 2a, Q < 2 y^(a-1) e^-y / Γ(a),
    # and below half the smallest double that is 0.0 (without the y / ln 10 digits it would need).
    bound = math.log(2) + (float(a) - 1) * math.log(float(y)) - float(y) - math.lgamma(float(a))
    if y > 2 * a and bound < -1075 * math.log(2):
        return 0.0
    digits = EXACT_DIGITS + math.ceil(float(y) / math.log(10))
    with decimal.localcontext() as context:
        context.prec = digits
        gamma = _pi().sqrt() if df % 2 else decimal.Decimal(1)
        z = Fraction(1, 2) if df % 2 else Fraction(1)
        while z <= a:
            gamma *= _decimal(z)
            z += 1
        y_decimal, a_decimal = _decimal(y), _decimal(a)
        term = (a_decimal * y_decimal.ln() - y_decimal).exp() / gamma
        total, n = decimal.Decimal(0), 0
        negligible = decimal.Decimal(10) ** -(digits + 5)
        while n <= y or term > negligible * total:
            total += term
            n += 1
            term *= y_decimal / (a_decimal + n)
        return float(1 - total)


def exact_values(feature: str, window: str, chi2_statistic: float, chi2_df: int) -> dict[str, float]:
    """The exact js_distance and chi2_p_value of a cell (the p-value at its double chi2_statistic:
    p moves by x / 2 ulps per ulp of x, so the exact p of the exact x would not be the SQL's target)."""
    reference_counts, current_counts = {**EVERY_STATISTIC, **CHI2_P_VALUES}[(feature, window)]
    reference, current = _padded(feature, reference_counts), _padded(feature, current_counts)
    p_value = 1.0 if chi2_df < 1 or chi2_statistic == 0 else exact_chi2_p_value(chi2_statistic, chi2_df)
    return {"js_distance": exact_js_distance(reference, current), "chi2_p_value": p_value}


def expected_rows(cells: dict[tuple[str, str], tuple[list[int], list[int]]]) -> list[dict[str, Any]]:
    rows = []
    for (feature, window), (reference_counts, current_counts) in cells.items():
        bins = feature_bins(feature)
        statistics = helpers.drift_statistics(
            bins, np.array(_padded(feature, reference_counts)), np.array(_padded(feature, current_counts))
        )
        row = {"model_name": "m", "feature_name": feature, "window_start": window}
        row.update({column: statistics[column] for column in STATISTIC_COLUMNS})
        exact = exact_values(feature, window, row["chi2_statistic"], row["chi2_df"])
        for column in EXACT_COLUMNS if row["chi2_df"] >= 1 else EXACT_COLUMNS[:1]:
            key = (feature, window, column)
            assert math.isclose(row[column], exact[column], rel_tol=RELATIVE_TOLERANCE), (key, row[column])
            if key in EXACT_IN_YAML:
                row[column] = exact[column]
            if key in SQL_DOUBLES:
                sql_value = SQL_DOUBLES[key]
                assert math.isclose(sql_value, exact[column], rel_tol=RELATIVE_TOLERANCE), (key, sql_value)
                assert sql_value not in (exact[column], row[column]), key  # neither independent value fits
                row[column] = sql_value
        if row["chi2_df"] < 1:
            row["chi2_statistic"] = row["chi2_p_value"] = None
        rows.append(row)
    return rows


def _count_rows(cells: dict[tuple[str, str], tuple[list[int], list[int]]]) -> list[dict[str, Any]]:
    rows = []
    for (feature, window), (reference_counts, current_counts) in cells.items():
        padded = zip(_padded(feature, reference_counts), _padded(feature, current_counts), strict=True)
        for bin_id, (reference, current) in enumerate(padded, start=1):
            rows.append(
                {
                    "model_name": "m",
                    "reference_id": REFERENCE,
                    "feature_name": feature,
                    "bin_id": bin_id,
                    "n_rows": current,
                    "n_reference_rows": reference,
                    "window_start": window,
                }
            )
    return rows


def _flow(row: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if v is None:
            return "null"
        if isinstance(v, (bool, np.bool_)):
            return "true" if v else "false"
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            return repr(float(v))
        text = str(v)
        return f'"{text}"' if any(ch in text for ch in ":[]{},#-+") or text[:1].isdigit() else text

    return "{" + ", ".join(f"{k}: {value(v)}" for k, v in row.items()) + "}"


def _unit_test(
    name: str, description: str, cells: dict, features: list[str], extra_counts: list | None = None
) -> str:
    windows = sorted({window for _, window in cells})
    lines = [
        f"  - name: {name}",
        "    description: >",
        *[f"      {line}" for line in description.strip().splitlines()],
        f"    model: {MODEL}",
        "    given:",
        "      - input: ref('int_window_bin_counts_aggregated')",
        "        rows:",
        *[f"          - {_flow(row)}" for row in _count_rows(cells) + (extra_counts or [])],
        "      - input: ref('int_window_references')",
        "        rows:",
        *[
            f"          - {_flow({'model_name': 'm', 'reference_id': REFERENCE, 'window_start': w})}"
            for w in windows + (["2024-01-09"] if extra_counts else [])
        ],
        "      - input: ref('int_reference_bins_frozen')",
        "        rows:",
        *[f"          - {_flow(row)}" for feature in features for row in _bin_rows(feature)],
        "    expect:",
        "      rows:",
        *[f"        - {_flow(row)}" for row in expected_rows(cells)],
    ]
    return "\n".join(lines)


def render_yaml() -> str:
    stale = [
        # counts of a reference the window no longer uses (model_version:0): left out
        {
            "model_name": "m",
            "reference_id": "model_version:0",
            "feature_name": "x",
            "bin_id": b,
            "n_rows": 5,
            "n_reference_rows": 5,
            "window_start": "2024-01-09",
        }
        for b in (1, 2, 3, 4)
    ]
    every = _unit_test(
        "int_window_drift_statistics_computed_every_statistic",
        """
Every statistic from the bin counts, against numpy/scipy (tests/dbt/unit_test_expected_statistics.py):
a numeric window with NULLs the reference lacks, an all-NULL numeric window (KS and Wasserstein
NULL), a categorical window half of unseen categories (shares floored at epsilon), a window with
the reference's exact shares (all 0, p-value 1), a single-valued reference (std 0: Wasserstein
NULL); stale counts of a reference the window no longer uses are ignored.
""",
        EVERY_STATISTIC,
        ["x", "y", "c"],
        stale,
    )
    chi2 = _unit_test(
        "int_window_drift_statistics_computed_chi2_p_values",
        """
The chi-squared p-value Q(df/2, x/2) at small and large x, for even and odd df (both closed forms,
the erfc series below x/2 = 4 and its continued fraction above, underflow to 0), against
scipy.stats.chi2.sf (tests/dbt/unit_test_expected_statistics.py).
""",
        CHI2_P_VALUES,
        list(CHI2_FEATURES),
    )
    header = (
        "version: 2\n\n"
        "# Generated by tests/dbt/unit_test_expected_statistics.py --write: edit the fixtures there.\n"
        "# Expected values are numpy/scipy's or, for js_distance and chi2_p_value, the exactly computed\n"
        "# double, whichever the SQL gives bit for bit (dbt compares doubles exactly); where it gives\n"
        "# neither, the SQL's own double (SQL_DOUBLES in the script, each within 1e-12 of the exact one).\n\n"
        "unit_tests:\n"
    )
    return header + every + "\n\n" + chi2 + "\n"


if __name__ == "__main__":
    if "--write" in sys.argv:
        YAML_PATH.write_text(render_yaml())
        print(f"wrote {YAML_PATH}")
    else:
        for cells in (EVERY_STATISTIC, CHI2_P_VALUES):
            for row in expected_rows(cells):
                print(_flow(row))
