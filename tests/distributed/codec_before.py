"""The codec as it was before the fused, threaded coder (commit 77db07e), kept verbatim below this
docstring as the reference the new one must equal byte for byte and bit for bit
(tests/distributed/test_codec_threads.py). Not part of the package; not to be changed.
"""

import functools
import json
import math
from collections import namedtuple
from importlib import resources

import numpy as np

#: Codec names, in order of size per value: 4, 2, 1 (+4 per tensor), 1 (+4 per block) bytes.
CODECS = ("raw", "fp16", "dettmers8", "block8")

_F32 = np.dtype("<f4")
_F16 = np.dtype("<f2")
_FP16_MAX = 65504.0
#: Values handled per step: temporaries stay a few MiB, in cache, whatever the tensor's size.
_CHUNK = 1 << 18
#: The level search looks up the top 19 bits of r's float32 pattern (its exponent and 10
#: mantissa bits), then makes one comparison; each such bucket holds at most one boundary.
_SHIFT = 13

_Tables = namedtuple("_Tables", "levels bounds first step code decode")


def _table_text():
    return resources.files("sukiyaki.distributed").joinpath("dettmers8bit.json").read_text("utf-8")


@functools.lru_cache(maxsize=None)
def _tables():
    """Lookup tables of the 8-bit code, built once (on first use) from the packaged levels."""
    spec = json.loads(_table_text())
    levels = np.array(spec["levels"], dtype=np.float32)
    if (levels.shape != (126,) or not np.all(np.diff(levels) > 0) or levels[0] <= 0 or levels[-1] >= 1
            or (spec["zero_code"], spec["max_code"], spec["sign_bit"]) != (126, 127, 128)):
        raise ValueError("dettmers8bit.json: expected 126 ascending levels in (0, 1) and codes 126/127/128")
    low, high = np.float32(spec["below_is_zero"]), np.float32(spec["above_is_max"])
    # r >= the exact midpoint of levels i, i+1  <=>  r >= the smallest float32 >= that midpoint.
    mid = (levels[:-1].astype(np.float64) + levels[1:]) / 2
    up = mid.astype(np.float32)
    up = np.where(up.astype(np.float64) < mid, np.nextafter(up, np.float32(np.inf)), up)
    # Position of r = how many bounds are <= r: 0 -> code 126, i in 1..126 -> level i-1, 127 -> 127.
    bounds = np.concatenate([[low], up, [np.nextafter(high, np.float32(np.inf))]]).astype(np.float32)
    if not (low < up[0] and up[-1] < bounds[-1]):
        raise ValueError("dettmers8bit.json: the thresholds overlap the levels")
    count = (int(np.float32(1.0).view(np.uint32)) >> _SHIFT) + 1  # buckets of r in [0, 1]
    ids = np.arange(count + 1, dtype=np.uint32) << _SHIFT
    first = np.searchsorted(bounds, ids[:-1].view(np.float32), side="right")
    inside = np.searchsorted(bounds, np.nextafter(ids[1:].view(np.float32), np.float32(0)), side="right") - first
    if inside.max() > 1:
        raise ValueError("dettmers8bit.json: levels closer than the search table resolves")
    step = np.full(count, np.inf, dtype=np.float32)  # the bucket's one bound, or inf
    step[inside == 1] = bounds[first[inside == 1]]
    code_of = np.array([126, *range(126), 127], dtype=np.uint8)
    code = np.concatenate([code_of, code_of + 128]).astype(np.uint8)  # position + 128 * sign -> byte
    decode = np.concatenate([levels, [0.0, 1.0], -levels, [0.0, -1.0]]).astype(np.float32)
    return _Tables(levels, bounds, first.astype(np.uint8), step, code, decode)


def _codes(x, r, out):
    """Write the code bytes of values ``x`` with ratios ``r = |x| / scale`` (float32) to ``out``."""
    t = _tables()
    bucket = r.view(np.uint32) >> _SHIFT
    pos = np.take(t.first, bucket, mode="clip")
    pos += r >= np.take(t.step, bucket, mode="clip")
    pos |= np.less(x, 0).view(np.uint8) << 7
    np.take(t.code, pos, out=out, mode="clip")


def _check(codec, block):
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}: expected one of {', '.join(CODECS)}")
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"{codec}: block must be a positive integer, got {block!r}")


