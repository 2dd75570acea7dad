import pytest

from ml import registry
from ml.datasets import training_set
from ml.train import TrainingDataError, train_model


def test_first_version_is_champion_with_metrics_reference_and_hash(trained_home, spec):
    (version,) = registry.list_versions(trained_home, spec.model)
    assert (version.model_version, version.status, version.trigger) == (1, "champion", "initial")
    assert version.metrics["roc_auc"] > 0.7
    reference = registry.load_reference(trained_home, spec.model, 1)
    assert len(reference) == version.n_reference_rows > 0
    assert {*spec.features, spec.prediction, spec.prediction_proba, spec.target} <= set(reference.columns)
    artifact = registry.version_dir(trained_home, spec.model, 1) / registry.ARTIFACT
    assert registry.sha256_of(artifact) == version.artifact_sha256
    pipeline, loaded = registry.load_pipeline(trained_home, spec.model)
    assert loaded == version
    assert pipeline.predict_proba(reference[list(spec.features)]).shape == (len(reference), 2)


def test_next_version_is_a_challenger_and_champion_stays(trained_home, spec):
    version = registry.register(
        trained_home, spec, train_model(spec, training_set(1000, seed=3)), trigger="manual"
    )
    assert (version.model_version, version.status) == (2, "challenger")
    assert registry.champion_version(trained_home, spec.model) == 1


def test_tampered_artifact_is_refused_before_loading(trained_home, spec):
    artifact = registry.version_dir(trained_home, spec.model, 1) / registry.ARTIFACT
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(
        registry.ArtifactIntegrityError, match=r"modified after registration.*refusing to load"
    ):
        registry.load_pipeline(trained_home, spec.model)


def test_missing_artifact_and_missing_model_are_clear_errors(trained_home, spec):
    (registry.version_dir(trained_home, spec.model, 1) / registry.ARTIFACT).unlink()
    with pytest.raises(registry.ArtifactIntegrityError, match="is missing"):
        registry.load_pipeline(trained_home, spec.model)
    with pytest.raises(registry.RegistryError, match="run `driftmart train` first"):
        registry.load_pipeline(trained_home, "other_model")


def test_training_data_errors_name_the_column(spec):
    frame = training_set(200)
    with pytest.raises(TrainingDataError, match=r"missing feature column.*region"):
        train_model(spec, frame.drop(columns=["region"]))
    bad = frame.astype({"car_value": object})
    bad.loc[7, "car_value"] = "expensive"
    with pytest.raises(TrainingDataError, match="'car_value': 'expensive' at row 7 is not a number"):
        train_model(spec, bad)


def _register_then_die_mid_write(home, spec, trained) -> None:
    import os
    import signal

    real_to_parquet = type(trained.reference).to_parquet

    def killed_while_writing(frame, *args, **kwargs):
        real_to_parquet(frame, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)  # after the artifact, before version.json

    type(trained.reference).to_parquet = killed_while_writing
    registry.register(home, spec, trained, trigger="manual")


def test_a_registration_killed_midway_never_blocks_the_next(trained_home, spec):
    import multiprocessing

    trained = train_model(spec, training_set(800, seed=5))
    process = multiprocessing.get_context("fork").Process(
        target=_register_then_die_mid_write, args=(trained_home, spec, trained)
    )
    process.start()
    process.join(60)
    assert process.exitcode == -9
    assert [version.model_version for version in registry.list_versions(trained_home, spec.model)] == [1]
    # An older driftmart left numbered folders without version.json: their numbers are skipped.
    (registry.version_dir(trained_home, spec.model, 2)).mkdir()
    version = registry.register(trained_home, spec, trained, trigger="manual")
    assert (version.model_version, version.status) == (3, "challenger")
    _, loaded = registry.load_pipeline(trained_home, spec.model, 3)
    assert loaded == version and registry.champion_version(trained_home, spec.model) == 1


def test_concurrent_registrations_get_distinct_versions(trained_home, spec):
    from concurrent.futures import ThreadPoolExecutor

    trained = train_model(spec, training_set(800, seed=6))
    with ThreadPoolExecutor(4) as pool:
        versions = list(pool.map(lambda _: registry.register(trained_home, spec, trained), range(4)))
    assert sorted(version.model_version for version in versions) == [2, 3, 4, 5]
    assert [version.model_version for version in registry.list_versions(trained_home, spec.model)] == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert registry.champion_version(trained_home, spec.model) == 1


def _promote_then_die_at_write(home, model_name, version, writes_before_death):
    import os
    import signal

    real_write_atomic, done = registry.write_atomic, []

    def write_or_die(*args, **kwargs):
        if len(done) == writes_before_death:
            os.kill(os.getpid(), signal.SIGKILL)
        real_write_atomic(*args, **kwargs)
        done.append(args[0])

    registry.write_atomic = write_or_die
    registry.promote(home, model_name, version, actor="test", reason="killed midway")


@pytest.mark.parametrize("writes_before_death", [0, 1, 2])
def test_a_promotion_killed_at_any_write_leaves_one_champion_and_the_next_works(
    trained_home, spec, writes_before_death
):
    """A promotion writes the champion pointer and two version.json files: killed before any of
    them, between them or after the last, the registry reads one champion, the one the API serves
    (the pointer: the single source of truth), and the next promotion works."""
    import multiprocessing

    registry.register(trained_home, spec, train_model(spec, training_set(800, seed=8)), trigger="manual")
    process = multiprocessing.get_context("fork").Process(
        target=_promote_then_die_at_write, args=(trained_home, spec.model, 2, writes_before_death)
    )
    process.start()
    process.join(60)
    assert process.exitcode == -9
    versions = registry.list_versions(trained_home, spec.model)
    champions = [version.model_version for version in versions if version.status == "champion"]
    served = registry.load_pipeline(trained_home, spec.model)[1].model_version
    assert champions == [served]
    assert registry.get_version(trained_home, spec.model, served).status == "champion"
    other = 3 - served
    assert (
        registry.promote(trained_home, spec.model, other, actor="test", reason="again").status == "champion"
    )
    statuses = {
        version.model_version: version.status for version in registry.list_versions(trained_home, spec.model)
    }
    assert statuses == {other: "champion", served: "retired"}
