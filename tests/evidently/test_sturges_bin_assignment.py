"""Fast checks of the two numeric shortcuts int_feature_drift_evidently takes to reproduce numpy's
Sturges histogram in SQL without generating the bin edges (docs/architecture.md §5; the parity with Evidently
itself is in the slow tests next to this file):

- a value's bin is `floor((value - min) / step)` clamped to [0, n_bins - 1], moved by at most one
  position against the two linspace edges around it;
- log2(n) from the `evidently_log2` macros is exact at powers of two, where the number of bins
  `ceil(range / (range / (log2(n) + 1)))` is sensitive to the last bit.
"""

from __future__ import annotations

import duckdb
import jinja2
import numpy as np
import pytest

from tests.evidently.evidently_parity import REPO_ROOT

LOG2_MACROS = REPO_ROOT / "dbt_project" / "macros" / "evidently" / "evidently_log2.sql"


def _sturges_counts_as_in_sql(values: np.ndarray) -> np.ndarray:
    """The model's steps (binning_plans, values_bin_guessed, values_binned) in numpy float64."""
    start, stop = values.min(), values.max()
    value_range = stop - start
    n_bins = int(np.ceil(value_range / (value_range / (np.log2(values.size) + 1.0))))
    step = value_range / n_bins
    guess = np.clip(np.floor((values - start) / step), 0, n_bins - 1).astype(np.int64)

    def edge(index: np.ndarray) -> np.ndarray:
        return index.astype(np.float64) * step + start

    index = np.where(
        values < edge(guess),
        guess - 1,
        np.where((guess < n_bins - 1) & (values >= edge(guess + 1)), guess + 1, guess),
    )
    return np.bincount(index, minlength=n_bins)


def _samples(rng: np.random.Generator, n_samples: int):
    for trial in range(n_samples):
        size = int(rng.integers(22, 3000))
        kind = trial % 4
        if kind == 0:  # any scale and offset
            yield rng.normal(rng.uniform(-1e6, 1e6), 10 ** rng.uniform(-8, 6), size)
        elif kind == 1:  # rounded: many ties
            yield np.round(rng.uniform(-50, 50, size), int(rng.integers(0, 4)))
        elif kind == 2:  # decimal grids
            yield rng.integers(-(10**6), 10**6, size).astype(float) * 10 ** rng.uniform(-9, 3)
        else:  # values on a grid that often falls on the bin edges
            yield rng.uniform(-100, 100) + rng.uniform(1e-3, 3) * rng.integers(0, 40, size)


def test_bin_guess_moved_by_one_reproduces_np_histogram() -> None:
    rng = np.random.default_rng(20240401)
    for values in _samples(rng, 4000):
        if np.unique(values).size < 2:
            continue
        edges = np.histogram_bin_edges(values, bins="sturges")
        expected = np.histogram(values, edges)[0]
        np.testing.assert_array_equal(_sturges_counts_as_in_sql(values), expected)


def _render_log2(variant: str, expression: str) -> str:
    environment = jinja2.Environment()
    template = environment.from_string(LOG2_MACROS.read_text() + f"{{{{ {variant}({expression!r}) }}}}")
    return template.render(type_double=lambda: "double").strip()


@pytest.mark.parametrize("variant", ["default__evidently_log2", "duckdb__evidently_log2"])
def test_log2_macros_exact_at_powers_of_two(variant: str) -> None:
    sql = _render_log2(variant, "cast(n as double)")
    counts = sorted({2**k for k in range(0, 63)} | {2**k + d for k in range(2, 40) for d in (-1, 1)})
    with duckdb.connect() as connection:
        connection.execute("create table counts (n bigint)")
        connection.executemany("insert into counts values (?)", [[n] for n in counts])
        rows = connection.execute(f"select n, {sql} from counts order by n").fetchall()
    for n, log2 in rows:
        expected = float(np.log2(np.float64(n)))
        if n & (n - 1) == 0:
            assert log2 == expected, (variant, n, log2)
        else:
            assert abs(log2 - expected) <= 4 * np.spacing(expected), (variant, n, log2)
            # far from an integer (n < 2^40): the number of bins cannot depend on the last bit
            assert abs(expected - round(expected)) > 100 * np.spacing(expected)
