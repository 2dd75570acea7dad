"""The model registry on disk: one folder per model version under `<home>/models/<model>/`.

Each version folder holds the artifact (`model.skops`: skops does not execute code on load, and only
the types in `TRUSTED_TYPES` plus those the version recorded when it was registered are accepted),
`version.json` (metadata, metrics, the artifact's SHA-256) and `reference.parquet` (the reference
rows). Every artifact is written by driftmart itself from a model it already holds (trained,
retrained, or registered by its owner: ml/model_files.py), so the types it needs are known then and
recorded. The file `champion` names the version the API serves; it is replaced atomically. The
warehouse mirrors all of this in `raw.model_registry` and `raw.reference_rows` (warehouse/ingest.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ml.errors import DriftmartError
from ml.spec import ModelSpec
from warehouse.files import fsync_directory, write_atomic
from warehouse.home import Home

if TYPE_CHECKING:  # scikit-learn: imported by the steps that train or load a model, not by readers
    from ml.train import TrainedModel

ARTIFACT = "model.skops"
METADATA = "version.json"
REFERENCE = "reference.parquet"
CHAMPION = "champion"
# The only non-default types a driftmart pipeline needs; anything else in an artifact is refused.
TRUSTED_TYPES = ["numpy.dtype"]


class RegistryError(DriftmartError):
    """A registry problem the caller cannot fix by retrying: missing or unknown version."""


class ArtifactIntegrityError(RegistryError):
    """An artifact whose bytes do not match the SHA-256 recorded when it was registered."""


@dataclass(frozen=True)
class ModelVersion:
    model_name: str
    model_version: int
    created_at: str
    trigger: str
    status: str
    artifact_sha256: str
    metrics: dict[str, float]
    spec_fingerprint: str
    n_training_rows: int
    n_reference_rows: int
    features: dict[str, str]
    # SHA-256 of the reference set's content (imports recognise a reference they already have).
    reference_fingerprint: str = ""
    # Every lifecycle step: {at, event, status, actor, reason, evidence}; newest last.
    history: list[dict[str, Any]] = field(default_factory=list)
    # The champion-vs-challenger comparison that decided this version's fate, if there was one.
    validation: dict[str, Any] = field(default_factory=dict)
    # The class name of the final estimator (e.g. RandomForestClassifier); "" when imported.
    estimator: str = ""
    # Types beyond skops' defaults that the artifact holds, accepted when it was registered (the
    # SHA-256 check makes sure the artifact loaded is the one that was accepted).
    trusted_types: list[str] = field(default_factory=list)

    @property
    def decided_at(self) -> str:
        return self.history[-1]["at"] if self.history else self.created_at

    @property
    def reason(self) -> str:
        return self.history[-1].get("reason", "") if self.history else ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVersion:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})

    @property
    def has_artifact(self) -> bool:
        """False for versions scored outside driftmart, known only by their imported reference set."""
        return bool(self.artifact_sha256)


def _model_dir(home: Home, model_name: str) -> Path:
    return home.models / model_name


def version_dir(home: Home, model_name: str, version: int) -> Path:
    return _model_dir(home, model_name) / f"v{version}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_version(metadata: Path, champion: int | None) -> ModelVersion:
    """A version.json, its status read against the `champion` pointer, the one source of truth for
    which version is served: a promotion interrupted after the pointer moved leaves the old
    champion's file saying "champion" (it is retired) and the new one's saying "challenger"."""
    version = ModelVersion.from_dict(json.loads(metadata.read_text()))
    if champion is None:  # no pointer yet: a first registration interrupted before it was written
        return version
    if version.model_version == champion and version.status != "champion":
        return replace(version, status="champion")
    if version.model_version != champion and version.status == "champion":
        return replace(version, status="retired")
    return version


def list_versions(home: Home, model_name: str) -> list[ModelVersion]:
    champion = champion_version(home, model_name)
    versions = [
        _read_version(metadata, champion) for metadata in _model_dir(home, model_name).glob(f"v*/{METADATA}")
    ]
    return sorted(versions, key=lambda version: version.model_version)


def get_version(home: Home, model_name: str, version: int) -> ModelVersion:
    metadata = version_dir(home, model_name, version) / METADATA
    if not metadata.exists():
        raise RegistryError(f"model {model_name!r} has no version {version} in {home.models}")
    return _read_version(metadata, champion_version(home, model_name))


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def _event(event: str, status: str, actor: str, reason: str, evidence: dict[str, Any] | None = None) -> dict:
    return {"at": _now(), "event": event, "status": status, "actor": actor, "reason": reason} | (
        {"evidence": evidence} if evidence else {}
    )


def _save(home: Home, version: ModelVersion) -> ModelVersion:
    metadata = version_dir(home, version.model_name, version.model_version) / METADATA
    write_atomic(metadata, json.dumps(asdict(version), indent=2).encode())
    return version


@contextmanager
def registry_lock(home: Home, model_name: str) -> Iterator[None]:
    """Serialise lifecycle changes of one model (pipeline, CLI rollback) across processes."""
    directory = _model_dir(home, model_name)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def champion_version(home: Home, model_name: str) -> int | None:
    pointer = _model_dir(home, model_name) / CHAMPION
    return int(pointer.read_text().strip()) if pointer.exists() else None


def reference_fingerprint(reference: pd.DataFrame) -> str:
    """SHA-256 of a reference set's values, independent of the file format it came in."""
    hashed = pd.util.hash_pandas_object(reference.reset_index(drop=True), index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes() + "|".join(map(str, reference.columns)).encode()).hexdigest()


