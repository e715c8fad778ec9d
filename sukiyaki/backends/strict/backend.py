"""StrictBackend: every primitive of the numpy backend, behind opaque handles (see __init__)."""

import os
import traceback

import numpy as np

from sukiyaki.backends.base import NN_PRIMITIVES, PRIMITIVES
from sukiyaki.backends.numpy.backend import NumpyBackend

#: Primitives that read device memory back to the host, and the one that writes it.
DOWNLOADS = ("to_numpy", "item", "export")
UPLOADS = ("from_numpy",)
#: Kernels whose second result is a cache that only the matching backward may open.
CACHE_RESULTS = ("conv2d_forward", "pool2d_forward")
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ContractError(TypeError):
    """Code above the backend broke the contract (reached into an array, passed a host array)."""


class Handle:
    """An opaque native array: only shape, dtype and nbytes are readable."""

    __slots__ = ("_a", "__weakref__")
    __array_ufunc__ = None  # numpy ufuncs refuse handles

    def __init__(self, a):
        self._a = a

    @property
    def shape(self):
        return self._a.shape

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def nbytes(self):
        return self._a.nbytes

    def __array__(self, *args, **kwargs):
        raise ContractError("strict backend: a native array is opaque; read it through the backend's "
                            "primitives (to_numpy), not numpy")

    def __bool__(self):
        raise ContractError("strict backend: the truth value of a native array is not available")

    def __eq__(self, other):
        raise ContractError("strict backend: native arrays cannot be compared with ==; use the backend's ops")

    __hash__ = object.__hash__

    def __iter__(self):
        raise ContractError("strict backend: a native array cannot be iterated")

    def __repr__(self):
        return f"<strict array {'x'.join(map(str, self._a.shape))} {self._a.dtype}>"


class Cache:
    """A kernel's cache, opaque until handed back to the backend."""

    __slots__ = ("_value",)

    def __init__(self, value):
        self._value = value


def _caller():
    """'file:line' of the innermost frame outside the backends (where a transfer was asked for)."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = os.path.abspath(frame.filename)
        if not path.startswith(os.path.join(_PACKAGE_DIR, "backends")):
            return f"{os.path.relpath(path, os.path.dirname(_PACKAGE_DIR))}:{frame.lineno}"
    return "?"


def _unwrap(value, where):
    if isinstance(value, Handle):
        return value._a
    if isinstance(value, Cache):
        return value._value
    if isinstance(value, np.ndarray):
        raise ContractError(f"strict backend: {where} got a host numpy array {value.shape} {value.dtype}; "
                            f"upload it with from_numpy first")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, where) for v in value)
    return value


def _wrap(value, where):
    if isinstance(value, np.ndarray):
        if value.ndim and not value.flags.f_contiguous:
            raise ContractError(f"strict backend: {where} returned a {value.shape} array that is not "
                                f"column-major (the contract says every primitive returns column-major storage)")
        return Handle(value)
    if isinstance(value, tuple):
        return tuple(_wrap(v, where) for v in value)
    if isinstance(value, list):
        return [_wrap(v, where) for v in value]
    return value


def _checked(fn, where):
    def run(*args, **kwargs):
        args = _unwrap(args, where)
        kwargs = {k: _unwrap(v, where) for k, v in kwargs.items()}
        return _wrap(fn(*args, **kwargs), where)

    run.__name__ = where
    return run


class _Kernels:
    """The numpy layer kernels behind handles; caches come back as opaque Cache boxes."""

    def __init__(self, nn):
        for name in NN_PRIMITIVES:
            raw = getattr(nn, name)
            setattr(self, name, self._boxing(raw, f"nn.{name}") if name in CACHE_RESULTS else _checked(raw, f"nn.{name}"))

    @staticmethod
    def _boxing(fn, where):
        def run(*args, **kwargs):
            y, cache = fn(*_unwrap(args, where), **{k: _unwrap(v, where) for k, v in kwargs.items()})
            return _wrap(y, where), (None if cache is None else Cache(cache))

        run.__name__ = where
        return run


class StrictBackend:
    """Opaque handles over the numpy backend, with transfer counts.

    Attributes:
        downloads / uploads: device-to-host and host-to-device transfers since the last
            reset_counts().
        download_log: ('primitive', 'file:line') of each download.
    """

    name = "strict"
    is_gpu = True  # behaves as a device: CPU operands are uploaded, gather() brings results home

    def __init__(self):
        self._np = NumpyBackend()
        self.nn = _Kernels(self._np.nn)
        self.binary = {op: _checked(fn, f"binary[{op!r}]") for op, fn in self._np.binary.items()}
        self.unary = {op: _checked(fn, f"unary[{op!r}]") for op, fn in self._np.unary.items()}
        for name in PRIMITIVES:
            if name not in DOWNLOADS + UPLOADS:
                setattr(self, name, _checked(getattr(self._np, name), name))
        self.reset_counts()

    def reset_counts(self):
        """Forget the transfers counted so far."""
        self.downloads = 0
        self.uploads = 0
        self.download_log = []

    def _download(self, name):
        self.downloads += 1
        self.download_log.append((name, _caller()))

    # --- the transfers: copies, as a device would make ---
    def from_numpy(self, a):
        self.uploads += 1
        return Handle(np.array(a, order="F", copy=True))

    def to_numpy(self, x):
        self._download("to_numpy")
        return np.array(_unwrap(x, "to_numpy"), order="F", copy=True)

    def item(self, x):
        self._download("item")
        return self._np.item(_unwrap(x, "item"))

    def export(self, x):
        self._download("export")
        return np.array(_unwrap(x, "export"), order="F", copy=True)
