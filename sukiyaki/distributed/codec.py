"""Codecs for the weights and gradients sent between the coordinator and its workers.

Every codec turns a float32 array into bytes and back, on the host, in numpy only. The
elements are taken in column-major (Fortran) order, the layout of the parameter store, so
a column-major array is read in place and any other one is copied once.

- ``raw``: float32, little-endian (4 bytes a value; lossless).
- ``fp16``: float16, little-endian (2 bytes a value); values beyond float16's range,
  infinities included, saturate to +-65504; NaN stays NaN.
- ``dettmers8``: the original's 8-bit code (Dettmers 2016; ``dettmers8bit.json``): n code
  bytes, then the tensor's maximum absolute value as float32 (n + 4 bytes).
- ``block8``: the same code with one float32 scale per ``block`` consecutive values: n code
  bytes, then ceil(n / block) scales. One outlier then costs only its own block's precision.

The 8-bit code of a value x with scale s (the maximum |x| of its tensor or block): the sign
bit 128 when x < 0 (-0.0 has none), plus a 7-bit code for r = |x| / s, computed in float32
as the original did: 126 when r < below_is_zero, 127 when r > above_is_max, else the index
of the nearest level, exact (r is compared with the exact midpoints of the float32 levels).
**Ties** (r exactly halfway between two levels, which happens: 60 of the 125 midpoints are
float32 numbers) go to the larger level. **A scale of zero** (an all-zero tensor or block,
-0.0 included) is written as 0.0 with every code 126, and decodes to zeros; the original
floored its maximum at 1e-20 instead, which our decoder reads alike (any finite scale >= 0
is accepted). Decoding: code k -> levels[k] * s, 126 -> 0, 127 -> s, negated with the sign
bit (254 gives +0.0, as the original's table). NaN and infinities cannot be coded in 8 bits:
encoding them raises ValueError, and a decoded scale that is NaN, infinite or negative
raises too, so hostile bytes never turn into NaN silently.

**Speed.** The 8-bit coder takes a tensor a step (a quarter million values) at a time, in
one pass of a few numpy calls: r = x / scale with x's sign kept, its bucket in a lookup table,
one comparison, the byte; error feedback adds the residual and writes the new one (x less the
decoded value, computed as :func:`decode` does) in the same pass. A large tensor is cut in
spans coded side by side by :mod:`sukiyaki.distributed.codec_threads` (``SUKIYAKI_CODEC_THREADS``,
default min(8, cores); one under Pyodide). The bytes are the same whatever the number of
threads, and equal to those of the coder before (``tests/distributed/test_codec_threads.py``).

Note: a public C encoder with this very table (after Dettmers' clusterNet kernel) finds the
level by a binary search that, simulated, returns a neighbour of the nearest level for about
one value in five; we follow the compatibility definition (nearest). Decoding reads either's
bytes identically.

Example:
    >>> import numpy as np
    >>> x = np.array([[1.0, -0.5], [0.25, 0.0]], dtype=np.float32)
    >>> data = encode(x, "dettmers8")
    >>> len(data), list(data[:4])          # column-major: 1.0, 0.25, -0.5, 0.0
    (8, [127, 75, 224, 126])
    >>> decode(data, "dettmers8", x.shape).tolist()
    [[1.0, -0.49296873807907104], [0.24765625596046448, 0.0]]
"""

import functools
import json
import math
import threading
from collections import namedtuple
from importlib import resources

import numpy as np

from sukiyaki.distributed.codec_threads import parallel

#: Codec names, in order of size per value: 4, 2, 1 (+4 per tensor), 1 (+4 per block) bytes.
CODECS = ("raw", "fp16", "dettmers8", "block8")
_EIGHT_BIT = EIGHT_BIT = ("dettmers8", "block8")

