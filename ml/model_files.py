"""Reading a model file its owner brings (`driftmart register --model FILE`).

- `.skops` (the default, and the safe one): skops reads the file without running code from it, and
  refuses every type it does not trust by default. driftmart accepts, beyond those, the *classes*
  defined in scikit-learn, NumPy and SciPy (`sklearn.tree._tree.Tree`, `numpy.dtype`, a SciPy sparse
  matrix …): skops rebuilds them from their stored state. It refuses anything else: classes of other
  packages (they could run their own code while being rebuilt or used) and functions of any package
  (a FunctionTransformer holding `numpy.save` or `os.system` would call it on every prediction).
  The refusal lists the types.
- `.pkl` / `.pickle` / `.joblib`: unpickling runs whatever code the file asks for, so these are
  loaded only with `trust_pickle` (`--trust-pickle`), the owner's statement that the file is theirs.

Either way the registry stores the model re-serialised by driftmart as skops (ml/registry.py), so a
pickle is unpickled once, at registration, and never again.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skops.io as sio

from ml.errors import DriftmartError

SKOPS_SUFFIXES = (".skops",)
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy")
PICKLE_REFUSAL = (
    "unpickling runs arbitrary code from the file, so driftmart loads a pickle only with "
    "--trust-pickle (pass it if you trust where the file came from), or convert the model to skops "
    'where you trust it: `import skops.io; skops.io.dump(model, "model.skops")`'
)


class ModelFileError(DriftmartError):
    """A model file that cannot be loaded, or may not be: the message says why and what to do."""


@dataclass(frozen=True)
class LoadedModel:
    model: Any
    format: str  # "skops" or "pickle"
    accepted_types: list[str]  # skops: the types accepted beyond skops' defaults


def _resolve(name: str) -> Any:
    """The object a dotted name (`package.module.Name`) refers to, or None."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attribute in parts[split:]:
                target = getattr(target, attribute)
        except AttributeError:
            return None
        return target
    return None


def is_trusted_type(name: str) -> bool:
    """A class (not a function) defined in scikit-learn, NumPy or SciPy."""
    if name.split(".")[0] not in TRUSTED_PACKAGES:
        return False
    try:
        target = _resolve(name)
    except Exception:
        return False
    return isinstance(target, type) and target.__module__.split(".")[0] in TRUSTED_PACKAGES


def load_model_file(path: Path, *, trust_pickle: bool = False) -> LoadedModel:
    """Load a scikit-learn estimator or Pipeline from `.skops` or, when trusted, from a pickle."""
    suffix = path.suffix.lower()
    if suffix not in SKOPS_SUFFIXES + PICKLE_SUFFIXES:
        raise ModelFileError(
            f"{path}: unknown model file type {suffix or '(none)'!r} (expected .skops, or with "
            "--trust-pickle .pkl, .pickle or .joblib)"
        )
    if suffix in PICKLE_SUFFIXES and not trust_pickle:
        raise ModelFileError(f"{path}: {PICKLE_REFUSAL}")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    if suffix in PICKLE_SUFFIXES:
        import joblib

        try:
            model = joblib.load(path)
        except Exception as error:
            raise ModelFileError(f"{path}: cannot unpickle it: {type(error).__name__}: {error}") from None
        return LoadedModel(model, "pickle", [])
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as error:
        raise ModelFileError(f"{path}: not a readable skops file: {type(error).__name__}: {error}") from None
    refused = [name for name in untrusted if not is_trusted_type(name)]
    if refused:
        raise ModelFileError(
            f"{path}: refusing to load types that are not classes of scikit-learn, NumPy or SciPy: "
            f"{', '.join(refused)} (skops would have to import and run them; if you trust the file, "
            "register the model as a pickle with --trust-pickle)"
        )
    try:
        model = sio.load(path, trusted=untrusted)
    except Exception as error:
        raise ModelFileError(f"{path}: cannot load it: {type(error).__name__}: {error}") from None
    return LoadedModel(model, "skops", list(untrusted))
