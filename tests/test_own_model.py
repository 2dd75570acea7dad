"""A model owner's own scikit-learn model, end to end with the real components: `driftmart register`
(pickle with and without --trust-pickle, skops), a real `driftmart serve`, a week of drifted traffic
and labels, `driftmart run` retraining the owner's estimator, and the API serving the winner with
predictions of the model's own type. Plus a regression and a multiclass model in-process."""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from ml import registry
from ml.serving.app import create_app
from ml.spec import load_spec
from orchestration.cli import main
from tests.services import start_api_server, stop_process_group
from tests.test_cli import driftmart
from warehouse.home import Home

pytestmark = pytest.mark.slow

GEOGRAPHIES = ["France", "Spain", "Germany"]
FEATURES = ["CreditScore", "Age", "Geography"]
CHURN_SPEC = """\
model: churn
timestamp: ScoredAt
id: CustomerId
prediction: ExitedPredicted
prediction_proba: ExitedProbability
target: Exited
features:
  CreditScore: numeric
  Age: numeric
  Geography: categorical
window: 1d
"""
START = pd.Timestamp("2026-03-01")
DAYS, ROWS_PER_DAY = 7, 200


def churn(n: int, seed: int, drifted: bool = False) -> pd.DataFrame:
    """Bank customers: before, the old leave; after the drift, customers are older and poorer,
    mostly in Germany, and there it is Germany (not age) that makes them leave."""
    rng = np.random.default_rng(seed)
    age = rng.normal(50 if drifted else 38, 8, n).round()
    credit = rng.normal(600 if drifted else 650, 80, n).round()
    geography = rng.choice(GEOGRAPHIES, n, p=[0.2, 0.2, 0.6] if drifted else [0.5, 0.25, 0.25])
    if drifted:
        logit = 2.5 * (geography == "Germany") - 1.2 - 0.1 * (age - 50)
    else:
        logit = 0.15 * (age - 40) - 0.01 * (credit - 650)
    exited = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"CreditScore": credit, "Age": age, "Geography": geography, "Exited": exited})


def random_forest_pipeline() -> Pipeline:
    return Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [("geography", OneHotEncoder(handle_unknown="ignore"), ["Geography"])],
                    remainder="passthrough",
                ),
            ),
            ("forest", RandomForestClassifier(n_estimators=50, min_samples_leaf=5, random_state=0)),
        ]
    )


@pytest.fixture(scope="module")
def churn_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("churn-files")
    train = churn(1500, seed=1)
    model = random_forest_pipeline().fit(train[FEATURES], train["Exited"])
    joblib.dump(model, folder / "model.pkl")
    sio.dump(model, folder / "model.skops")
    churn(400, seed=2).to_csv(folder / "reference.csv", index=False)
    (folder / "churn.yaml").write_text(CHURN_SPEC)
    return {
        "model": folder / "model.pkl",
        "skops": folder / "model.skops",
        "reference": folder / "reference.csv",
        "spec": folder / "churn.yaml",
    }


def json_rows(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame[FEATURES].to_json(orient="records"))


def assert_same_answers(answers: list[dict], model, frame: pd.DataFrame) -> None:
    expected = model.predict(frame[FEATURES])
    assert [answer["prediction"] for answer in answers] == expected.tolist()
    assert all(type(answer["prediction"]) is int for answer in answers)  # JSON ints, never "1"
    positive = list(model.classes_).index(1)
    probabilities = model.predict_proba(frame[FEATURES])[:, positive]
    assert [answer["probability"] for answer in answers] == pytest.approx(probabilities.tolist())