_F32 = np.dtype("<f4")
_F16 = np.dtype("<f2")
_FP16_MAX = 65504.0
#: Values handled per step: temporaries stay a few MiB, in cache, whatever the tensor's size.
_CHUNK = 1 << 18
#: The level search looks up the top 19 bits of r's float32 pattern (its exponent and 10
#: mantissa bits), then makes one comparison; each such bucket holds at most one boundary.
_SHIFT = 13
#: The bucket of a negative r (sign bit set) is this much past that of |r|.
_NEG = 1 << (31 - _SHIFT)

_Tables = namedtuple("_Tables", "levels bounds decode sstep base ccode cdec")


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
    code_of = np.array([126, *range(126), 127], dtype=np.uint8)  # position -> code (no sign)
    decode = np.concatenate([levels, [0.0, 1.0], -levels, [0.0, -1.0]]).astype(np.float32)
    # The coder's tables (see _code). r = (x + 0.0) / scale keeps x's sign but that of -0.0
    # (x < 0 decides the sign bit): a bucket is the top 19 bits of r's pattern, sign included.
    # An index 0..255 stands for position p of a positive r at 128 + p, of a negative one at
    # 127 - p; a bucket gives ``base``, and the comparison ``r >= sstep`` adds 1 or 0. Positive
    # bucket: base is its first position's index, sstep its bound (r >= bound: the next
    # position) or inf. Negative bucket: base is the index of the position past its bound,
    # sstep = -(the float32 below the bound): r >= sstep <=> |r| < bound, one index up = one
    # position down; without a bound, base + 1 is its position and sstep -inf.
    has = inside == 1
    sstep = np.full(_NEG + count, np.inf, dtype=np.float32)
    sstep[:count] = step
    sstep[_NEG:] = np.where(has, -np.nextafter(step, np.float32(0)), -np.inf)
    base = np.zeros(_NEG + count, dtype=np.int64)
    base[:count] = 128 + first
    base[_NEG:] = 126 - first
    ccode = np.concatenate([(code_of + 128)[::-1], code_of]).astype(np.uint8)  # index -> byte
    return _Tables(levels, bounds, decode, sstep, base.astype(np.uint8), ccode, decode[ccode])


class _Scratch(threading.local):
    """A thread's work buffers for one step of the coder (made on first use, grown when needed)."""

    size = 0

    def get(self, m):
        if self.size < m:
            self.v, self.r, self.s = (np.empty(m, np.float32) for _ in range(3))
            self.i = np.empty(m, np.intp)
            self.j = np.empty(m, np.uint8)
            self.b = np.empty(m, np.bool_)
            self.size = m
        return self


_scratch = _Scratch()


