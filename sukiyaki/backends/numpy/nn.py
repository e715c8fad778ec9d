"""numpy kernels for the layers that need their own: 2-d convolution and pooling.

Blobs are (h, w, c, n) column-major arrays (the original's layout). Seen row-major,
the same memory is (n, c, w, h): NCHW with h and w exchanged. Every kernel here works
on that row-major view with the kernel's h/w parameters exchanged too, so no data is
transposed. Convolution lowers windows to columns (im2col) and multiplies with BLAS.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

_F32 = np.float32


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


def conv2d_forward(x, w, b, stride, pad, group=1):
    """Convolution of x (h, w, c, n) with weight (kh, kw, c/group, out) and bias (out,) or None.

    Args:
        stride, pad: (sh, sw), (ph, pw).
    Returns:
        y of shape (h', w', out, n), column-major.
    """
    X = _cview(x)
    W = np.ascontiguousarray(w.reshape(w.shape + (1,) * (4 - w.ndim), order="F").T)  # (out, cin, kw, kh)
    N, C, A, B = X.shape
    O, Cg, ka, kb = W.shape
    sa, sb = stride[1], stride[0]
    pa, pb = pad[1], pad[0]
    oa, ob = conv_out_size(A, ka, sa, pa), conv_out_size(B, kb, sb, pb)
    if oa <= 0 or ob <= 0:
        raise ValueError(f"convolution output would be empty: input {B}x{A}, kernel {kb}x{ka}, pad {pad}")
    Xp = _pad(X, pa, pb)
    Y = np.empty((N, O, oa * ob), dtype=_F32)
    og = O // group
    for g in range(group):
        cols = _im2col(Xp[:, g * Cg:(g + 1) * Cg], ka, kb, sa, sb, oa, ob)
        Wm = W[g * og:(g + 1) * og].reshape(og, Cg * ka * kb)
        np.matmul(Wm, cols, out=Y[:, g * og:(g + 1) * og])
    if b is not None:
        Y += b.reshape(1, O, 1)
    return Y.reshape(N, O, oa, ob).T


def conv2d_backward(x, w, dy, stride, pad, group=1, need_dx=True, need_dw=True):
    """Gradients of conv2d_forward: (dx, dw, db) (dx None when not needed)."""
    X = _cview(x)
    W = np.ascontiguousarray(w.reshape(w.shape + (1,) * (4 - w.ndim), order="F").T)
    dY = _cview(dy)
    N, C, A, B = X.shape
    O, Cg, ka, kb = W.shape
    sa, sb = stride[1], stride[0]
    pa, pb = pad[1], pad[0]
    oa, ob = dY.shape[2], dY.shape[3]
    Xp = _pad(X, pa, pb)
    og = O // group
    dYr = dY.reshape(N, O, oa * ob)
    db = dYr.sum(axis=(0, 2))
    dW = np.empty_like(W) if need_dw else None
    dXp = np.empty(Xp.shape, dtype=_F32) if need_dx else None
    for g in range(group):
        dYg = dYr[:, g * og:(g + 1) * og]
        Wm = W[g * og:(g + 1) * og].reshape(og, Cg * ka * kb)
        if need_dw:
            cols = _im2col(Xp[:, g * Cg:(g + 1) * Cg], ka, kb, sa, sb, oa, ob)
            dW[g * og:(g + 1) * og] = np.tensordot(dYg, cols, axes=([0, 2], [0, 2])).reshape(og, Cg, ka, kb)
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
    """Output extent of pooling; cover_all (ceil mode) as Chainer's max pooling."""
    if cover_all:
        return (size + 2 * p - k + s - 1) // s + 1
    return (size + 2 * p - k) // s + 1


def pool2d_forward(x, mode, ksize, stride, pad, cover_all):
    """Max or average pooling of x (h, w, c, n).

    Returns:
        (y, cache): y (h', w', c, n); cache for pool2d_backward (argmax codes for max).
    """
    X = _cview(x)
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
    if mode == "max":
        if ka == sa and kb == sb and not (pa or pb or ea or eb) and A == oa * ka and B == ob * kb:
            win = Xp.reshape(N, C, oa, ka, ob, kb).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, oa, ob, ka * kb)
        else:
            win = _windows(Xp, ka, kb, sa, sb, oa, ob).transpose(0, 1, 4, 5, 2, 3).reshape(N, C, oa, ob, ka * kb)
        idx = win.argmax(axis=4)
        Y = np.take_along_axis(win, idx[..., None], axis=4)[..., 0]
        code = idx.astype(np.uint8 if ka * kb < 256 else np.int32)
        return np.ascontiguousarray(Y).T, (code, Xp.shape, (N, C, A, B))
    win = _windows(Xp, ka, kb, sa, sb, oa, ob)
    Y = win.sum(axis=(2, 3), dtype=_F32) / _F32(ka * kb)
    return np.ascontiguousarray(Y).T, (None, Xp.shape, (N, C, A, B))


def pool2d_backward(dy, cache, mode, ksize, stride, pad):
    """Gradient of pool2d_forward with respect to x."""
    code, pshape, (N, C, A, B) = cache
    dY = _cview(dy)
    ka, kb = ksize[1], ksize[0]
    sa, sb = stride[1], stride[0]
    pa, pb = pad[1], pad[0]
    oa, ob = dY.shape[2], dY.shape[3]
    dXp = np.zeros(pshape, dtype=_F32)
    if mode != "max":
        dY = dY / _F32(ka * kb)
    for i in range(ka):
        for j in range(kb):
            sl = (slice(None), slice(None), slice(i, i + sa * (oa - 1) + 1, sa), slice(j, j + sb * (ob - 1) + 1, sb))
            if mode == "max":
                dXp[sl] += np.where(code == i * kb + j, dY, _F32(0))
            else:
                dXp[sl] += dY
    return np.ascontiguousarray(dXp[:, :, pa:pa + A, pb:pb + B]).T
