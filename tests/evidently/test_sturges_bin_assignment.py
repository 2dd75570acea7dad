"""The two numeric shortcuts int_feature_drift_evidently takes to reproduce numpy's Sturges histogram
in SQL without generating the bin edges (docs/architecture.md §5), checked on the model's own SQL
against numpy (the parity with Evidently itself is in the slow tests next to this file):

- a value's bin is `floor((value - min) / step)` clamped to [0, n_bins - 1], moved by at most one
  position against the two linspace edges around it: the SQL's bin counts per side must be
  `np.histogram(side, np.histogram_bin_edges(reference ++ current, bins="sturges"))`;
- log2(n) from the `evidently_log2` macros is exact at powers of two, where the number of bins
  `ceil(range / (range / (log2(n) + 1)))` is sensitive to the last bit.

The SQL is the model as dbt compiled it for the session's built home (tests/conftest.py built_home:
no dbt run of its own), run on DuckDB over thousands of generated features, one per sample.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path

import duckdb
import jinja2
import numpy as np
import pandas as pd
import pytest

from orchestration.dbt_setup import dbt_target_path
from tests.evidently.evidently_parity import REPO_ROOT

LOG2_MACROS = REPO_ROOT / "dbt_project" / "macros" / "evidently" / "evidently_log2.sql"
MODEL_SQL = Path(
    "compiled", "driftmart", "models", "intermediate", "evidently", "int_feature_drift_evidently.sql"
)
WINDOW_START, WINDOW_END = datetime(2024, 1, 1), datetime(2024, 1, 2)
REFERENCE_ID = "model_version:1"
REFERENCE_SHARE = 0.6  # the first 60 % of a sample is the reference, the rest the window
POWERS_OF_TWO = range(6, 12)  # samples of exactly 2^k values (reference and window together)


def _samples(rng: np.random.Generator, n_samples: int):
    for trial in range(n_samples):
        size = int(rng.integers(40, 3000))
        kind = trial % 4
        if kind == 0:  # any scale and offset
            yield rng.normal(rng.uniform(-1e6, 1e6), 10 ** rng.uniform(-8, 6), size)
        elif kind == 1:  # rounded: many ties (whole numbers when rounded to 0 decimals: numpy's clamp)
            yield np.round(rng.uniform(-50, 50, size), int(rng.integers(0, 4)))
        elif kind == 2:  # decimal grids
            yield rng.integers(-(10**6), 10**6, size).astype(float) * 10 ** rng.uniform(-9, 3)
        else:  # values on a grid that often falls on the bin edges
            yield rng.uniform(-100, 100) + rng.uniform(1e-3, 3) * rng.integers(0, 40, size)
    for k in POWERS_OF_TWO:
        for _ in range(40):
            yield rng.uniform(-100, 100) + rng.uniform(1e-3, 3) * rng.normal(size=2**k)


def _is_integral(values: np.ndarray) -> bool:
    return bool(np.all(values == np.floor(values)))


def _numpy_histograms(values: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(n_bins, reference counts, current counts) as Evidently gets them from numpy: the Sturges
    edges of reference ++ current, on an int64 array when every value is a whole number (what pandas
    gives for a column of ints without a missing value; numpy then raises the width to 1)."""
    array = values.astype(np.int64) if _is_integral(values) else values
    reference, current = np.split(array, [_reference_size(values)])
    edges = np.histogram_bin_edges(array, bins="sturges")
    return len(edges) - 1, np.histogram(reference, edges)[0], np.histogram(current, edges)[0]


def _reference_size(values: np.ndarray) -> int:
    return int(np.ceil(values.size * REFERENCE_SHARE))


@pytest.fixture(scope="module")
def compiled_model(built_home) -> str:
    path = dbt_target_path(built_home) / MODEL_SQL
    sql = path.read_text()
    # The first build of the home compiles the model in full (no `{{ this }}`, no incremental filter).
    assert "computed_windows" not in sql and "int_feature_drift_evidently" not in sql, path
    assert sql.rstrip().endswith("select * from final"), path
    return sql


