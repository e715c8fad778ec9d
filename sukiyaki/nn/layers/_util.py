"""Small helpers shared by the layer implementations (backend primitives on native arrays)."""

import math

import numpy as np

from sukiyaki.matrix import Matrix

F32 = np.dtype(np.float32)


def native(x, shape):
    """Native array of matrix x reshaped (column-major) to shape."""
    d = x.data
    return d if d.shape == tuple(shape) else x._backend.reshape(d, tuple(shape))


def wrap(data, be, klass="single"):
    """A Matrix around a native array."""
    return Matrix(data, klass, be)


def full_shape(spec, n):
    """Per-sample shape plus the batch dimension."""
    return tuple(spec.shape) + (n,)


def reduce_axes(be, op, x, axes):
    """Apply a keepdims reduction over several axes."""
    for a in axes:
        x = be.reduce(op, x, a)
    return x


def he_normal(rng, shape, fan_in):
    """He initialisation: N(0, 2 / fan_in), float32."""
    std = math.sqrt(2.0 / max(fan_in, 1))
    return (rng.standard_normal(shape) * std).astype(np.float32)
