"""Small helpers shared by the layer implementations."""

import math

import numpy as np

F32 = np.dtype(np.float32)
#: Values drawn per step of the initialisers: bounds their float64 temporaries.
INIT_CHUNK = 1 << 20


def full_shape(spec, n):
    """Per-sample shape plus the batch dimension."""
    return tuple(spec.shape) + (n,)


def he_normal(rng, shape, fan_in):
    """He initialisation: N(0, 2 / fan_in) as float32 of shape (column-major), drawn in chunks.

    The values are those of one ``rng.standard_normal(size)`` call, scaled in float64 and
    rounded to float32, but no float64 array of the full size is ever made.
    """
    std = math.sqrt(2.0 / max(fan_in, 1))
    size = math.prod(shape)
    flat = np.empty(size, np.float32)
    for start in range(0, size, INIT_CHUNK):
        stop = min(size, start + INIT_CHUNK)
        flat[start:stop] = rng.standard_normal(stop - start) * std
    return flat.reshape(shape)
