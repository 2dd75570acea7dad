"""Incremental runs equal a full rebuild, whatever the batches and whatever the clock said.

One warehouse holds three models, one per reference kind (model_version, previous_window,
time_range). Home "at once" imports every row in one batch and builds once; home "in batches"
imports the same rows in shuffled batches (late rows for old windows, windows out of order) and
builds after each batch; a third home imports its last batch while the clock stands three days
behind (libfaketime), so that batch's loaded_at is older than what was counted before. Every mart
must be the same in all homes, to the last bit where the grain allows and to 1e-12 elsewhere.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from ml.datasets import wide_case
from ml.spec import load_spec
from tests.dbt.driftmart_dbt_helpers import run_dbt
from tests.services import require_service
from warehouse.home import Home
from warehouse.importer import import_files

REFERENCE_KINDS = {
    "versioned": "model_version",
    "rolling": "previous_window",
    "ranged": {"start": "2026-02-01T00:00:00", "end": "2026-02-03T00:00:00"},
}
DAYS = 7
MARTS = {
    "marts.fct_feature_drift": ("model_name", "feature_name", "window_start"),
    "marts.fct_dataset_drift": ("model_name", "window_start"),
    "marts.fct_prediction_drift": ("model_name", "window_start"),
    "marts.fct_feature_statistics": ("model_name", "feature_name", "window_start"),
    "marts.fct_model_performance": ("model_name", "window_start", "metric_name"),
}
# Bookkeeping columns that say when or in which order rows were loaded, not what they say.
VOLATILE = {"max_ingest_seq", "loaded_at"}


def _cases(root: Path) -> list[tuple[Path, Path, pd.DataFrame]]:
    """(spec file, reference file, logs) per model: a drift in two features from day 4."""
    cases = []
    for position, (name, reference) in enumerate(REFERENCE_KINDS.items()):
        spec, reference_rows, logs = wide_case(
            days=DAYS,
            rows_per_day=120,
            n_numeric=3,
            n_categorical=2,
            drift={"num_01": 4, "cat_00": 4},
            seed=40 + position,
        )
        spec.update(model=name, reference=reference)
        spec_path = root / f"{name}.yaml"
        spec_path.write_text(yaml.safe_dump(spec))
        reference_path = root / f"{name}-reference.parquet"
        reference_rows.to_parquet(reference_path, index=False)
        cases.append((spec_path, reference_path, logs))
    return cases


def _batches(logs: pd.DataFrame, rng: np.random.Generator, n_batches: int = 3) -> list[pd.DataFrame]:
    """The rows in shuffled batches: every batch mixes days, so later batches bring late rows for
    windows already counted and windows arrive out of order."""
    order = rng.permutation(len(logs))
    return [logs.iloc[np.sort(part)] for part in np.array_split(order, n_batches)]


def _import(home: Path, spec_path: Path, reference: Path, logs: pd.DataFrame, name: str) -> None:
    path = home / f"{name}.parquet"
    logs.to_parquet(path, index=False)
    import_files(Home.resolve(home), load_spec(spec_path), reference, path)


def _import_behind(home: Path, spec_path: Path, reference: Path, logs: pd.DataFrame, name: str) -> None:
    """`driftmart import` with the clock three days behind (libfaketime)."""
    path = home / f"{name}.parquet"
    logs.to_parquet(path, index=False)
    command = [
        "faketime",
        "-f",
        "-3d",
        str(Path(sys.executable).parent / "driftmart"),
        "import",
        "--spec",
        str(spec_path),
        "--reference",
        str(reference),
        "--logs",
        str(path),
    ]
    environment = {**os.environ, "DRIFTMART_HOME": str(home)}
    completed = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def _build(home: Path) -> None:
    result, _ = run_dbt(home, "build")
    assert result.returncode == 0, result.stdout[-4000:]


def _marts(home: Path) -> dict[str, dict[tuple, dict[str, Any]]]:
    with duckdb.connect(str(home / "driftmart.duckdb"), read_only=True) as connection:
        marts = {}
        for mart, key in MARTS.items():
            cursor = connection.execute(f"select * from {mart}")
            names = [column[0] for column in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            marts[mart] = {tuple(row[column] for column in key): row for row in rows}
        return marts


def _assert_same(actual: dict, expected: dict, what: str) -> None:
    for mart, rows in expected.items():
        assert actual[mart].keys() == rows.keys(), f"{what}: {mart} has other rows"
        for key, row in rows.items():
            for column, value in row.items():
                if column in VOLATILE:
                    continue
                got = actual[mart][key][column]
                if isinstance(value, float) and isinstance(got, float):
                    same = (math.isnan(value) and math.isnan(got)) or math.isclose(
                        got, value, rel_tol=1e-12, abs_tol=1e-15
                    )
                else:
                    same = got == value
                assert same, f"{what}: {mart} {key} {column}: {got!r} != {value!r}"


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    files = tmp_path_factory.mktemp("files")
    cases = _cases(files)
    rng = np.random.default_rng(2026)

    at_once = tmp_path_factory.mktemp("at_once")
    for spec_path, reference, logs in cases:
        _import(at_once, spec_path, reference, logs, spec_path.stem)
    _build(at_once)

    in_batches = tmp_path_factory.mktemp("in_batches")
    batches = [(spec_path, reference, _batches(logs, rng)) for spec_path, reference, logs in cases]
    for index in range(3):
        for spec_path, reference, parts in batches:
            _import(in_batches, spec_path, reference, parts[index], f"{spec_path.stem}-{index}")
        _build(in_batches)
    return {"cases": cases, "batches": batches, "at_once": _marts(at_once), "in_batches": _marts(in_batches)}


def test_every_mart_fed_in_batches_equals_the_home_fed_at_once(homes) -> None:
    expected = homes["at_once"]
    assert {key[0] for key in expected["marts.fct_dataset_drift"]} == set(REFERENCE_KINDS)
    assert any(row["is_dataset_drifted"] for row in expected["marts.fct_dataset_drift"].values())
    _assert_same(homes["in_batches"], expected, "fed in 3 shuffled batches")


def test_an_import_while_the_clock_is_behind_is_counted(homes, tmp_path: Path) -> None:
    require_service(shutil.which("faketime") is not None, "faketime (Debian package faketime) is missing")
    home = tmp_path / "behind"
    home.mkdir()
    for index in range(2):
        for spec_path, reference, parts in homes["batches"]:
            _import(home, spec_path, reference, parts[index], f"{spec_path.stem}-{index}")
        _build(home)
    for spec_path, reference, parts in homes["batches"]:
        _import_behind(home, spec_path, reference, parts[2], f"{spec_path.stem}-2")
    with duckdb.connect(str(home / "driftmart.duckdb"), read_only=True) as connection:
        (stepped_back,) = connection.execute(
            "select max(loaded_at) filter (where source like '%-2.parquet') "
            "< min(loaded_at) filter (where source not like '%-2.parquet') from raw.inference_log"
        ).fetchone()
    assert stepped_back, "the last import should carry a loaded_at before the earlier ones"
    _build(home)
    _assert_same(_marts(home), homes["at_once"], "last batch imported with the clock 3 days behind")
