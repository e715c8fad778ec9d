"""numpy 2-d max and average pooling, on the row-major (n, c, w, h) view of (h, w, c, n) blobs.

Max pooling keeps, per output, the window position of the first maximum (ties broken in
window order, h-major, as Chainer and PyTorch); its gradient scatters to those positions.
Average pooling divides by the part of the window inside the padded input (Caffe/PyTorch).
"""

import functools

import numpy as np

from sukiyaki.backends.numpy.conv import _cview, _pad, chunks, geometry
from sukiyaki.backends.numpy.threads import parallel_for

_F32 = np.float32


def _in_chunks(fn, n, bytes_per_sample):
    """fn(lo, hi) over range(n): split among the threads, each share in cache-sized chunks."""
    def share(lo, hi):
        for a, z in chunks(hi - lo, bytes_per_sample):
            fn(lo + a, lo + z)

    parallel_for(share, n, n * bytes_per_sample // 4)


def _avg_divisor(A, B, ka, kb, sa, sb, pa, pb, oa, ob):
    """Window sizes for average pooling: ka * kb, less what lies beyond the padded input
    (the ceil mode's last windows), as Caffe and PyTorch count them."""
    ca = np.minimum(ka, A + 2 * pa - sa * np.arange(oa))
    cb = np.minimum(kb, B + 2 * pb - sb * np.arange(ob))
    return (ca[:, None] * cb[None, :]).astype(_F32)


def _offsets(ka, kb):
    """Window offsets in the order ties are broken: h-major (b here), as Chainer and PyTorch."""
    return [(i, j) for j in range(kb) for i in range(ka)]


def _window_slices(Xp, ka, kb, sa, sb, oa, ob):
    return [Xp[:, :, i:i + sa * (oa - 1) + 1:sa, j:j + sb * (ob - 1) + 1:sb] for i, j in _offsets(ka, kb)]


def _max_part(Xp, Y, code, ka, kb, sa, sb, oa, ob):
    """Y = window maxima and, unless code is None, code = index of the first maximum in
    window order (in place)."""
    slices = _window_slices(Xp, ka, kb, sa, sb, oa, ob)
    if code is None:
        np.copyto(Y, slices[0])
        for v in slices[1:]:
            np.maximum(Y, v, out=Y)
        return
    if len(slices) <= 16:
        slices = [np.ascontiguousarray(v) for v in slices]
    np.copyto(Y, slices[0])
    for v in slices[1:]:
        np.maximum(Y, v, out=Y)
    # first k with slices[k] == Y, as n0 * (1 + n1 * (1 + ...)) with n_k = (slices[k] != Y)
    dtype = code.dtype
    t = np.not_equal(slices[-2], Y).astype(dtype) if len(slices) > 1 else np.zeros(Y.shape, dtype)
    one = dtype.type(1)
    for k in range(len(slices) - 3, -1, -1):
        t = np.not_equal(slices[k], Y).astype(dtype) * (t + one)
    code[...] = t


def pool2d_forward(x, spec, keep=False):
    """Max or average pooling of x (h, w, c, n) as the PoolSpec says.

    Returns:
        (y, cache): y (h', w', c, n); cache for pool2d_backward (first-argmax codes for
        max), None unless keep.
    """
    mode = spec.mode
    X = _cview(x)
    if X.dtype != _F32:
        X = X.astype(_F32)
    N = X.shape[0]
    C, A, B, ka, kb, sa, sb, pa, pb, oa, ob, _, _ = geometry(spec)
    ea = max(0, (oa - 1) * sa + ka - (A + 2 * pa))
    eb = max(0, (ob - 1) * sb + kb - (B + 2 * pb))
    fill = -np.inf if mode == "max" else 0.0
    Xp = _pad(X, pa, pb, fill, ea, eb)
    Y = np.empty((N, C, oa, ob), dtype=_F32)
    if mode == "max":
        code = np.empty((N, C, oa, ob), dtype=np.uint8 if ka * kb <= 256 else np.int32) if keep else None
        _in_chunks(lambda lo, hi: _max_part(Xp[lo:hi], Y[lo:hi], None if code is None else code[lo:hi],
                                            ka, kb, sa, sb, oa, ob), N, Xp[0].nbytes)
        return Y.T, ((code, Xp.shape, (N, C, A, B)) if keep else None)

    div = _avg_divisor(A, B, ka, kb, sa, sb, pa, pb, oa, ob) if (ea or eb) else _F32(ka * kb)

    def avg_part(lo, hi):
        y = Y[lo:hi]
        slices = _window_slices(Xp[lo:hi], ka, kb, sa, sb, oa, ob)
        np.copyto(y, slices[0])
        for v in slices[1:]:
            y += v
        y /= div

    _in_chunks(avg_part, N, Xp[0].nbytes)
    return Y.T, ((div, Xp.shape, (N, C, A, B)) if keep else None)


@functools.lru_cache(maxsize=32)
def _window_base(pshape, oa, ob, sa, sb):
    """Flat index, in an array of pshape (N, C, A, B), of each window's first element."""
    N, C, A, B = pshape
    itype = np.int32 if N * C * A * B < 2**31 else np.int64
    nc = np.arange(N * C, dtype=itype).reshape(N, C, 1, 1)
    rows = (sa * np.arange(oa, dtype=itype)).reshape(1, 1, oa, 1)
    cols = (sb * np.arange(ob, dtype=itype)).reshape(1, 1, 1, ob)
    base = (nc * A + rows) * B + cols
    base.flags.writeable = False
    return base


@functools.lru_cache(maxsize=32)
def _offset_table(ka, kb, B):
    """Flat offset of each window position, in window order, within rows of length B."""
    t = np.array([i * B + j for i, j in _offsets(ka, kb)], dtype=np.int32)
    t.flags.writeable = False
    return t


def pool2d_backward(dy, spec, cache):
    """Gradient of pool2d_forward (called with keep=True) with respect to x."""
    mode = spec.mode
    code, pshape, (N, C, A, B) = cache
    dY = _cview(dy)
    _, _, _, ka, kb, sa, sb, pa, pb, oa, ob, _, _ = geometry(spec)
    disjoint = sa >= ka and sb >= kb
    if mode == "max" and disjoint:
        # each input element takes at most one gradient: scatter to the maxima's flat indices
        dXp = np.zeros(pshape, dtype=_F32)
        idx = _window_base(pshape, oa, ob, sa, sb) + _offset_table(ka, kb, pshape[3])[code]
        dXp.reshape(-1)[idx.reshape(-1)] = np.ascontiguousarray(dY).reshape(-1)
        if pshape == (N, C, A, B):
            return dXp.T
        return np.ascontiguousarray(dXp[:, :, pa:pa + A, pb:pb + B]).T
    covers = disjoint and sa == ka and sb == kb and pshape == (N, C, oa * ka, ob * kb)
    dXp = np.empty(pshape, dtype=_F32)
    zero = _F32(0)

    def part(lo, hi):
        d = dXp[lo:hi]
        g = dY[lo:hi] if mode == "max" else dY[lo:hi] / code  # average pooling keeps its divisor in the cache
        if not covers:
            d[...] = 0
        for k, (i, j) in enumerate(_offsets(ka, kb)):
            sl = (slice(None), slice(None), slice(i, i + sa * (oa - 1) + 1, sa), slice(j, j + sb * (ob - 1) + 1, sb))
            val = np.where(code[lo:hi] == k, g, zero) if mode == "max" else g
            if disjoint:
                d[sl] = val
            else:
                d[sl] += val

    _in_chunks(part, N, 4 * int(np.prod(pshape[1:])))
    if pshape == (N, C, A, B):
        return dXp.T
    return np.ascontiguousarray(dXp[:, :, pa:pa + A, pb:pb + B]).T
