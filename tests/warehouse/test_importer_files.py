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
            "select request_id, feature_numbers, feature_categories, prediction, probability, scored_at, "
            "model_version from raw.inference_log order by request_id"
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


# --- files read in chunks -------------------------------------------------------------------------
# Every file is read, checked and loaded `chunk_rows` rows at a time (warehouse/importer.CHUNK_ROWS);
# tests lower it so that 120 rows span many chunks, and compare with one chunk per file.

CHUNKED = 7  # 120 rows: 17 chunks of 7 and one of 1


def warehouse_rows(home: Home) -> dict[str, list[tuple]]:
    """Every raw row an import writes, without the load time (which differs between runs) and the
    ingest sequence numbers (DuckDB hands them out in no particular row order, even in one insert);
    those are checked to be one distinct number per row."""
    tables = {
        "inference_log": "request_id",
        "labels": "request_id",
        "reference_rows": "model_version, row_number",
    }
    rows = {}
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        for table, order in tables.items():
            (sequenced,) = connection.execute(
                "select count(*) from information_schema.columns "
                "where table_schema = 'raw' and table_name = ? and column_name = 'ingest_seq'",
                [table],
            ).fetchone()
            if sequenced:
                (distinct, total) = connection.execute(
                    f"select count(distinct ingest_seq), count(*) from raw.{table}"
                ).fetchone()
                assert distinct == total
            excluded = "loaded_at, ingest_seq" if sequenced else "loaded_at"
            rows[table] = connection.execute(
                f"select * exclude ({excluded}) from raw.{table} order by {order}"
            ).fetchall()
    return rows


def staging_left(home: Home) -> list[Path]:
    return sorted((home.root / "tmp").glob("import-*"))


@pytest.mark.parametrize(
    "name",
    [
        "logs.csv",
        "logs.csv.gz",
        "logs.tsv",
        "logs.parquet",
        "flat.jsonl",
        "nested.jsonl.gz",
        "blank_lines.ndjson",
        "array.json.gz",
    ],
)
def test_a_file_over_many_chunks_imports_what_one_chunk_imports(tmp_path, spec, case, name):
    root, _ = case
    whole = Home.resolve(tmp_path / "whole").ensure()
    chunked = Home.resolve(tmp_path / "chunked").ensure()
    at_once = import_files(whole, spec, root / "reference.csv", root / name)
    in_chunks = import_files(chunked, spec, root / "reference.csv", root / name, chunk_rows=CHUNKED)
    assert in_chunks == at_once
    assert (in_chunks.n_log_rows_read, in_chunks.n_log_rows_loaded) == (ROWS, ROWS)
    assert warehouse_rows(chunked) == warehouse_rows(whole)
    assert staging_left(chunked) == []
    # the reference read in chunks is the same content: recognised as the version already registered
    again = import_files(whole, spec, root / "reference.csv", root / name, chunk_rows=3)
    assert (again.reference_is_new, again.model_version, again.n_log_rows_loaded) == (False, 1, 0)


