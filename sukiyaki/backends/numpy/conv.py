"""numpy 2-d convolution: lowering (im2col) and BLAS products, over threads and chunks.

Blobs are (h, w, c, n) column-major arrays (the original's layout). Seen row-major,
the same memory is (n, c, w, h): NCHW with h and w exchanged. The kernels work on that
row-major view with the spec's h/w parameters exchanged too (:func:`geometry`), so no
data is transposed.

Work is cut two ways: the batch is processed in chunks whose lowered columns take about
CHUNK_BYTES (bounding temporary memory), and inside a chunk the data movement (padding,
lowering, col2im, transposes) is split over samples among the threads of
:mod:`sukiyaki.backends.numpy.threads`, while each large product is one BLAS call that
threads itself.
"""

import functools
from collections import namedtuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from sukiyaki.backends.numpy import blas
from sukiyaki.backends.numpy.threads import parallel_for

_F32 = np.float32
#: Work on chunks of samples whose lowered columns take about this many bytes: bounds the
#: temporary memory of big layers (measured on LeNet: larger chunks were no slower).
CHUNK_BYTES = 16 << 20
#: Keep the lowered columns of a convolution for its backward pass when they are this small.
CACHE_COLS_BYTES = 16 << 20
#: Lower through a channels-last copy when in_channels * kernel width reaches this (longer
#: contiguous runs than the channel-first windows; measured on LeNet's conv2).
CHANNELS_LAST_MIN_RUN = 16

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


