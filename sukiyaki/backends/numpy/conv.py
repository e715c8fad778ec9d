"""numpy 2-d convolution: lowering (im2col) and BLAS products, in cache-sized chunks.

Blobs are (h, w, c, n) column-major arrays (the original's layout). Seen row-major,
the same memory is (n, c, w, h): NCHW with h and w exchanged. The kernels work on that
row-major view with the spec's h/w parameters exchanged too (:func:`geometry`), so no
data is transposed.
"""

import functools
from collections import namedtuple

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


#: A spec seen row-major: a is the spec's w axis, b its h axis (sizes, kernel, stride, pad, output).
Geometry = namedtuple("Geometry", "C A B ka kb sa sb pa pb oa ob O group")


@functools.lru_cache(maxsize=256)
def geometry(spec):
    """The row-major (n, c, w, h) view's parameters of a ConvSpec or PoolSpec."""
    h, w, c = spec.in_shape
    oh, ow, oc = spec.out_shape
    kh, kw = getattr(spec, "kernel", spec.ksize)
    return Geometry(c, w, h, kw, kh, spec.stride[1], spec.stride[0], spec.pad[1], spec.pad[0], ow, oh, oc,
                    getattr(spec, "group", 1))


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


def conv2d_forward(x, w, b, spec, keep=False):
    """Convolution of x (h, w, c, n) with weight (kh, kw, c/group, out) and bias (out,) or None.

    Args:
        spec: the ConvSpec (sizes, stride, pad, group).
        keep: return a cache for conv2d_backward (the lowered columns, when small).
    Returns:
        (y, cache): y of shape (h', w', out, n), column-major.
    """
    X = _cview(x)
    W = _weights(w)
    N = X.shape[0]
    C, A, B, ka, kb, sa, sb, pa, pb, oa, ob, O, group = geometry(spec)
    Cg = C // group
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


def conv2d_backward(x, w, dy, spec, need_dx=True, need_dw=True, cache=None):
    """Gradients of conv2d_forward: (dx, dw, db), dx (or dw) None when not needed."""
    X = _cview(x)
    W = _weights(w)
    dY = _cview(dy)
    N = X.shape[0]
    C, A, B, ka, kb, sa, sb, pa, pb, oa, ob, O, group = geometry(spec)
    Cg = C // group
    db = dY.sum(axis=(0, 2, 3)).reshape(O, 1)
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


