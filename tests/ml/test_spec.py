from pathlib import Path

import pytest

from ml.spec import FeatureMonitor, Reference, SpecError, load_spec

VALID = """\
model: car_loan
timestamp: scored_at
id: request_id
prediction: y_pred
prediction_proba: y_pred_proba
target: repaid
features:
  car_value: numeric
  salary_range: categorical
window: 1d
thresholds:
  psi: 0.25
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_shipped_demo_spec_loads():
    spec = load_spec()
    assert spec.model == "car_loan"
    assert spec.numeric_features and spec.categorical_features
    assert spec.window_seconds == 86_400
    assert spec.thresholds["psi"] == 0.2
    assert spec.monitor("car_value") == FeatureMonitor("psi", 0.2)
    assert spec.monitor("region") == FeatureMonitor("js_distance", 0.1)
    assert spec.reference == Reference() and spec.min_window_rows == 100


def test_valid_spec_reads_every_key(tmp_path):
    spec = load_spec(write(tmp_path, VALID))
    assert spec.features == {"car_value": "numeric", "salary_range": "categorical"}
    assert spec.prediction_proba == "y_pred_proba"
    assert spec.thresholds["psi"] == 0.25
    assert spec.fingerprint == load_spec(write(tmp_path, VALID)).fingerprint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            VALID.replace("  salary_range: categorical", "  salary_range: text"),
            "feature 'salary_range' has unknown type 'text'",
        ),
        (VALID.replace("model: car_loan", "model: Car Loan"), "key 'model': 'Car Loan' is not a valid name"),
        (
            VALID.replace("  salary_range: categorical", "  salary_range: categorical\n  car_value: numeric"),
            "duplicate key 'car_value' at line 10",
        ),
        (VALID.replace("salary_range", '"a\\tb"'), "contains a control character"),
        (VALID.replace("salary_range", "' '"), "a column name cannot be empty or blank"),
        (VALID + "task: ranking\n", "key 'task': 'ranking' is not one of binary, multiclass, regression"),
        (VALID + "task: regression\n", "a regression model has no probabilities"),
        (
            VALID + "task: multiclass\n",
            "a multiclass model maps each class to its column",
        ),
        (
            VALID.replace("prediction_proba: y_pred_proba\n", "") + "positive_label: 1\ntask: regression\n",
            "positive_label' applies to binary models only",
        ),
        (VALID + "retrain: {metric: rmse}\n", "metric must be one of roc_auc, accuracy, f1 for a binary"),
        (
            VALID + "retrain: {fit: 'not a function'}\n",
            "fit must name a function as 'package.module:function'",
        ),
        (VALID + "segments: store\n", "key 'segments' must be a list"),
        (VALID + "segments: [request_id]\n", "segments: 'request_id' is a column driftmart reads as the id"),
        (VALID + "segment_drift: {fdr: 0.1}\n", "segment_drift: applies only with 'segments'"),
        (
            VALID + "segments: [store]\nsegment_drift: {fdr: 1.5}\n",
            "segment_drift.fdr must be between 0 and 1",
        ),
        (
            VALID + "segments: [store]\nsegment_drift: {top_k: 0}\n",
            "segment_drift.top_k must be a positive",
        ),
        (VALID + "segments: [store]\nsegment_drift: {size: 3}\n", "segment_drift: unknown key(s): size"),
        (VALID.replace("salary_range", "__probability__:1"), "are the model output's"),
        (VALID.replace("window: 1d", "window: daily"), "key 'window': 'daily' is not a window length"),
        (VALID + "colour: blue\n", "unknown key(s): colour"),
        (VALID.replace("psi: 0.25", "psi: -1"), "thresholds: psi must be a positive number"),
        (
            VALID.replace("  car_value: numeric", "  repaid: numeric"),
            "feature 'repaid' has the name of a reserved column",
        ),
        ("features: [a, b]\n", "missing required key(s): model, timestamp, id, prediction"),
        ("model: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_spec_is_a_clear_error_naming_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_per_feature_methods_thresholds_and_references(tmp_path):
    text = VALID.replace(
        "  salary_range: categorical",
        "  salary_range: {type: categorical, method: chi2_p_value, threshold: 0.01}\n  age: numeric",
    ).replace("window: 1d", "window: 1h\nreference: {start: 2026-01-01, end: '2026-02-01T00:00:00Z'}")
    text += "drift_methods: {numeric: ks_statistic}\nmin_window_rows: 20\n"
    spec = load_spec(write(tmp_path, text))
    assert spec.monitor("salary_range") == FeatureMonitor("chi2_p_value", 0.01)
    assert spec.monitor("age") == FeatureMonitor("ks_statistic", 0.1)
    assert spec.reference.kind == "time_range"
    assert (spec.reference.start.isoformat(), spec.reference.end.isoformat()) == (
        "2026-01-01T00:00:00",
        "2026-02-01T00:00:00",
    )
    assert (spec.window_seconds, spec.min_window_rows) == (3600, 20)
    assert (
        load_spec(write(tmp_path, VALID + "reference: previous_window\n")).reference.kind == "previous_window"
    )
    evidently = load_spec(write(tmp_path, VALID + "statistics: evidently\n"))
    assert evidently.monitor("car_value").method == "wasserstein_normed"


@pytest.mark.parametrize(
    ("addition", "message"),
    [
        ("drift_methods: {numeric: l_infinity}\n", "l_infinity applies to categorical features only"),
        ("drift_methods: {categorical: wasserstein_normed}\n", "applies to numeric features only"),
        ("drift_methods: {numeric: magic}\n", "unknown drift method 'magic'"),
        ("reference: {start: 2026-02-01, end: 2026-01-01}\n", "must be before end"),
        ("reference: last_week\n", "key 'reference': expected model_version, previous_window"),
        ("min_window_rows: 0\n", "min_window_rows' must be a positive integer"),
        ("thresholds: {chi2_p_value: 2}\n", "chi2_p_value must be below 1"),
    ],
)
def test_bad_monitoring_options(tmp_path, addition, message):
    with pytest.raises(SpecError, match=message):
        load_spec(write(tmp_path, VALID.replace("thresholds:\n  psi: 0.25\n", "") + addition))


def test_bad_feature_options(tmp_path):
    text = VALID.replace("  car_value: numeric", "  car_value: {type: numeric, colour: red}")
    with pytest.raises(SpecError, match="feature 'car_value': unknown option"):
        load_spec(write(tmp_path, text))


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "nope.yaml")


def test_names_are_the_users_own_kept_exactly(tmp_path):
    hostile = 'x"; drop table raw.labels; --'
    text = f"""\
