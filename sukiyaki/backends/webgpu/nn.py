"""The WebGPU backend's layer kernels and fused update rules (``backend.nn``).

Convolution is lowering + the strided GEMM of kernels/matmul.wgsl: im2col writes, per
sample, the (positions x KH*KW*C) columns, and one batched product per chunk of samples
gives every group's output straight in the (h, w, c, n) layout (the batch runs over groups
and samples, the weight is shared through a zero stride). The backward pass multiplies
back (dcols = dy W', then col2im, a gather) and forms the weight gradient as one product
whose contraction runs over positions and samples together (split-K when the weight is
small), the bias gradient likewise as dy times a vector of ones. Chunks of samples bound the
columns' memory (COLS_BYTES); the columns of a chunk live in a scratch buffer reused by the
next chunk and layer, except those kept for the backward pass (a batch in one chunk).
Pooling, crops and the updates are the kernels of kernels/pool.wgsl, crop_flip.wgsl and
update.wgsl.
"""

import numpy as np

from sukiyaki.backends.webgpu import kernels as K
from sukiyaki.backends.webgpu.matmul import gemm

_F32 = np.dtype(np.float32)
_I32 = np.dtype(np.int32)
_BIG = 1 << 31
#: Bytes of lowered columns per chunk of samples (also bounded by the device's largest binding).
COLS_BYTES = 512 << 20