def test_own_random_forest_is_registered_served_retrained_as_itself_and_served_again(tmp_path, churn_files):
    home = Home.resolve(tmp_path / "home")
    spec_path = str(churn_files["spec"])
    common = ("register", "--spec", spec_path, "--model", str(churn_files["model"]))
    common += ("--reference", str(churn_files["reference"]))

    refused = driftmart(*common, home=home)
    assert refused.returncode == 2, refused.stderr
    assert "unpickling runs arbitrary code" in refused.stderr
    assert "--trust-pickle" in refused.stderr and 'skops.io.dump(model, "model.skops")' in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and registry.list_versions(home, "churn") == []

    registered = driftmart(*common, "--trust-pickle", home=home)
    assert registered.returncode == 0, registered.stderr
    assert "registered churn v1 (champion): RandomForestClassifier from pickle" in registered.stdout
    v1 = registry.get_version(home, "churn", 1)
    assert (v1.estimator, v1.trigger) == ("RandomForestClassifier", "register")
    assert v1.metrics["roc_auc"] > 0.7 and v1.n_reference_rows == 400
    original = joblib.load(churn_files["model"])

    server, base = start_api_server(home, spec=spec_path)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            info = client.get("/model").json()
            assert (info["model_version"], info["task"], info["estimator"]) == (
                1,
                "binary",
                "RandomForestClassifier",
            )
            sample = churn(20, seed=5)
            answers = client.post("/predict/batch", json=json_rows(sample)).json()
            assert_same_answers(answers, original, sample)
            # the id and timestamp under the spec's names, or the generic ones; two different: 422
            row = json_rows(sample)[0]
            same = client.post("/predict", json={**row, "CustomerId": "c-1", "request_id": "c-1"})
            assert same.status_code == 200 and same.json()["request_id"] == "c-1"
            conflict = client.post("/predict", json={**row, "CustomerId": "c-1", "request_id": "c-2"})
            assert conflict.status_code == 422
            assert {field["field"] for field in conflict.json()["fields"]} == {"CustomerId", "request_id"}
            bad_label = client.post("/feedback", json={"CustomerId": "c-1", "label": 2})
            assert bad_label.status_code == 422 and bad_label.json()["fields"][0]["field"] == "label"

            # a week of drifted traffic, replayed with its own ids and timestamps, and its labels
            traffic = churn(DAYS * ROWS_PER_DAY, seed=7, drifted=True)
            seconds = np.sort(np.random.default_rng(8).uniform(0, DAYS * 86_400, len(traffic)))
            traffic["CustomerId"] = [f"cust-{n:05d}" for n in range(len(traffic))]
            traffic["ScoredAt"] = [(START + pd.Timedelta(seconds=s)).isoformat() for s in seconds]
            body = json.loads(traffic[["CustomerId", "ScoredAt", *FEATURES]].to_json(orient="records"))
            for start in range(0, len(body), 500):
                assert client.post("/predict/batch", json=body[start : start + 500]).status_code == 200
            labels = [
                {"CustomerId": customer, "label": int(label)}
                for customer, label in zip(traffic["CustomerId"], traffic["Exited"], strict=True)
            ]
            assert client.post("/feedback", json=labels).json() == {"accepted": len(labels)}

            run = driftmart("run", "--spec", spec_path, home=home)
            assert run.returncode == 1, run.stdout + run.stderr
            assert "retrain: challenger v2 champion" in run.stdout, run.stdout

            with duckdb.connect(str(home.root / "published" / "driftmart.duckdb"), read_only=True) as db:
                versions = db.execute(
                    "select model_version, status, trigger, estimator from marts.dim_model_versions "
                    "where model_name = 'churn' order by 1"
                ).fetchall()
            assert versions == [
                (1, "retired", "register", "RandomForestClassifier"),
                (2, "champion", "drift", "RandomForestClassifier"),
            ]

            deadline = time.monotonic() + 15
            while client.get("/model").json()["model_version"] != 2:
                assert time.monotonic() < deadline, "the API did not switch to v2"
                time.sleep(0.2)
            assert client.get("/model").json()["estimator"] == "RandomForestClassifier"
            winner, _ = registry.load_pipeline(home, "churn", 2)
            assert isinstance(winner.steps[-1][1], RandomForestClassifier)
            assert winner.steps[-1][1].get_params() == original.steps[-1][1].get_params()
            assert winner.classes_.tolist() == [0, 1] and winner.classes_.dtype.kind == "i"
            recent = churn(20, seed=9, drifted=True)
            answers = client.post("/predict/batch", json=json_rows(recent)).json()
            assert {answer["model_version"] for answer in answers} == {2}
            assert_same_answers(answers, winner, recent)
    finally:
        stop_process_group(server)


