"""The CUDA backend's layer kernels and fused update rules (``backend.nn``).

Convolutions go to cuDNN through the ``nvidia-cudnn-frontend`` package (one graph per
spec, batch size and direction, built once and memoized); pooling, crops and the optimizer
updates are the CUDA C kernels of ``kernels/``. Blobs are (h, w, c, n) column-major, which
cuDNN reads as packed NCHW with h and w exchanged (and the kernel's h and w exchanged too).
"""

import numpy as np

from sukiyaki.backends.cuda import kernels

_F32 = np.float32


class Kernels:
    """NN_PRIMITIVES on one CUDA backend."""

    def __init__(self, backend):
        self.backend = backend
        self._conv = None

    def _cudnn(self):
        if self._conv is None:
            from sukiyaki.backends.cuda.cudnn_conv import CudnnConv

            self._conv = CudnnConv()
        return self._conv

    # --- convolution ---
    def conv2d_forward(self, x, w, b, spec, keep=False):
        n = x.shape[3] if x.ndim == 4 else 1
        y = self._cudnn().forward(x, w, spec, n)
        if b is not None:
            y += b.reshape(1, 1, -1, 1)
        return y, None

    def conv2d_backward(self, x, w, dy, spec, need_dx=True, need_dw=True, cache=None):
        import cupy as cp

        n = dy.shape[3] if dy.ndim == 4 else 1
        conv = self._cudnn()
        dx = conv.backward_data(dy, w, spec, n) if need_dx else None
        dw = conv.backward_filter(x, dy, spec, n) if need_dw else None
        db = cp.asfortranarray(dy.reshape(-1, spec.out_shape[2], n, order="F").sum(axis=(0, 2))).reshape(-1, 1)
        return dx, dw, db

    # --- pooling ---
    @staticmethod
    def _geometry(spec, n):
        h, w, c = spec.in_shape
        oh, ow, _ = spec.out_shape
        kh, kw = spec.kernel
        return h, w, oh, ow, c * n, kh, kw, spec.stride[0], spec.stride[1], spec.pad[0], spec.pad[1]

    def pool2d_forward(self, x, spec, keep=False):
        import cupy as cp

        n = x.size // int(np.prod(spec.in_shape))
        H, W, OH, OW, planes, kh, kw, sh, sw, ph, pw = self._geometry(spec, n)
        y = cp.empty(tuple(spec.out_shape) + (n,), dtype=_F32, order="F")
        x = cp.asfortranarray(x.astype(_F32, copy=False))
        dims = (np.int32(H), np.int32(W), np.int32(OH), np.int32(OW), np.int64(planes), np.int32(kh),
                np.int32(kw), np.int32(sh), np.int32(sw), np.int32(ph), np.int32(pw))
        if spec.mode == "max":
            code = cp.empty(y.shape, dtype=np.int32, order="F") if keep else cp.empty(1, dtype=np.int32)
            kernels.launch("pool", "max_pool_forward", y.size, (x, y, code) + dims + (np.int32(bool(keep)),))
            return y, (code if keep else None)
        kernels.launch("pool", "avg_pool_forward", y.size, (x, y) + dims)
        return y, (True if keep else None)

    def pool2d_backward(self, dy, spec, cache):
        import cupy as cp

        n = dy.size // int(np.prod(spec.out_shape))
        H, W, OH, OW, planes, kh, kw, sh, sw, ph, pw = self._geometry(spec, n)
        dx = cp.empty(tuple(spec.in_shape) + (n,), dtype=_F32, order="F")
        dims = (np.int32(H), np.int32(W), np.int32(OH), np.int32(OW), np.int64(planes), np.int32(kh),
                np.int32(kw), np.int32(sh), np.int32(sw), np.int32(ph), np.int32(pw))
        dy = cp.asfortranarray(dy)
        if spec.mode == "max":
            kernels.launch("pool", "max_pool_backward", dx.size, (dy, cache, dx) + dims)
        else:
            kernels.launch("pool", "avg_pool_backward", dx.size, (dy, dx) + dims)
        return dx

    # --- augmentation ---
    def crop_flip(self, x, spec, top, left, flip):
        import cupy as cp

        H, W, C = spec.in_shape
        OH, OW, _ = spec.out_shape
        n = top.shape[0]
        out = cp.empty((OH, OW, C, n), dtype=_F32, order="F")
        kernels.launch("crop_flip", "crop_flip", out.size,
                       (cp.asfortranarray(x.astype(_F32, copy=False)), out, cp.ascontiguousarray(top),
                        cp.ascontiguousarray(left), cp.ascontiguousarray(flip), np.int32(H), np.int32(W),
                        np.int32(C), np.int32(OH), np.int32(OW), np.int64(n)))
        return out

    # --- fused optimizer updates ---
    def sgd_update_(self, w, g, lr, weight_decay=0.0):
        kernels.launch("update", "sgd_update", w.size, (w, g, _F32(lr), _F32(weight_decay), np.int64(w.size)))

    def momentum_update_(self, w, g, v, lr, momentum, weight_decay=0.0):
        kernels.launch("update", "momentum_update", w.size,
                       (w, g, v, _F32(lr), _F32(momentum), _F32(weight_decay), np.int64(w.size)))

    def adam_update_(self, w, g, m, v, lr_t, beta1, beta2, eps, weight_decay=0.0):
        kernels.launch("update", "adam_update", w.size,
                       (w, g, m, v, _F32(lr_t), _F32(beta1), _F32(beta2), _F32(1 - beta1), _F32(1 - beta2),
                        _F32(eps), _F32(weight_decay), np.int64(w.size)))
