"""`driftmart import` reads files as users have them: CSV, Parquet and JSON lines (flat, or with the
features under "input"), gzip-compressed or not; extra columns are ignored and said so; the target is
optional; and a bad file is one error naming the file, the column and the first bad row (the line,
for JSON lines), with nothing loaded."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml import registry
from ml.datasets import generate, training_set
from tests.conftest import REPO
from tests.services import DRIFTMART
from warehouse.home import Home
from warehouse.importer import ImportFileError, import_files

ROWS = 120


def scored(frame: pd.DataFrame, spec, seed: int = 0) -> pd.DataFrame:
    """Generated rows as a batch-scoring job writes them: features, prediction and probability."""
    rng = np.random.default_rng(seed)
    probability = rng.random(len(frame))
    return frame.assign(
        **{spec.prediction: (probability > 0.5).astype(int), spec.prediction_proba: probability}
    )


def _value(value):
    """A frame cell as JSON would hold it (NaN → null, numpy scalars → Python)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def records(logs: pd.DataFrame, spec, *, nested: bool, extra: bool = True) -> list[dict]:
    """Log rows as JSON records: the spec's names at the top level, the features flat or under
    "input", plus the keys a serving log often has beside them (ignored by the import)."""
    rows = []
    for row in logs.to_dict("records"):
        features = {name: _value(row[name]) for name in spec.features}
        record = {
            spec.id: row[spec.id],
            spec.timestamp: row[spec.timestamp].isoformat(),
            spec.prediction: _value(row[spec.prediction]),
            spec.prediction_proba: _value(row[spec.prediction_proba]),
        }
        record |= {"input": features} if nested else features
        if extra:
            record |= {"model_version": "2024-06-01", "latency_ms": 3.5}
        rows.append(record)
    return rows