def test_skops_registration_and_the_trust_rule(tmp_path, churn_files, capsys):
    home = tmp_path / "home"
    common = ["--home", str(home), "register", "--spec", str(churn_files["spec"])]
    reference = ["--reference", str(churn_files["reference"])]
    assert main([*common, "--model", str(churn_files["skops"]), *reference]) == 0
    assert "registered churn v1 (champion): RandomForestClassifier from skops" in capsys.readouterr().out

    # A function inside the file is refused, even NumPy's: it would run on every prediction.
    train = churn(300, seed=3)
    saving = Pipeline(
        [
            ("hook", FunctionTransformer(np.save, kw_args={"file": "/tmp/x.npy"})),
            ("model", LogisticRegression()),
        ]
    )
    saving.steps[1][1].fit(train[["CreditScore", "Age"]], train["Exited"])
    sio.dump(saving, tmp_path / "saving.skops")
    assert main([*common, "--model", str(tmp_path / "saving.skops"), *reference]) == 2
    error = capsys.readouterr().err
    assert "refusing to load types" in error and "numpy.save" in error

    # The second registration is a challenger unless --promote
    assert main([*common, "--model", str(churn_files["skops"]), *reference, "--promote"]) == 0
    assert registry.champion_version(Home.resolve(home), "churn") == 2
    assert registry.get_version(Home.resolve(home), "churn", 1).status == "retired"


def test_a_model_that_does_not_fit_its_spec_is_refused(tmp_path, churn_files, capsys):
    spec = tmp_path / "churn.yaml"
    spec.write_text(CHURN_SPEC + "positive_label: 'yes'\n")
    common = ["--home", str(tmp_path / "home"), "register", "--spec", str(spec)]
    arguments = [*common, "--model", str(churn_files["skops"]), "--reference", str(churn_files["reference"])]
    assert main(arguments) == 2
    assert (
        "positive_label 'yes' is not a class of the model (RandomForestClassifier)" in capsys.readouterr().err
    )
    spec.write_text(
        CHURN_SPEC.replace("  Geography: categorical\n", "  Geography: categorical\n  Tenure: numeric\n")
    )
    assert main(arguments) == 2
    assert "it was not fitted with 'Tenure'" in capsys.readouterr().err


HOUSE_SPEC = """\
model: house_prices
timestamp: listed at
id: listing.id
prediction: price predicted
target: Price €
task: regression
features:
  'Größe m²': numeric
  'Rooms "total"': numeric
  'Stadt / Viertel': categorical
"""
HOUSE_FEATURES = ["Größe m²", 'Rooms "total"', "Stadt / Viertel"]


