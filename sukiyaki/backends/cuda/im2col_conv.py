"""2-d convolutions as im2col + cuBLAS products, for where cuDNN's frontend is absent (or
``SUKIYAKI_CUDA_CONV=im2col`` asks for it). Same interface as :class:`CudnnConv`.

Our blobs (h, w, c, n) column-major are, seen transposed, row-major (n, c, w, h): NCHW with
the image's two axes exchanged, and the kernel (kh, kw, c/g, out) is (out, c/g, kw, kh).
The columns of a chunk of samples, (n, c/g * kw * kh, ow * oh), are gathered with one strided
copy per kernel offset, multiplied by the kernel with cuBLAS, and scattered back (col2im)
for the input gradient; chunks of samples bound the columns' memory.
"""

import numpy as np

_F32 = np.float32
_CHUNK_BYTES = 512 << 20  # the columns of one chunk of samples


class Im2colConv:
    """Convolutions on CuPy arrays through explicit columns and matrix products."""

    def __init__(self):
        import cupy as cp

        self.cp = cp

    @staticmethod
    def _geometry(spec):
        h, w, c = spec.in_shape
        oh, ow, o = spec.out_shape
        kh, kw = spec.ksize
        g = spec.group
        # row-major view: the image's first axis is our w, its second our h
        return dict(c=c, o=o, g=g, H=w, W=h, OH=ow, OW=oh, KH=kw, KW=kh, SH=spec.stride[1], SW=spec.stride[0],
                    PH=spec.pad[1], PW=spec.pad[0])

    def _chunks(self, n, geo):
        per_sample = 4 * (geo["c"] // geo["g"]) * geo["KH"] * geo["KW"] * geo["OH"] * geo["OW"]
        step = max(1, min(n, _CHUNK_BYTES // max(per_sample, 1)))
        return [(s, min(n, s + step)) for s in range(0, n, step)]

    def _columns(self, xt, geo, c0, c1):
        """(n, (c1 - c0) * KH * KW, OH * OW) columns of channels c0:c1 of row-major xt (n, c, H, W)."""
        cp = self.cp
        n = xt.shape[0]
        padded = cp.zeros((n, c1 - c0, geo["H"] + 2 * geo["PH"], geo["W"] + 2 * geo["PW"]), dtype=_F32)
        padded[:, :, geo["PH"]:geo["PH"] + geo["H"], geo["PW"]:geo["PW"] + geo["W"]] = xt[:, c0:c1]
        cols = cp.empty((n, c1 - c0, geo["KH"], geo["KW"], geo["OH"], geo["OW"]), dtype=_F32)
        for i in range(geo["KH"]):
            for j in range(geo["KW"]):
                cols[:, :, i, j] = padded[:, :, i:i + geo["SH"] * geo["OH"]:geo["SH"],
                                          j:j + geo["SW"] * geo["OW"]:geo["SW"]]
        return cols.reshape(n, -1, geo["OH"] * geo["OW"])

    def _col2im(self, dcols, geo, n):
        """The input gradient (n, c/g, H, W) of column gradients (n, c/g * KH * KW, OH * OW)."""
        cp = self.cp
        cg = geo["c"] // geo["g"]
        d = dcols.reshape(n, cg, geo["KH"], geo["KW"], geo["OH"], geo["OW"])
        padded = cp.zeros((n, cg, geo["H"] + 2 * geo["PH"], geo["W"] + 2 * geo["PW"]), dtype=_F32)
        for i in range(geo["KH"]):
            for j in range(geo["KW"]):
                padded[:, :, i:i + geo["SH"] * geo["OH"]:geo["SH"], j:j + geo["SW"] * geo["OW"]:geo["SW"]] += d[:, :, i, j]
        return padded[:, :, geo["PH"]:geo["PH"] + geo["H"], geo["PW"]:geo["PW"] + geo["W"]]

    def forward(self, x, w, spec, n):
        """y (h', w', out, n) of x (h, w, c, n) and w (kh, kw, c/g, out)."""
        cp = self.cp
        geo = self._geometry(spec)
        xt = x.reshape(spec.in_shape + (n,), order="F").T  # (n, c, H, W) row-major view
        wt = w.T  # (o, c/g, KW... ) seen row-major: (o, c/g, KH, KW) in our naming
        g, cg, og = geo["g"], geo["c"] // geo["g"], geo["o"] // geo["g"]
        yt = cp.empty((n, geo["o"], geo["OH"], geo["OW"]), dtype=_F32)
        for s0, s1 in self._chunks(n, geo):
            for k in range(g):
                cols = self._columns(xt[s0:s1], geo, k * cg, (k + 1) * cg)
                wk = cp.ascontiguousarray(wt[k * og:(k + 1) * og]).reshape(og, -1)
                yt[s0:s1, k * og:(k + 1) * og] = cp.matmul(wk, cols).reshape(s1 - s0, og, geo["OH"], geo["OW"])
        return yt.T  # (h', w', out, n) column-major

    def backward_data(self, dy, w, spec, n):
        """dx (h, w, c, n)."""
        cp = self.cp
        geo = self._geometry(spec)
        dyt = dy.reshape(tuple(spec.out_shape) + (n,), order="F").T  # (n, o, OH, OW)
        g, cg, og = geo["g"], geo["c"] // geo["g"], geo["o"] // geo["g"]
        dxt = cp.empty((n, geo["c"], geo["H"], geo["W"]), dtype=_F32)
        for s0, s1 in self._chunks(n, geo):
            for k in range(g):
                wk = cp.ascontiguousarray(w.T[k * og:(k + 1) * og]).reshape(og, -1)
                d = cp.ascontiguousarray(dyt[s0:s1, k * og:(k + 1) * og]).reshape(s1 - s0, og, -1)
                dcols = cp.matmul(wk.T, d)  # (n, cg * KH * KW, OH * OW)
                dxt[s0:s1, k * cg:(k + 1) * cg] = self._col2im(dcols, geo, s1 - s0)
        return dxt.T

    def backward_filter(self, x, dy, spec, n):
        """dw (kh, kw, c/g, out)."""
        cp = self.cp
        geo = self._geometry(spec)
        xt = x.reshape(spec.in_shape + (n,), order="F").T
        dyt = dy.reshape(tuple(spec.out_shape) + (n,), order="F").T
        g, cg, og = geo["g"], geo["c"] // geo["g"], geo["o"] // geo["g"]
        dwt = cp.zeros((geo["o"], cg * geo["KH"] * geo["KW"]), dtype=_F32)
        for s0, s1 in self._chunks(n, geo):
            for k in range(g):
                cols = self._columns(xt[s0:s1], geo, k * cg, (k + 1) * cg)
                d = cp.ascontiguousarray(dyt[s0:s1, k * og:(k + 1) * og]).reshape(s1 - s0, og, -1)
                dwt[k * og:(k + 1) * og] += cp.tensordot(d, cols, axes=([0, 2], [0, 2]))
        return dwt.reshape(geo["o"], cg, geo["KH"], geo["KW"]).T  # (kw-major...) -> (kh, kw, c/g, o) column-major
