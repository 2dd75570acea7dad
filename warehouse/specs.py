"""The monitoring specs a home remembers: `<home>/specs/<model>.yaml`, so the spec is never guessed.

`driftmart train` and `driftmart import` copy the spec they used (the file's own bytes) into the
home; a command given `--spec` for a model of the home refreshes the copy. Without `--spec`, the
commands that work on one model take it from here: the home's only model, the demo model on a home
that holds none, and otherwise a clear error that lists the models and asks for `--spec`.
`$DRIFTMART_SPEC` counts as `--spec` (the variable the Dagster code location reads).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ml.errors import DriftmartError
from ml.spec import DEFAULT_SPEC_PATH, ModelSpec, load_spec, parse_spec
from warehouse.files import write_atomic
from warehouse.home import Home

SPECS_DIR = "specs"
SPEC_ENV = "DRIFTMART_SPEC"
VERSION_METADATA = "version.json"  # ml/registry.py METADATA: a folder with one is a model version


class SpecResolutionError(DriftmartError):
    """Which spec a command means cannot be told without `--spec`."""


class SeveralModelsError(SpecResolutionError):
    """The home holds more than one model and the command works on one."""


class UnknownSpecError(SpecResolutionError):
    """The home holds a model whose spec it does not remember (registered by an older driftmart)."""


def specs_dir(home: Home) -> Path:
    return home.root / SPECS_DIR


def spec_file(home: Home, model: str) -> Path:
    return specs_dir(home) / f"{model}.yaml"


def remember_spec(home: Home, spec: ModelSpec) -> Path | None:
    """Copy the spec's YAML file (its exact bytes) to `<home>/specs/<model>.yaml`, atomically.

    A spec built in memory (no source file) is not remembered: returns None. The bytes are checked
    to describe the same spec before they are written, so a file edited since it was loaded is
    refused rather than remembered by mistake.
    """
    source = Path(spec.source)
    if spec.source == "<memory>" or not source.is_file():
        return None
    target = spec_file(home, spec.model)
    if target.exists() and source.resolve() == target.resolve():
        return target
    data = source.read_bytes()
    if target.exists() and target.read_bytes() == data:
        return target
    reread = parse_spec(yaml.safe_load(data), source=str(source))
    if reread.model != spec.model or reread.fingerprint != spec.fingerprint:
        raise SpecResolutionError(f"{source}: the spec file changed while driftmart was using it; run again")
    write_atomic(target, data)
    return target


def _registered_models(home: Home) -> set[str]:
    """Models with at least one registered version (`<home>/models/<model>/v<N>/version.json`)."""
    if not home.models.is_dir():
        return set()
    return {
        folder.name
        for folder in home.models.iterdir()
        if folder.is_dir()
        and not folder.name.startswith(".")
        and any(
            version.name[1:].isdigit() and (version / VERSION_METADATA).is_file()
            for version in folder.glob("v*")
        )
    }


def _remembered_models(home: Home) -> set[str]:
    folder = specs_dir(home)
    if not folder.is_dir():
        return set()
    return {path.stem for path in folder.glob("*.yaml") if path.is_file() and not path.name.startswith(".")}


def known_models(home: Home) -> list[str]:
    """The models of the home: those with a remembered spec and those with a registered version."""
    return sorted(_remembered_models(home) | _registered_models(home))


def model_spec(home: Home, model: str) -> ModelSpec:
    """The remembered spec of one model of the home.

    The demo model registered without a remembered spec (by `driftmart demo` or an older driftmart)
    has the spec driftmart ships for it; any other model without one is an error naming it.
    """
    remembered = spec_file(home, model)
    if remembered.is_file():
        spec = load_spec(remembered)
        if spec.model != model:
            raise SpecResolutionError(f"{remembered}: describes model {spec.model!r}, not {model!r}")
        return spec
    demo = load_spec(DEFAULT_SPEC_PATH)
    if model == demo.model:
        return demo
    raise UnknownSpecError(
        f"{home.root} holds model {model!r} but not its spec (registered by an older driftmart?): "
        f"pass --spec <its spec file> once, and driftmart remembers it in {specs_dir(home)}"
    )


def _explicit(home: Home, spec_path: str | Path) -> ModelSpec:
    spec = load_spec(spec_path)
    if spec.model in known_models(home):  # a spec of a model the home does not hold stays unremembered
        remember_spec(home, spec)
    return spec


def _given(spec_path: str | Path | None) -> str | Path | None:
    return spec_path or os.environ.get(SPEC_ENV) or None


def resolve_spec(home: Home, spec_path: str | Path | None = None) -> ModelSpec:
    """The spec a one-model command works on.

    `--spec` (or `$DRIFTMART_SPEC`): that file, remembered if the home holds its model. Without it:
    the home's only model; the demo model on a home without any; else SeveralModelsError.
    """
    given = _given(spec_path)
    if given is not None:
        return _explicit(home, given)
    models = known_models(home)
    if not models:
        return load_spec(DEFAULT_SPEC_PATH)
    if len(models) > 1:
        raise SeveralModelsError(
            f"{home.root} holds {len(models)} models ({', '.join(models)}): "
            "pass --spec <spec file> to choose one"
        )
    return model_spec(home, models[0])


def models_to_run(home: Home, spec_path: str | Path | None = None) -> list[str]:
    """The models `driftmart run` works on one after the other when no spec is given (or
    `$DRIFTMART_SPEC`) and the home holds several; [] otherwise (then `resolve_spec` decides)."""
    if _given(spec_path) is not None:
        return []
    models = known_models(home)
    return models if len(models) > 1 else []


def sole_spec_path(home: Home) -> str:
    """For the Dagster code location without `$DRIFTMART_SPEC`: the remembered spec file of the
    home's only model, or "" (the demo model's spec) when there is no single remembered one.
    Never raises: the definitions module is imported by commands on other homes too."""
    try:
        models = known_models(home)
    except OSError:
        return ""
    if len(models) != 1 or not spec_file(home, models[0]).is_file():
        return ""
    return str(spec_file(home, models[0]))
