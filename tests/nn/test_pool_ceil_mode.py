"""Pooling in ceil mode (cover_all) against PyTorch's ceil_mode: sizes, values and gradients,
through each backend's kernels (``pool2d_forward`` / ``pool2d_backward`` with a PoolSpec).

Like Caffe and PyTorch, a last window that would start in the padding is dropped (no -inf
outputs), and average pooling divides the last windows by their part inside the padded input.
"""

import numpy as np
import pytest

from sukiyaki.backends import get_backend
from sukiyaki.nn.shapes import PoolSpec, pool_out_size

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")


@pytest.mark.parametrize("size,k,s,p", [(16, 3, 2, 0), (7, 2, 2, 1), (6, 3, 2, 1), (9, 3, 2, 1), (5, 2, 2, 1)])
@pytest.mark.parametrize("mode", ["max", "average"])
def test_ceil_mode_matches_torch(size, k, s, p, mode, device):
    be = get_backend(device)
    rng = np.random.default_rng(size * 10 + k)
    x = np.asfortranarray(rng.standard_normal((size, size + 1, 3, 2)).astype(np.float32))
    spec = PoolSpec.make(x.shape[:3], mode, (k, k), (s, s), (p, p), cover_all=True)
    assert spec.out_shape == (pool_out_size(size, k, s, p, True), pool_out_size(size + 1, k, s, p, True), 3)
    y_dev, cache = be.nn.pool2d_forward(be.from_numpy(x), spec, True)
    assert cache is not None
    y = np.asarray(be.to_numpy(y_dev))
    assert y.shape == spec.out_shape + (2,)
    assert np.all(np.isfinite(y))
    xt = torch.tensor(np.transpose(x, (3, 2, 0, 1)), requires_grad=True)
    if mode == "max":
        yt = torch.nn.functional.max_pool2d(xt, k, s, p, ceil_mode=True)
    else:
        yt = torch.nn.functional.avg_pool2d(xt, k, s, p, ceil_mode=True, count_include_pad=True)
    assert np.transpose(y, (3, 2, 0, 1)).shape == tuple(yt.shape)
    np.testing.assert_allclose(np.transpose(y, (3, 2, 0, 1)), yt.detach().numpy(), rtol=1e-6, atol=1e-6)
    dy = np.asfortranarray(rng.standard_normal(y.shape).astype(np.float32))
    yt.backward(torch.tensor(np.transpose(dy, (3, 2, 0, 1))))
    dx = np.asarray(be.to_numpy(be.nn.pool2d_backward(be.from_numpy(dy), spec, cache)))
    assert dx.shape == x.shape
    np.testing.assert_allclose(np.transpose(dx, (3, 2, 0, 1)), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