model: churn
timestamp: Scored At
id: Customer.ID
prediction: Exited?
features:
  CreditScore: numeric
  Age: numeric
  '2nd line': categorical
  'Größe': numeric
  '{hostile}': categorical
  "back\\\\slash 'quoted'": numeric
"""
    spec = load_spec(write(tmp_path, text))
    assert spec.target is None and spec.task == "binary"
    assert (spec.timestamp, spec.id, spec.prediction) == ("Scored At", "Customer.ID", "Exited?")
    assert list(spec.features) == ["CreditScore", "Age", "2nd line", "Größe", hostile, "back\\slash 'quoted'"]


def test_tasks(tmp_path):
    base = VALID.replace("prediction_proba: y_pred_proba\n", "")
    regression = load_spec(write(tmp_path, base + "task: regression\n"))
    assert (regression.task, regression.is_classifier, regression.retrain.metric) == (
        "regression",
        False,
        "rmse",
    )
    assert regression.performance_metrics == ("mae", "rmse", "mape", "r2")
    multiclass = load_spec(
        write(tmp_path, base + "task: multiclass\nprediction_proba: {0: p_low, 1.0: p_mid, high: p_high}\n")
    )
    assert multiclass.class_probabilities == {"0": "p_low", "1": "p_mid", "high": "p_high"}
    assert multiclass.probability_columns == ["p_low", "p_mid", "p_high"]
    assert multiclass.retrain.metric == "macro_f1"
    binary = load_spec(write(tmp_path, VALID + "retrain: {fit: 'my_pkg.training:fit_model', metric: f1}\n"))
    assert (binary.retrain.fit, binary.retrain.metric) == ("my_pkg.training:fit_model", "f1")
    assert binary.probability_columns == ["y_pred_proba"]