def write_jsonl(path: Path, rows: list, *, blank_lines: bool = False) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    if blank_lines:
        lines = ["", *lines[:2], "", *lines[2:]]
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.fixture(scope="module")
def case(tmp_path_factory, spec):
    """A reference, logs with inline labels as CSV, and the same logs in every other layout."""
    root = tmp_path_factory.mktemp("import-files")
    reference = scored(training_set(300), spec)[
        [*spec.features, spec.prediction, spec.prediction_proba, spec.target]
    ]
    reference.to_csv(root / "reference.csv", index=False)
    logs = scored(generate("no_drift", days=2, rows_per_day=ROWS // 2, seed=3), spec, 1)
    logs = logs.drop(columns=[spec.target])
    logs.to_csv(root / "logs.csv", index=False)
    logs.to_csv(root / "logs.csv.gz", index=False, compression="gzip")
    logs.to_csv(root / "logs.tsv", index=False, sep="\t")
    logs.to_parquet(root / "logs.parquet", index=False)
    write_jsonl(root / "flat.jsonl", records(logs, spec, nested=False))
    write_jsonl(root / "nested.jsonl", records(logs, spec, nested=True))
    write_jsonl(root / "nested.jsonl.gz", records(logs, spec, nested=True))
    write_jsonl(root / "blank_lines.ndjson", records(logs, spec, nested=True), blank_lines=True)
    (root / "array.json.gz").write_bytes(gzip.compress(json.dumps(records(logs, spec, nested=True)).encode()))
    return root, logs


def loaded_logs(home: Home) -> list[tuple]:
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        return connection.execute(
            "select request_id, features, prediction, probability, scored_at, model_version "
            "from raw.inference_log order by request_id"
        ).fetchall()


@pytest.fixture(scope="module")
def csv_rows(tmp_path_factory, spec, case):
    root, _ = case
    home = Home.resolve(tmp_path_factory.mktemp("csv-home") / "home").ensure()
    import_files(home, spec, root / "reference.csv", root / "logs.csv")
    return loaded_logs(home)


@pytest.mark.parametrize(
    "name",
    [
        "logs.csv.gz",
        "logs.tsv",
        "logs.parquet",
        "flat.jsonl",
        "nested.jsonl",
        "nested.jsonl.gz",
        "blank_lines.ndjson",
        "array.json.gz",
    ],
)
def test_every_layout_loads_the_rows_the_csv_loads(home, spec, case, csv_rows, name):
    root, _ = case
    result = import_files(home, spec, root / "reference.csv", root / name)
    assert (result.n_log_rows_read, result.n_log_rows_loaded) == (ROWS, ROWS)
    assert len(csv_rows) == ROWS
    assert loaded_logs(home) == csv_rows
    ignored = result.ignored_columns.get(str(root / name), ())
    assert ignored == (("model_version", "latency_ms") if "json" in name else ())


def test_extra_columns_are_ignored_and_said_in_one_line(home, spec, case, tmp_path):
    root, logs = case
    extra = logs.assign(**{"Batch Job": "nightly", "score.raw": 0.5})
    extra.to_csv(tmp_path / "logs.csv", index=False)
    reference = pd.read_csv(root / "reference.csv").assign(row_hash="x")
    reference.to_csv(tmp_path / "reference.csv", index=False)
    completed = subprocess.run(
        [
            DRIFTMART,
            "--home",
            str(home.root),
            "import",
            "--spec",
            str(REPO / "ml" / "specs" / "car_loan.yaml"),
            "--reference",
            str(tmp_path / "reference.csv"),
            "--logs",
            str(tmp_path / "logs.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    notes = [line for line in completed.stdout.splitlines() if "ignored" in line]
    assert notes == [
        "note: ignored the columns the spec does not name: "
        f"{tmp_path / 'reference.csv'}: row_hash; {tmp_path / 'logs.csv'}: Batch Job, score.raw"
    ]
    assert len(loaded_logs(home)) == ROWS


def test_a_spec_without_target_imports_without_labels(home, spec, case, tmp_path):
    root, logs = case
    untargeted = replace(spec, target=None)
    logs.assign(**{spec.target: 1}).to_csv(tmp_path / "logs.csv", index=False)
    result = import_files(home, untargeted, root / "reference.csv", tmp_path / "logs.csv")
    assert (result.n_log_rows_loaded, result.n_label_rows_read) == (ROWS, 0)
    assert result.ignored_columns == {
        str(root / "reference.csv"): (spec.target,),
        str(tmp_path / "logs.csv"): (spec.target,),
    }
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        assert connection.execute("select count(*) from raw.labels").fetchall() == [(0,)]
        assert connection.execute(
            "select count(*) from raw.reference_rows where label is null"
        ).fetchall() == [(300,)]
    logs[[spec.id]].assign(repaid=1).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(ImportFileError, match="the spec names no target column"):
        import_files(home, untargeted, root / "reference.csv", labels=tmp_path / "labels.csv")


def test_a_utf8_bom_and_a_missing_key_of_an_optional_column_are_fine(home, spec, case, tmp_path):
    root, logs = case
    (tmp_path / "logs.csv").write_bytes(b"\xef\xbb\xbf" + (root / "logs.csv").read_bytes())
    assert import_files(home, spec, root / "reference.csv", tmp_path / "logs.csv").n_log_rows_loaded == ROWS
    rows = records(logs, spec, nested=True)
    del rows[5][spec.prediction_proba]  # the probability is optional: a record without it has none
    write_jsonl(tmp_path / "more.jsonl", [{**row, spec.id: f"more-{row[spec.id]}"} for row in rows])
    assert import_files(home, spec, root / "reference.csv", tmp_path / "more.jsonl").n_log_rows_loaded == ROWS
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        (probability,) = connection.execute(
            "select probability from raw.inference_log where request_id = ?", [f"more-{rows[5][spec.id]}"]
        ).fetchone()
    assert probability is None


def _edit(index: int, edit):
    def apply(rows: list) -> list:
        rows = [dict(row) if isinstance(row, dict) else row for row in rows]
        rows[index] = edit(rows[index])
        return rows

    return apply


def _without(key: str, *, under: str | None = None):
    def edit(row: dict) -> dict:
        if under:
            row[under] = {name: value for name, value in row[under].items() if name != key}
        else:
            row.pop(key)
        return row

    return edit


BAD_JSON_LINES = [
    (_edit(2, lambda row: '{"request_id": "x", "car_value": 3'), "logs.jsonl: line 3 is not JSON"),
    (_edit(4, lambda row: "[1, 2]"), "logs.jsonl: line 5: expected a JSON object (a record), got list"),
    (
        _edit(3, _without("region", under="input")),
        "logs.jsonl: line 4 has no 'region' (at the top level or under 'input')",
    ),
    (
        lambda rows: [_without("region", under="input")(dict(row, input=dict(row["input"]))) for row in rows],
        "logs.jsonl: missing required column(s): region (at the top level or under 'input')",
    ),
    (_edit(6, _without("request_id")), "logs.jsonl: line 7 has no 'request_id'"),
    (
        _edit(1, lambda row: {**row, "region": "north"}),
        "logs.jsonl: line 2: 'region' is both at the top level and under 'input'",
    ),
    (
        _edit(8, lambda row: {**row, "input": {**row["input"], "car_value": "expensive"}}),
        "logs.jsonl: column 'car_value': 'expensive' at line 9 is not a number",
    ),
    (
        _edit(9, lambda row: {**row, "input": {**row["input"], "car_value": True}}),
        "logs.jsonl: column 'car_value': True at line 10 is not a number",
    ),
    (
        _edit(2, lambda row: {**row, "input": {**row["input"], "region": {"name": "west"}}}),
        "logs.jsonl: column 'region': {'name': 'west'} at line 3 is not a single value",
    ),
    (
        _edit(5, lambda row: {**row, "scored_at": 1717200000}),
        "logs.jsonl: column 'scored_at': 1717200000 is not an ISO-8601 timestamp at line 6",
    ),
    (
        _edit(11, lambda row: {**row, "y_pred_proba": 1.5}),
        "at line 12 is not a probability in [0, 1]",
    ),
    (_edit(0, lambda row: "7"), "logs.jsonl: line 1: expected a JSON object (a record), got int"),
]


@pytest.mark.parametrize(("edit", "message"), BAD_JSON_LINES)
def test_a_bad_json_line_is_one_error_naming_file_column_and_line(home, spec, case, tmp_path, edit, message):
    root, logs = case
    path = write_jsonl(tmp_path / "logs.jsonl", edit(records(logs, spec, nested=True)))
    with pytest.raises(ImportFileError) as raised:
        import_files(home, spec, root / "reference.csv", path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)
    assert registry.list_versions(home, spec.model) == []
    assert not home.warehouse.exists()


def test_line_numbers_count_blank_lines_and_duplicates_name_both_lines(home, spec, case, tmp_path):
    root, logs = case
    rows = records(logs, spec, nested=True)
    rows[6][spec.id] = rows[1][spec.id]
    path = write_jsonl(tmp_path / "logs.jsonl.gz", rows, blank_lines=True)  # rows 1, 2 → lines 2, 3
    with pytest.raises(ImportFileError) as raised:
        import_files(home, spec, root / "reference.csv", path)
    assert f"duplicate id {rows[1][spec.id]!r} at line 9 (first seen at line 3)" in str(raised.value)


def test_unreadable_and_ambiguous_files(home, spec, case, tmp_path):
    root, _ = case
    header = (root / "logs.csv").read_text().splitlines()
    (tmp_path / "duplicated.csv").write_text("\n".join([header[0] + ",region", header[1] + ",west"]) + "\n")
    (tmp_path / "truncated.csv.gz").write_bytes(gzip.compress((root / "logs.csv").read_bytes())[:200])
    (tmp_path / "object.json").write_text('{"request_id": ["a", "b"]}')
    (tmp_path / "empty.jsonl").write_text("\n\n")
    (tmp_path / "data.xlsx.gz").write_bytes(b"x")
    for name, message in [
        ("duplicated.csv", "duplicated.csv: duplicate column(s): region"),
        ("truncated.csv.gz", "truncated.csv.gz: cannot read"),
        ("object.json", "object.json: missing required column(s): scored_at"),
        ("empty.jsonl", "empty.jsonl: no rows"),
        ("data.xlsx.gz", "unknown file type '.xlsx.gz'"),
    ]:
        with pytest.raises(ImportFileError) as raised:
            import_files(home, spec, root / "reference.csv", tmp_path / name)
        assert message in str(raised.value), name
    assert not home.warehouse.exists()
