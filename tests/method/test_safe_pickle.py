"""The allow-list unpickler (safe_pickle.py) against pickles that only use allowed names, yet would make
numpy build something unsafe, or reach a global without asking find_class. Each of these loaded (and
some crashed the process on first use) before the stand-ins and the opcode scan."""

from __future__ import annotations

import copyreg
import os
import pickle

import numpy as np
import pytest
from numpy._core.multiarray import _reconstruct, scalar
from numpy._core.numeric import _frombuffer

from merge3_plugin.errors import UserError
from merge3_plugin.safe_pickle import load_arrays

OBJECT_FIELD_STATE = (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0)  # flags 0: "no objects inside"


class _Reduce:
    """Pickles as whatever reduce tuple it is given (what a crafted file can spell with allowed names)."""

    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


def forged_dtype(spec="V8", state=OBJECT_FIELD_STATE):
    """numpy.dtype(spec) whose pickled state adds an object field and claims it holds no objects: numpy
    trusts those flags, so an array of it reads the file's bytes as object pointers."""
    return _Reduce(np.dtype, (spec, False, True), state)


def refused(tmp_path, value, words, protocol=4):
    path = tmp_path / "crafted.pkl"
    data = value if isinstance(value, bytes) else pickle.dumps(value, protocol=protocol)
    with pytest.raises(UserError, match="refused to unpickle") as err:
        load_arrays(path, data)
    assert str(path) in str(err.value) and words in str(err.value), str(err.value)
    assert "nothing in the file was run" in str(err.value)


def test_a_dtype_whose_state_forges_an_object_field_is_refused(tmp_path):
    """The memory hole: an array of pointers the file wrote (reading arr['a'][0] segfaulted)."""
    array = _Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (1,), forged_dtype(), False, b"\x41" * 8))
    refused(tmp_path, {"A": array}, "numpy.dtype('V8')")


def test_a_plain_dtype_whose_state_adds_fields_is_refused(tmp_path):
    """Only the byte order is taken from a dtype's pickled state: fields or a subarray would make it another dtype."""
    fields = (3, "|", None, ("a",), {"a": (np.dtype("i8"), 0)}, 8, 1, 0)
    array = _Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (1,), forged_dtype("f8", fields), False, b"\0" * 8))
    refused(tmp_path, array, "not a plain dtype's")
    refused(tmp_path, forged_dtype("f8", (3, "<", (np.dtype("i8"), (2,)), None, None, 16, 8, 0)), "not a plain dtype's")


def test_the_forged_dtype_is_refused_in_frombuffer_and_scalar(tmp_path):
    refused(tmp_path, _Reduce(_frombuffer, (b"\x41" * 8, forged_dtype(), (1,), "C")), "numpy.dtype('V8')")
    refused(tmp_path, _Reduce(scalar, (forged_dtype(), b"\x41" * 8)), "numpy.dtype('V8')")


def test_object_arrays_and_object_scalars_are_refused(tmp_path):
    """An object array's items are unpickled from the file; nothing legitimate in tinyBenchmarks needs one."""
    refused(tmp_path, np.array([{"a": 1}, "x"], dtype=object), "numpy.dtype('O8')")
    refused(tmp_path, _Reduce(scalar, (np.dtype("O"), "anything")), "numpy.dtype('O8')")
    refused(tmp_path, np.zeros(2, dtype=[("x", "f8"), ("y", "i4")]), "numpy.dtype('V12')")


def test_calling_ndarray_on_a_buffer_is_refused(tmp_path):
    """numpy.ndarray(shape, dtype, buffer, offset, strides): a view of the file's choosing."""
    refused(tmp_path, _Reduce(np.ndarray, ((1,), np.dtype("f8"), b"\0" * 8)), "a call of numpy.ndarray")


def test_data_that_does_not_fit_the_shape_is_refused(tmp_path):
    state = (1, (10 ** 6,), np.dtype("f8"), False, b"\0" * 8)
    refused(tmp_path, _Reduce(_reconstruct, (np.ndarray, (0,), b"b"), state), "8 bytes of data for shape (1000000,)")


def test_a_build_on_a_scalar_is_refused(tmp_path):
    refused(tmp_path, _Reduce(scalar, (np.dtype("f8"), b"\0" * 8), {"__class__": 1}), "a BUILD")


def test_the_extension_registry_cannot_bypass_find_class(tmp_path):
    """CPython resolves EXT opcodes from a process-wide cache without asking find_class: once anything in
    the process has resolved a registered code, a file could call that global by number."""
    code = 0x7A11
    copyreg.add_extension("os", "getcwd", code)
    try:
        assert pickle.loads(b"\x80\x04\x83" + code.to_bytes(2, "little") + b".") is os.getcwd  # fills the cache
        refused(tmp_path, b"\x80\x04\x83" + code.to_bytes(2, "little") + b")R.", "opcode EXT2")
    finally:
        copyreg.remove_extension("os", "getcwd", code)


def test_persistent_ids_and_inst_are_refused(tmp_path):
    marker = tmp_path / "ran"
    refused(tmp_path, b"(S'touch " + str(marker).encode() + b"'\nios\nsystem\n.", "opcode INST")
    refused(tmp_path, b"\x80\x04\x8c\x02id\x94Q.", "a persistent id")
    assert not marker.exists()


def test_a_container_that_contains_itself_is_refused(tmp_path):
    loop: list = []
    loop.append(loop)
    refused(tmp_path, {"x": loop}, "contains itself")


def test_plain_arrays_keep_their_values_byte_order_and_layout(tmp_path):
    value = {"big": np.arange(5, dtype=">f8"), "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
             "bool": np.array([True, False]), "str": np.array(["ab", "c"]), "bytes": np.array([b"x"]),
             "empty": np.zeros((0, 3)), np.str_("key"): np.int64(7), "c": np.complex128(1 + 2j)}
    value["again"] = value["big"]  # one object referred to twice stays one object
    for protocol in (3, 4, 5):
        back = load_arrays(tmp_path / "ok.pkl", pickle.dumps(value, protocol=protocol))
        for key in ("big", "fortran", "bool", "str", "bytes", "empty"):
            np.testing.assert_array_equal(back[key], value[key])
            assert back[key].dtype.str[1:] == value[key].dtype.str[1:] and back[key].shape == value[key].shape
        assert back["fortran"].flags.f_contiguous and back["big"].flags.writeable
        assert back["key"] == 7 and isinstance(back["key"], np.int64) and back["c"] == 1 + 2j
        assert back["again"] is back["big"]