def _code(x, r, out, res, dec, scales, block, w):
    """The code bytes of float32 values ``x`` into ``out``, given ``r = (x + 0.0) / scale``
    (float32: the sign of every x < 0 kept); with ``res``, also ``x - decoded`` into ``res``, the
    decoded values being ``dec`` at the index (the scaled table; or the table, times ``scales``,
    one per ``block`` values), computed as :func:`decode` computes them. ``w``: the thread's
    scratch."""
    t = _tables()
    m = x.size
    i, s, j, b = w.i[:m], w.s[:m], w.j[:m], w.b[:m]
    np.right_shift(r.view(np.uint32), _SHIFT, out=i)
    np.take(t.sstep, i, out=s, mode="wrap")  # every index is in range (|r| <= 1): wrap is the fastest mode
    np.take(t.base, i, out=j, mode="wrap")
    np.greater_equal(r, s, out=b)
    np.add(j, b.view(np.uint8), out=j)
    np.take(t.ccode, j, out=out, mode="wrap")
    if res is None:
        return
    np.take(dec, j, out=s, mode="wrap")
    if scales is not None:
        full = m // block * block
        if full:
            blocks = s[:full].reshape(-1, block)
            np.multiply(blocks, scales[:full // block, None], out=blocks)
        if full < m:
            s[full:] *= scales[-1]
    np.subtract(x, s, out=res)


def _span_dettmers(g, old, out, res, peak, dec):
    """``_code`` over a span of ``g`` (+ ``old``) with the tensor's maximum ``peak``, step by step."""
    scale = peak if peak > 0 else np.float32(1)
    for s in range(0, g.size, _CHUNK):
        x = g[s:s + _CHUNK]
        m = x.size
        w = _scratch.get(m)
        if old is not None:
            x = np.add(x, old[s:s + m], out=w.v[:m])
        r = np.add(x, np.float32(0), out=w.r[:m])  # -0.0 + 0.0 = +0.0; any other x is kept
        np.divide(r, scale, out=r)
        _code(x, r, out[s:s + m], None if res is None else res[s:s + m], dec, None, 0, w)


def _span_block8(g, old, out, res, scales, block):
    """``_code`` over a span of ``g`` (+ ``old``) that starts at a block, writing its blocks' scales
    (the maximum |value| of each) into ``scales``; False when one is NaN or infinite."""
    dec = _tables().cdec
    step = max(block, _CHUNK // block * block)
    for s in range(0, g.size, step):
        x = g[s:s + step]
        m = x.size
        w = _scratch.get(m)
        if old is not None:
            x = np.add(x, old[s:s + m], out=w.v[:m])
        a = np.abs(x, out=w.r[:m])
        full = m // block * block
        k = s // block
        sc = scales[k:k + -(-m // block)]
        if full:
            np.max(a[:full].reshape(-1, block), axis=1, out=sc[:full // block])
        if full < m:
            sc[-1] = a[full:].max()
        if not np.isfinite(sc).all():
            return False
        div = np.where(sc == 0, np.float32(1), sc)  # an all-zero block: every r is 0 -> code 126
        r = w.r[:m]
        np.add(x, np.float32(0), out=r)  # -0.0 + 0.0 = +0.0; any other x is kept
        if full:
            np.divide(r[:full].reshape(-1, block), div[:full // block, None], out=r[:full].reshape(-1, block))
        if full < m:
            np.divide(r[full:], div[-1], out=r[full:])
        _code(x, r, out[s:s + m], None if res is None else res[s:s + m], dec, sc, block, w)
    return True


def _encode_piece(g, old, res, codec, block, peak):
    """The ``dettmers8``/``block8`` bytes of the values ``g`` (+ ``old``: float32, the same size),
    coded on the codec's threads, and with ``res`` their error (the values less their decoded
    ones) written into it. ``peak``: the tensor's maximum |value| (dettmers8); ValueError when a
    block8 block holds NaN or infinity."""
    n = g.size
    sub = (lambda a, lo, hi: None if a is None else a[lo:hi])
    if codec == "dettmers8":
        out = np.empty(n + 4, dtype=np.uint8)
        dec = None if res is None else _tables().cdec * peak  # as decode scales its table
        parallel(lambda lo, hi: _span_dettmers(g[lo:hi], sub(old, lo, hi), out[lo:hi], sub(res, lo, hi), peak, dec), n)
        out[n:] = np.array([peak], dtype=_F32).view(np.uint8)
        return out.tobytes()
    out = np.empty(n + 4 * -(-n // block), dtype=np.uint8)
    scales = np.empty(-(-n // block), dtype=np.float32)
    done = parallel(lambda lo, hi: _span_block8(g[lo:hi], sub(old, lo, hi), out[lo:hi], sub(res, lo, hi),
                                                scales[lo // block:-(-hi // block)], block), n, align=block)
    if not all(done):
        raise _not_finite(codec, g if old is None else g + old)
    out[n:] = scales.astype(_F32, copy=False).view(np.uint8)
    return out.tobytes()


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


def all_finite(array):
    """Whether every value of a float array is finite (NaN and infinities are not), found on the
    codec's threads a step at a time (no temporary of the array's size).

    Example:
        >>> all_finite(np.ones((3, 2), np.float32)), all_finite(np.array([1.0, np.inf], np.float32))
        (True, False)
    """
    flat = np.asarray(array).reshape(-1, order="A")

    def span(lo, hi):
        for s in range(lo, hi, _CHUNK):
            x = flat[s:min(hi, s + _CHUNK)]
            if not np.isfinite(x, out=_scratch.get(x.size).b[:x.size]).all():
                return False
        return True

    return all(parallel(span, flat.size))


def _not_finite(codec, flat):
    bad = int(np.count_nonzero(~np.isfinite(flat)))
    return ValueError(f"{codec}: cannot encode NaN or infinity in 8 bits ({bad} of {flat.size} values)")


def _peak(flat, codec, old=None):
    """The maximum absolute value of ``flat`` (+ ``old``) as float32 (+0.0 for none or all zeros),
    found on the codec's threads; ValueError for NaN or infinity."""
    if not flat.size:
        return np.float32(0)

    def span(lo, hi):
        lows, highs = [], []
        for s in range(lo, hi, _CHUNK):
            x = flat[s:min(hi, s + _CHUNK)]
            if old is not None:
                x = np.add(x, old[s:s + x.size], out=_scratch.get(x.size).v[:x.size])
            lows.append(x.min())
            highs.append(x.max())
        return np.min(np.array(lows, np.float32)), np.max(np.array(highs, np.float32))  # NaN if any is

    lows, highs = zip(*parallel(span, flat.size))
    # min and max are exact: the same float32 values as over the whole, in whatever spans
    peak = np.float32(max(-np.min(np.array(lows, np.float32)), np.max(np.array(highs, np.float32))))
    if not np.isfinite(peak):
        raise _not_finite(codec, flat if old is None else flat + old)
    return peak if peak > 0 else np.float32(0)  # never -0.0


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
    return _encode_piece(flat, None, None, codec, int(block), _peak(flat, codec) if codec == "dettmers8" else None)


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
        flat = _decode8(codes, _scales(buf, codec, n), n if codec == "dettmers8" else int(block))
    return flat.reshape(shape, order="F")


def _scales(buf, codec, n):
    """The checked float32 scales that follow ``n`` 8-bit codes in ``buf``; ValueError when one is
    NaN, infinite or negative."""
    scales = np.frombuffer(buf, dtype=_F32, offset=n).astype(np.float32)
    bad = ~(np.isfinite(scales) & (scales >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        where = "maximum" if codec == "dettmers8" else f"scale of block {i} (of {scales.size})"
        raise ValueError(f"{codec}: decoded {where} is {float(scales[i])}; a scale must be finite and >= 0")
    return scales


#: Values a window of the sum-of-squares statistic holds (:func:`window_squares`).
SQUARES_WINDOW = 1 << 16
#: Values per step of :func:`decode_add` (and of the coordinator's passes for the statistic): a
#: thread takes the GIL back after each numpy call and holds it for the Python between them, so
#: steps this long (three to five calls for a quarter million values, not as many per 64 Ki)
#: leave it to the event loop that shares it; the float32 scratch (1 MiB a thread) stays in cache.
ADD_STEP = 1 << 18


class _Values(threading.local):
    """A thread's float32 scratch for decoded values (grown when needed)."""

    y = np.empty(0, np.float32)

    def get(self, m):
        if self.y.size < m:
            self.y = np.empty(m, np.float32)
        return self.y[:m]


_values = _Values()


@functools.lru_cache(maxsize=64)
def _pair_table(scale_bits, weight_bits=None):
    """The decoded values of every pair of ``dettmers8`` codes with the scale of these float32 bits
    (times the weight of these float32 bits, when given: each value times it in float32, as
    ``decode(data) * weight`` rounds it), as uint64 (two float32: the first code's value, then the
    second's) indexed by the pair read as a little-endian uint16: one lookup decodes two values
    (512 KiB, built once per scale and weight)."""
    table = _scaled_table(scale_bits, weight_bits)
    pairs = np.empty((256, 256, 2), np.float32)  # [second code, first code]
    pairs[:, :, 0] = table[None, :]
    pairs[:, :, 1] = table[:, None]
    if np.little_endian:
        return pairs.reshape(-1).view(np.uint64)
    return pairs.transpose(1, 0, 2).reshape(-1).view(np.uint64)  # a big-endian uint16 holds the first code high


def _f32(bits):
    return np.array([bits], np.uint32).view(np.float32)[0]


def _scaled_table(scale_bits, weight_bits=None):
    """The 256 decoded values of ``dettmers8`` with this scale (as _decode8 scales the table), times
    this weight (float32 products) when given."""
    table = _tables().decode * _f32(scale_bits)
    return table if weight_bits is None else table * _f32(weight_bits)


def _decoder(buf, codec, n, block, scales, weight=None, pairs=True):
    """``fill(s, m, y)``: the float32 values ``s .. s + m - 1`` of the encoding ``buf`` of ``n`` values
    (``scales``: its checked 8-bit scales), exactly those :func:`decode` gives, into ``y`` (``m``
    values of scratch) or, raw, a view of ``buf``; returns them. With ``weight`` (``dettmers8``
    only): each value times it in float32, folded into the lookup table (the same bits). ``pairs``:
    ``dettmers8`` decodes two codes a lookup (a 512 KiB table: worth it from about 64 Ki values);
    ``s`` even then, unless ``m`` is 1."""
    if codec == "raw":
        src = np.frombuffer(buf, dtype=_F32, count=n)
        return lambda s, m, y: src[s:s + m]
    if codec == "fp16":
        src16 = np.frombuffer(buf, dtype=_F16, count=n)

        def fill16(s, m, y):
            np.copyto(y, src16[s:s + m])
            return y
        return fill16
    codes = np.frombuffer(buf, dtype=np.uint8, count=n)
    if codec == "block8":
        table = _tables().decode

        def fill_block8(s, m, y):
            np.take(table, codes[s:s + m], out=y, mode="clip")
            k, full = s // block, m // block * block
            if full:
                blocks = y[:full].reshape(-1, block)
                np.multiply(blocks, scales[k:k + full // block, None], out=blocks)
            if full < m:
                y[full:] *= scales[k + full // block]
            return y
        return fill_block8
    scale_bits = int(scales[:1].view(np.uint32)[0])
    weight_bits = None if weight is None else int(np.array([weight], np.float32).view(np.uint32)[0])
    table = _scaled_table(scale_bits, weight_bits)
    if not pairs:
        def fill_one(s, m, y):
            np.take(table, codes[s:s + m], out=y, mode="clip")
            return y
        return fill_one
    pair = _pair_table(scale_bits, weight_bits)

    def fill_pairs(s, m, y):
        even = m & ~1
        np.take(pair, codes[s:s + even].view(np.uint16), out=y[:even].view(np.uint64), mode="wrap")
        if even < m:
            y[even] = table[codes[s + even]]
        return y
    return fill_pairs


def window_squares(y):
    """The sum-of-squares statistic of the float32 values ``y``, window by window: for each window of
    :data:`SQUARES_WINDOW` (64 Ki) consecutive values from the first (the last may be shorter), its
    float32 dot product with itself as numpy's ``np.dot(w, w)`` computes it (BLAS sdot where numpy
    has BLAS), a Python float, in order; redone in float64 when it overflows float32, NaN when the
    window holds NaN or an infinity. The full windows are taken by one stacked product
    (``np.matmul`` of (k, 1, W) by (k, W, 1): numpy computes each such vector product as ``np.dot``
    does), not by a Python loop over them; it keeps the GIL (numpy lets it go for a stacked
    product of more than 500), about 14 us for 4 windows, where a loop of ``np.dot`` would take it
    back after each.

    The coordinator's sum of squares of a piece is these floats summed in float64, in order, over
    windows counted from the piece's first value (:func:`decode_add` with ``squares``,
    ``uploads.piece_stats``, ``uploads.encoded_stats``): the same bits whichever takes it.

    Example:
        >>> window_squares(np.array([3.0, 4.0], np.float32))
        [25.0]
        >>> window_squares(np.full(SQUARES_WINDOW + 1, 2.0, np.float32))
        [262144.0, 4.0]
    """
    w = SQUARES_WINDOW
    k, n = y.size // w, y.size
    out = []
    if k:
        full = y[:k * w].reshape(k, w)
        out = np.matmul(full[:, None, :], full[:, :, None]).reshape(k).tolist()
    if k * w < n:
        out.append(float(np.dot(y[k * w:], y[k * w:])))
    if not math.isfinite(sum(out)):  # overflow in float32 (again in float64), or a value not finite (NaN)
        for i, q in enumerate(out):
            if not math.isfinite(q):
                x = y[i * w:(i + 1) * w]
                out[i] = float(np.dot(x.astype(np.float64), x.astype(np.float64))) if np.all(np.isfinite(x)) else math.nan
    return out


def decode_steps(data, codec, n, lo=0, hi=None, block=256, step=1 << 16):
    """Decode values ``lo .. hi - 1`` of an encoding of ``n`` values step by step, with no array of
    their size: yields ``(start, values)`` for each step of ``step`` values from ``lo`` (the last may
    be shorter), ``values`` a float32 array that holds exactly what :func:`decode` gives there and
    that is only valid until the next step (this thread's scratch, or a view of ``data`` for raw).

    ``lo`` must be a multiple of ``block`` for ``block8`` (and ``step`` too). ValueError as
    :func:`decode` for bytes it refuses (checked before the first step).

    Example:
        >>> x = np.array([1.0, -0.5, 0.25], dtype=np.float32)
        >>> [(s, v.tolist()) for s, v in decode_steps(encode(x, "raw"), "raw", 3, step=2)]
        [(0, [1.0, -0.5]), (2, [0.25])]
    """
    _check(codec, block)
    block = int(block)
    hi = n if hi is None else hi
    buf = memoryview(data).cast("B")
    if len(buf) != encoded_size(n, codec, block):
        raise ValueError(f"{codec}: expected {encoded_size(n, codec, block)} bytes for {n} values, received {len(buf)}")
    scales = _scales(buf, codec, n) if codec in _EIGHT_BIT else None
    if codec == "block8" and (lo % block or step % block):
        raise ValueError(f"{codec}: steps must start at a block ({block} values), got {lo} and {step}")
    fill = _decoder(buf, codec, n, block, scales, pairs=hi - lo >= 1 << 16 and lo % 2 == 0 and step % 2 == 0)
    for s in range(lo, hi, step):
        m = min(hi, s + step) - s
        yield s, fill(s, m, None if codec == "raw" else _values.get(m))


def decode_add(data, codec, n, dst, weight=1.0, block=256, squares=False):
    """``dst += decode(data) * weight`` (``dst``: float32, 1-D, ``n`` values; the product in float32,
    and none when ``weight`` is 1), decoded step by step on the codec's threads with no array of
    ``n`` values: the same bits as that expression. ValueError (before anything is added) for bytes
    :func:`decode` refuses.

    Each thread takes its span in steps of :data:`ADD_STEP` values, a few numpy calls a step (the
    lookup, the sums of squares, the add: the GIL is taken back after each, and held by the
    Python between them and by the sums of squares); ``dettmers8`` decodes two values a lookup,
    the weight folded into its table when no squares are asked for.

    With ``squares``, returns the sum-of-squares statistic of the decoded values (before the
    weight): :func:`window_squares` over windows of 64 Ki values from the first, as a list of
    floats in order, taken while the values are in cache.

    Example:
        >>> acc = np.ones(2, np.float32)
        >>> decode_add(encode(np.array([1.0, -0.5], np.float32), "dettmers8"), "dettmers8", 2, acc)
        >>> acc.tolist()
        [2.0, 0.507031261920929]
    """
    if dst.shape != (n,) or dst.dtype != np.float32:
        raise ValueError(f"decode_add: expected a float32 destination of ({n},), got {dst.dtype} {dst.shape}")
    _check(codec, block)
    block = int(block)
    buf = memoryview(data).cast("B")
    if len(buf) != encoded_size(n, codec, block):
        raise ValueError(f"{codec}: expected {encoded_size(n, codec, block)} bytes for {n} values, received {len(buf)}")
    scales = _scales(buf, codec, n) if codec in _EIGHT_BIT else None  # refused here, before any span adds
    weighted = weight != 1.0
    w = np.float32(weight)
    fold = weighted and codec == "dettmers8" and not squares  # the weight in the table (squares need the values)
    fill = _decoder(buf, codec, n, block, scales, weight=w if fold else None, pairs=n >= 1 << 16)
    align = math.lcm(block if codec == "block8" else 2, SQUARES_WINDOW if squares else 1)
    step = max(1, ADD_STEP // align) * align
    scaled = weighted and not fold

    def span(lo, hi):
        dots = []
        ys = _values.get(min(step, hi - lo))
        for s in range(lo, hi, step):
            m = min(hi, s + step) - s
            y = fill(s, m, ys[:m])  # raw: a view of data
            if squares:
                dots += window_squares(y)
            if scaled:
                y = np.multiply(y, w, out=ys[:m])
            d = dst[s:s + m]
            np.add(d, y, out=d)
        return dots

    done = parallel(span, n, align=align)
    if squares:
        return [d for dots in done for d in dots]
    return None


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


def check_scales(data, codec, n, block=256):
    """Raise ValueError unless ``data`` is ``encoded_size(n, codec, block)`` bytes whose 8-bit scales
    (if any) are finite and >= 0, as :func:`decode` checks them (every 8-bit value is then finite)."""
    _check(codec, block)
    buf = memoryview(data).cast("B")
    if len(buf) != encoded_size(n, codec, block):
        raise ValueError(f"{codec}: expected {encoded_size(n, codec, block)} bytes for {n} values, received {len(buf)}")
    if codec in _EIGHT_BIT:
        _scales(buf, codec, n)


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
        if codec in _EIGHT_BIT:
            yield _encode_piece(flat[lo:hi], None, None, codec, int(block), peak)
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
        if codec in _EIGHT_BIT:  # one piece: the whole tensor
            x = np.asarray(array)
            return b"".join(self.compress_pieces(name, x, codec, [(0, x.size)], block))
        x, old = self._plus(name, array)
        if old is not None:
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
        once the last piece has been taken.

        The 8-bit codecs take one pass per piece (on the codec's threads): each step adds the
        residual, codes, and writes what decoding would lose as the new residual, without
        decoding the bytes again; the bytes and the residual are those of encode + decode."""
        x, old = self._plus(name, array)
        if codec not in _EIGHT_BIT:
            if old is not None:
                x = x + old
            flat = _flat(x, codec)
            res = np.empty(flat.size, np.float32)
            for (lo, hi), data in zip(bounds, encode_pieces(flat, codec, bounds, block)):
                r = res[lo:hi]
                np.subtract(flat[lo:hi], decode(data, codec, hi - lo, block), out=r)
                r[~np.isfinite(r)] = 0
                yield data
            self.residuals[name] = res.reshape(x.shape, order="F")
            return
        _check(codec, block)
        g = _flat(x, codec)
        o = None if old is None else _flat(old, codec)
        res = np.empty(g.size, np.float32)  # finite: |x - decoded| <= the scale when x is finite
        peak = _peak(g, codec, o) if codec == "dettmers8" else None
        for lo, hi in bounds:
            if codec == "block8" and (lo % block or (hi % block and hi != g.size)):
                raise ValueError(f"{codec}: piece {lo}..{hi} of {g.size} values is not a valid cut (block {block})")
            yield _encode_piece(g[lo:hi], None if o is None else o[lo:hi], res[lo:hi], codec, int(block), peak)
        self.residuals[name] = res.reshape(x.shape, order="F")

    def _plus(self, name, array):
        """The array as float32, and the residual it adds to (None: none yet)."""
        x = np.asarray(array, dtype=np.float32)
        old = self.residuals.get(name)
        if old is not None and old.shape != x.shape:
            raise ValueError(f"error feedback {name!r}: shape {x.shape} differs from the residual's {old.shape}")
        return x, old

    def reset(self, name=None):
        """Forget the residual of ``name``, or all of them when ``name`` is None."""
        if name is None:
            self.residuals.clear()
        else:
            self.residuals.pop(name, None)