def _staging_dir(home: Home, model_name: str) -> Path:
    """A hidden folder to build a version in: an interrupted registration leaves only this behind,
    which no listing reads and which never blocks the next registration."""
    directory = _model_dir(home, model_name)
    directory.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=directory, prefix=".registering-"))


def _next_version_number(home: Home, model_name: str) -> int:
    """One past every numbered folder, with or without metadata (an older driftmart could leave a
    `vN/` without version.json): a number is never reused. Call under registry_lock."""
    numbers = [
        int(path.name[1:])
        for path in _model_dir(home, model_name).glob("v*")
        if path.is_dir() and path.name[1:].isdigit()
    ]
    return max(numbers, default=0) + 1


def _commit_version(
    home: Home, model_name: str, staging: Path, describe: Callable[[int, bool], ModelVersion]
) -> ModelVersion:
    """Number the version built in `staging` and publish it, under the registry lock: its number
    is chosen, version.json written and the folder renamed into place as one step, and the first
    version of a model becomes its champion in the same step."""
    try:
        with registry_lock(home, model_name):
            number = _next_version_number(home, model_name)
            is_first = champion_version(home, model_name) is None
            model_version = describe(number, is_first)
            write_atomic(staging / METADATA, json.dumps(asdict(model_version), indent=2).encode())
            target = version_dir(home, model_name, number)
            os.rename(staging, target)
            fsync_directory(target.parent)
            if is_first and model_version.status == "champion":
                write_atomic(_model_dir(home, model_name) / CHAMPION, f"{number}\n".encode())
            return model_version
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def register_external(home: Home, spec: ModelSpec, reference: pd.DataFrame) -> tuple[ModelVersion, bool]:
    """Record a model scored outside driftmart by its reference set (`driftmart import`).

    Returns the version and whether it is new: a reference with the same content as a registered
    one is that version, so importing the same file twice registers nothing.
    """
    fingerprint = reference_fingerprint(reference)
    for known in list_versions(home, spec.model):
        if known.reference_fingerprint == fingerprint:
            return known, False
    staging = _staging_dir(home, spec.model)
    reference.to_parquet(staging / REFERENCE, index=False)

    def describe(number: int, is_first: bool) -> ModelVersion:
        return ModelVersion(
            model_name=spec.model,
            model_version=number,
            created_at=_now(),
            trigger="import",
            status="external",
            artifact_sha256="",
            metrics={},
            spec_fingerprint=spec.fingerprint,
            n_training_rows=0,
            n_reference_rows=len(reference),
            features=dict(spec.features),
            reference_fingerprint=fingerprint,
            history=[_event("registered", "external", "driftmart import", "reference set imported")],
        )

    return _commit_version(home, spec.model, staging, describe), True


def register(
    home: Home,
    spec: ModelSpec,
    trained: TrainedModel,
    *,
    trigger: str = "manual",
    actor: str = "driftmart train",
    evidence: dict[str, Any] | None = None,
) -> ModelVersion:
    """Save a trained model as the next version; the first version of a model becomes champion.

    The artifact is the model in skops format, whatever it came from; the types skops does not trust
    by default are recorded with it (driftmart holds the model already: it serialised it itself)."""
    import skops.io as sio  # 2 s of imports (scikit-learn): only where an artifact is written or read

    from ml.estimators import estimator_name

    artifact = sio.dumps(trained.pipeline)
    trusted = sorted(set(sio.get_untrusted_types(data=artifact)) - set(TRUSTED_TYPES))
    staging = _staging_dir(home, spec.model)
    write_atomic(staging / ARTIFACT, artifact)
    trained.reference.to_parquet(staging / REFERENCE, index=False)
    artifact_sha256 = sha256_of(staging / ARTIFACT)

    def describe(number: int, is_first: bool) -> ModelVersion:
        status = "champion" if is_first else "challenger"
        return ModelVersion(
            model_name=spec.model,
            model_version=number,
            created_at=_now(),
            trigger=trigger,
            status=status,
            artifact_sha256=artifact_sha256,
            metrics=trained.metrics,
            spec_fingerprint=spec.fingerprint,
            n_training_rows=trained.n_training_rows,
            n_reference_rows=len(trained.reference),
            features=dict(spec.features),
            reference_fingerprint=reference_fingerprint(trained.reference),
            history=[_event("registered", status, actor, f"trigger: {trigger}", evidence)],
            estimator=estimator_name(trained.pipeline),
            trusted_types=trusted,
        )

    return _commit_version(home, spec.model, staging, describe)


