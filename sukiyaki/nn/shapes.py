"""Shape arithmetic, once, free of any backend: output sizes and the specs handed to kernels.

A spec (:class:`ConvSpec`, :class:`PoolSpec`, :class:`CropSpec`) is built when a network is
planned, from the layer's parameters and its input's per-sample shape; the layer hands it
to the backend's kernel, which may key compiled plans on it (specs are hashable). Layers,
backends and the ONNX exporter all take sizes from here.

The layout is a property of the network: ``hwcn`` is the original's (h, w, c, n)
column-major blob layout (NCHW with h and w exchanged, seen row-major). It is the one
layout the kernels implement today; specs carry it so that a channels-last layout can be
added per backend without touching the layers.

Example:
    >>> conv_out_size(28, 5, 1, 0)
    24
    >>> pool_out_size(24, 2, 2, 0, cover_all=True)
    12
    >>> ConvSpec.make((28, 28, 1), 20, (5, 5)).out_shape
    (24, 24, 20)
"""

import math
from dataclasses import dataclass

#: Blob layouts a network may declare.
LAYOUTS = ("hwcn",)


def check_layout(layout):
    """Return layout if known, else raise ValueError naming it."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown blob layout {layout!r}; known: {', '.join(LAYOUTS)}")
    return layout


def conv_out_size(size, k, s, p):
    """Output extent of a convolution: floor((size + 2p - k) / s) + 1."""
    return (size + 2 * p - k) // s + 1


def pool_out_size(size, k, s, p, cover_all, keep_padding_window=False):
    """Output extent of pooling.

    cover_all is the ceil mode (Chainer's max pooling, Caffe): windows cover the whole
    input, but as in Caffe and PyTorch a last window that would start in the padding is
    dropped (it would hold padding only); ONNX's ceil mode keeps it
    (``keep_padding_window=True``).
    """
    if not cover_all:
        return (size + 2 * p - k) // s + 1
    o = (size + 2 * p - k + s - 1) // s + 1
    if o > 1 and (o - 1) * s >= size + p and not keep_padding_window:
        o -= 1
    return o


def pool_kernel_extent(size, k, p):
    """The part of a pooling window that can hold input or padding: min(k, size + 2p).

    A window longer than the padded input (ceil mode with a huge kernel) gives one output
    whose window is the whole padded input, so kernels never need more than this.
    """
    return min(k, size + 2 * p)


def _pair(v):
    return (int(v[0]), int(v[1]))


@dataclass(frozen=True)
class ConvSpec:
    """Geometry of one 2-d convolution: per-sample input/output shapes (h, w, c), kernel
    (kh, kw), stride, pad, group, layout."""

    in_shape: tuple
    out_shape: tuple
    ksize: tuple
    stride: tuple = (1, 1)
    pad: tuple = (0, 0)
    group: int = 1
    layout: str = "hwcn"

    @classmethod
    def make(cls, in_shape, out_channels, ksize, stride=(1, 1), pad=(0, 0), group=1, layout="hwcn"):
        """The spec of a convolution of in_shape (h, w, c); ValueError if the kernel does not fit."""
        h, w, c = (int(s) for s in in_shape)
        ksize, stride, pad = _pair(ksize), _pair(stride), _pair(pad)
        oh = conv_out_size(h, ksize[0], stride[0], pad[0])
        ow = conv_out_size(w, ksize[1], stride[1], pad[1])
        if oh <= 0 or ow <= 0:
            raise ValueError(f"kernel {list(ksize)} with pad {list(pad)} does not fit the {h}x{w} input")
        return cls((h, w, c), (oh, ow, int(out_channels)), ksize, stride, pad, int(group), check_layout(layout))

    @property
    def weight_shape(self):
        """(kh, kw, c / group, out)."""
        return (self.ksize[0], self.ksize[1], self.in_shape[2] // self.group, self.out_shape[2])

    def flops(self, n):
        """Multiply-adds of the forward pass for a batch of n, times 2."""
        return 2 * n * math.prod(self.out_shape) * self.ksize[0] * self.ksize[1] * self.in_shape[2] // self.group


@dataclass(frozen=True)
class PoolSpec:
    """Geometry of one 2-d pooling: shapes (h, w, c), mode ('max' or 'average'), ksize as
    declared, kernel (the extent kernels use, see pool_kernel_extent), stride, pad,
    cover_all (ceil mode), layout."""

    in_shape: tuple
    out_shape: tuple
    mode: str
    ksize: tuple
    kernel: tuple
    stride: tuple
    pad: tuple
    cover_all: bool
    layout: str = "hwcn"

    @classmethod
    def make(cls, in_shape, mode, ksize, stride, pad=(0, 0), cover_all=False, layout="hwcn"):
        """The spec of a pooling of in_shape (h, w, c); ValueError if the kernel does not fit."""
        h, w, c = (int(s) for s in in_shape)
        ksize, stride, pad = _pair(ksize), _pair(stride), _pair(pad)
        oh = pool_out_size(h, ksize[0], stride[0], pad[0], cover_all)
        ow = pool_out_size(w, ksize[1], stride[1], pad[1], cover_all)
        if oh <= 0 or ow <= 0:
            raise ValueError(f"kernel {list(ksize)} does not fit the {h}x{w} input")
        kernel = (pool_kernel_extent(h, ksize[0], pad[0]), pool_kernel_extent(w, ksize[1], pad[1]))
        return cls((h, w, c), (oh, ow, c), mode, ksize, kernel, stride, pad, bool(cover_all), check_layout(layout))


@dataclass(frozen=True)
class CropSpec:
    """Per-sample crop of images (h, w, c) to (oh, ow, c), as data augmentation takes it."""

    in_shape: tuple
    out_shape: tuple
    layout: str = "hwcn"
