from pathlib import Path

import pytest

from ml.spec import SpecError, load_spec

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
    assert spec.thresholds == {"psi": 0.2}


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
        (VALID.replace("target: repaid\n", ""), "missing required key(s): target"),
        (
            VALID.replace("  salary_range: categorical", "  salary_range: categorical\n  car_value: numeric"),
            "duplicate key 'car_value' at line 10",
        ),
        (VALID.replace("salary_range", "x; drop table raw.labels"), "is not a valid name"),
        (VALID.replace("window: 1d", "window: daily"), "key 'window': 'daily' is not a window length"),
        (VALID + "colour: blue\n", "unknown key(s): colour"),
        (VALID.replace("psi: 0.25", "psi: -1"), "thresholds: psi must be a positive number"),
        (
            VALID.replace("  car_value: numeric", "  repaid: numeric"),
            "feature 'repaid' has the name of a reserved column",
        ),
        ("features: [a, b]\n", "missing required key(s): model, timestamp, id, prediction, target"),
        ("model: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_spec_is_a_clear_error_naming_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "nope.yaml")
