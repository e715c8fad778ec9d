"""The numpy backend's switch for numpy without a BLAS (Pyodide's): ``blas.COPY_FOR_LOOPS``.

On under Pyodide only (where it was measured faster; see sukiyaki/backends/numpy/blas.py), off
natively; either way the convolution's gradients are the same numbers (bit-equal in Pyodide,
whose loops sum in one order; natively the BLAS may pick another kernel for the copy).
"""

import sys

import numpy as np

from sukiyaki.backends.numpy import blas
from sukiyaki.nn import Net


def test_switch_is_on_only_without_a_blas():
    assert blas.COPY_FOR_LOOPS is (sys.platform == "emscripten")


def _lenet_gradients():
    net = Net("lenet", seed=2)
    net.zero_grads()
    net.train_batch({"batch": np.arange(32)}, loss_scale=1.0, seed=2, iteration=0)
    return net.store.slot_arrays(net.store.grad)


def test_switch_changes_no_gradient(monkeypatch):
    monkeypatch.setattr(blas, "COPY_FOR_LOOPS", False)
    off = _lenet_gradients()
    monkeypatch.setattr(blas, "COPY_FOR_LOOPS", True)
    on = _lenet_gradients()
    assert list(on) == list(off)
    for k in off:
        scale = float(np.abs(off[k]).max())
        assert scale > 0 and float(np.abs(on[k] - off[k]).max()) <= 1e-6 * scale, k
