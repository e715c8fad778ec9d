"""Operands of tensor-core products staged from the backend's float32 column-major blobs, and
results brought back (the kernels of ``kernels/staging.cu``).

Two settings make a staging: the storage type, float32 or bfloat16 (the bf16 precision mode,
``bf16``), and the layout, the blobs' own (channels-first, as cuDNN's packed NCHW) or
channels-last (cuDNN's NHWC, which its tensor-core engines want). A blob is seen as (S, C, N)
column-major: S spatial values, C channels, N samples (a filter: kh * kw, in channels per
group, out channels). bfloat16 values are held as their uint16 bit patterns.
"""

import numpy as np

from sukiyaki.backends.cuda import kernels

_MAX_Z = 65535  # samples per launch (the grid's z dimension)


class Staging:
    """Where a product's operands live while it runs: ``bf16`` storage, ``channels_last`` layout."""

    def __init__(self, bf16=False, channels_last=False):
        self.bf16, self.channels_last = bool(bf16), bool(channels_last)

    @property
    def active(self):
        """Whether operands are staged at all (float32 channels-first is the blobs' own form)."""
        return self.bf16 or self.channels_last

    @property
    def dtype(self):
        return np.dtype(np.uint16 if self.bf16 else np.float32)

    def __repr__(self):
        return f"Staging(bf16={self.bf16}, channels_last={self.channels_last})"

    def stage(self, x, S, C, N):
        """x (S * C * N float32 values, column-major) in this staging's type and layout, a flat array."""
        import cupy as cp

        x = cp.asfortranarray(x.astype(np.float32, copy=False))
        if x.size != S * C * N:
            raise ValueError(f"stage: {x.size} values, not {S} x {C} x {N}")
        x = x.reshape(-1, order="F")
        out = cp.empty(S * C * N, dtype=self.dtype)
        if self.channels_last:
            _tiled("to_cl_bf16" if self.bf16 else "to_cl_f32", x, out, (), S, C, N)
        elif self.bf16:
            _flat_launch("f32_to_bf16", out.size, (x, out, np.uint64(out.size)))
        else:
            cp.copyto(out, x)
        return out

    def unstage(self, y, shape, S, C, N, bias=None):
        """The float32 column-major array of ``shape`` from a staged result y, plus bias[c]."""
        import cupy as cp

        out = cp.empty(shape, dtype=np.float32, order="F")
        if out.size != S * C * N or y.size != out.size:
            raise ValueError(f"unstage: {y.size} values into {shape}, not {S} x {C} x {N}")
        b = np.uint64(0) if bias is None else cp.ascontiguousarray(bias.astype(np.float32, copy=False).reshape(-1, order="F"))
        if bias is not None and b.size != C:
            raise ValueError(f"unstage: a bias of {b.size} values for {C} channels")
        flat = out.reshape(-1, order="F")
        if self.channels_last:
            _tiled("from_cl_bf16" if self.bf16 else "from_cl_f32", y, flat, (b,), S, C, N)
        elif self.bf16:
            _flat_launch("bf16_to_f32", out.size, (y, flat, b, np.uint64(S), np.uint32(C), np.uint64(out.size)))
        else:
            cp.copyto(flat, y)
            if bias is not None:
                flat.reshape((S, C, N), order="F")[...] += b.reshape(1, C, 1)
        return out


def _tiled(func, src, dst, extra, S, C, N):
    """Launch a tiled (S, C) <-> (C, S) kernel from flat src to flat dst over N samples, at most
    _MAX_Z a launch; ``extra`` arguments go between the operands and the sizes."""
    f = kernels.function("staging", func)
    grid_xy = (-(-S // 32), -(-C // 32))
    for start in range(0, N, _MAX_Z):
        count, offset = min(_MAX_Z, N - start), start * S * C
        f(grid_xy + (count,), (32, 8), (src[offset:], dst[offset:]) + tuple(extra) + (np.uint32(S), np.uint32(C)))


def _flat_launch(func, n, args):
    if n:
        kernels.function("staging", func)((max(1, min(-(-n // 256), 65535 * 8)),), (256,), args)