def test_a_regression_model_with_the_users_own_names(tmp_path, capsys):
    rng = np.random.default_rng(4)
    size = rng.uniform(30, 200, 400).round(1)
    rooms = rng.integers(1, 7, 400).astype(float)
    city = rng.choice(["Berlin Mitte", "Köln", "Zürich"], 400)
    price = 3000 * size + 10_000 * rooms + 50_000 * (city == "Zürich") + rng.normal(0, 5000, 400)
    frame = pd.DataFrame({HOUSE_FEATURES[0]: size, HOUSE_FEATURES[1]: rooms, HOUSE_FEATURES[2]: city})
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [("city", OneHotEncoder(handle_unknown="ignore"), [HOUSE_FEATURES[2]])],
                    remainder="passthrough",
                ),
            ),
            ("forest", RandomForestRegressor(n_estimators=20, random_state=0)),
        ]
    ).fit(frame, price)
    sio.dump(model, tmp_path / "house.skops")
    frame.assign(**{"Price €": price}).to_parquet(tmp_path / "reference.parquet")
    (tmp_path / "house.yaml").write_text(HOUSE_SPEC)
    home = Home.resolve(tmp_path / "home")
    assert (
        main(
            [
                "--home",
                str(home.root),
                "register",
                "--spec",
                str(tmp_path / "house.yaml"),
                "--model",
                str(tmp_path / "house.skops"),
                "--reference",
                str(tmp_path / "reference.parquet"),
            ]
        )
        == 0
    ), capsys.readouterr().err
    version = registry.get_version(home, "house_prices", 1)
    assert version.estimator == "RandomForestRegressor" and {"rmse", "mae", "r2"} <= set(version.metrics)

    spec = load_spec(tmp_path / "house.yaml")
    row = {HOUSE_FEATURES[0]: 80.5, HOUSE_FEATURES[1]: 3, HOUSE_FEATURES[2]: "Köln"}
    with TestClient(create_app(home, spec)) as client:
        answer = client.post(
            "/predict", json={**row, "listing.id": "L-1", "listed at": "2026-03-01T10:00:00"}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        expected = float(model.predict(pd.DataFrame([row]))[0])
        assert type(body["prediction"]) is float and body["prediction"] == pytest.approx(expected)
        assert body["probability"] is None and body["request_id"] == "L-1"
        missing = client.post("/predict", json={HOUSE_FEATURES[0]: 80.5, HOUSE_FEATURES[2]: "Köln"})
        assert missing.status_code == 422
        assert missing.json()["fields"][0]["field"] == 'Rooms "total"'
        assert client.get("/model").json()["task"] == "regression"
        assert client.post("/feedback", json={"request_id": "L-1", "label": 312_000.5}).status_code == 200
        refused = client.post("/feedback", json={"listing.id": "L-1", "label": "expensive"})
        assert refused.status_code == 422 and refused.json()["fields"][0]["field"].endswith("label")


def test_a_multiclass_model_answers_its_classes_and_their_probabilities(tmp_path, capsys):
    rng = np.random.default_rng(6)
    frame = pd.DataFrame(
        {"CreditScore": rng.normal(650, 80, 600).round(), "Age": rng.normal(40, 10, 600).round()}
    )
    frame["Geography"] = rng.choice(GEOGRAPHIES, 600)
    risk = np.where(frame["CreditScore"] < 600, "high", np.where(frame["CreditScore"] < 700, "mid", "low"))
    model = random_forest_pipeline().fit(frame, risk)
    sio.dump(model, tmp_path / "risk.skops")
    frame.assign(Risk=risk).to_csv(tmp_path / "reference.csv", index=False)
    (tmp_path / "risk.yaml").write_text(
        CHURN_SPEC.replace("model: churn", "model: risk")
        .replace("prediction_proba: ExitedProbability\n", "")
        .replace("target: Exited", "target: Risk")
        + "task: multiclass\nprediction_proba: {low: p_low, mid: p_mid, high: p_high}\n"
    )
    home = Home.resolve(tmp_path / "home")
    arguments = ["--home", str(home.root), "register", "--spec", str(tmp_path / "risk.yaml")]
    arguments += ["--model", str(tmp_path / "risk.skops"), "--reference", str(tmp_path / "reference.csv")]
    assert main(arguments) == 0, capsys.readouterr().err
    assert {"accuracy", "macro_f1", "weighted_f1", "roc_auc"} <= set(
        registry.get_version(home, "risk", 1).metrics
    )
    reference = registry.load_reference(home, "risk", 1)
    assert {"p_low", "p_mid", "p_high", "ExitedPredicted"} <= set(reference.columns)

    sample = frame.head(5)
    with TestClient(create_app(home, load_spec(tmp_path / "risk.yaml"))) as client:
        answers = client.post("/predict/batch", json=json_rows(sample)).json()
        assert [answer["prediction"] for answer in answers] == model.predict(sample).tolist()
        expected = model.predict_proba(sample)
        for answer, row in zip(answers, expected, strict=True):
            assert answer["probability"] is None
            assert answer["probabilities"] == pytest.approx(dict(zip(model.classes_, row, strict=True)))
        assert client.post("/feedback", json={"CustomerId": "a", "label": "mid"}).status_code == 200
        assert client.post("/feedback", json={"CustomerId": "a", "label": "none"}).status_code == 422
