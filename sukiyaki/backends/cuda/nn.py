"""The CUDA backend's layer kernels and fused update rules (``backend.nn``).

Convolutions go to cuDNN through the ``nvidia-cudnn-frontend`` package (one graph per
spec, batch size and direction, built once and memoized); pooling, crops and the optimizer
updates are the CUDA C kernels of ``kernels/``. Blobs are (h, w, c, n) column-major, which
cuDNN reads as packed NCHW with h and w exchanged (and the kernel's h and w exchanged too).
"""

import logging
import os

import numpy as np

from sukiyaki.backends.cuda import kernels

_log = logging.getLogger("sukiyaki.cuda")

_F32 = np.float32
#: Batch normalization walks whole planes (no division per element) where a plane has this many values.
_PLANE = 128


class Kernels:
    """NN_PRIMITIVES on one CUDA backend."""

    def __init__(self, backend):
        self.backend = backend
        self._conv = None
        self._sms = None  # multiprocessors of the device (sizes the per-channel reductions)

    def reset_convolutions(self):
        """Forget the built cuDNN graphs (settings changed: they are built again on next use)."""
        self._conv = None

    def _cudnn(self):
        """The convolution engine: cuDNN's frontend, or im2col + cuBLAS where it is absent or
        SUKIYAKI_CUDA_CONV=im2col asks (each said once in the log)."""
        if self._conv is None:
            from sukiyaki.backends.cuda.im2col_conv import Im2colConv

            if os.environ.get("SUKIYAKI_CUDA_CONV", "cudnn") == "im2col":
                _log.info("cuda: convolutions by im2col + cuBLAS (SUKIYAKI_CUDA_CONV=im2col)")
                self._conv = Im2colConv()
                return self._conv
            from sukiyaki.backends.cuda.cudnn_conv import CudnnConv

            b = self.backend
            try:
                self._conv = CudnnConv(deterministic=b.deterministic, autotune=b.autotune, precision=b.precision,
                                       staging=b.staging())
            except RuntimeError as exc:  # no cuDNN frontend: the slower path, said once
                _log.warning("cuda: %s; convolutions fall back to im2col + cuBLAS (slower%s)", exc,
                             ", and in float32: bf16 and channels-last need cuDNN" if b.staging().active else "")
                self._conv = Im2colConv()
        return self._conv

    # --- convolution ---
    def conv2d_forward(self, x, w, b, spec, keep=False):
        n = x.shape[3] if x.ndim == 4 else 1
        conv = self._cudnn()
        if getattr(conv, "staged", False):  # bf16 and/or channels-last: the bias added as the result comes back
            return conv.forward(x, w, spec, n, bias=b), None
        y = conv.forward(x, w, spec, n)
        if b is not None:
            C = spec.out_shape[2]
            inner = y.size // (C * n)
            add = kernels.function("bias_relu", "bias_add_planes")
            add(_plane_grid(inner, C, n), (256 if inner >= 256 else 64,),
                (y, self._flat(b), np.uint32(inner), np.uint32(C)))
        return y, None

    def conv2d_backward(self, x, w, dy, spec, need_dx=True, need_dw=True, cache=None):
        n = dy.shape[3] if dy.ndim == 4 else 1
        conv = self._cudnn()
        if getattr(conv, "staged", False):
            dx, dw = conv.backward(x, w, dy, spec, n, need_dx, need_dw)
        else:
            dx = conv.backward_data(dy, w, spec, n) if need_dx else None
            dw = conv.backward_filter(x, dy, spec, n) if need_dw else None
        db = self.channel_sums(dy, spec.out_shape[2], n)
        return dx, dw, db

    def channel_sums(self, x, C, outer):
        """(C, 1) sums of x, seen as (inner, C, outer) column-major, over inner and outer: the bias
        gradient (kernels/channel_sum.cu, two passes, the same bits every run)."""
        import cupy as cp

        x = cp.asfortranarray(x.astype(_F32, copy=False))
        inner = x.size // (C * outer)
        if self._sms is None:
            self._sms = cp.cuda.Device().attributes["MultiProcessorCount"]
        parts = max(1, min(outer, -(-8 * self._sms // C)))  # about 8 blocks a multiprocessor
        partial = cp.empty(C * parts, dtype=_F32)
        out = cp.empty((C, 1), dtype=_F32)
        wide = inner % 4 == 0 and x.data.ptr % 16 == 0
        span = inner // 4 if wide else inner
        block = 256 if span >= 256 else 128 if span >= 128 else 64
        kernels.function("channel_sum", "channel_sum_partial4" if wide else "channel_sum_partial")(
            (C, parts), (block,), (x, partial, np.uint32(span), np.uint32(C), np.uint32(outer)))
        kernels.launch("channel_sum", "channel_sum_finish", C, (partial, out, np.uint32(C), np.uint32(parts)))
        return out

    # --- relu (optional primitives: sukiyaki.backends.base.OPTIONAL_NN_PRIMITIVES) ---
    def relu_forward(self, x):
        import cupy as cp

        x = _aligned16(cp.asfortranarray(x.astype(_F32, copy=False)))
        y = cp.empty(x.shape, dtype=_F32, order="F")
        _launch4("relu_forward4", x.size, (x, y, np.uint64(x.size)))
        return y

    def relu_backward(self, dy, y):
        import cupy as cp

        dy = _aligned16(cp.asfortranarray(dy.astype(_F32, copy=False)).reshape(y.shape, order="F"))
        y = _aligned16(cp.asfortranarray(y.astype(_F32, copy=False)))
        dx = cp.empty(y.shape, dtype=_F32, order="F")
        _launch4("relu_backward4", y.size, (dy, y, dx, np.uint64(y.size)))
        return dx

    # --- batch normalization (optional primitives: sukiyaki.backends.base.OPTIONAL_NN_PRIMITIVES) ---
    def _bn_grid(self, x, axis):
        """(inner, C, outer) of x around axis, and the grid of the per-channel sums."""
        shape = x.shape
        inner = int(np.prod(shape[:axis], dtype=np.int64))
        C = int(shape[axis])
        outer = int(np.prod(shape[axis + 1:], dtype=np.int64))
        if x.size >= 2 ** 32:
            raise ValueError(f"batch normalization: {x.size} values, more than the kernels' 32-bit indices allow")
        if self._sms is None:
            import cupy as cp

            self._sms = cp.cuda.Device().attributes["MultiProcessorCount"]
        per_channel = max(1, -(-4 * self._sms // C))
        blocks = max(1, min(per_channel, -(-inner * outer // (256 * 8))))
        return inner, C, outer, (C, blocks)

    def batchnorm_stats(self, x, axis, eps, running=None):
        import cupy as cp

        x = cp.asfortranarray(x.astype(_F32, copy=False))
        inner, C, outer, grid = self._bn_grid(x, axis)
        sums = cp.zeros(2 * C, dtype=np.float64)
        m = inner * outer
        if inner >= _PLANE:  # whole planes: no division per element
            sums_of = kernels.function("batchnorm", "bn_sums_planes")
            sums_of((C, min(grid[1], outer)), (256,), (x, sums, np.uint32(inner), np.uint32(C), np.uint32(outer)))
        else:
            sums_of = kernels.function("batchnorm", "bn_sums")
            sums_of(grid, (256,), (x, sums, np.uint32(inner), np.uint32(C), np.uint32(m)))
        mean, var, inv_std = (cp.empty(C, dtype=_F32) for _ in range(3))
        if running is None:
            rm, rv, decay = mean, var, 1.0  # not written (update 0)
        else:
            rm, rv, decay = running
            if not (rm.flags.c_contiguous and rv.flags.c_contiguous and rm.dtype == _F32 == rv.dtype):
                raise ValueError("batchnorm_stats: running statistics must be contiguous float32 arrays")
        kernels.launch("batchnorm", "bn_finalize", C,
                       (sums, mean, var, inv_std, rm, rv, np.float64(m), np.float64(eps), _F32(decay),
                        _F32(m / max(m - 1, 1)), np.int32(running is not None), np.uint32(C)))
        return mean, var, inv_std

    @staticmethod
    def _flat(a):
        import cupy as cp

        return cp.ascontiguousarray(a.astype(_F32, copy=False).reshape(-1, order="F"))

    def batchnorm_apply(self, x, mean, inv_std, gamma, beta, axis):
        import cupy as cp

        x = cp.asfortranarray(x.astype(_F32, copy=False))
        inner, C, outer, _ = self._bn_grid(x, axis)
        y = cp.empty(x.shape, dtype=_F32, order="F")
        args = (x, y) + tuple(self._flat(a) for a in (mean, inv_std, gamma, beta))
        if inner >= _PLANE:
            apply = kernels.function("batchnorm", "bn_apply_planes")
            apply(_plane_grid(inner, C, outer), (256,), args + (np.uint32(inner), np.uint32(C)))
        else:
            kernels.launch("batchnorm", "bn_apply", x.size, args + (np.uint32(inner), np.uint32(C), np.uint32(x.size)))
        return y

    def batchnorm_backward(self, dy, x, mean, inv_std, gamma, axis, batch_stats):
        import cupy as cp

        dy = cp.asfortranarray(dy.astype(_F32, copy=False))
        x = cp.asfortranarray(x.astype(_F32, copy=False))
        inner, C, outer, grid = self._bn_grid(x, axis)
        m = inner * outer
        sums = cp.zeros(2 * C, dtype=np.float64)
        if inner >= _PLANE:
            sums_of = kernels.function("batchnorm", "bn_grad_sums_planes")
            sums_of((C, min(grid[1], outer)), (256,), (dy, x, sums, np.uint32(inner), np.uint32(C), np.uint32(outer)))
        else:
            sums_of = kernels.function("batchnorm", "bn_grad_sums")
            sums_of(grid, (256,), (dy, x, sums, np.uint32(inner), np.uint32(C), np.uint32(m)))
        mean, inv_std, gamma = (self._flat(a) for a in (mean, inv_std, gamma))
        dgamma, dbeta = cp.empty(C, dtype=_F32), cp.empty(C, dtype=_F32)
        kernels.launch("batchnorm", "bn_grad_finalize", C, (sums, mean, inv_std, dgamma, dbeta, np.uint32(C)))
        dx = cp.empty(x.shape, dtype=_F32, order="F")
        args = (dy, x, dx, mean, inv_std, gamma, dgamma, dbeta, _F32(1.0 / m), np.int32(bool(batch_stats)),
                np.uint32(inner), np.uint32(C))
        if inner >= _PLANE:
            kernels.function("batchnorm", "bn_backward_planes")(_plane_grid(inner, C, outer), (256,), args)
        else:
            kernels.launch("batchnorm", "bn_backward", x.size, args + (np.uint32(x.size),))
        return dx, dgamma, dbeta

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

    # --- fused optimizer updates (a rate that is a 1-element device array is read there: CUDA graphs) ---
    def sgd_update_(self, w, g, lr, weight_decay=0.0):
        f, lr = _rate("sgd_update", lr)
        kernels.launch("update", f, w.size, (w, g, lr, _F32(weight_decay), np.int64(w.size)))

    def momentum_update_(self, w, g, v, lr, momentum, weight_decay=0.0):
        f, lr = _rate("momentum_update", lr)
        kernels.launch("update", f, w.size, (w, g, v, lr, _F32(momentum), _F32(weight_decay), np.int64(w.size)))

    def adam_update_(self, w, g, m, v, lr_t, beta1, beta2, eps, weight_decay=0.0):
        f, lr_t = _rate("adam_update", lr_t)
        kernels.launch("update", f, w.size,
                       (w, g, m, v, lr_t, _F32(beta1), _F32(beta2), _F32(1 - beta1), _F32(1 - beta2),
                        _F32(eps), _F32(weight_decay), np.int64(w.size)))


def _aligned16(a):
    """a (F-contiguous) on a 16-byte boundary: itself, or a copy (a view into a bigger array)."""
    return a if a.data.ptr % 16 == 0 else a.copy(order="F")


def _launch4(func, n, args):
    """Run an elementwise kernel of kernels/bias_relu.cu over n values, a float4 a thread."""
    if n:
        kernels.function("bias_relu", func)((max(1, min(-(-n // 1024), 65535 * 4)),), (256,), args)


def _plane_grid(inner, C, outer):
    """Grid of the by-plane batch-normalization kernels: a block per plane and chunk of about
    1024 of its values."""
    return (C * outer, max(1, inner // 1024))


def _rate(func, lr):
    """The kernel and its rate argument: a number, or a float32 device array of one element
    (the ``_dev`` variant reads it when the kernel runs)."""
    if hasattr(lr, "data") and hasattr(lr, "dtype") and not isinstance(lr, np.generic):
        if lr.dtype != _F32 or lr.size != 1:
            raise ValueError(f"{func}: a device learning rate must be one float32 value, got {lr.dtype} {lr.shape}")
        return func + "_dev", lr
    return func, _F32(lr)
