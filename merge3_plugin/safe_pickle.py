"""The one place merge3 reads a pickle: tinyBenchmarks' parameter file, through an allow-list.

House rule: no pickle for files we write or read from users (bundles are JSON, response matrices
`.npz` read with allow_pickle=False). tinyBenchmarks ships its fitted IRT parameters only as a
pickle (`tinyBenchmarks.pkl`), and `pickle.load` on a downloaded file runs whatever code the file
names. This loader lets nothing in the file reach real code:

1. **Opcodes.** Before anything is unpickled, the opcode stream is scanned (pickletools, which runs
   nothing) and refused if it uses an opcode numpy's pickles never need: the extension registry
   (EXT1/2/4, which CPython resolves from a process-wide cache without asking `find_class`),
   persistent ids, out-of-band buffers, and the class-instantiating INST/OBJ/NEWOBJ.
2. **Globals.** `find_class` resolves only the names numpy's array, dtype and scalar pickles use
   (ALLOWED), and not to numpy's own functions but to stand-ins here that check every argument.
   numpy's reconstructors trust their input: a pickled dtype's state sets its flags, so a file can
   make an "object" field look like plain bytes and get an array whose items are pointers it wrote
   (reading one crashes the process, or worse). The stand-ins accept only dtypes of plain numbers,
   booleans and strings (no object, structured, subarray or datetime dtypes; only the byte order is
   taken from a dtype's pickled state) and build every array with `np.frombuffer` from bytes whose
   length must match its shape.
3. **Result.** What the stand-ins return is replaced by real arrays, dtypes and numpy scalars in
   one walk over the loaded containers (dicts, lists, tuples, sets; nothing else can appear), which
   also refuses containers that refer to themselves.

Plain dicts, lists, tuples, strings and numbers need no global at all. Any other global (os.system,
builtins.eval, a class of any package) is refused before it is looked up. `merge3
import-tinybenchmarks` then validates every shape and writes our own JSON bundles.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError

# opcodes refused before unpickling (see the module docstring); the rest build only plain containers
# and literals, or call one of the ALLOWED stand-ins (REDUCE) and set its state (BUILD)
REFUSED_OPCODES = {
    "EXT1": "the copyreg extension registry", "EXT2": "the copyreg extension registry",
    "EXT4": "the copyreg extension registry", "PERSID": "a persistent id", "BINPERSID": "a persistent id",
    "NEXT_BUFFER": "an out-of-band buffer", "READONLY_BUFFER": "an out-of-band buffer",
    "INST": "a class instance (INST)", "OBJ": "a class instance (OBJ)", "NEWOBJ": "a class instance (NEWOBJ)",
    "NEWOBJ_EX": "a class instance (NEWOBJ_EX)",
}
PLAIN_KINDS = "biufcSU"  # bool, integers, floats, complex, bytes and unicode strings: no pointers inside
MAX_DIMS = 32


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside ALLOWED."""

    def __init__(self, module: str, name: str):
        self.qualified = f"{module}.{name}"
        super().__init__(self.qualified)


class Unsafe(pickle.UnpicklingError):
    """The pickle asks an allowed reconstructor for something it does not build safely."""


# -- stand-ins for numpy's reconstructors -----------------------------------------------------------
class _Built:
    """A value under construction; replaced by `.value` once the whole pickle is loaded."""
    __slots__ = ("value",)

    def __setstate__(self, state: Any) -> None:
        raise Unsafe(f"a BUILD on {type(self).__name__.strip('_')} (numpy's pickles never do that)")