def chunks(n, bytes_per_sample):
    """Consecutive (lo, hi) sample ranges of about CHUNK_BYTES each."""
    rows = max(1, min(n, CHUNK_BYTES // max(bytes_per_sample, 1)))
    return [(lo, min(n, lo + rows)) for lo in range(0, n, rows)]


def _cview(x):
    """Row-major (n, c, w, h) view of an (h, w, c, n) array (copy only if it has no such view)."""
    if x.ndim < 4:
        x = x.reshape(x.shape + (1,) * (4 - x.ndim), order="F")
    return np.ascontiguousarray(x.T)


def _pad(X, pa, pb, value=0.0, extra_a=0, extra_b=0):
    """X (N, C, A, B) padded by pa, pb (and extra at the far ends) with value, over threads."""
    if not (pa or pb or extra_a or extra_b):
        return X
    N, C, A, B = X.shape
    Xp = np.empty((N, C, A + 2 * pa + extra_a, B + 2 * pb + extra_b), dtype=X.dtype)

    def part(lo, hi):
        xp = Xp[lo:hi]
        xp[:, :, :pa] = value
        xp[:, :, pa + A:] = value
        xp[:, :, pa:pa + A, :pb] = value
        xp[:, :, pa:pa + A, pb + B:] = value
        xp[:, :, pa:pa + A, pb:pb + B] = X[lo:hi]

    parallel_for(part, N, Xp.size)
    return Xp


def _windows(Xp, ka, kb, sa, sb, oa, ob):
    """(N, C, ka, kb, oa, ob) strided view of the windows of Xp."""
    s = Xp.strides
    return as_strided(Xp, (Xp.shape[0], Xp.shape[1], ka, kb, oa, ob),
                      (s[0], s[1], s[2], s[3], s[2] * sa, s[3] * sb), writeable=False)


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


def _weights(w):
    return np.ascontiguousarray(w.reshape(w.shape + (1,) * (4 - w.ndim), order="F").T)  # (out, cin, kw, kh)


def _use_channels_last(C, kb, group):
    return group == 1 and C * kb >= CHANNELS_LAST_MIN_RUN


# ---------------------------------------------------------------- channels-last lowering


def _cl_padded(X, pa, pb):
    """Channels-last (N, A + 2pa, B + 2pb, C) zero-padded copy of X (N, C, A, B), over threads."""
    N, C, A, B = X.shape
    Xc = np.empty((N, A + 2 * pa, B + 2 * pb, C), dtype=_F32)

    def part(lo, hi):
        xc = Xc[lo:hi]
        if pa or pb:
            xc[:, :pa] = 0
            xc[:, pa + A:] = 0
            xc[:, pa:pa + A, :pb] = 0
            xc[:, pa:pa + A, pb + B:] = 0
        xc[:, pa:pa + A, pb:pb + B, :] = X[lo:hi].transpose(0, 2, 3, 1)

    parallel_for(part, N, Xc.size)
    return Xc


def _cl_lower(Xc, ka, kb, sa, sb, oa, ob):
    """Columns (n * oa * ob, ka * kb * C) of channels-last padded samples Xc, over threads."""
    n, C = Xc.shape[0], Xc.shape[3]
    P = oa * ob
    cols = np.empty((n * P, ka * kb * C), dtype=_F32)
    s = Xc.strides

    def part(lo, hi):
        win = as_strided(Xc[lo:hi], (hi - lo, oa, ob, ka, kb * C), (s[0], s[1] * sa, s[2] * sb, s[1], s[3]),
                         writeable=False)
        np.copyto(cols[lo * P:hi * P].reshape(hi - lo, oa, ob, ka, kb * C), win)

    parallel_for(part, n, cols.size)
    return cols


def _cl_forward(X, W, b, g, keep):
    C, A, B, ka, kb, sa, sb, pa, pb, oa, ob, O, _ = g
    N, P, K = X.shape[0], oa * ob, ka * kb * C
    if blas.NO_BLAS:  # (K, O) column-major: rows of cols meet contiguous columns (dot products)
        Wcl = np.ascontiguousarray(W.transpose(0, 2, 3, 1).reshape(O, K)).T
    else:
        Wcl = np.ascontiguousarray(W.transpose(2, 3, 1, 0).reshape(K, O))
    Xc = _cl_padded(X, pa, pb)
    Y = np.empty((N, O, P), dtype=_F32)
    parts = chunks(N, P * K * 4)
    for lo, hi in parts:
        cols = _cl_lower(Xc[lo:hi], ka, kb, sa, sb, oa, ob)
        ym = blas.matmul(cols, Wcl)  # (n * P, O): one BLAS call

        def post(a, z, lo=lo, ym=ym):
            y = ym[a * P:z * P]
            if b is not None:
                np.add(y, b.reshape(1, O), out=y)
            Y[lo + a:lo + z] = y.reshape(z - a, P, O).transpose(0, 2, 1)

        parallel_for(post, hi - lo, (hi - lo) * P * O)
    cache = None
    if keep:  # the columns themselves when they are small and in one piece, else the padded input
        cache = cols if (len(parts) == 1 and cols.nbytes <= CACHE_COLS_BYTES) else Xc
    return Y, cache


def _cl_backward(X, W, dY, g, need_dx, need_dw, cache):
    C, A, B, ka, kb, sa, sb, pa, pb, oa, ob, O, _ = g
    N, P, K = X.shape[0], oa * ob, ka * kb * C
    if blas.NO_BLAS:
        return _cl_backward_loops(X, W, dY, g, need_dx, need_dw, cache)
    Wk = np.ascontiguousarray(W.transpose(2, 3, 0, 1)) if need_dx else None  # (ka, kb, O, C)
    cached_cols = cache if (cache is not None and cache.ndim == 2) else None
    Xc = cache if (cache is not None and cache.ndim == 4) else None
    if need_dw and cached_cols is None and Xc is None:
        Xc = _cl_padded(X, pa, pb)
    dWcl = np.zeros((K, O), dtype=_F32) if need_dw else None
    dx = np.empty((N, C, A, B), dtype=_F32) if need_dx else None
    Ap, Bp = A + 2 * pa, B + 2 * pb
    for lo, hi in chunks(N, P * K * 4):
        n = hi - lo
        dYc = np.empty((n * P, O), dtype=_F32)

        def gather_dy(a, z, lo=lo, dYc=dYc):
            dYc[a * P:z * P].reshape(z - a, P, O)[...] = dY[lo + a:lo + z].reshape(z - a, O, P).transpose(0, 2, 1)

        parallel_for(gather_dy, n, n * P * O)
        if need_dw:
            cols = cached_cols if cached_cols is not None else _cl_lower(Xc[lo:hi], ka, kb, sa, sb, oa, ob)
            dWcl += cols.T @ dYc  # one BLAS call
        if need_dx:
            def col2im(a, z, lo=lo, dYc=dYc):
                # one product per kernel offset, added at once while it is in cache
                d = np.zeros((z - a, Ap, Bp, C), dtype=_F32)
                dy = dYc[a * P:z * P]
                part = np.empty((dy.shape[0], C), dtype=_F32)
                for i in range(ka):
                    for j in range(kb):
                        np.matmul(dy, Wk[i, j], out=part)
                        d[:, i:i + sa * (oa - 1) + 1:sa, j:j + sb * (ob - 1) + 1:sb, :] += part.reshape(z - a, oa, ob, C)
                dx[lo + a:lo + z] = d[:, pa:pa + A, pb:pb + B, :].transpose(0, 3, 1, 2)

            parallel_for(col2im, n, n * P * K)
    dW = np.ascontiguousarray(dWcl.reshape(ka, kb, C, O).transpose(3, 2, 0, 1)) if need_dw else None
    return dx, dW


def _cl_backward_loops(X, W, dY, g, need_dx, need_dw, cache):
    """_cl_backward for numpy without a BLAS (blas.NO_BLAS): the layouts einsum's loops run fast.

    The weight gradient is dY' cols, as (O, K), summed over rows of both; the input gradient is
    one product dY W (all kernel offsets at once, rows of K) then col2im by kernel rows: for each
    (kernel row, output column) a run of kb * C contiguous values is added at once (per-offset
    adds move runs of only C values: 12 ms against 3 ms on LeNet's conv2).
    """
    C, A, B, ka, kb, sa, sb, pa, pb, oa, ob, O, _ = g
    N, P, K = X.shape[0], oa * ob, ka * kb * C
    cached_cols = cache if (cache is not None and cache.ndim == 2) else None
    Xc = cache if (cache is not None and cache.ndim == 4) else None
    if need_dw and cached_cols is None and Xc is None:
        Xc = _cl_padded(X, pa, pb)
    Wok = np.ascontiguousarray(W.transpose(0, 2, 3, 1).reshape(O, K)) if need_dx else None  # (O, ka, kb, C)
    dWT = np.zeros((O, K), dtype=_F32) if need_dw else None
    dx = np.empty((N, C, A, B), dtype=_F32) if need_dx else None
    Ap, Bp = A + 2 * pa, B + 2 * pb
    for lo, hi in chunks(N, P * K * 4):
        n = hi - lo
        dYc = np.ascontiguousarray(dY[lo:hi].reshape(n, O, P).transpose(0, 2, 1)).reshape(n * P, O)
        if need_dw:
            cols = cached_cols if cached_cols is not None else _cl_lower(Xc[lo:hi], ka, kb, sa, sb, oa, ob)
            dWT += blas.matmul(dYc.T, cols)
        if need_dx:
            dcols = blas.matmul(dYc, Wok).reshape(n, oa, ob, ka, kb * C)
            d = np.zeros((n, Ap, Bp * C), dtype=_F32)
            span = sa * (oa - 1) + 1
            for i in range(ka):
                rows = d[:, i:i + span:sa]
                for b in range(ob):
                    rows[:, :, b * sb * C:(b * sb + kb) * C] += dcols[:, :, b, i]
            d = d.reshape(n, Ap, Bp, C)
            dx[lo:hi] = d[:, pa:pa + A, pb:pb + B, :].transpose(0, 3, 1, 2)
    dW = np.ascontiguousarray(dWT.reshape(O, ka, kb, C).transpose(0, 3, 1, 2)) if need_dw else None
    return dx, dW


# ---------------------------------------------------------------- channel-first lowering (grouped, thin)


def _cf_forward(X, W, b, g, keep):
    C, A, B, ka, kb, sa, sb, pa, pb, oa, ob, O, group = g
    N, Cg, og = X.shape[0], C // group, O // group
    Xp = _pad(X, pa, pb)
    Y = np.empty((N, O, oa * ob), dtype=_F32)
    keep_cols = keep and group == 1 and N * C * ka * kb * oa * ob * 4 <= CACHE_COLS_BYTES
    kept = np.empty((N, C * ka * kb, oa * ob), dtype=_F32) if keep_cols else None

    def part(lo, hi):
        for gi in range(group):
            cols = _im2col(Xp[lo:hi, gi * Cg:(gi + 1) * Cg], ka, kb, sa, sb, oa, ob)
            Wm = W[gi * og:(gi + 1) * og].reshape(og, Cg * ka * kb)
            if blas.NO_BLAS:  # einsum adds scaled contiguous rows of cols: no per-sample product loops
                np.einsum("ok,nkp->nop", Wm, cols, out=Y[lo:hi, gi * og:(gi + 1) * og])
            else:
                np.matmul(Wm, cols, out=Y[lo:hi, gi * og:(gi + 1) * og])
            if kept is not None:
                kept[lo:hi] = cols
        if b is not None:
            Y[lo:hi] += b.reshape(1, O, 1)

    parallel_for(part, N, N * O * oa * ob * Cg * ka * kb // max(og, 1))
    return Y, kept


def _cf_backward(X, W, dY, g, need_dx, need_dw, cache):
    C, A, B, ka, kb, sa, sb, pa, pb, oa, ob, O, group = g
    N, Cg, og = X.shape[0], C // group, O // group
    Xp = _pad(X, pa, pb) if (need_dw and cache is None) else None
    shape_p = (A + 2 * pa, B + 2 * pb)
    dYr = dY.reshape(N, O, oa * ob)
    dx = np.empty((N, C, A, B), dtype=_F32) if need_dx else None

    def part(lo, hi):
        dWp = np.empty_like(W) if need_dw else None
        for gi in range(group):
            dYg = dYr[lo:hi, gi * og:(gi + 1) * og]
            if need_dw:
                cols = cache[lo:hi] if cache is not None else \
                    _im2col(Xp[lo:hi, gi * Cg:(gi + 1) * Cg], ka, kb, sa, sb, oa, ob)
                if blas.NO_BLAS:  # dot products along the contiguous output positions, over all samples
                    dWp[gi * og:(gi + 1) * og] = np.einsum("nop,nkp->ok", dYg, cols).reshape(og, Cg, ka, kb)
                else:  # one small product per sample, summed: no transposed copies of cols or dY
                    dWp[gi * og:(gi + 1) * og] = np.matmul(dYg, cols.transpose(0, 2, 1)).sum(axis=0).reshape(
                        og, Cg, ka, kb)
            if need_dx:
                Wm = W[gi * og:(gi + 1) * og].reshape(og, Cg * ka * kb)
                dcols = np.einsum("ok,nop->nkp", Wm, dYg) if blas.NO_BLAS else np.matmul(Wm.T, dYg)
                d = _col2im(dcols, (hi - lo, Cg) + shape_p, ka, kb, sa, sb, oa, ob)
                dx[lo:hi, gi * Cg:(gi + 1) * Cg] = d[:, :, pa:pa + A, pb:pb + B]
        return dWp

    partials = parallel_for(part, N, N * O * oa * ob * Cg * ka * kb // max(og, 1))
    dW = None
    if need_dw:
        dW = partials[0]
        for p in partials[1:]:
            dW += p
    return dx, dW


# ---------------------------------------------------------------- the kernels


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
    g = geometry(spec)
    forward = _cl_forward if _use_channels_last(g.C, g.kb, g.group) else _cf_forward
    Y, cache = forward(X, W, b, g, keep)
    return Y.reshape(X.shape[0], g.O, g.oa, g.ob).T, cache


def conv2d_backward(x, w, dy, spec, need_dx=True, need_dw=True, cache=None):
    """Gradients of conv2d_forward: (dx, dw, db), dx (or dw) None when not needed."""
    X = _cview(x)
    W = _weights(w)
    dY = _cview(dy)
    g = geometry(spec)
    db = dY.sum(axis=(0, 2, 3)).reshape(g.O, 1)
    backward = _cl_backward if _use_channels_last(g.C, g.kb, g.group) else _cf_backward
    dX, dW = backward(X, W, dY, g, need_dx, need_dw, cache)
    return (None if dX is None else dX.T), (None if dW is None else dW.T), db
