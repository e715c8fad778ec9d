"""Philox4x32-10 counter-based random numbers (Salmon et al. 2011), bit-identical on every backend.

Random draws are keyed by (seed, layer) and counted by (element, sample id, iteration), so the
values a sample gets do not depend on how the batch is split or ordered. Known answers:
shared/compat/philox4x32-10.json.
"""

import operator
import sys

import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57  # round multipliers
W0, W1 = 0x9E3779B9, 0xBB67AE85  # key bumps (Weyl sequence)
_MASK = 0xFFFFFFFF
_LO = 0 if sys.byteorder == "little" else 1  # which uint32 half of a uint64 holds the low word
_MS = np.array([M0, M1], np.uint64).reshape(2, 1, 1)
_ULP = np.float32(2.0 ** -24)
_CHUNK = 8192  # Philox blocks per step: the work buffers stay in cache


def _word(name, value, bound=1 << 32):
    """value as a Python int in [0, bound), else ValueError naming the argument."""
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if not 0 <= value < bound:
        raise ValueError(f"{name} must be in [0, {bound}), got {value}")
    return value


def _words(name, values):
    """values as a uint32 array, else ValueError naming the argument and the offending value."""
    a = np.asarray(values)
    if a.dtype != np.uint32 and a.size:
        if a.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
        if a.min() < 0 or a.max() > _MASK:
            raise ValueError(f"{name} must be in [0, 2**32), got {a.min() if a.min() < 0 else a.max()}")
    return a.astype(np.uint32, copy=False)


def _round(c0, c1, c2, c3, k0, k1):
    """One Philox round on uint32 words of any broadcastable shapes."""
    # mulhilo: the uint64 product seen as uint32 pairs; no copies, no overflow
    p0 = np.multiply(c0, np.uint64(M0), dtype=np.uint64)[..., None].view(np.uint32)
    p1 = np.multiply(c2, np.uint64(M1), dtype=np.uint64)[..., None].view(np.uint32)
    (hi0, lo0), (hi1, lo1) = (p0[..., 1 - _LO], p0[..., _LO]), (p1[..., 1 - _LO], p1[..., _LO])
    c0 = hi1 ^ c1
    c0 ^= np.uint32(k0)
    c2 = hi0 ^ c3
    c2 ^= np.uint32(k1)
    return c0, lo1, c2, lo0


def _keys(k0, k1):
    """The ten round keys (k0 + r*W0, k1 + r*W1) mod 2**32."""
    return [((k0 + r * W0) & _MASK, (k1 + r * W1) & _MASK) for r in range(10)]


def _block(c0, c1, c2, keys, work):
    """Philox of counters (c0, c1, c2, 0), broadcast to (s, b): a (s, b, 4) uint32 view of work.

    work is scratch of at least 16 * s * b uint32. Rounds 1-2 run on the broadcast shapes;
    rounds 3-10 on (c0, c2) and (c1, c3) stacked on a leading axis of 2 (three ufunc calls a
    round, two alternating product buffers).
    """
    shape = np.broadcast_shapes(np.shape(c0), np.shape(c1))
    size = shape[0] * shape[1]
    prods = work[:8 * size].reshape((2, 2) + shape + (2,))
    pair, low = work[8 * size:12 * size].reshape((2, 2) + shape)
    quad = work[12 * size:16 * size].reshape(shape + (4,))
    c = (c0, c1, c2, np.uint32(0))
    for k in keys[:2]:
        c = _round(*c, *k)
    pair[0], low[0], pair[1], low[1] = c
    # each product buffer as uint64 (M0 c0, M1 c2), and its halves (hi1, hi0), (lo1, lo0)
    views = [(p.view(np.uint64)[..., 0], p[::-1, ..., 1 - _LO], p[::-1, ..., _LO]) for p in prods]
    for r, k in enumerate(np.array(keys[2:], np.uint32)[:, :, None, None]):
        prod, hi, lo = views[r % 2]
        np.multiply(pair, _MS, out=prod, dtype=np.uint64)
        if r == 7:  # the last round writes words 0 and 2 straight into quad
            pair = quad.transpose(2, 0, 1)[0::2]
        np.bitwise_xor(hi, low, out=pair)  # (hi1 ^ c1, hi0 ^ c3)
        np.bitwise_xor(pair, k, out=pair)
        low = lo
    quad[..., 1], quad[..., 3] = low  # (two copies: one over axis 2 would run 2-long inner loops)
    return quad


