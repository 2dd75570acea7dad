import duckdb
import numpy as np
import pandas as pd
import pytest

from ml import registry
from ml.datasets import generate, training_set
from warehouse.importer import ImportFileError, import_files


def scored(frame: pd.DataFrame, spec, seed: int = 0) -> pd.DataFrame:
    """Generated rows as a batch-scoring job would write them: features, prediction, probability."""
    rng = np.random.default_rng(seed)
    probability = rng.random(len(frame))
    return frame.assign(
        **{spec.prediction: (probability > 0.5).astype(int), spec.prediction_proba: probability}
    )


@pytest.fixture
def files(tmp_path, spec):
    reference = scored(training_set(600), spec)[
        [*spec.features, spec.prediction, spec.prediction_proba, spec.target]
    ]
    logs = scored(generate("covariate_shift", days=4, rows_per_day=100, drift_day=2, seed=5), spec, 1)
    paths = {
        "reference": tmp_path / "reference.csv",
        "reference_parquet": tmp_path / "reference.parquet",
        "logs": tmp_path / "logs.parquet",
        "logs_csv": tmp_path / "logs.csv",
        "labels": tmp_path / "labels.csv",
    }
    reference.to_csv(paths["reference"], index=False)
    reference.to_parquet(paths["reference_parquet"], index=False)
    logs.drop(columns=[spec.target]).to_parquet(paths["logs"], index=False)
    logs.drop(columns=[spec.target]).to_csv(paths["logs_csv"], index=False)
    logs[[spec.id, spec.target]].to_csv(paths["labels"], index=False)
    return paths, logs


def stored_features(connection, request_id: str) -> dict:
    """One logged row's feature values {name: value}, from raw's typed maps."""
    numbers, categories = connection.execute(
        "select feature_numbers, feature_categories from raw.inference_log where request_id = ?", [request_id]
    ).fetchone()
    return {**numbers, **categories}


def counts(home):
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        return connection.execute(
            "select (select count(*) from raw.inference_log), (select count(*) from raw.labels), "
            "(select count(*) from raw.reference_rows), (select count(*) from raw.model_registry)"
        ).fetchall()[0]


def test_import_loads_reference_logs_and_labels_once(home, spec, files):
    paths, logs = files
    first = import_files(home, spec, paths["reference"], paths["logs"], paths["labels"])
    assert (first.model_version, first.reference_is_new) == (1, True)
    assert (first.n_log_rows_loaded, first.n_label_rows_changed) == (400, 400)
    assert counts(home) == (400, 400, 600, 1)
    again = import_files(home, spec, paths["reference_parquet"], paths["logs_csv"], paths["labels"])
    assert (
        again.model_version,
        again.reference_is_new,
        again.n_log_rows_loaded,
        again.n_label_rows_changed,
    ) == (
        1,
        False,
        0,
        0,
    )
    assert counts(home) == (400, 400, 600, 1)
    (version,) = registry.list_versions(home, spec.model)
    assert (version.trigger, version.status, version.has_artifact) == ("import", "external", False)
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        row = connection.execute(
            "select prediction, probability, scored_at, model_version from raw.inference_log "
            "where request_id = ?",
            [logs[spec.id].iloc[0]],
        ).fetchall()[0]
        features = stored_features(connection, logs[spec.id].iloc[0])
    assert row[0] == str(logs[spec.prediction].iloc[0])
    assert row[1] == pytest.approx(logs[spec.prediction_proba].iloc[0], rel=1e-12)
    assert row[2] == logs[spec.timestamp].iloc[0].to_pydatetime()
    assert row[3] == 1
    assert isinstance(features["employment_type"], str)  # a category is stored as text


def test_a_new_file_adds_only_its_new_rows(home, spec, files, tmp_path):
    paths, logs = files
    import_files(home, spec, paths["reference"], paths["logs"])
    more = scored(generate("no_drift", days=1, rows_per_day=50, seed=9), spec).drop(columns=[spec.target])
    overlap = pd.concat([logs.drop(columns=[spec.target]).head(10), more])
    overlap.to_csv(tmp_path / "more.csv", index=False)
    result = import_files(home, spec, paths["reference"], tmp_path / "more.csv")
    assert (result.n_log_rows_read, result.n_log_rows_loaded) == (60, 50)
    assert counts(home)[0] == 450


def test_inline_labels_and_infinite_numbers(home, spec, files, tmp_path):
    paths, logs = files
    with_labels = logs.copy()
    with_labels[spec.target] = with_labels[spec.target].astype(float)
    with_labels.loc[3, "car_value"] = np.inf
    with_labels.to_parquet(tmp_path / "logs_labels.parquet", index=False)
    result = import_files(home, spec, paths["reference"], tmp_path / "logs_labels.parquet")
    assert (result.n_label_rows_read, result.n_non_finite_as_missing) == (400, 1)
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        labels = {row[0] for row in connection.execute("select distinct label from raw.labels").fetchall()}
        features = stored_features(connection, logs[spec.id].iloc[3])
    assert labels == {"0", "1"}  # 1.0 in a float column is the label "1"
    assert "car_value" in features and features["car_value"] is None