@pytest.fixture(scope="module")
def sturges_case(compiled_model: str) -> dict:
    """The model's SQL over one window with one feature per sample, read twice: its output rows,
    and (the same CTEs, with the last select swapped) its bin counts (CTE bins_counted)."""
    rng = np.random.default_rng(20240401)
    samples = {f"s{index:04d}": values for index, values in enumerate(_samples(rng, 3000))}
    reference = pd.concat(
        [
            pd.DataFrame({"feature_name": name, "value_number": values[: _reference_size(values)]})
            for name, values in samples.items()
        ]
    )
    current = pd.concat(
        [
            pd.DataFrame({"feature_name": name, "value_number": values[_reference_size(values) :]})
            for name, values in samples.items()
        ]
    )
    bins_sql = compiled_model.rstrip().removesuffix("select * from final") + (
        "select feature_name, bin_index, n_reference_rows, n_current_rows from bins_counted"
    )
    with duckdb.connect() as connection:
        connection.execute("attach ':memory:' as driftmart")
        connection.execute("create schema driftmart.staging")
        connection.execute("create schema driftmart.intermediate")
        connection.execute(
            "create table driftmart.staging.stg_raw__monitored_models as "
            "select 'm' as model_name, 'evidently' as statistics_method"
        )
        connection.execute(
            "create table driftmart.intermediate.int_window_references as select 'm' as model_name, "
            "? as reference_id, ?::timestamp as window_start, ?::timestamp as window_end, "
            "1::bigint as max_ingest_seq",
            [REFERENCE_ID, WINDOW_START, WINDOW_END],
        )
        connection.register("current_frame", current)
        connection.register("reference_frame", reference)
        connection.execute(
            "create table driftmart.intermediate.int_inference_feature_values_unpivoted as select "
            "'m' as model_name, feature_name, ?::timestamp as window_start, 'numeric' as feature_type, "
            "null::varchar as value_category, value_number::double as value_number, "
            "?::timestamp as scored_at from current_frame",
            [WINDOW_START, WINDOW_START],
        )
        connection.execute(
            "create table driftmart.intermediate.int_reference_feature_values as select 'm' as model_name, "
            "? as reference_id, feature_name, null::varchar as value_category, "
            "value_number::double as value_number from reference_frame",
            [REFERENCE_ID],
        )
        cursor = connection.execute(f"select * from ({compiled_model}) as model_output")
        names = [column[0] for column in cursor.description]
        rows = {
            row["feature_name"]: row for row in (dict(zip(names, r, strict=True)) for r in cursor.fetchall())
        }
        counts: dict[str, dict[int, tuple[int, int]]] = defaultdict(dict)
        for feature, index, n_reference, n_current in connection.execute(bins_sql).fetchall():
            assert index not in counts[feature], (feature, index)
            counts[feature][index] = (int(n_reference), int(n_current))
    return {"samples": samples, "rows": rows, "counts": counts}


def test_sql_sturges_bins_and_counts_equal_np_histogram(sturges_case: dict) -> None:
    samples, rows, counts = sturges_case["samples"], sturges_case["rows"], sturges_case["counts"]
    assert set(rows) == set(samples)
    checked, integral = 0, 0
    for feature, values in samples.items():
        row = rows[feature]
        reference = values[: _reference_size(values)]
        assert row["is_integer_valued"] == _is_integral(values), feature
        if np.unique(reference).size <= 20:  # Evidently bins these by distinct value, not by Sturges
            assert not row["is_sturges_binned"], feature
            assert row["n_bins"] == np.unique(values).size, feature
            continue
        assert row["is_sturges_binned"], feature
        n_bins, expected_reference, expected_current = _numpy_histograms(values)
        assert row["n_bins"] == n_bins, (feature, row["n_bins"], n_bins)
        assert set(counts[feature]) <= set(range(n_bins)), (feature, sorted(counts[feature]))
        sql_reference = np.array([counts[feature].get(b, (0, 0))[0] for b in range(n_bins)])
        sql_current = np.array([counts[feature].get(b, (0, 0))[1] for b in range(n_bins)])
        np.testing.assert_array_equal(sql_reference, expected_reference, err_msg=f"{feature} reference")
        np.testing.assert_array_equal(sql_current, expected_current, err_msg=f"{feature} current")
        checked += 1
        integral += _is_integral(values)
    # Most samples take the Sturges path, over a hundred of them whole numbers (int64 at numpy's side;
    # numpy's integer clamp of the width needs 2^19 rows: test_int_feature_drift_evidently_integer_clamp).
    assert checked > 2000 and integral > 100, (checked, integral)


def test_sql_bin_count_at_powers_of_two_matches_numpy_on_both_sides_of_the_ceiling(sturges_case) -> None:
    """At n = 2^k, ceil(range / (range / (k + 1))) is k + 1 or k + 2 depending on the last bit of
    the division: the samples of 2^k values reach both, and the SQL's n_bins follows numpy's."""
    samples, rows = sturges_case["samples"], sturges_case["rows"]
    reached: dict[int, set[int]] = defaultdict(set)
    for feature, values in samples.items():
        k = int(np.log2(values.size))
        if values.size == 2**k and k in POWERS_OF_TWO:
            n_bins = len(np.histogram_bin_edges(values, bins="sturges")) - 1
            assert rows[feature]["n_bins"] == n_bins, (feature, values.size, rows[feature]["n_bins"], n_bins)
            reached[k].add(n_bins - (k + 1))
    assert set(reached) == set(POWERS_OF_TWO)
    assert set().union(*reached.values()) == {0, 1}, dict(reached)


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