def test_labels_inline_and_in_a_file_over_many_chunks(tmp_path, spec, case):
    """Inline labels and a labels file (which wins where both label a request), each over many
    chunks, land as from one chunk: the same labels and counts."""
    root, _ = case
    labelled = scored(generate("no_drift", days=2, rows_per_day=ROWS // 2, seed=3), spec, 1)
    labelled.to_csv(tmp_path / "logs.csv", index=False)
    corrected = labelled[[spec.id, spec.target, spec.timestamp]].iloc[40:100].copy()
    corrected[spec.target] = 1 - corrected[spec.target]
    corrected.to_parquet(tmp_path / "labels.parquet", index=False)
    results, rows = [], []
    for chunk_rows in (None, CHUNKED, 1):
        home = Home.resolve(tmp_path / f"home-{chunk_rows}").ensure()
        arguments = (home, spec, root / "reference.csv", tmp_path / "logs.csv", tmp_path / "labels.parquet")
        results.append(import_files(*arguments, chunk_rows=chunk_rows))
        rows.append(warehouse_rows(home))
    assert results[0].n_label_rows_read == ROWS
    assert results[1] == results[0] and results[2] == results[0]
    assert rows[1] == rows[0] and rows[2] == rows[0]
    labels = {row[1]: row[2] for row in rows[0]["labels"]}
    assert labels[corrected[spec.id].iloc[0]] == str(corrected[spec.target].iloc[0])


def test_rows_already_loaded_are_skipped_across_chunks(home, spec, case, tmp_path):
    root, logs = case
    import_files(home, spec, root / "reference.csv", root / "logs.parquet", chunk_rows=CHUNKED)
    more = scored(generate("no_drift", days=1, rows_per_day=50, seed=9), spec).drop(columns=[spec.target])
    pd.concat([more.head(25), logs.iloc[::6], more.tail(25)]).to_csv(tmp_path / "more.csv", index=False)
    result = import_files(home, spec, root / "reference.csv", tmp_path / "more.csv", chunk_rows=CHUNKED)
    assert (result.n_log_rows_read, result.n_log_rows_loaded) == (70, 50)


def _csv_edit(row: int, column: str, value: str):
    def edit(frame: pd.DataFrame) -> None:
        frame.loc[row, column] = value

    return edit


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ([_csv_edit(93, "car_value", "expensive")], "column 'car_value': 'expensive' at row 94 (line 95)"),
        ([_csv_edit(61, "scored_at", "")], "column 'scored_at': missing at row 62 (line 63)"),
        ([_csv_edit(118, "y_pred_proba", "1.5")], "'y_pred_proba': 1.5 at row 119 (line 120)"),
        (
            [_csv_edit(99, "request_id", "loan-x"), _csv_edit(4, "request_id", "loan-x")],
            "duplicate id 'loan-x' at row 100 (line 101) (first seen at row 5 (line 6))",
        ),
        # two problems: the whole file's first failing check wins, whichever chunk it is in — the
        # features are checked before the timestamps
        (
            [_csv_edit(2, "scored_at", "soon"), _csv_edit(80, "car_value", "high")],
            "column 'car_value': 'high' at row 81 (line 82)",
        ),
        # … and a check's first bad row, though later chunks fail it too
        (
            [_csv_edit(80, "car_value", "high"), _csv_edit(30, "car_value", "low")],
            "column 'car_value': 'low' at row 31 (line 32)",
        ),
        # a duplicate id (checked at the end of the file) comes before a bad probability
        (
            [
                _csv_edit(3, "y_pred_proba", "2"),
                _csv_edit(110, "request_id", "loan-y"),
                _csv_edit(9, "request_id", "loan-y"),
            ],
            "duplicate id 'loan-y' at row 111 (line 112) (first seen at row 10 (line 11))",
        ),
    ],
)
def test_an_error_in_a_later_chunk_names_its_row_and_loads_nothing(
    home, spec, case, tmp_path, edits, message
):
    root, _ = case
    frame = pd.read_csv(root / "logs.csv", dtype=str, keep_default_na=False)
    for edit in edits:
        edit(frame)
    frame.to_csv(tmp_path / "logs.csv", index=False)
    errors = []
    for chunk_rows in (CHUNKED, 1, None):
        with pytest.raises(ImportFileError) as raised:
            import_files(home, spec, root / "reference.csv", tmp_path / "logs.csv", chunk_rows=chunk_rows)
        errors.append(str(raised.value))
    assert message in errors[0]
    assert errors[0].startswith(f"{tmp_path / 'logs.csv'}: ")
    assert errors[1] == errors[0] and errors[2] == errors[0]
    assert registry.list_versions(home, spec.model) == []
    assert not home.warehouse.exists()
    assert staging_left(home) == []


@pytest.mark.parametrize("chunk_rows", [CHUNKED, 1])
@pytest.mark.parametrize(("edit", "message"), BAD_JSON_LINES)
def test_json_lines_errors_are_the_same_over_many_chunks(
    home, spec, case, tmp_path, edit, message, chunk_rows
):
    """Each bad-line case, with the bad line moved past the first chunks: the same error as one chunk
    gives, naming the line (blank lines counted)."""
    root, logs = case
    rows = edit(records(logs, spec, nested=True))
    rows = rows[-40:] + rows[:-40]  # the edited record is now 40 records later
    path = write_jsonl(tmp_path / "logs.jsonl", rows, blank_lines=True)
    errors = []
    for size in (None, chunk_rows):
        with pytest.raises(ImportFileError) as raised:
            import_files(home, spec, root / "reference.csv", path, chunk_rows=size)
        errors.append(str(raised.value))
    assert errors[1] == errors[0]
    assert str(path) in errors[0]
    assert not home.warehouse.exists()


