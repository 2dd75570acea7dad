"""The spec is never guessed: `train` and `import` remember the spec in the home
(`<home>/specs/<model>.yaml`), and `run`, `serve`, `ui` and `rollback` without `--spec` take the
home's only model, the demo model on an empty home, and otherwise say which models there are."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import duckdb
import pytest
import yaml

from ml.datasets import wide_case
from ml.spec import DEFAULT_SPEC_PATH, load_spec, parse_spec
from tests.services import DRIFTMART
from warehouse.home import Home
from warehouse.specs import (
    SeveralModelsError,
    UnknownSpecError,
    known_models,
    remember_spec,
    resolve_spec,
    sole_spec_path,
    spec_file,
)


def driftmart(home: Home, *args: str, spec_env: str | None = None, timeout: float = 300):
    """The real console script on `home`; DRIFTMART_SPEC only when given (an in-process pipeline run
    of another test may have left it in this process's environment)."""
    environment = {name: value for name, value in os.environ.items() if name != "DRIFTMART_SPEC"}
    if spec_env is not None:
        environment["DRIFTMART_SPEC"] = spec_env
    return subprocess.run(
        [DRIFTMART, "--home", str(home.root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=environment,
    )


def write_model_files(folder: Path, model: str, seed: int) -> Path:
    """A small batch-scoring case as CSV files: spec.yaml (with a comment), reference.csv, logs.csv."""
    spec, reference, logs = wide_case(days=3, rows_per_day=150, n_numeric=2, n_categorical=1, seed=seed)
    spec["model"] = model
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(f"# {model}: scored by a batch job\n" + yaml.safe_dump(spec))
    reference.to_csv(folder / "reference.csv", index=False)
    logs.drop(columns=["outcome"]).to_csv(folder / "logs.csv", index=False)
    return folder


def import_model(home: Home, folder: Path) -> None:
    imported = driftmart(
        home,
        "import",
        "--spec",
        str(folder / "spec.yaml"),
        "--reference",
        str(folder / "reference.csv"),
        "--logs",
        str(folder / "logs.csv"),
    )
    assert imported.returncode == 0, imported.stderr


def monitored_models(home: Home) -> list[str]:
    with duckdb.connect(str(home.warehouse), read_only=True) as connection:
        rows = connection.execute("select model_name from raw.monitored_models order by 1").fetchall()
    return [name for (name,) in rows]


def assert_one_line_error(completed: subprocess.CompletedProcess, *fragments: str) -> None:
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1, completed.stderr
    assert completed.stderr.startswith("driftmart: "), completed.stderr
    for fragment in fragments:
        assert fragment in completed.stderr, (fragment, completed.stderr)


@pytest.fixture(scope="module")
def churn_files(tmp_path_factory) -> Path:
    return write_model_files(tmp_path_factory.mktemp("files") / "churn", "churn", seed=3)


@pytest.fixture(scope="module")
def fraud_files(tmp_path_factory) -> Path:
    return write_model_files(tmp_path_factory.mktemp("files") / "fraud", "fraud", seed=4)


# The store itself, without commands.


def test_remember_spec_keeps_the_files_bytes_and_the_home_knows_the_model(home, churn_files):
    spec = load_spec(churn_files / "spec.yaml")
    assert known_models(home) == []
    path = remember_spec(home, spec)
    assert path == spec_file(home, "churn") == home.root / "specs" / "churn.yaml"
    assert path.read_bytes() == (churn_files / "spec.yaml").read_bytes()  # comments and all
    assert known_models(home) == ["churn"]
    assert resolve_spec(home).fingerprint == spec.fingerprint
    assert sole_spec_path(home) == str(path)
    assert not [entry.name for entry in path.parent.iterdir() if entry.name.startswith(".")]
    # A spec built in memory has no file to copy: nothing is remembered.
    in_memory = parse_spec(yaml.safe_load((churn_files / "spec.yaml").read_text()) | {"model": "other"})
    assert remember_spec(home, in_memory) is None
    assert known_models(home) == ["churn"]


def test_a_model_folder_with_a_version_counts_and_an_empty_one_does_not(home, churn_files):
    (home.models / "leftover").mkdir()  # e.g. a lock folder: no version in it
    version = home.models / "scored" / "v1"
    version.mkdir(parents=True)
    (version / "version.json").write_text("{}")
    assert known_models(home) == ["scored"]
    with pytest.raises(UnknownSpecError, match=r"holds model 'scored' but not its spec.*--spec"):
        resolve_spec(home)
    assert sole_spec_path(home) == ""  # the Dagster code location does not raise at import
    remember_spec(home, load_spec(churn_files / "spec.yaml"))
    with pytest.raises(SeveralModelsError, match=r"2 models \(churn, scored\): pass --spec"):
        resolve_spec(home)
    assert resolve_spec(home, str(churn_files / "spec.yaml")).model == "churn"


def test_an_empty_home_resolves_to_the_demo_model_and_a_demo_home_without_a_stored_spec_too(home):
    assert resolve_spec(home).model == load_spec(DEFAULT_SPEC_PATH).model == "car_loan"
    version = home.models / "car_loan" / "v1"  # registered by `driftmart demo` or an older driftmart
    version.mkdir(parents=True)
    (version / "version.json").write_text("{}")
    assert resolve_spec(home).source == str(DEFAULT_SPEC_PATH)


def test_the_dagster_definitions_take_the_remembered_spec_of_the_only_model(home, churn_files, monkeypatch):
    from orchestration.definitions import build_definitions

    monkeypatch.delenv("DRIFTMART_SPEC", raising=False)
    remembered = remember_spec(home, load_spec(churn_files / "spec.yaml"))
    definitions = build_definitions(str(home.root))
    resource = definitions.resources["driftmart"]
    assert resource.spec_path == str(remembered)
    assert resource.spec().model == "churn"


# The commands, as users run them.


def test_train_on_a_fresh_home_without_a_spec_trains_the_demo_model_and_remembers_it(home):
    trained = driftmart(home, "train")
    assert trained.returncode == 0, trained.stderr
    assert "registered car_loan v1 (champion)" in trained.stdout
    assert spec_file(home, "car_loan").read_bytes() == DEFAULT_SPEC_PATH.read_bytes()
    again = driftmart(home, "train", "--seed", "1")  # now from the remembered spec
    assert again.returncode == 0, again.stderr
    assert "registered car_loan v2 (challenger)" in again.stdout


def test_commands_on_a_model_whose_spec_the_home_does_not_remember_name_it(home, churn_files):
    import_model(home, churn_files)
    spec_file(home, "churn").unlink()
    for command in (("serve",), ("rollback",), ("run",), ("ui",)):
        assert_one_line_error(driftmart(home, *command), "holds model 'churn' but not its spec", "--spec")
    assert "car_loan" not in monitored_models(home)
    # Passing --spec once remembers it again (the model is imported: there is nothing to serve).
    served = driftmart(home, "serve", "--spec", str(churn_files / "spec.yaml"))
    assert_one_line_error(served, "'churn'")
    assert "not its spec" not in served.stderr
    assert spec_file(home, "churn").read_bytes() == (churn_files / "spec.yaml").read_bytes()


@pytest.mark.slow
def test_run_without_a_spec_runs_the_only_imported_model_not_the_demo(home, churn_files):
    import_model(home, churn_files)
    run = driftmart(home, "run")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("churn: all windows"), run.stdout
    assert "no drift (exit 0)" in run.stdout
    assert "car_loan" not in run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert monitored_models(home) == ["churn"]
    assert not (home.models / "car_loan").exists()


@pytest.mark.slow
def test_two_imported_models_one_model_commands_ask_for_the_spec_and_run_runs_both(
    home, churn_files, fraud_files
):
    import_model(home, churn_files)
    import_model(home, fraud_files)
    assert known_models(home) == ["churn", "fraud"]
    for command in (("serve",), ("ui",), ("rollback",), ("train",)):
        assert_one_line_error(driftmart(home, *command), "2 models (churn, fraud)", "pass --spec")
    # --spec, or DRIFTMART_SPEC, chooses: the error is now fraud's own, not the ambiguity.
    chosen = driftmart(home, "rollback", "--spec", str(fraud_files / "spec.yaml"))
    from_environment = driftmart(home, "rollback", spec_env=str(fraud_files / "spec.yaml"))
    for completed in (chosen, from_environment):
        assert_one_line_error(completed, "fraud")
        assert "2 models" not in completed.stderr

    run = driftmart(home, "run", "--no-retrain", timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "churn: all windows" in run.stdout and "fraud: all windows" in run.stdout
    assert run.stdout.index("churn:") < run.stdout.index("fraud:")
    assert "2 models: churn exit 0, fraud exit 0" in run.stdout
    assert "Traceback" not in run.stderr and "driftmart:" not in run.stderr, run.stderr
    assert monitored_models(home) == ["churn", "fraud"]