class _Dtype(_Built):
    """numpy.dtype(spec, align, copy), then its pickled state: a plain dtype or a refusal."""
    __slots__ = ()

    def __init__(self, spec: Any, align: Any = False, copy: Any = False):
        if not isinstance(spec, str) or len(spec) > 16 or align not in (0, 1) or copy not in (0, 1):
            raise Unsafe(f"numpy.dtype({spec!r:.40}, ...): expected a short type string")
        try:
            dt = np.dtype(spec)
        except (TypeError, ValueError):
            raise Unsafe(f"numpy.dtype({spec!r}): not a numpy type") from None
        if dt.kind not in PLAIN_KINDS or dt.fields is not None or dt.subdtype is not None or dt.hasobject:
            raise Unsafe(f"numpy.dtype({spec!r}) (kind {dt.kind!r}): not a dtype of plain numbers, booleans or "
                         "strings (object, structured and subarray dtypes are refused)")
        self.value = dt

    def __setstate__(self, state: Any) -> None:
        """numpy's dtype state (3, byte order, subarray, names, fields, itemsize, alignment, flags): only the
        byte order is taken; anything that would make it another dtype is refused."""
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[1] in ("<", ">", "|", "=")
                and state[2] is None and state[3] is None and state[4] is None
                and state[5] in (-1, self.value.itemsize)):
            raise Unsafe(f"a numpy.dtype({self.value.str!r}) state that is not a plain dtype's: {state!r:.120}")
        if state[1] in "<>" and self.value.byteorder != "|":
            self.value = self.value.newbyteorder(state[1])


class _NdarrayClass:
    """Stands for numpy.ndarray: only the first argument of _reconstruct (calling it fails)."""
    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise Unsafe("a call of numpy.ndarray (an array on a buffer, shape and strides of the file's choosing)")

    def __setstate__(self, state: Any) -> None:
        raise Unsafe("a BUILD on numpy.ndarray itself")


_NDARRAY = _NdarrayClass()


def _dtype_of(value: Any, where: str) -> np.dtype:
    if not isinstance(value, _Dtype):
        raise Unsafe(f"{where}: expected a numpy dtype, got {type(value).__name__}")
    return value.value


def _array(raw: Any, dt: np.dtype, shape: Any, fortran: bool, where: str) -> np.ndarray:
    """An array of `dt` and `shape` from exactly its bytes (copied: writable, owning its memory)."""
    if not isinstance(raw, (bytes, bytearray)):
        raise Unsafe(f"{where}: the array's data is a {type(raw).__name__}, expected bytes")
    if not (isinstance(shape, tuple) and len(shape) <= MAX_DIMS
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
        raise Unsafe(f"{where}: shape {shape!r:.80} is not a tuple of non-negative integers")
    if math.prod(shape) * dt.itemsize != len(raw):
        raise Unsafe(f"{where}: {len(raw)} bytes of data for shape {shape} of {dt.str} "
                     f"({math.prod(shape) * dt.itemsize} expected)")
    flat = np.frombuffer(raw, dtype=dt) if len(raw) else np.empty(0, dtype=dt)
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="K")


class _Array(_Built):
    """numpy.core.multiarray._reconstruct(ndarray, (0,), b'b'), then its state (ndarray.__setstate__'s)."""
    __slots__ = ()

    def __init__(self, cls: Any, shape: Any = None, typecode: Any = None):
        if cls is not _NDARRAY:
            raise Unsafe(f"_reconstruct of a {type(cls).__name__}: only numpy.ndarray is allowed")

    def __setstate__(self, state: Any) -> None:
        if hasattr(self, "value"):
            raise Unsafe("a second BUILD on one array")
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not (isinstance(state, tuple) and len(state) == 4 and isinstance(state[2], (bool, int))):
            raise Unsafe(f"an ndarray state that is not (version, shape, dtype, fortran, bytes): {state!r:.120}")
        shape, dt, fortran, raw = state
        self.value = _array(raw, _dtype_of(dt, "ndarray state"), shape, bool(fortran), "ndarray state")


