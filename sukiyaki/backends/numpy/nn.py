"""numpy kernels for the layers that need their own: 2-d convolution and pooling.

Blobs are (h, w, c, n) column-major arrays (the original's layout). Seen row-major,
the same memory is (n, c, w, h): NCHW with h and w exchanged. Every kernel here works
on that row-major view with the kernel's h/w parameters exchanged too, so no data is
transposed. Convolution lowers windows to columns (im2col) and multiplies with BLAS.
"""

import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

_F32 = np.float32
#: Work on chunks of samples whose lowered columns take about this many bytes: bounds the
#: temporary memory of big layers (measured on LeNet: larger chunks were no slower).
CHUNK_BYTES = 16 << 20


def _chunk_rows(n, bytes_per_sample):
    """Samples per chunk so that a chunk's columns take about CHUNK_BYTES."""
    return max(1, min(n, CHUNK_BYTES // max(bytes_per_sample, 1)))


def _in_chunks(fn, n, bytes_per_row):
    """Call fn(lo, hi) over chunks of range(n) of about CHUNK_BYTES each."""
    rows = _chunk_rows(n, bytes_per_row)
    for lo in range(0, n, rows):
        fn(lo, min(n, lo + rows))


def _cview(x):
    """Row-major (n, c, w, h) view of an (h, w, c, n) array (copy only if it has no such view)."""
    if x.ndim < 4:
        x = x.reshape(x.shape + (1,) * (4 - x.ndim), order="F")
    return np.ascontiguousarray(x.T)


def _pad(X, pa, pb, value=0.0, extra_a=0, extra_b=0):
    if not (pa or pb or extra_a or extra_b):
        return X
    N, C, A, B = X.shape
    Xp = np.full((N, C, A + 2 * pa + extra_a, B + 2 * pb + extra_b), value, dtype=X.dtype)
    Xp[:, :, pa:pa + A, pb:pb + B] = X
    return Xp


def _windows(Xp, ka, kb, sa, sb, oa, ob):
    """(N, C, ka, kb, oa, ob) strided view of the windows of Xp."""
    s = Xp.strides
    return as_strided(Xp, (Xp.shape[0], Xp.shape[1], ka, kb, oa, ob),
                      (s[0], s[1], s[2], s[3], s[2] * sa, s[3] * sb), writeable=False)


def conv_out_size(size, k, s, p):
    """Output extent of a convolution (floor mode)."""
    return (size + 2 * p - k) // s + 1


def _im2col(Xp, ka, kb, sa, sb, oa, ob):
    N, C = Xp.shape[:2]
    return _windows(Xp, ka, kb, sa, sb, oa, ob).reshape(N, C * ka * kb, oa * ob)


def _col2im(dcols, shape, ka, kb, sa, sb, oa, ob):
    N, C, Ap, Bp = shape
    dXp = np.zeros(shape, dtype=dcols.dtype)
    d6 = dcols.reshape(N, C, ka, kb, oa, ob)
    for i in range(ka):
        for j in range(kb):
            dXp[:, :, i:i + sa * (oa - 1) + 1:sa, j:j + sb * (ob - 1) + 1:sb] += d6[:, :, i, j]
    return dXp


#: Keep the lowered columns of a convolution for its backward pass when they are this small.
CACHE_COLS_BYTES = 16 << 20
#: Lower through a channels-last copy when in_channels * kernel width reaches this (longer
#: contiguous runs than the channel-first windows; measured on LeNet's conv2).
CHANNELS_LAST_MIN_RUN = 16


def _weights(w):
    return np.ascontiguousarray(w.reshape(w.shape + (1,) * (4 - w.ndim), order="F").T)  # (out, cin, kw, kh)


def _cl_padded(X, pa, pb):
    """Channels-last (N, A + 2pa, B + 2pb, C) zero-padded copy of X (N, C, A, B)."""
    N, C, A, B = X.shape
    Xc = np.zeros((N, A + 2 * pa, B + 2 * pb, C), dtype=_F32)
    Xc[:, pa:pa + A, pb:pb + B, :] = X.transpose(0, 2, 3, 1)
    return Xc


def _cl_cols(Xc, ka, kb, sa, sb, oa, ob):
    """Columns (n * oa * ob, ka * kb * C) of channels-last padded samples Xc."""
    n, C = Xc.shape[0], Xc.shape[3]
    s = Xc.strides
    win = as_strided(Xc, (n, oa, ob, ka, kb * C), (s[0], s[1] * sa, s[2] * sb, s[1], s[3]), writeable=False)
    return win.reshape(n * oa * ob, ka * kb * C)


def _use_channels_last(C, kb, group):
    return group == 1 and C * kb >= CHANNELS_LAST_MIN_RUN


def conv2d_forward(x, w, b, stride, pad, group=1, keep=False):
    """Convolution of x (h, w, c, n) with weight (kh, kw, c/group, out) and bias (out,) or None.

    Args:
        stride, pad: (sh, sw), (ph, pw).
        keep: return a cache for conv2d_backward (the lowered columns, when small).
    Returns:
        (y, cache): y of shape (h', w', out, n), column-major.
    """
    X = _cview(x)
    if X.dtype != _F32:
        X = X.astype(_F32)
    W = _weights(w)
    N, C, A, B = X.shape
    O, Cg, ka, kb = W.shape
    sa, sb = stride[1], stride[0]
    pa, pb = pad[1], pad[0]
    oa, ob = conv_out_size(A, ka, sa, pa), conv_out_size(B, kb, sb, pb)
    if oa <= 0 or ob <= 0:
        raise ValueError(f"convolution output would be empty: input {B}x{A}, kernel {kb}x{ka}, pad {pad}")
    cache = None
    if _use_channels_last(C, kb, group):
        # lowered in cache-sized chunks of samples; backward lowers again from the kept copy
        Xc = _cl_padded(X, pa, pb)
        Wcl = np.ascontiguousarray(W.transpose(2, 3, 1, 0).reshape(ka * kb * C, O))
        P = oa * ob
        Ycl = np.empty((N * P, O), dtype=_F32)
        step = _chunk_rows(N, P * ka * kb * C * 4)
        for lo in range(0, N, step):
            hi = min(N, lo + step)
            cols = _cl_cols(Xc[lo:hi], ka, kb, sa, sb, oa, ob)
            np.matmul(cols, Wcl, out=Ycl[lo * P:hi * P])
        if b is not None:
            Ycl += b.reshape(1, O)
        Y = np.ascontiguousarray(Ycl.reshape(N, P, O).transpose(0, 2, 1))
        if keep:  # the columns themselves when they are small and in one piece, else the padded input
            cache = cols if (step >= N and cols.nbytes <= CACHE_COLS_BYTES) else Xc
    else:
        Xp = _pad(X, pa, pb)
        Y = np.empty((N, O, oa * ob), dtype=_F32)
        og = O // group
        for g in range(group):
            cols = _im2col(Xp[:, g * Cg:(g + 1) * Cg], ka, kb, sa, sb, oa, ob)
            Wm = W[g * og:(g + 1) * og].reshape(og, Cg * ka * kb)
            np.matmul(Wm, cols, out=Y[:, g * og:(g + 1) * og])
            if keep and group == 1 and cols.nbytes <= CACHE_COLS_BYTES:
                cache = cols
        if b is not None:
            Y += b.reshape(1, O, 1)
    return Y.reshape(N, O, oa, ob).T, cache


def conv2d_backward(x, w, dy, stride, pad, group=1, need_dx=True, need_dw=True, cache=None):
    """Gradients of conv2d_forward: (dx, dw, db) (dx None when not needed)."""
    X = _cview(x)
    if X.dtype != _F32:
        X = X.astype(_F32)
    W = _weights(w)
    dY = _cview(dy)
    N, C, A, B = X.shape
    O, Cg, ka, kb = W.shape
    sa, sb = stride[1], stride[0]
    pa, pb = pad[1], pad[0]
    oa, ob = dY.shape[2], dY.shape[3]
    db = dY.sum(axis=(0, 2, 3))
    if _use_channels_last(C, kb, group):
        P = oa * ob
        dYn = np.ascontiguousarray(dY.transpose(0, 2, 3, 1)).reshape(N, P, O)
        cols_all = cache if (cache is not None and cache.ndim == 2) else None
        Xc = cache if (cache is not None and cache.ndim == 4) else _cl_padded(X, pa, pb)
        Wk = np.ascontiguousarray(W.transpose(2, 3, 0, 1))  # (ka, kb, O, C)
        dWcl = np.zeros((ka * kb * C, O), dtype=_F32) if need_dw else None
        dXc = np.zeros(Xc.shape, dtype=_F32) if need_dx else None
        step = _chunk_rows(N, P * ka * kb * C * 4)
        part = np.empty((min(step, N) * P, C), dtype=_F32) if need_dx else None
        for lo in range(0, N, step):  # chunks of samples whose columns stay in cache
            hi = min(N, lo + step)
            dYc = dYn[lo:hi].reshape(-1, O)
            if need_dw:
                cols = cols_all if cols_all is not None else _cl_cols(Xc[lo:hi], ka, kb, sa, sb, oa, ob)
                dWcl += cols.T @ dYc
            if need_dx:
                # one product per kernel offset, added at once while it is in cache
                d = dXc[lo:hi]
                for i in range(ka):
                    for j in range(kb):
                        np.matmul(dYc, Wk[i, j], out=part[:dYc.shape[0]])
                        d[:, i:i + sa * (oa - 1) + 1:sa, j:j + sb * (ob - 1) + 1:sb, :] += \
                            part[:dYc.shape[0]].reshape(hi - lo, oa, ob, C)
        dW = np.ascontiguousarray(dWcl.reshape(ka, kb, C, O).transpose(3, 2, 0, 1)) if need_dw else None
        dx = None
        if need_dx:
            dx = np.ascontiguousarray(dXc[:, pa:pa + A, pb:pb + B, :].transpose(0, 3, 1, 2)).T
        return dx, (dW.T if need_dw else None), db
    Xp = _pad(X, pa, pb)
    og = O // group
    dYr = dY.reshape(N, O, oa * ob)
    dW = np.empty_like(W) if need_dw else None
    dXp = np.empty(Xp.shape, dtype=_F32) if need_dx else None
    for g in range(group):
        dYg = dYr[:, g * og:(g + 1) * og]
        Wm = W[g * og:(g + 1) * og].reshape(og, Cg * ka * kb)
        if need_dw:
            cols = cache if (cache is not None and group == 1) else _im2col(Xp[:, g * Cg:(g + 1) * Cg], ka, kb, sa, sb, oa, ob)
            # one small product per sample, summed: no transposed copies of cols or dY
            dW[g * og:(g + 1) * og] = np.matmul(dYg, cols.transpose(0, 2, 1)).sum(axis=0).reshape(og, Cg, ka, kb)
            del cols
        if need_dx:
            dcols = np.matmul(Wm.T, dYg)
            dXp[:, g * Cg:(g + 1) * Cg] = _col2im(dcols, (N, Cg) + Xp.shape[2:], ka, kb, sa, sb, oa, ob)
    dx = None
    if need_dx:
        dX = dXp[:, :, pa:pa + A, pb:pb + B]
        dx = np.ascontiguousarray(dX).T
    return dx, (dW.T if need_dw else None), db


def pool_out_size(size, k, s, p, cover_all):
    """Output extent of pooling.

    cover_all is the ceil mode (Chainer's max pooling, Caffe): windows cover the whole
    input, but as in Caffe and PyTorch a last window that would start in the padding is
    dropped (it would hold padding only).
    """
    if not cover_all:
        return (size + 2 * p - k) // s + 1
    o = (size + 2 * p - k + s - 1) // s + 1
    if o > 1 and (o - 1) * s >= size + p:
        o -= 1
    return o


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
    """Y = window maxima and code = index of the first maximum in window order (in place)."""
    slices = _window_slices(Xp, ka, kb, sa, sb, oa, ob)
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


def pool2d_forward(x, mode, ksize, stride, pad, cover_all):
    """Max or average pooling of x (h, w, c, n).

    Returns:
        (y, cache): y (h', w', c, n); cache for pool2d_backward (first-argmax codes for max).
    """
    X = _cview(x)
    if X.dtype != _F32:
        X = X.astype(_F32)
    N, C, A, B = X.shape
    ka, kb = ksize[1], ksize[0]
    sa, sb = stride[1], stride[0]
    pa, pb = pad[1], pad[0]
    oa = pool_out_size(A, ka, sa, pa, cover_all)
    ob = pool_out_size(B, kb, sb, pb, cover_all)
    if oa <= 0 or ob <= 0:
        raise ValueError(f"pooling output would be empty: input {B}x{A}, kernel {kb}x{ka}")
    ea = max(0, (oa - 1) * sa + ka - (A + 2 * pa))
    eb = max(0, (ob - 1) * sb + kb - (B + 2 * pb))
    fill = -np.inf if mode == "max" else 0.0
    Xp = _pad(X, pa, pb, fill, ea, eb)
    Y = np.empty((N, C, oa, ob), dtype=_F32)
    if mode == "max":
        code = np.empty((N, C, oa, ob), dtype=np.uint8 if ka * kb <= 256 else np.int32)
        _in_chunks(lambda lo, hi: _max_part(Xp[lo:hi], Y[lo:hi], code[lo:hi], ka, kb, sa, sb, oa, ob),
                        N, Xp[0].nbytes)
        return Y.T, (code, Xp.shape, (N, C, A, B))

    div = _avg_divisor(A, B, ka, kb, sa, sb, pa, pb, oa, ob) if (ea or eb) else _F32(ka * kb)

    def avg_part(lo, hi):
        y = Y[lo:hi]
        slices = _window_slices(Xp[lo:hi], ka, kb, sa, sb, oa, ob)
        np.copyto(y, slices[0])
        for v in slices[1:]:
            y += v
        y /= div

    _in_chunks(avg_part, N, Xp[0].nbytes)
    return Y.T, (div, Xp.shape, (N, C, A, B))


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


def pool2d_backward(dy, cache, mode, ksize, stride, pad):
    """Gradient of pool2d_forward with respect to x."""
    code, pshape, (N, C, A, B) = cache
    dY = _cview(dy)
    ka, kb = ksize[1], ksize[0]
    sa, sb = stride[1], stride[0]
    pa, pb = pad[1], pad[0]
    oa, ob = dY.shape[2], dY.shape[3]
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
