"""Native arrays of the WebGPU backend: a storage buffer, an element offset, a shape, a dtype.

WGSL storage has 32-bit words only (f32, i32, u32; no f64, no 8- or 16-bit types, no bool),
so each numpy dtype has a *storage kind*, the words one element takes on the device:

============  =======  =====  ==================================================================
dtype         kind     words  on the device
============  =======  =====  ==================================================================
float32       f32      1      IEEE binary32 (as numpy)
float16       f32      1      widened to float32 (numpy's float16 values, exactly)
float64       f64      2      IEEE binary64 bits, little-endian word pair (as numpy's bytes);
                              arithmetic by the software binary64 of kernels/f64.wgsl
int32         i32      1      two's complement (as numpy)
int8, int16   i32      1      sign-extended to 32 bits; results wrap to the dtype on store
uint32        u32      1      as numpy
uint8, 16     u32      1      zero-extended to 32 bits (one element a word); results wrap
bool          b32      1      0 or 1 in a 32-bit word
int64, uint64 i64      2      two's complement little-endian word pair (as numpy's bytes)
============  =======  =====  ==================================================================

``nbytes`` is numpy's (``size * itemsize``): the bytes the values take, as every backend
reports them; uint8 and bool take four times that on the device.

An array is column-major: element (i0, i1, ...) is at offset + i0 + n0 * (i1 + n1 * ...).
``reshape`` and ``view`` make arrays sharing the :class:`Storage` of another, at an
element offset.
"""

import math

import numpy as np

#: dtype -> (storage kind, words per element, numpy dtype of the storage words)
_KINDS = {
    np.dtype(np.float32): ("f32", 1, np.dtype("<f4")),
    np.dtype(np.float16): ("f32", 1, np.dtype("<f4")),
    np.dtype(np.float64): ("f64", 2, np.dtype("<f8")),
    np.dtype(np.int32): ("i32", 1, np.dtype("<i4")),
    np.dtype(np.int16): ("i32", 1, np.dtype("<i4")),
    np.dtype(np.int8): ("i32", 1, np.dtype("<i4")),
    np.dtype(np.uint32): ("u32", 1, np.dtype("<u4")),
    np.dtype(np.uint16): ("u32", 1, np.dtype("<u4")),
    np.dtype(np.uint8): ("u32", 1, np.dtype("<u4")),
    np.dtype(np.bool_): ("b32", 1, np.dtype("<u4")),
    np.dtype(np.int64): ("i64", 2, np.dtype("<i8")),
    np.dtype(np.uint64): ("i64", 2, np.dtype("<u8")),
}
SUPPORTED = tuple(_KINDS)


def storage_of(dtype):
    """(kind, words per element, storage numpy dtype) of a numpy dtype; TypeError if unsupported."""
    try:
        return _KINDS[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise TypeError(f"webgpu backend: dtype {dtype} is not supported (supported: "
                        f"{', '.join(sorted({str(d) for d in SUPPORTED}))})") from None


def kind_of(dtype):
    """The storage kind ('f32', 'f64', 'i32', 'u32', 'b32', 'i64') of a numpy dtype."""
    return storage_of(dtype)[0]


def to_storage(a):
    """The bytes of numpy array a as the device stores it (column-major order)."""
    _, _, sdt = storage_of(a.dtype)
    flat = np.asarray(a).reshape(-1, order="F")
    if flat.dtype != sdt:
        flat = flat.astype(sdt)
    return np.ascontiguousarray(flat)


def from_storage(raw, shape, dtype):
    """A column-major numpy array of dtype from the device's storage bytes."""
    _, _, sdt = storage_of(dtype)
    flat = np.frombuffer(raw, dtype=sdt)
    dtype = np.dtype(dtype)
    if sdt != dtype:
        flat = flat.astype(dtype) if dtype.kind != "b" else flat != 0
    else:
        flat = flat.copy()
    return flat.reshape(shape, order="F")


class Storage:
    """A device buffer shared by an array and its views; given back to the device's buffer
    pool when the last of them goes (see pool.py)."""

    __slots__ = ("buffer", "nbytes", "device", "__weakref__")

    def __init__(self, device, buffer, nbytes):
        self.device = device
        self.buffer = buffer
        self.nbytes = nbytes

    def release(self):
        """Free the device memory now; later use raises."""
        if self.buffer is not None:
            self.device.destroy(self.buffer)
            self.buffer = None

    def __del__(self):
        buf, self.buffer = self.buffer, None
        if buf is not None:
            try:
                self.device.recycle(buf)
            except Exception:  # interpreter shutdown: the buffer is simply dropped
                pass


class GPUArray:
    """A column-major array in a WebGPU buffer (the metadata protocol: shape, dtype, nbytes).

    Attributes:
        storage: the shared :class:`Storage`.
        offset: index of the first element, in elements of this dtype's storage.
    """

    __slots__ = ("storage", "offset", "shape", "dtype", "kind", "words", "size", "__weakref__")
    __array_ufunc__ = None

    def __init__(self, storage, offset, shape, dtype):
        self.storage = storage
        self.offset = int(offset)
        self.shape = tuple(map(int, shape))
        self.dtype = dtype = np.dtype(dtype)
        kind = _KINDS.get(dtype)
        self.kind, self.words, _ = kind if kind is not None else storage_of(dtype)
        self.size = math.prod(self.shape)

    @property
    def nbytes(self):
        return self.size * self.dtype.itemsize

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def buffer(self):
        buf = self.storage.buffer
        if buf is None:
            raise RuntimeError("webgpu: this array's memory was freed")
        return buf

    @property
    def byte_offset(self):
        return 4 * self.words * self.offset

    @property
    def storage_nbytes(self):
        """Bytes the elements take on the device."""
        return 4 * self.words * self.size

    def __repr__(self):
        return f"<webgpu array {'x'.join(map(str, self.shape))} {self.dtype}>"

    def __bool__(self):
        raise TypeError("webgpu: the truth value of a device array is not available; read it with to_numpy")

    def __array__(self, *args, **kwargs):
        raise TypeError("webgpu: a device array is opaque; read it through the backend (to_numpy)")
