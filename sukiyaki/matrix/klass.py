"""Element types ("klasses") of matrices and the original library's promotion rules.

The four CPU types are those of the original Sushi2 library: ``single`` (float32, the
default), ``int32``, ``uint8`` and ``logical``. GPU backends add ``float16`` and
``bfloat16``. Promotion follows the original, not MATLAB: the result of a binary
operation takes the highest klass of its *matrix* operands in the order
``single > int32 > uint8 > logical`` (plain Python numbers do not vote), and
arithmetic on ``logical`` gives ``single``. Integer results are not saturated:
a value is truncated toward zero and wrapped modulo 2**bits, as JavaScript typed
arrays store it.

Example:
    >>> result_klass(['int32', 'uint8'])
    'int32'
"""

import numpy as np

KLASS_DTYPES = {
    "single": np.dtype(np.float32),
    "int32": np.dtype(np.int32),
    "uint8": np.dtype(np.uint8),
    "logical": np.dtype(np.bool_),
}
GPU_ONLY_KLASSES = ("float16", "bfloat16")
_ORDER = ("single", "int32", "uint8", "logical")
_RANK = {k: i for i, k in enumerate(_ORDER)}
_DTYPE_KLASS = {
    np.dtype(np.float32): "single",
    np.dtype(np.float64): "single",
    np.dtype(np.float16): "single",
    np.dtype(np.int32): "int32",
    np.dtype(np.int64): "int32",
    np.dtype(np.int16): "int32",
    np.dtype(np.int8): "int32",
    np.dtype(np.uint16): "int32",
    np.dtype(np.uint32): "int32",
    np.dtype(np.uint64): "int32",
    np.dtype(np.uint8): "uint8",
    np.dtype(np.bool_): "logical",
}


def check_klass(klass):
    """Return ``klass`` if it names a known type, else raise a TypeError naming it."""
    if klass in KLASS_DTYPES:
        return klass
    if klass in GPU_ONLY_KLASSES:
        raise TypeError(f"klass '{klass}' exists only on GPU backends (cuda, webgpu)")
    raise TypeError(
        f"unknown klass {klass!r}; expected one of {', '.join(_ORDER)}"
    )


def dtype_of(klass):
    """numpy dtype that stores ``klass`` on the CPU."""
    try:
        return KLASS_DTYPES[klass]
    except KeyError:
        check_klass(klass)
        raise


def klass_of_dtype(dtype):
    """Klass that a numpy dtype maps to (float64 reads as single, other ints as int32)."""
    try:
        return _DTYPE_KLASS[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise TypeError(f"numpy dtype {dtype} has no matrix klass") from None


def result_klass(klasses):
    """Highest klass among ``klasses`` (``single`` when empty)."""
    best = 3 if klasses else 0
    for k in klasses:
        best = min(best, _RANK[k])
    return _ORDER[best]


def arith_klass(klasses):
    """Klass of an arithmetic result: promotion, with logical giving single."""
    k = result_klass(klasses)
    return "single" if k == "logical" else k
