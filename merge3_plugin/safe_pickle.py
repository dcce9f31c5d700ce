"""The one place merge3 reads a pickle: tinyBenchmarks' parameter file, through an allow-list.

House rule: no pickle for files we write or read from users (bundles are JSON, response matrices
`.npz` read with allow_pickle=False). tinyBenchmarks ships its fitted IRT parameters only as a
pickle (`tinyBenchmarks.pkl`), and `pickle.load` on a downloaded file runs whatever code the file
names. This unpickler resolves only the globals numpy needs to rebuild arrays, dtypes and scalars;
plain dicts, lists, tuples, strings and numbers need no global at all. Any other global (os.system,
builtins.eval, a class of any package) is refused before it is looked up, so nothing in the file
runs. `merge3 import-tinybenchmarks` then validates every shape and writes our own JSON bundles.
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

from .errors import UserError

# (module, name) pairs numpy's pickles use: arrays (protocol <= 4: _reconstruct + ndarray; protocol 5:
# _frombuffer), dtypes, and numpy scalars. numpy 1.x wrote "numpy.core", numpy 2.x writes "numpy._core".
ALLOWED = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
})


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside ALLOWED."""

    def __init__(self, module: str, name: str):
        self.qualified = f"{module}.{name}"
        super().__init__(self.qualified)


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise RefusedGlobal(module, name)
        with warnings.catch_warnings():  # numpy 2 warns that numpy.core is deprecated; the alias still works
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def load_arrays(path: Path, data: bytes) -> Any:
    """The object pickled in `data` (the bytes of `path`), built from numpy arrays, dtypes, scalars and
    plain containers only; a UserError naming the file and the refused global otherwise."""
    try:
        return _ArrayUnpickler(io.BytesIO(data)).load()
    except RefusedGlobal as err:
        raise UserError(f"{path}: refused to unpickle: it names {err.qualified}, which is not a numpy array, dtype "
                        "or scalar (only those are allowed; nothing in the file was run)") from None
    except Exception as err:  # truncated, corrupt, or not a pickle at all
        raise UserError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from None
