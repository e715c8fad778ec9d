"""The numpy backend's layer kernels and fused update rules (``backend.nn``; see
NN_PRIMITIVES in sukiyaki.backends.base).

They run with numpy's floating-point warnings off: a diverging run is reported once, by the
trainer, naming the iteration, not by a warning per overflowing product.
"""

import numpy as np

from sukiyaki.backends.numpy import conv, pool, update

_quiet = np.errstate(all="ignore")
conv2d_forward = _quiet(conv.conv2d_forward)
conv2d_backward = _quiet(conv.conv2d_backward)
pool2d_forward = _quiet(pool.pool2d_forward)
pool2d_backward = _quiet(pool.pool2d_backward)
sgd_update_ = _quiet(update.sgd_update_)
momentum_update_ = _quiet(update.momentum_update_)
adam_update_ = _quiet(update.adam_update_)


def crop_flip(x, spec, top, left, flip):
    """Crops (oh, ow, c, n) of x (h, w, c, n) at per-sample 0-based corners, mirrored where flip."""
    oh, ow, c = spec.out_shape
    n = x.shape[3] if x.ndim == 4 else 1
    x4 = x.reshape(tuple(spec.in_shape) + (n,), order="F")
    out = np.empty((oh, ow, c, n), dtype=np.float32, order="F")
    for j in range(n):
        t, lft = int(top[j]), int(left[j])
        window = x4[t:t + oh, lft:lft + ow, :, j]
        out[:, :, :, j] = window[:, ::-1] if flip[j] else window
    return out
