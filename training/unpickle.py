"""Load a model file with an unpickler that may only build allow-listed objects.

A joblib file is a pickle, and a plain pickle may call any importable function while
it loads (`os.system` is the classic example). The model store is trusted and every
file is checked against the SHA-256 in its metadata first, but that hash lives next
to the file: whoever can write the store can rewrite both. This loader removes most
of what such a writer could do: the pickle may only name

- estimator classes (subclasses of scikit-learn's `BaseEstimator`) defined in
  `sklearn` or in this project's `training` package,
- numpy's universal functions (`numpy.log1p`, `numpy.expm1`, ...), element-wise
  arithmetic that a target transform may hold,
- the handful of numpy, pandas and joblib helpers a fitted estimator is made of
  (arrays, dtypes, scalars, timestamps), and `training.models.UnitFactors` (a plain
  dict whose class name older releases do not know, on purpose), listed one by one
  in `ALLOWED`.

Anything else, a function from `os` or `subprocess`, `builtins.eval`, a numpy or pandas
function that is not listed, stops the load with `ForbiddenGlobal`, naming what the
file asked for. Building an allowed estimator runs only its constructor and
`__setstate__`, which store attributes.

It reads what `joblib.dump` writes without compression (the only thing the training
job writes). It subclasses joblib's own `NumpyUnpickler`, which reads the arrays that
joblib stores inline and routes the nested pickles of object arrays through the same
`find_class`, so the allow-list covers them too. That class is not part of joblib's
documented API, so the joblib version is pinned and `tests/test_hostile.py` loads
every model kind through this module: an upgrade that changes the class fails there,
not in production.

What it does not stop: a file that allocates a huge array or describes a nonsense
estimator can still exhaust memory or fail later; that is a denial of service by
someone who can already write the model store, and the predictor's self-check
refuses a model that does not answer.
"""

import importlib
import pickle
from pathlib import Path
from typing import BinaryIO

from joblib.numpy_pickle import NumpyUnpickler

# Exact (module, name) pairs a fitted model may contain besides estimator classes.
ALLOWED = frozenset({
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    # The same helpers under the module names numpy 1.x pickles use.
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
    ("builtins", "slice"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("collections", "OrderedDict"),
    # A forecaster's unit factors when some series was fitted in a smaller unit.
    ("training.models", "UnitFactors"),
})
# Packages whose estimator classes may be built; other names in them are refused.
ESTIMATOR_PACKAGES = ("sklearn", "training")


class ForbiddenGlobal(pickle.UnpicklingError):
    """The model file names something outside the allow-list."""


def _is_estimator_class(module: str, name: str):
    from sklearn.base import BaseEstimator

    # The module is imported before its class can be checked, and importing runs it:
    # a dunder module is never where an estimator lives, and `training.__main__`
    # would run the training command (and its SystemExit) inside the loader.
    if module.split(".", 1)[0] not in ESTIMATOR_PACKAGES or "__" in name \
            or "__" in module:
        return None
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    if isinstance(found, type) and issubclass(found, BaseEstimator):
        return found
    return None


def _is_ufunc(module: str, name: str):
    import numpy

    found = getattr(numpy, name, None) if module == "numpy" else None
    return found if isinstance(found, numpy.ufunc) else None


class AllowListUnpickler(NumpyUnpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        allowed = _is_estimator_class(module, name) or _is_ufunc(module, name)
        if allowed is not None:
            return allowed
        raise ForbiddenGlobal(
            f"the model file asks for {module}.{name}, which is not an estimator "
            "class, a numpy ufunc nor on the allow-list in training/unpickle.py; "
            "refusing to load it. If a new model kind needs it and it is harmless to "
            "build, add it to ALLOWED."
        )


def load_model(source: Path | BinaryIO, name: str = ""):
    """The object stored in a joblib file (a path or an open binary file), built only
    from allow-listed parts."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            return load_model(f, str(source))
    return AllowListUnpickler(name, source, ensure_native_byte_order=True).load()
