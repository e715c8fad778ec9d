"""The numpy backend's layer kernels and fused update rules (``backend.nn``; see
NN_PRIMITIVES in sukiyaki.backends.base)."""

import numpy as np

from sukiyaki.backends.numpy.conv import conv2d_backward, conv2d_forward  # noqa: F401
from sukiyaki.backends.numpy.pool import pool2d_backward, pool2d_forward  # noqa: F401
from sukiyaki.backends.numpy.update import adam_update_, momentum_update_, sgd_update_  # noqa: F401


def crop_flip(x, spec, top, left, flip):
    """Crops (oh, ow, c, n) of x (h, w, c, n) at per-sample 0-based corners, mirrored where flip."""
    oh, ow, c = spec.out_shape
    n = x.shape[3] if x.ndim == 4 else 1
    x4 = x.reshape(tuple(spec.in_shape) + (n,), order="F")
    out = np.empty((oh, ow, c, n), dtype=np.float32, order="F")
    for j in range(n):
        t, l = int(top[j]), int(left[j])
        window = x4[t:t + oh, l:l + ow, :, j]
        out[:, :, :, j] = window[:, ::-1] if flip[j] else window
    return out