def encoded_size(n, codec, block=256):
    """Number of bytes that ``encode`` gives for ``n`` values.

    Args:
        n: number of values (>= 0).
        codec: one of :data:`CODECS`.
        block: values per scale of ``block8``.

    Returns:
        The size in bytes.

    Example:
        >>> [encoded_size(1000, c) for c in CODECS]
        [4000, 2000, 1004, 1016]
    """
    _check(codec, block)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{codec}: number of values must be a non-negative integer, got {n!r}")
    n = int(n)
    return {"raw": 4 * n, "fp16": 2 * n, "dettmers8": n + 4, "block8": n + 4 * -(-n // int(block))}[codec]


def _flat(array, codec):
    """The values of ``array`` as a 1-D float32 array in column-major order (a view when possible)."""
    a = np.asarray(array)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{codec}: expected a float32 array, got dtype {a.dtype}")
    return np.asarray(a, dtype=np.float32).reshape(-1, order="F")


def _not_finite(codec, flat):
    bad = int(np.count_nonzero(~np.isfinite(flat)))
    return ValueError(f"{codec}: cannot encode NaN or infinity in 8 bits ({bad} of {flat.size} values)")


def _encode8(flat, out, block, codec):
    """Code bytes of ``flat`` into ``out[:n]``; returns the float32 scales, one per block."""
    n = flat.size
    step = max(block, _CHUNK // block * block)
    scales = np.empty(-(-n // block), dtype=np.float32)
    for s in range(0, n, step):
        x = flat[s:s + step]
        r = np.abs(x)
        full = x.size // block * block
        parts = [r[:full].reshape(-1, block)] if full else []
        if full < x.size:
            parts.append(r[full:].reshape(1, -1))
        k = s // block
        for part in parts:
            m = part.max(axis=1)
            if not np.isfinite(m).all():
                raise _not_finite(codec, flat)
            scales[k:k + m.size] = m
            k += m.size
            m[m == 0] = 1  # an all-zero block: every r is 0 -> code 126
            part /= m[:, None]
        _codes(x, r, out[s:s + x.size])
    return scales


def _peak(flat, codec):
    """The maximum absolute value of ``flat`` as float32 (+0.0 for none or all zeros); ValueError
    for NaN or infinity."""
    peak = np.float32(max(-flat.min(), flat.max())) if flat.size else np.float32(0)  # NaN if any is
    if not np.isfinite(peak):
        raise _not_finite(codec, flat)
    return peak if peak > 0 else np.float32(0)  # never -0.0


def _encode_dettmers(flat, peak, out):
    """Code bytes of ``flat`` with the scale ``peak`` into ``out[:n]``, then the scale."""
    n = flat.size
    scale = peak if peak > 0 else np.float32(1)
    for s in range(0, n, _CHUNK):
        x = flat[s:s + _CHUNK]
        r = np.abs(x)
        r /= scale
        _codes(x, r, out[s:s + x.size])
    out[n:] = np.array([peak], dtype=_F32).view(np.uint8)


def encode(array, codec, block=256):
    """Encode a float32 array's values (column-major order) into bytes.

    Args:
        array: float32 array of any shape (other real dtypes are converted to float32).
        codec: one of :data:`CODECS` (see the module docstring for each layout).
        block: values per scale of ``block8`` (ignored by the other codecs).

    Returns:
        ``encoded_size(array.size, codec, block)`` bytes.

    Raises:
        ValueError: unknown codec, bad block, or NaN/infinity given to an 8-bit codec.

    Example:
        >>> import numpy as np
        >>> encode(np.array([1.0, 70000.0], dtype=np.float32), "fp16").hex()
        '003cff7b'
    """
    _check(codec, block)
    flat = _flat(array, codec)
    n = flat.size
    if codec == "raw":
        return flat.astype(_F32, copy=False).tobytes()
    if codec == "fp16":
        out = np.empty(n, dtype=_F16)
        for s in range(0, n, _CHUNK):
            np.clip(flat[s:s + _CHUNK], -_FP16_MAX, _FP16_MAX, out=out[s:s + _CHUNK])
        return out.tobytes()
    out = np.empty(encoded_size(n, codec, block), dtype=np.uint8)
    if codec == "dettmers8":
        _encode_dettmers(flat, _peak(flat, codec), out)
    else:
        scales = _encode8(flat, out, int(block), codec)
        out[n:] = scales.astype(_F32).view(np.uint8)
    return out.tobytes()


def decode(data, codec, shape, block=256):
    """Decode bytes made by :func:`encode` into a float32 array (column-major).

    Args:
        data: bytes-like, exactly ``encoded_size(prod(shape), codec, block)`` long.
        codec: one of :data:`CODECS`.
        shape: the array's shape (a tuple of non-negative ints, or an int).
        block: values per scale of ``block8``.

    Returns:
        A new float32 array of ``shape``, Fortran-contiguous.

    Raises:
        ValueError: unknown codec, a length that does not match, or a scale that is NaN,
            infinite or negative (``dettmers8``, ``block8``).

    Example:
        >>> import numpy as np
        >>> decode(bytes([127, 254, 63, 0, 0, 0, 64]), "dettmers8", (1, 3)).tolist()
        [[2.0, 0.0, 0.23281249403953552]]
    """
    _check(codec, block)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0 for d in shape):
        raise ValueError(f"{codec}: shape must be non-negative integers, got {shape!r}")
    n = math.prod(shape)
    expected = encoded_size(n, codec, block)
    buf = memoryview(data).cast("B")
    if len(buf) != expected:
        raise ValueError(f"{codec}: expected {expected} bytes for {n} values (shape {shape}"
                         f"{f', block {block}' if codec == 'block8' else ''}), received {len(buf)}")
    if codec == "raw":
        flat = np.frombuffer(buf, dtype=_F32).astype(np.float32)
    elif codec == "fp16":
        flat = np.frombuffer(buf, dtype=_F16).astype(np.float32)
    else:
        codes = np.frombuffer(buf, dtype=np.uint8, count=n)
        scales = np.frombuffer(buf, dtype=_F32, offset=n).astype(np.float32)
        bad = ~(np.isfinite(scales) & (scales >= 0))
        if bad.any():
            i = int(np.argmax(bad))
            where = "maximum" if codec == "dettmers8" else f"scale of block {i} (of {scales.size})"
            raise ValueError(f"{codec}: decoded {where} is {float(scales[i])}; a scale must be finite and >= 0")
        flat = _decode8(codes, scales, n if codec == "dettmers8" else int(block))
    return flat.reshape(shape, order="F")


def _decode8(codes, scales, block):
    """Float32 values of 8-bit ``codes`` with one scale per ``block`` codes."""
    n = codes.size
    table = _tables().decode
    out = np.empty(n, dtype=np.float32)
    if scales.size == 1:  # one scale: scale the 256-entry table, then only look up
        table, block = table * scales[0], 0
    step = max(block, _CHUNK // block * block) if block else _CHUNK  # whole blocks per step
    for s in range(0, n, step):
        y = out[s:s + step]
        np.take(table, codes[s:s + step], out=y, mode="clip")
        if block:
            k, full = s // block, y.size // block * block
            if full:
                blocks = y[:full].reshape(-1, block)
                np.multiply(blocks, scales[k:k + full // block, None], out=blocks)
            if full < y.size:
                y[full:] *= scales[k + full // block]
    return out


def piece_bounds(n, codec, max_bytes, block=256):
    """Where to cut a tensor of ``n`` values into pieces of at most about ``max_bytes`` encoded
    bytes each (every cut a multiple of ``block`` values, as :func:`piece` needs for ``block8``).

    Returns:
        [(lo, hi), ...] covering 0..n in order (one piece when it fits; none when n is 0).

    Example:
        >>> piece_bounds(1000, "dettmers8", 512)
        [(0, 512), (512, 1000)]
    """
    _check(codec, block)
    per_value = {"raw": 4, "fp16": 2, "dettmers8": 1, "block8": 1}[codec]
    step = max(int(block), max_bytes // per_value // int(block) * int(block))
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)]


def piece(data, codec, n, lo, hi, block=256):
    """The encoding of values ``lo .. hi - 1`` of a tensor of ``n`` values, cut from ``data``, the
    tensor's whole encoding: decoding it gives exactly those values of ``decode(data)`` (an
    8-bit piece keeps its tensor's scale, or its blocks' scales).

    Args:
        data: ``encode(tensor, codec, block)``.
        codec, block: as in :func:`encode`.
        n: the tensor's number of values.
        lo, hi: the piece, 0 <= lo < hi <= n; for ``block8``, lo a multiple of block and hi
            one too unless it is n.
    Returns:
        bytes, ``encoded_size(hi - lo, codec, block)`` long.

    Example:
        >>> import numpy as np
        >>> x = np.array([1.0, -0.5, 0.25], dtype=np.float32)
        >>> decode(piece(encode(x, "dettmers8"), "dettmers8", 3, 1, 3), "dettmers8", 2).tolist()
        [-0.49296873807907104, 0.24765625596046448]
    """
    _check(codec, block)
    block = int(block)
    if not (0 <= lo < hi <= n) or (codec == "block8" and (lo % block or (hi % block and hi != n))):
        raise ValueError(f"{codec}: piece {lo}..{hi} of {n} values is not a valid cut (block {block})")
    buf = memoryview(data).cast("B")
    if len(buf) != encoded_size(n, codec, block):
        raise ValueError(f"{codec}: {len(buf)} bytes are not the encoding of {n} values")
    if codec == "raw":
        return bytes(buf[4 * lo:4 * hi])
    if codec == "fp16":
        return bytes(buf[2 * lo:2 * hi])
    if codec == "dettmers8":
        return b"".join([buf[lo:hi], buf[n:n + 4]])
    return b"".join([buf[lo:hi], buf[n + 4 * (lo // block):n + 4 * -(-hi // block)]])


def encode_pieces(array, codec, bounds, block=256):
    """Encode a tensor piece after piece: yields, for each ``(lo, hi)`` of ``bounds`` (in order,
    as :func:`piece_bounds` gives them), exactly ``piece(encode(array), codec, n, lo, hi)``, each
    as soon as it is made (a ``dettmers8`` piece takes its tensor's maximum, found first).

    Example:
        >>> import numpy as np
        >>> x = np.array([1.0, -0.5, 0.25], dtype=np.float32)
        >>> [p.hex() for p in encode_pieces(x, "dettmers8", [(0, 2), (2, 3)])]
        ['7fe00000803f', '4b0000803f']
    """
    _check(codec, block)
    flat = _flat(array, codec)
    peak = _peak(flat, codec) if codec == "dettmers8" else None
    for lo, hi in bounds:
        if codec == "block8" and (lo % block or (hi % block and hi != flat.size)):
            raise ValueError(f"{codec}: piece {lo}..{hi} of {flat.size} values is not a valid cut (block {block})")
        if codec == "dettmers8":
            out = np.empty(hi - lo + 4, dtype=np.uint8)
            _encode_dettmers(flat[lo:hi], peak, out)
            yield out.tobytes()
        else:
            yield encode(flat[lo:hi], codec, block)


class ErrorFeedback:
    """Per-tensor residuals for error-feedback compression (on a worker).

    Each call encodes the tensor plus what earlier calls for that name lost, and keeps what
    this one loses, so that the sum of the decoded tensors follows the sum of the true ones.
    A non-finite residual element (from NaN or infinity given to ``raw``/``fp16``) is reset to 0.

    Attributes:
        residuals: name -> float32 array of the tensor's shape (what was not sent yet).

    Example:
        >>> import numpy as np
        >>> ef = ErrorFeedback()
        >>> g = np.array([1.0, 1e-7], dtype=np.float32)   # 1e-7 is below the zero threshold
        >>> sent = [decode(ef.compress("w", g, "dettmers8"), "dettmers8", (2,))[1] for _ in range(20)]
        >>> float(sum(sent) + ef.residuals["w"][1]) == float(np.float32(20 * 1e-7))   # nothing lost
        True
        >>> ef.reset(); ef.residuals
        {}
    """

    def __init__(self):
        self.residuals = {}

    def compress(self, name, array, codec, block=256):
        """Encode ``array + residual[name]`` and store the new residual.

        Args:
            name: the tensor's name (one residual per name).
            array: float32 array (the gradient).
            codec, block: as in :func:`encode`.

        Returns:
            The encoded bytes (decode with the array's shape).
        """
        x = np.asarray(array, dtype=np.float32)
        old = self.residuals.get(name)
        if old is not None:
            if old.shape != x.shape:
                raise ValueError(f"error feedback {name!r}: shape {x.shape} differs from the residual's {old.shape}")
            x = x + old
        data = encode(x, codec, block)
        res = np.subtract(x, decode(data, codec, x.shape, block), dtype=np.float32)
        bad = ~np.isfinite(res)
        if bad.any():
            res[bad] = 0
        self.residuals[name] = res
        return data

    def compress_pieces(self, name, array, codec, bounds, block=256):
        """:meth:`compress`, piece after piece: yields the bytes of each ``(lo, hi)`` of ``bounds``
        (those of ``piece(compress(...), ...)``) as soon as it is encoded; the residual is complete
        once the last piece has been taken."""
        x = np.asarray(array, dtype=np.float32)
        old = self.residuals.get(name)
        if old is not None:
            if old.shape != x.shape:
                raise ValueError(f"error feedback {name!r}: shape {x.shape} differs from the residual's {old.shape}")
            x = x + old
        flat = _flat(x, codec)
        res = np.empty(flat.size, np.float32)
        for (lo, hi), data in zip(bounds, encode_pieces(flat, codec, bounds, block)):
            r = res[lo:hi]
            np.subtract(flat[lo:hi], decode(data, codec, hi - lo, block), out=r)
            r[~np.isfinite(r)] = 0
            yield data
        self.residuals[name] = res.reshape(x.shape, order="F")

    def reset(self, name=None):
        """Forget the residual of ``name``, or all of them when ``name`` is None."""
        if name is None:
            self.residuals.clear()
        else:
            self.residuals.pop(name, None)