def test_a_key_seen_only_in_later_json_chunks(home, spec, case, tmp_path):
    root, logs = case
    rows = records(logs, spec, nested=True)
    # an optional key only from record 60 on: the earlier records have no probability
    late_probability = [
        row if index >= 60 else {key: value for key, value in row.items() if key != spec.prediction_proba}
        for index, row in enumerate(rows)
    ]
    path = write_jsonl(tmp_path / "late.jsonl", late_probability)
    whole = import_files(Home.resolve(tmp_path / "whole").ensure(), spec, root / "reference.csv", path)
    chunked = import_files(home, spec, root / "reference.csv", path, chunk_rows=CHUNKED)
    assert chunked == whole
    assert warehouse_rows(home) == warehouse_rows(Home.resolve(tmp_path / "whole"))
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        assert connection.execute("select count(probability) from raw.inference_log").fetchall() == [(60,)]
    # a required key only from record 30 on: the first record lacks it
    late_region = [
        {**row, "input": {k: v for k, v in row["input"].items() if k != "region" or index >= 30}}
        for index, row in enumerate(rows)
    ]
    path = write_jsonl(tmp_path / "late_region.jsonl", late_region, blank_lines=True)
    with pytest.raises(ImportFileError) as raised:
        import_files(home, spec, root / "reference.csv", path, chunk_rows=CHUNKED)
    assert f"{path}: line 2 has no 'region' (at the top level or under 'input')" in str(raised.value)


def test_labels_file_errors_over_many_chunks(home, spec, case, tmp_path):
    root, logs = case
    labels = logs[[spec.id, spec.timestamp]].assign(**{spec.target: 1})
    labels.iloc[[8, 77], 0] = "twice"
    labels.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(ImportFileError) as raised:
        import_files(home, spec, root / "reference.csv", labels=tmp_path / "labels.csv", chunk_rows=CHUNKED)
    assert "duplicate id 'twice' at row 78 (line 79) (first seen at row 9 (line 10))" in str(raised.value)
    # JSON labels whose timestamp only later records have: the first record misses it
    rows = [
        {
            spec.id: f"id-{index}",
            spec.target: 1,
            **({spec.timestamp: "2024-06-01T00:00:00"} if index >= 20 else {}),
        }
        for index in range(50)
    ]
    path = write_jsonl(tmp_path / "labels.jsonl", rows)
    for chunk_rows in (None, CHUNKED):
        with pytest.raises(ImportFileError) as raised:
            import_files(home, spec, root / "reference.csv", labels=path, chunk_rows=chunk_rows)
        assert f"{path}: column '{spec.timestamp}': missing at line 1" in str(raised.value)
    assert not home.warehouse.exists()


def test_a_reference_over_many_chunks_is_the_same_reference(tmp_path, spec, case):
    root, _ = case
    from warehouse.importer import prepare_reference

    whole, non_finite = prepare_reference(spec, root / "reference.csv")
    chunked, chunked_non_finite = prepare_reference(spec, root / "reference.csv", chunk_rows=CHUNKED)
    pd.testing.assert_frame_equal(chunked, whole)
    assert registry.reference_fingerprint(chunked) == registry.reference_fingerprint(whole)
    assert chunked_non_finite == non_finite
    frame = pd.read_csv(root / "reference.csv", dtype=str, keep_default_na=False)
    frame.loc[250, "credit_score"] = "high"
    frame.to_csv(tmp_path / "reference.csv", index=False)
    with pytest.raises(ImportFileError, match=r"'high' at row 251 \(line 252\)"):
        prepare_reference(spec, tmp_path / "reference.csv", chunk_rows=CHUNKED)
