"""Commands the README shows that no other test runs."""

import json
import re
import subprocess

import pytest
from fastapi.testclient import TestClient

from ml.serving.app import create_app
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_the_curl_example_is_a_valid_prediction_request(trained_home, spec):
    (payload,) = re.findall(r"curl -s localhost:8000/predict .*?-d '(.*?)'", README, flags=re.DOTALL)
    body = json.loads(payload)
    with TestClient(create_app(trained_home, spec)) as client:
        response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    assert {"request_id", "prediction", "probability", "model_version"} <= set(response.json())


@pytest.mark.slow
def test_make_lint_passes():
    completed = subprocess.run(
        ["make", "--no-print-directory", "lint"], cwd=REPO, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