def edit_csv(source, target, edit):
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    edit(frame)
    frame.to_csv(target, index=False)
    return target


@pytest.mark.parametrize(
    ("which", "edit", "message"),
    [
        (
            "logs_csv",
            lambda f: f.loc.__setitem__((16, "car_value"), "expensive"),
            "logs.csv: column 'car_value': 'expensive' at row 17 (line 18) is not a number",
        ),
        (
            "logs_csv",
            lambda f: f.drop(columns=["region"], inplace=True),
            "logs.csv: missing required column(s): region",
        ),
        (
            "logs_csv",
            lambda f: f.loc.__setitem__((4, "scored_at"), "last tuesday"),
            "column 'scored_at': 'last tuesday' is not an ISO-8601 timestamp at row 5 (line 6)",
        ),
        ("logs_csv", lambda f: f.loc.__setitem__((9, "request_id"), f.loc[2, "request_id"]), "duplicate id"),
        (
            "logs_csv",
            lambda f: f.loc.__setitem__((0, "y_pred_proba"), "1.5"),
            "is not a probability in [0, 1]",
        ),
        (
            "reference",
            lambda f: f.loc.__setitem__((2, "credit_score"), "high"),
            "reference.csv: column 'credit_score': 'high' at row 3 (line 4)",
        ),
        (
            "labels",
            lambda f: f.loc.__setitem__((7, "repaid"), ""),
            "labels.csv: column 'repaid': missing label at row 8 (line 9)",
        ),
    ],
)
def test_bad_input_is_one_clear_error_and_nothing_is_loaded(
    home, spec, files, tmp_path, which, edit, message
):
    paths, _ = files
    target = tmp_path / "bad" / paths[which].name
    target.parent.mkdir()
    broken = edit_csv(paths[which], target, edit)
    arguments = {"reference": paths["reference"], "logs": paths["logs_csv"], "labels": paths["labels"]}
    arguments[{"logs_csv": "logs"}.get(which, which)] = broken
    with pytest.raises(ImportFileError) as raised:
        import_files(home, spec, arguments["reference"], arguments["logs"], arguments["labels"])
    assert message in str(raised.value)
    assert str(broken) in str(raised.value)
    assert registry.list_versions(home, spec.model) == []
    assert not home.warehouse.exists()


def test_unreadable_files(home, spec, files, tmp_path):
    paths, _ = files
    (tmp_path / "empty.csv").write_text("car_value,region\n")
    (tmp_path / "data.xlsx").write_text("x")
    for path, message in [
        (tmp_path / "absent.csv", "no such file"),
        (tmp_path / "empty.csv", "no rows"),
        (tmp_path / "data.xlsx", "unknown file type '.xlsx'"),
    ]:
        with pytest.raises(ImportFileError, match=message):
            import_files(home, spec, paths["reference"], path)


def test_segment_columns_are_kept_as_text_and_required(home, spec, files, tmp_path):
    """A spec's `segments` columns are not features: the importer keeps them (as label text, 7 and
    7.0 alike) in segment_values of the logs and the reference, and a file without one is refused."""
    from dataclasses import replace

    paths, logs = files
    segmented = replace(spec, segments=("branch",))
    reference = pd.read_csv(paths["reference"])
    reference["branch"] = np.arange(len(reference)) % 2 + 7.0  # 7.0 and 8.0 in a float column
    reference.to_csv(tmp_path / "segmented_reference.csv", index=False)
    logs = logs.drop(columns=[spec.target]).assign(branch=np.where(np.arange(len(logs)) % 2, "7", None))
    logs.to_parquet(tmp_path / "segmented_logs.parquet", index=False)
    with pytest.raises(ImportFileError, match=r"logs\.parquet: missing required column\(s\): branch"):
        import_files(home, segmented, tmp_path / "segmented_reference.csv", paths["logs"])
    with pytest.raises(ImportFileError, match=r"reference\.csv: missing required column\(s\): branch"):
        import_files(home, segmented, paths["reference"], tmp_path / "segmented_logs.parquet")
    import_files(home, segmented, tmp_path / "segmented_reference.csv", tmp_path / "segmented_logs.parquet")
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        logged = connection.execute(
            "select segment_values['branch'], count(*) from raw.inference_log group by 1 order by 1"
        ).fetchall()
        referenced = connection.execute(
            "select segment_values['branch'], count(*) from raw.reference_rows group by 1 order by 1"
        ).fetchall()
    assert logged == [("7", len(logs) // 2), (None, len(logs) - len(logs) // 2)]
    assert referenced == [("7", len(reference) - len(reference) // 2), ("8", len(reference) // 2)]