def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counters (c0, c1, c2, c3) under key (k0, k1), elementwise.

    Args:
        c0, c1, c2, c3: counter words, uint32 arrays (or integers in [0, 2**32)) that broadcast.
        k0, k1: key words, Python ints in [0, 2**32).

    Returns:
        A tuple of four uint32 arrays of the broadcast shape: the output words.

    Example:
        >>> z = np.zeros(1, np.uint32)
        >>> [f"{int(w[0]):08x}" for w in philox4x32(z, z, z, z, 0, 0)]
        ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']
    """
    k0, k1 = _word("k0", k0), _word("k1", k1)
    words = [_words(name, c) for name, c in zip(("c0", "c1", "c2", "c3"), (c0, c1, c2, c3))]
    shape = np.broadcast_shapes(*(c.shape for c in words))
    for k in _keys(k0, k1):
        words = _round(*words, *k)
    return tuple(np.array(np.broadcast_to(w, shape), dtype=np.uint32) for w in words)


def uniform_from_bits(bits):
    """Map uint32 words to float32 uniforms in [0, 1): (bits >> 8) * 2**-24, exact.

    Args:
        bits: uint32 array.

    Returns:
        float32 array of the same shape (and memory order).

    Example:
        >>> uniform_from_bits(np.array([0, 256, 0xFFFFFFFF], np.uint32)).tolist()
        [0.0, 5.960464477539063e-08, 0.9999999403953552]
    """
    return np.multiply(np.asarray(bits, dtype=np.uint32) >> np.uint32(8), _ULP, dtype=np.float32)


def _batch(key, iteration, sample_ids, per_sample, uniform):
    """Validated philox_bits (uniform False) or philox_uniform (True), built chunk by chunk."""
    try:
        k0, k1 = key
    except (TypeError, ValueError):
        raise ValueError(f"key must be a pair (k0, k1) of ints, got {key!r}") from None
    keys = _keys(_word("key[0]", k0), _word("key[1]", k1))
    c2 = np.uint32(_word("iteration", iteration))
    per_sample = _word("per_sample", per_sample, 1 << 34)
    if np.ndim(sample_ids) != 1:
        raise ValueError(f"sample_ids must be 1-d, got shape {np.shape(sample_ids)}")
    ids = _words("sample_ids", sample_ids)
    n, blocks = ids.size, -(-per_sample // 4)
    # C order (n, per_sample) here, so that out.T is the Fortran (per_sample, n) result
    out = np.empty((n, per_sample), np.float32 if uniform else np.uint32)
    cols = max(1, min(blocks, _CHUNK))  # a step: rows x cols Philox blocks
    rows = _CHUNK // cols
    work = np.empty(16 * min(n, rows) * cols, np.uint32)
    for j in range(0, n, rows):
        c1 = ids[j:j + rows, None]
        for b in range(0, blocks, cols):
            c0 = np.arange(b, min(b + cols, blocks), dtype=np.uint32)[None, :]
            if cols < 32:  # few blocks a sample: full counters, not a slow (rows, few) broadcast
                quad = _block(np.tile(c0, c1.shape), np.repeat(c1, c0.shape[1], axis=1), c2, keys, work)
            else:
                quad = _block(c0, c1, c2, keys, work)
            words = quad.reshape(len(quad), -1)[:, :per_sample - 4 * b]
            dst = out[j:j + rows, 4 * b:4 * b + words.shape[1]]
            if uniform:  # (bits >> 8) * 2**-24, straight into the float32 result
                np.right_shift(words, np.uint32(8), out=words)
                np.multiply(words, _ULP, out=dst, dtype=np.float32)
            else:
                dst[...] = words
    return out.T


def philox_bits(key, iteration, sample_ids, per_sample):
    """Raw Philox words for a batch: [e, j] is word e % 4 of block (e // 4, sample_ids[j], iteration, 0).

    Args:
        key: (k0, k1), two ints in [0, 2**32), e.g. derived from (seed, layer).
        iteration: int in [0, 2**32), the training step.
        sample_ids: 1-d integer array (n,) of global sample indices in [0, 2**32).
        per_sample: int >= 0, how many words each sample gets.

    Returns:
        uint32 array (per_sample, n) in Fortran order; column j depends only on
        (key, iteration, sample_ids[j]), not on the other samples of the batch.

    Example:
        >>> b = philox_bits((0, 0), 0, np.array([0, 7]), 6)
        >>> b.shape, b.dtype, b.flags.f_contiguous, f"{int(b[0, 0]):08x}"
        ((6, 2), dtype('uint32'), True, '6627e8d5')
    """
    return _batch(key, iteration, sample_ids, per_sample, uniform=False)


def philox_uniform(key, iteration, sample_ids, per_sample):
    """Float32 uniforms in [0, 1) for a batch: uniform_from_bits(philox_bits(...)).

    Args:
        key, iteration, sample_ids, per_sample: as for philox_bits.

    Returns:
        float32 array (per_sample, n) in Fortran order, multiples of 2**-24.

    Example:
        >>> u = philox_uniform((1, 2), 3, np.arange(64), 4096)
        >>> u.shape, u.dtype, bool(u.flags.f_contiguous), bool(0 <= u.min() and u.max() < 1)
        ((4096, 64), dtype('float32'), True, True)
    """
    return _batch(key, iteration, sample_ids, per_sample, uniform=True)