class Kernels:
    """NN_PRIMITIVES on one WebGPU backend."""

    def __init__(self, backend):
        self.be = backend
        self._scratch = {}
        self._one = None

    def _dummy(self, use="w"):
        """A 4-byte scratch range for an unused binding: one buffer for read-write bindings and
        another for read-only ones (a pass may not bind one buffer both ways)."""
        if use not in self._scratch:
            self._scratch[use] = self.be.device.buffer(4)
        return (self._scratch[use], 0, 4)

    def _f32(self, x):
        return x if x.dtype == _F32 else self.be.astype(x, _F32)

    def _run(self, name, body_file, outs, ins, n, params, subs=None, libs=("f64", "common", "math")):
        def code():
            return K.assemble(name, [o[0] for o in outs], [i[0] for i in ins], libs,
                              body=K.source(body_file) if subs is None else K.source(body_file).replace(*subs))

        self.be._run((name,), code, n, [o[1] for o in outs], [i[1] for i in ins], params)

    # ------------------------------------------------------------------ convolution
    @staticmethod
    def _geometry(spec):
        H, W, C = spec.in_shape
        OH, OW, O = spec.out_shape
        KH, KW = spec.ksize
        G = spec.group
        return H, W, C, OH, OW, O, KH, KW, G

    def _chunk(self, spec, n):
        H, W, C, OH, OW, O, KH, KW, G = self._geometry(spec)
        per = 4 * OH * OW * KH * KW * C
        limit = min(COLS_BYTES, self.be.launcher.max_binding)
        return max(1, min(n, limit // max(per, 1)))

    def _im2col(self, x, spec, n0, nc, keep=False):
        """Columns of samples n0 .. n0 + nc: a new array when keep, else the scratch columns."""
        H, W, C, OH, OW, O, KH, KW, G = self._geometry(spec)
        P, Kd = OH * OW, KH * KW * C
        cols = self.be._new((P, Kd, nc), _F32, zero=False) if keep else \
            self.be.reshape(self.be._scratch_f32(P * Kd * nc, "cols"), (P, Kd, nc))
        params = [H, W, C, OH, OW, KH, KW, spec.stride[0], spec.stride[1], spec.pad[0], spec.pad[1], n0]
        # one invocation per (position, channel, sample): it writes its KH * KW window
        self._run("im2col", "im2col", [("COLS", cols)], [("X", x)], P * C * nc, params, libs=())
        return cols

    def _sub(self, a, start, count):
        """(buffer, byte_offset, nbytes) of elements start .. start + count of a (flat)."""
        return (a.buffer, a.byte_offset + 4 * start, 4 * count)

    def conv2d_forward(self, x, w, b, spec, keep=False):
        be = self.be
        H, W, C, OH, OW, O, KH, KW, G = self._geometry(spec)
        n = x.size // (H * W * C)
        x = self._f32(x)
        w = self._f32(w)
        P, Kd = OH * OW, KH * KW * C
        Kg, og = Kd // G, O // G
        y = be._new((OH, OW, O, n), _F32, zero=False)
        chunk = self._chunk(spec, n)
        cols = None
        for n0 in range(0, n, chunk):
            nc = min(chunk, n - n0)
            cols = self._im2col(x, spec, n0, nc, keep=keep and chunk >= n)
            gemm(be, y, cols, w, P, og, Kg,
                 a=(1, P, _BIG, 0, P * Kg, P * Kd), b=(Kg, 1, _BIG, 0, Kg * og, 0), c=(1, P, P * og, P * O),
                 batch=(G, nc), c_range=self._sub(y, n0 * P * O, nc * P * O))
        if b is not None:  # in place, the bias broadcast over positions and samples
            bias = be.reshape(self._f32(b), (1, 1, O, 1))
            be._map(["out", bias], lambda i: "f32", "(x0 + x1)", "f32", _F32, out=y)
        cache = None
        if keep:
            cache = (cols if chunk >= n else None, n)
        return y, cache

    def conv2d_backward(self, x, w, dy, spec, need_dx=True, need_dw=True, cache=None):
        be = self.be
        H, W, C, OH, OW, O, KH, KW, G = self._geometry(spec)
        n = dy.size // (OH * OW * O)
        x = self._f32(x)
        w = self._f32(w)
        dy = self._f32(dy)
        P, Kd = OH * OW, KH * KW * C
        Kg, og = Kd // G, O // G
        dx = be._new((H, W, C, n), _F32, zero=False) if need_dx else None
        dw = be._new(tuple(spec.weight_shape), _F32, zero=False) if need_dw else None
        chunk = self._chunk(spec, n)
        cached = cache[0] if cache is not None else None
        params = [H, W, C, OH, OW, KH, KW, spec.stride[0], spec.stride[1], spec.pad[0], spec.pad[1]]
        for n0 in range(0, n, chunk):
            nc = min(chunk, n - n0)
            dy_r = self._sub(dy, n0 * P * O, nc * P * O)
            if need_dw:
                cols = cached if (cached is not None and chunk >= n) else self._im2col(x, spec, n0, nc)
                gemm(be, dw, cols, dy, Kg, og, P * nc,
                     a=(P, 1, P, P * Kd, P * Kg, 0), b=(P, 1, P, P * O, P * og, 0), c=(1, Kg, Kg * og, 0),
                     batch=(G, 1), accumulate=n0 > 0, b_range=dy_r, fill=True)
            if need_dx:
                dcols = be._scratch_f32(P * Kd * nc, "dcols")
                gemm(be, dcols, dy, w, P, Kg, og,
                     a=(1, P, _BIG, 0, P * og, P * O), b=(1, Kg, _BIG, 0, Kg * og, 0), c=(1, P, P * Kg, P * Kd),
                     batch=(G, nc), a_range=dy_r)
                self._run("col2im", "col2im", [("DX", self._sub(dx, n0 * H * W * C, nc * H * W * C))],
                          [("DCOLS", dcols)], H * W * C * nc, params + [n0], libs=())
        # db(o) = sum over positions p and samples of dy(p, o, sample): dy times a vector of ones
        db = be._new((O, 1), _F32, zero=False)
        if self._one is None:
            self._one = be.full((1,), 1.0, _F32)
        gemm(be, db, dy, self._one, O, 1, P * n, a=(P, 1, P, P * O, 0, 0), b=(0, 0, P, 0, 0, 0), c=(1, O, 0, 0))
        return dx, dw, db

    # ------------------------------------------------------------------ pooling
    @staticmethod
    def _pool_params(spec, n, keep=0):
        H, W, C = spec.in_shape
        OH, OW, _ = spec.out_shape
        kh, kw = spec.kernel
        return [H, W, OH, OW, C * n, kh, kw, spec.stride[0], spec.stride[1], spec.pad[0], spec.pad[1], keep]

    def _pool(self, step, outs, ins, n, params):
        """Kernel step of pool.wgsl on bindings OUT0, OUT1, IN0, IN1 (scratch where absent)."""
        outs = (list(outs) + [self._dummy()] * 2)[:2]
        ins = (list(ins) + [self._dummy("r")] * 2)[:2]
        self._run("pool_" + step, "pool", list(zip(["OUT0", "OUT1"], outs)), list(zip(["IN0", "IN1"], ins)), n, params,
                  subs=("$STEP", step))

    def pool2d_forward(self, x, spec, keep=False):
        be = self.be
        n = x.size // int(np.prod(spec.in_shape))
        x = self._f32(x)
        y = be._new(tuple(spec.out_shape) + (n,), _F32, zero=False)
        params = self._pool_params(spec, n, 1 if keep else 0)
        if spec.mode == "max":
            code = be._new(y.shape, _I32, zero=False) if keep else None
            self._pool("max_fwd", [y, code if keep else self._dummy()], [x], y.size, params)
            return y, (code if keep else None)
        self._pool("avg_fwd", [y], [x], y.size, params)
        return y, (True if keep else None)

    def pool2d_backward(self, dy, spec, cache):
        be = self.be
        n = dy.size // int(np.prod(spec.out_shape))
        dy = self._f32(dy)
        dx = be._new(tuple(spec.in_shape) + (n,), _F32, zero=False)
        params = self._pool_params(spec, n)
        if spec.mode == "max":
            self._pool("max_bwd", [dx], [dy, cache], dx.size, params)
        else:
            self._pool("avg_bwd", [dx], [dy], dx.size, params)
        return dx

    # ------------------------------------------------------------------ augmentation
    def crop_flip(self, x, spec, top, left, flip):
        be = self.be
        H, W, C = spec.in_shape
        OH, OW, _ = spec.out_shape
        n = top.shape[0]
        out = be._new((OH, OW, C, n), _F32, zero=False)
        x = self._f32(x)
        top = top if top.kind in ("i32", "u32") else be.astype(top, _I32)
        left = left if left.kind in ("i32", "u32") else be.astype(left, _I32)
        flip = flip if flip.kind in ("b32", "u32", "i32") else be.astype(flip, np.dtype(np.bool_))
        self._run("crop_flip", "crop_flip", [("OUT", out)], [("X", x), ("TOP", top), ("LEFT", left), ("FLIP", flip)],
                  out.size, [H, W, C, OH, OW], libs=())
        return out

    # ------------------------------------------------------------------ fused updates
    def _update(self, step, w, g, v, m, params):
        if w.size == 0:
            return
        if g.size != w.size:
            raise ValueError(f"update: buffers differ in size: {w.size} and {g.size}")
        bits = [K.f32_bits(p) for p in params]
        be = self.be
        g = be._detach(g, [a for a in (w, v, m) if a is not None])
        arrays = [a for a in (w, g, v, m) if a is not None]
        pieces = [(0, w.size)] if max(a.storage_nbytes for a in arrays) <= be.launcher.max_binding else \
            be._pieces(w.size, arrays)
        for start, count in pieces:
            def part(a):
                return self._dummy() if a is None else (a if count == w.size else be._piece(a, start, count))

            outs = [("W", part(w)), ("V", part(v)), ("M", part(m))]
            self._run("update_" + step, "update", outs, [("G", part(g))], count, bits, subs=("$STEP", step + "_step"),
                      libs=())

    def sgd_update_(self, w, g, lr, weight_decay=0.0):
        self._update("sgd", w, g, None, None, [-np.float32(lr), weight_decay])

    def momentum_update_(self, w, g, v, lr, momentum, weight_decay=0.0):
        self._update("momentum", w, g, v, None, [-np.float32(lr), weight_decay, momentum])

    def adam_update_(self, w, g, m, v, lr_t, beta1, beta2, eps, weight_decay=0.0):
        self._update("adam", w, g, v, m, [-np.float32(lr_t), weight_decay, beta1, beta2, np.float32(1 - beta1),
                                          np.float32(1 - beta2), eps])