def _reconstruct(cls: Any, shape: Any = None, typecode: Any = None) -> _Array:
    return _Array(cls, shape, typecode)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> _Built:
    """numpy.core.numeric._frombuffer (protocol 5's arrays, data in band)."""
    if order not in ("C", "F"):
        raise Unsafe(f"_frombuffer with order {order!r:.20}")
    out = _Built()
    out.value = _array(buf, _dtype_of(dtype, "_frombuffer"), shape, order == "F", "_frombuffer")
    return out


def _scalar(dtype: Any, data: Any = None) -> _Built:
    """numpy.core.multiarray.scalar(dtype, bytes): one plain number or string."""
    dt = _dtype_of(dtype, "scalar")
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise Unsafe(f"scalar of {dt.str} from {type(data).__name__} "
                     f"{len(data) if isinstance(data, bytes) else ''} (expected {dt.itemsize} bytes)")
    out = _Built()
    out.value = np.frombuffer(data, dtype=dt)[0]
    return out


def _make_dtype(spec: Any, align: Any = False, copy: Any = False) -> _Dtype:
    return _Dtype(spec, align, copy)


# (module, name) -> stand-in. numpy's pickles: arrays (protocol <= 4: _reconstruct + ndarray; protocol 5:
# _frombuffer), dtypes, and numpy scalars. numpy 1.x wrote "numpy.core", numpy 2.x writes "numpy._core".
ALLOWED = {
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _reconstruct for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _scalar for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _frombuffer for core in ("core", "_core")},
    ("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _make_dtype,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise RefusedGlobal(module, name)
        return ALLOWED[(module, name)]

    def persistent_load(self, pid: Any) -> Any:  # unreachable after the opcode scan; kept as a second lock
        raise Unsafe("a persistent id")


def _scan(data: bytes) -> None:
    """Refuse REFUSED_OPCODES without running anything (pickletools only decodes)."""
    for op, _, _ in pickletools.genops(data):
        if op.name in REFUSED_OPCODES:
            raise Unsafe(f"it uses {REFUSED_OPCODES[op.name]} (opcode {op.name}), which numpy's pickles never use")


def _finish(obj: Any) -> Any:
    """The loaded object with every stand-in replaced by its value; refuses anything unexpected."""
    done: dict[int, Any] = {}
    busy: set[int] = set()

    def walk(x: Any) -> Any:
        if x is None or isinstance(x, (bool, int, float, complex, str, bytes)):
            return x
        if id(x) in done:
            return done[id(x)]
        if id(x) in busy:
            raise Unsafe("a container that contains itself")
        if isinstance(x, _Built):
            if not hasattr(x, "value"):
                raise Unsafe("an array whose data was never given (no BUILD)")
            return x.value
        busy.add(id(x))
        if type(x) is dict:
            out: Any = {walk(k): walk(v) for k, v in x.items()}
        elif type(x) is list:
            out = [walk(v) for v in x]
        elif type(x) in (tuple, set, frozenset):
            out = type(x)(walk(v) for v in x)
        elif type(x) is bytearray:
            out = bytes(x)
        else:
            raise Unsafe(f"an object of type {type(x).__name__}")
        busy.discard(id(x))
        done[id(x)] = out
        return out

    return walk(obj)


def load_arrays(path: Path, data: bytes) -> Any:
    """The object pickled in `data` (the bytes of `path`), built from numpy arrays, dtypes, scalars and
    plain containers only; a UserError naming the file and what was refused otherwise."""
    try:
        _scan(data)
        return _finish(_ArrayUnpickler(io.BytesIO(data)).load())
    except RefusedGlobal as err:
        raise UserError(f"{path}: refused to unpickle: it names {err.qualified}, which is not a numpy array, dtype "
                        "or scalar (only those are allowed; nothing in the file was run)") from None
    except Unsafe as err:
        raise UserError(f"{path}: refused to unpickle: {err} (merge3 reads only plain numpy arrays, dtypes and "
                        "scalars from it; nothing in the file was run)") from None
    except Exception as err:  # truncated, corrupt, or not a pickle at all
        raise UserError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from None