def record_validation(home: Home, model_name: str, version: int, validation: dict[str, Any]) -> ModelVersion:
    with registry_lock(home, model_name):
        return _save(home, replace(get_version(home, model_name, version), validation=validation))


def promote(
    home: Home, model_name: str, version: int, *, actor: str, reason: str, evidence: dict | None = None
) -> ModelVersion:
    """Make `version` the champion (the API switches to it); the previous champion is retired.

    The `champion` pointer is replaced first, atomically: that one rename is the promotion. The two
    version.json files then record the events; if the process dies before, statuses still read
    right (_read_version) and only the history lacks the step."""
    with registry_lock(home, model_name):
        candidate = get_version(home, model_name, version)
        if not candidate.has_artifact:
            raise RegistryError(f"{model_name} v{version} has no model artifact and cannot be served")
        previous = champion_version(home, model_name)
        if previous == version:
            return candidate
        write_atomic(_model_dir(home, model_name) / CHAMPION, f"{version}\n".encode())
        if previous is not None:
            retired = get_version(home, model_name, previous)
            _save(
                home,
                replace(
                    retired,
                    status="retired",
                    history=[
                        *retired.history,
                        _event("retired", "retired", actor, f"replaced by v{version}"),
                    ],
                ),
            )
        promoted = _save(
            home,
            replace(
                candidate,
                status="champion",
                history=[*candidate.history, _event("promoted", "champion", actor, reason, evidence)],
            ),
        )
        return promoted


def reject(
    home: Home, model_name: str, version: int, *, actor: str, reason: str, evidence: dict | None = None
) -> ModelVersion:
    with registry_lock(home, model_name):
        candidate = get_version(home, model_name, version)
        return _save(
            home,
            replace(
                candidate,
                status="rejected",
                history=[*candidate.history, _event("rejected", "rejected", actor, reason, evidence)],
            ),
        )


def rollback(home: Home, model_name: str, *, actor: str, reason: str = "rollback") -> ModelVersion:
    """Return to the champion before the current one (the newest retired version)."""
    current = champion_version(home, model_name)
    if current is None:
        raise RegistryError(f"model {model_name!r} has no champion to roll back from")
    retired = [
        version
        for version in list_versions(home, model_name)
        if version.status == "retired" and version.has_artifact and version.model_version != current
    ]
    if not retired:
        raise RegistryError(
            f"{model_name} v{current} is the only champion there has been: nothing to roll back to"
        )
    previous = max(retired, key=lambda version: version.decided_at)
    load_pipeline(home, model_name, previous.model_version)  # refuse a tampered or missing artifact
    return promote(
        home, model_name, previous.model_version, actor=actor, reason=f"{reason} (from v{current})"
    )


def load_pipeline(home: Home, model_name: str, version: int | None = None) -> tuple[Any, ModelVersion]:
    """Load a version's model (default: the champion; a scikit-learn estimator or Pipeline),
    verifying its SHA-256 before parsing it."""
    if version is None:
        version = champion_version(home, model_name)
        if version is None:
            raise RegistryError(
                f"model {model_name!r} has no champion in {home.models}: run `driftmart train` first "
                "(or `driftmart register` for a model of your own)"
            )
    metadata = get_version(home, model_name, version)
    if not metadata.has_artifact:
        raise RegistryError(
            f"{model_name} v{version} was imported (scored outside driftmart): no model to load"
        )
    artifact = version_dir(home, model_name, version) / ARTIFACT
    if not artifact.exists():
        raise ArtifactIntegrityError(f"artifact of {model_name} v{version} is missing: {artifact}")
    data = artifact.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != metadata.artifact_sha256:
        raise ArtifactIntegrityError(
            f"artifact of {model_name} v{version} was modified after registration: "
            f"{artifact} has SHA-256 {actual[:12]}…, the registry recorded "
            f"{metadata.artifact_sha256[:12]}…; refusing to load it"
        )
    import skops.io as sio

    pipeline = sio.loads(data, trusted=[*TRUSTED_TYPES, *metadata.trusted_types])
    return pipeline, metadata


def load_reference(home: Home, model_name: str, version: int) -> pd.DataFrame:
    return pd.read_parquet(version_dir(home, model_name, version) / REFERENCE)
