"""numpy fused update rules: one pass over a flat parameter buffer, in cache-sized chunks.

Each rule updates its arrays in place with one chunk-sized temporary, never a full-size
one (the buffers are a network's whole ``ParamStore``). The arithmetic is the order of
the formulas in :mod:`sukiyaki.backends.base`, so results are reproducible bit for bit.
"""

import numpy as np

#: Elements per chunk: 256 KiB of float32, which stays in the L2 cache with its operands.
CHUNK = 1 << 16


def _chunks(*arrays):
    """Matching flat chunks of equally sized column-major arrays."""
    flats = [a.reshape(-1, order="F") for a in arrays]
    n = flats[0].size
    for other in flats[1:]:
        if other.size != n:
            raise ValueError(f"update: buffers differ in size: {n} and {other.size}")
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        yield [f[start:stop] for f in flats]


def _rate(lr):
    """A learning rate given as a number or as a one-element array (a recorded step's buffer)."""
    return lr.reshape(-1)[0] if isinstance(lr, np.ndarray) else lr


def _decayed(w, g, weight_decay, t):
    """g + weight_decay * w into the temporary t (or g itself without weight decay)."""
    if not weight_decay:
        return g
    np.multiply(w, w.dtype.type(weight_decay), out=t)
    np.add(g, t, out=t)
    return t


def sgd_update_(w, g, lr, weight_decay=0.0):
    """w -= lr * (g + weight_decay * w)."""
    tmp = np.empty(min(CHUNK, w.size), w.dtype)
    neg_lr = w.dtype.type(-_rate(lr))
    for cw, cg in _chunks(w, g):
        t = tmp[: cw.size]
        gd = _decayed(cw, cg, weight_decay, t)
        np.multiply(gd, neg_lr, out=t)
        np.add(cw, t, out=cw)


def momentum_update_(w, g, v, lr, momentum, weight_decay=0.0):
    """v = momentum * v - lr * (g + weight_decay * w); w += v."""
    tmp = np.empty(min(CHUNK, w.size), w.dtype)
    neg_lr, mom = w.dtype.type(-_rate(lr)), w.dtype.type(momentum)
    for cw, cg, cv in _chunks(w, g, v):
        t = tmp[: cw.size]
        gd = _decayed(cw, cg, weight_decay, t)
        np.multiply(gd, neg_lr, out=t)
        np.multiply(cv, mom, out=cv)
        np.add(cv, t, out=cv)
        np.add(cw, cv, out=cw)


def adam_update_(w, g, m, v, lr_t, beta1, beta2, eps, weight_decay=0.0):
    """g' = g + wd w; m = b1 m + (1 - b1) g'; v = b2 v + (1 - b2) g'^2; w -= lr_t m / (sqrt(v) + eps)."""
    dt = w.dtype.type
    tmp = np.empty(min(CHUNK, w.size), w.dtype)
    tmp2 = np.empty(min(CHUNK, w.size), w.dtype)
    b1, b2, c1, c2 = dt(beta1), dt(beta2), dt(1 - beta1), dt(1 - beta2)
    for cw, cg, cm, cv in _chunks(w, g, m, v):
        t, u = tmp[: cw.size], tmp2[: cw.size]
        gd = _decayed(cw, cg, weight_decay, t)
        np.multiply(cm, b1, out=cm)
        np.multiply(gd, c1, out=u)
        np.add(cm, u, out=cm)
        np.multiply(gd, gd, out=u)
        np.multiply(u, c2, out=u)
        np.multiply(cv, b2, out=cv)
        np.add(cv, u, out=cv)
        np.sqrt(cv, out=u)
        np.add(u, dt(eps), out=u)
        np.divide(cm, u, out=u)
        np.multiply(u, dt(-_rate(lr_t)), out=u)
        np.add(cw, u, out=cw)
