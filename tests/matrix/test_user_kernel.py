"""Custom kernels (the original's createKernel / executeKernel): CUDA C on the cuda backend,
checked against numpy; clear errors for a kernel that does not compile, a missing function,
an operand on another device, bad launch sizes, and a backend that runs no custom kernels."""

import numpy as np
import pytest

import sukiyaki.matrix as M
from sukiyaki.backends import get_backend

AXPY = r'''
extern "C" __global__ void axpy(float* y, const float* x, float a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += a * x[i];
}
'''
# column-major: element (i, j) of an m x n matrix at i + m * j
TRANSPOSE = r'''
extern "C" __global__ void transpose_into(float* out, const float* a, int m, int n) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= m * n) return;
    int i = k % m, j = k / m;
    out[j + n * i] = a[k];
}
'''


def kernels_run_on(device):
    return callable(getattr(get_backend(device), "compile_kernel", None))


def test_backend_without_custom_kernels_says_so(device):
    if kernels_run_on(device):
        pytest.skip(f"backend '{device}' runs custom kernels (tested below)")
    with pytest.raises(M.KernelError, match=f"backend '{device}' runs no custom kernels"):
        M.createKernel(AXPY, "axpy", device=device)


def test_axpy_and_a_column_major_transpose(device):
    if not kernels_run_on(device):
        pytest.skip(f"backend '{device}' runs no custom kernels")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((37, 29), dtype=np.float32), rng.standard_normal((37, 29), dtype=np.float32)
    X, Y = M.array(x, device=device), M.array(y, device=device)
    k = M.createKernel(AXPY, "axpy", device=device)
    assert k.name == "axpy" and k.device == device
    M.executeKernel(k, [Y, X, 2.5, Y.numel], threads=Y.numel, block=128)
    np.testing.assert_allclose(Y.to_numpy(), y + np.float32(2.5) * x, rtol=1e-6, atol=1e-6)
    k(Y, X, -2.5, Y.numel, threads=Y.numel)  # calling the kernel is executeKernel
    np.testing.assert_allclose(Y.to_numpy(), y, rtol=1e-5, atol=1e-5)
    T = M.zeros(29, 37, device=device)
    M.executeKernel(M.createKernel(TRANSPOSE, "transpose_into", device=device), [T, X, 37, 29], threads=X.numel)
    np.testing.assert_array_equal(T.to_numpy(), x.T)


def test_kernel_errors_are_clear(device):
    if not kernels_run_on(device):
        pytest.skip(f"backend '{device}' runs no custom kernels")
    with pytest.raises(M.KernelError, match=r"failed to compile[\s\S]*undefined_thing"):
        M.createKernel('extern "C" __global__ void bad(float* y) { y[0] = undefined_thing; }', "bad", device=device)
    with pytest.raises(M.KernelError, match="'missing'"):
        M.createKernel(AXPY, "missing", device=device)
    k = M.createKernel(AXPY, "axpy", device=device)
    Y = M.zeros(4, 1, device=device)
    with pytest.raises(M.KernelError, match="argument 1 is on 'numpy'"):
        M.executeKernel(k, [Y, M.zeros(4, 1), 1.0, 4], threads=4)
    with pytest.raises(M.KernelError, match="argument 2 must be a matrix or a number"):
        M.executeKernel(k, [Y, Y, "two", 4], threads=4)
    with pytest.raises(M.KernelError, match="does not fit a 32-bit int"):
        M.executeKernel(k, [Y, Y, 1.0, 2 ** 40], threads=4)
    with pytest.raises(M.KernelError, match="threads must be"):
        M.executeKernel(k, [Y, Y, 1.0, 4], threads=-1)
    with pytest.raises(M.KernelError, match="block must be"):
        M.executeKernel(k, [Y, Y, 1.0, 4], threads=4, block=4096)
    np.testing.assert_array_equal(Y.to_numpy(), 0)  # nothing ran


def test_create_kernel_checks_its_arguments():
    with pytest.raises(M.KernelError, match="non-empty string"):
        M.createKernel("", "axpy")
    with pytest.raises(M.KernelError, match="identifier"):
        M.createKernel(AXPY, "not a name")
    with pytest.raises(M.KernelError, match="expected a kernel"):
        M.executeKernel("axpy", [], threads=1)
