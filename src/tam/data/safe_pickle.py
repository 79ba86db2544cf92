"""A restricted unpickler for the official CIFAR python files.

Those files (written by Python 2's cPickle, protocol 2) hold only dicts, lists, byte strings, ints and one numpy
uint8 array each. An unpickler that can import any global is a way to run code, so this one resolves exactly the
globals needed to rebuild a plain numpy array and nothing else; any other global (``os.system``,
``builtins.eval``, ``numpy.load``, ...) is refused before it is looked up. Arrays must come out with a plain
numeric dtype (no object arrays). The same content pickled by Python 3 (which writes byte strings through
``_codecs.encode(text, "latin1")``) is accepted too; ``_codecs.encode`` is only allowed with that encoding.
"""

from __future__ import annotations

import codecs
import io
import pickle

import numpy as np


def _latin1_encode(text, encoding="latin1", errors="strict"):
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1" or errors != "strict":
        raise pickle.UnpicklingError("refused _codecs.encode with anything but a latin-1 string")
    return text.encode("latin1")


def _reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("refused an array of a type other than numpy.ndarray")
    return np.ndarray.__new__(np.ndarray, shape, _dtype(dtype))


def _dtype(spec, align=False, copy=False):
    if isinstance(spec, bytes):  # Python 2 strings stay bytes
        spec = spec.decode("ascii", "replace")
    dtype = np.dtype(spec, align, copy) if isinstance(spec, str) and len(spec) <= 4 else None
    if dtype is None or dtype.kind not in "biuf" or dtype.fields is not None:
        raise pickle.UnpicklingError(f"refused numpy dtype {spec!r} (only plain numeric dtypes)")
    return dtype


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # numpy 1.x (and the official files)
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # numpy 2.x
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused {module}.{name}: not a type the CIFAR files contain") from None


def _check(obj, depth: int = 0):
    """Only dicts, lists, tuples, bytes/str, ints, floats, bools, None and numeric arrays may come out."""
    if depth > 8:
        raise pickle.UnpicklingError("refused: nested too deeply for a CIFAR file")
    if isinstance(obj, dict):
        for key, value in obj.items():
            _check(key, depth + 1)
            _check(value, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            if not isinstance(item, (int, bytes, str)):  # fast path for label and filename lists
                _check(item, depth + 1)
    elif isinstance(obj, np.ndarray):
        if type(obj) is not np.ndarray or obj.dtype.kind not in "biuf":
            raise pickle.UnpicklingError("refused an array that is not a plain numeric numpy array")
    elif not (obj is None or type(obj) in (bytes, str, int, float, bool)):
        raise pickle.UnpicklingError(f"refused an object of type {type(obj).__name__}")


def safe_loads(data: bytes):
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (byte strings stay bytes, as for Python 2 files).

    Raises ``pickle.UnpicklingError`` (or another error of the pickle machinery) for anything refused or broken.
    """
    obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    _check(obj)
    return obj
