"""Segment drift end to end: spec `segments`, `driftmart import`, `driftmart run`, and
marts.fct_segment_drift read from the published copy, checked against scipy (chi-squared test of
homogeneity, Benjamini-Hochberg) on the rows themselves.

One home, two models: `stores_shift`, where one store's feature moves while the whole traffic
barely does, and `stores_null`, many stores and no drift at all (false alarms)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from tests.test_cli import driftmart
from warehouse.home import Home

pytestmark = pytest.mark.slow

START = datetime(2026, 3, 1)
SHIFT_DAY, SHIFTED_STORE = 3, "s03"


def store_case(name: str, *, stores: int, days: int, rows_per_day: int, shift: bool, seed: int) -> dict:
    """A batch-scoring case with a `store` column that is not a feature: (spec, reference, logs).
    Store volumes fall off like 1/rank; with `shift`, `amount` in SHIFTED_STORE moves by one
    standard deviation from SHIFT_DAY on."""
    rng = np.random.default_rng(seed)
    names = [f"s{i:02d}" for i in range(stores)]
    weights = 1 / np.arange(1, stores + 1)
    weights /= weights.sum()

    def rows(n: int, day: np.ndarray | None) -> pd.DataFrame:
        store = rng.choice(names, size=n, p=weights)
        amount = rng.normal(100.0, 15.0, size=n)
        if shift and day is not None:
            amount = amount + np.where((store == SHIFTED_STORE) & (day >= SHIFT_DAY), 15.0, 0.0)
        return pd.DataFrame(
            {
                "store": store,
                "amount": amount,
                "tenure": rng.exponential(5.0, size=n).round(),
                "channel": rng.choice(["web", "app", "branch"], size=n, p=[0.5, 0.3, 0.2]),
            }
        )

    reference = rows(20_000, None)
    day = np.repeat(np.arange(days), rows_per_day)
    logs = rows(len(day), day)
    logs.insert(
        0, "ts", pd.Timestamp(START) + pd.to_timedelta(day * 86_400 + rng.integers(0, 86_400, len(day)), "s")
    )
    logs.insert(0, "id", [f"{name}-{i}" for i in range(len(day))])
    for frame in (reference, logs):
        frame["p"] = rng.random(len(frame))
        frame["y_hat"] = (frame["p"] > 0.5).astype(int)
    spec = {
        "model": name,
        "timestamp": "ts",
        "id": "id",
        "prediction": "y_hat",
        "prediction_proba": "p",
        "features": {"amount": "numeric", "tenure": "numeric", "channel": "categorical"},
        "segments": ["store"],
        "segment_drift": {"top_k": stores, "min_rows": 50},
        "window": "1d",
    }
    return {"spec": spec, "reference": reference, "logs": logs}


CASES = {
    "stores_shift": {"stores": 12, "days": 6, "rows_per_day": 3000, "shift": True, "seed": 3},
    "stores_null": {"stores": 30, "days": 8, "rows_per_day": 3000, "shift": False, "seed": 4},
}


@pytest.fixture(scope="module")
def segment_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("segments")
    home = Home.resolve(root / "home")
    cases = {}
    for name, options in CASES.items():
        case = store_case(name, **options)
        files = root / name
        files.mkdir()
        (files / "spec.yaml").write_text(yaml.safe_dump(case["spec"]))
        case["reference"].to_parquet(files / "reference.parquet", index=False)
        case["logs"].to_csv(files / "logs.csv", index=False)
        imported = driftmart(
            "import",
            "--spec",
            str(files / "spec.yaml"),
            "--reference",
            str(files / "reference.parquet"),
            "--logs",
            str(files / "logs.csv"),
            home=home,
        )
        assert imported.returncode == 0, imported.stderr
        cases[name] = case
    run = driftmart("run", home=home)
    assert run.returncode in (0, 1), run.stdout + run.stderr
    return home, cases, run


def segment_drift(home: Home, model: str) -> pd.DataFrame:
    with duckdb.connect(str(home.published), read_only=True) as connection:
        return connection.execute(
            "select * from marts.fct_segment_drift where model_name = ? "
            "order by segment_value, feature_name, window_start",
            [model],
        ).df()


def expected_segment_drift(case: dict) -> pd.DataFrame:
    """The segment tests recomputed from the rows: the reference's decile bins (numpy) or
    categories, the top_k stores by reference rows, scipy's chi-squared test of homogeneity and
    Benjamini-Hochberg (scipy.stats.false_discovery_control)."""
    spec, reference, logs = case["spec"], case["reference"], case["logs"]
    options = spec["segment_drift"]
    volumes = reference["store"].value_counts()
    volumes = volumes.sort_index().sort_values(ascending=False, kind="stable")
    kept = [s for s in volumes.index[: options["top_k"]] if volumes[s] >= options["min_rows"]]
    segment = {
        frame_name: frame["store"].where(frame["store"].isin(kept), "__other__")
        for frame_name, frame in (("reference", reference), ("logs", logs))
    }
    window = logs["ts"].dt.floor("D")
    rows = []
    for feature, kind in spec["features"].items():
        if kind == "numeric":
            edges = np.unique(np.quantile(reference[feature], np.arange(1, 10) / 10))
            bins = {
                name: np.searchsorted(edges, frame[feature], side="right")
                for name, frame in (("reference", reference), ("logs", logs))
            }
        else:
            categories = sorted(reference[feature].unique())
            bins = {
                name: frame[feature].map({c: i for i, c in enumerate(categories)}).fillna(-1).to_numpy()
                for name, frame in (("reference", reference), ("logs", logs))
            }
        for value in sorted(set(segment["logs"]) | set(segment["reference"])):
            reference_bins = bins["reference"][(segment["reference"] == value).to_numpy()]
            for start in sorted(window.unique()):
                current = bins["logs"][((segment["logs"] == value) & (window == start)).to_numpy()]
                labels = np.union1d(reference_bins, current)
                table = np.array(
                    [[np.sum(side == label) for label in labels] for side in (current, reference_bins)]
                )
                if len(current) == 0:
                    continue
                tested = min(len(current), len(reference_bins)) >= options["min_rows"] and len(labels) > 1
                p_value = stats.chi2_contingency(table, correction=False).pvalue if tested else np.nan
                rows.append((value, feature, start, len(current), len(reference_bins), p_value))
    expected = pd.DataFrame(
        rows, columns=["segment_value", "feature_name", "window_start", "n_current", "n_reference", "p_value"]
    )
    tested = expected["p_value"].notna()
    expected.loc[tested, "q_value"] = stats.false_discovery_control(expected.loc[tested, "p_value"])
    expected["is_drifted"] = expected["q_value"] <= 0.05
    return expected.sort_values(["segment_value", "feature_name", "window_start"]).reset_index(drop=True)


@pytest.mark.parametrize("model", list(CASES))
def test_p_and_q_values_equal_scipy_on_the_rows(segment_home, model):
    home, cases, _ = segment_home
    actual = segment_drift(home, model)
    expected = expected_segment_drift(cases[model])
    assert len(actual) == len(expected)
    for column in ("segment_value", "feature_name", "n_current", "n_reference", "is_drifted"):
        assert actual[column].tolist() == expected[column].tolist(), column
    assert (actual["window_start"].to_numpy() == expected["window_start"].to_numpy()).all()
    for column in ("p_value", "q_value"):
        np.testing.assert_allclose(
            actual[column].to_numpy(float),
            expected[column].to_numpy(float),
            rtol=1e-9,
            atol=1e-300,
            equal_nan=True,
        )
    assert (actual["is_below_min_rows"] == actual["p_value"].isna()).all()


def test_a_shift_inside_one_store_is_found_where_the_whole_traffic_hides_it(segment_home):
    home, _, run = segment_home
    assert "stores_shift exit 1" in run.stdout and "stores_null exit 0" in run.stdout, run.stdout
    assert "segment drift found (exit 1)" in run.stdout
    assert "store=s03" in run.stdout
    drift = segment_drift(home, "stores_shift")
    drifted = drift[drift["is_drifted"]]
    days = sorted((drifted["window_start"] - pd.Timestamp(START)).dt.days)
    assert set(zip(drifted["segment_value"], drifted["feature_name"], strict=True)) == {
        (SHIFTED_STORE, "amount")
    }
    assert days == list(range(SHIFT_DAY, CASES["stores_shift"]["days"]))
    with duckdb.connect(str(home.published), read_only=True) as connection:
        overall = connection.execute(
            "select max(drift_score), bool_or(is_drifted) from marts.fct_feature_drift "
            "where model_name = 'stores_shift' and feature_name = 'amount'"
        ).fetchone()
    assert overall[1] is False and overall[0] < 0.05, overall  # the whole traffic barely moved


def test_many_segments_without_drift_raise_about_the_chosen_rate_of_false_alarms(segment_home):
    home, _, _ = segment_home
    drift = segment_drift(home, "stores_null")
    tested = drift[drift["p_value"].notna()]
    assert len(tested) > 300 and drift["segment_value"].nunique() > 20
    # The p-values are calibrated: about 5 % of the tests are below 0.05 with no drift at all ...
    assert 0.02 <= (tested["p_value"] < 0.05).mean() <= 0.10
    # ... and Benjamini-Hochberg turns those into (almost) no alarm: with every test null, the
    # chance of any alarm is at most the false discovery rate.
    assert drift["is_drifted"].sum() <= 1


def test_the_exporter_counts_the_latest_windows_segment_tests_and_alarms(segment_home):
    from tests.observability.conftest import labels, scrape

    home, _, _ = segment_home
    samples = scrape(home)
    for model, drifted in (("stores_shift", 1), ("stores_null", 0)):
        drift = segment_drift(home, model)
        tested = drift[drift["p_value"].notna()]
        latest = tested["window_start"].max()
        key = labels(model=model)
        assert samples["driftmart_segment_drifted"][key] == drifted
        assert samples["driftmart_segment_tests"][key] == (tested["window_start"] == latest).sum()
        assert samples["driftmart_segment_window_start_timestamp_seconds"][key] == latest.timestamp()
