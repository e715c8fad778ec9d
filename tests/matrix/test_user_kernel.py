"""Custom kernels (the original's createKernel / executeKernel): CUDA C on the cuda backend,
WGSL on the webgpu backend, checked against numpy; clear errors for a kernel that does not
compile, a missing entry point, an operand on another device, bad launch sizes, and a backend
that runs no custom kernels."""

import numpy as np
import pytest

import sukiyaki.matrix as M
from sukiyaki.backends import get_backend

#: Per backend: (name, source) of axpy(y, x, a, n), of a column-major transpose(out, a, m, n),
#: of a kernel that does not compile (its log names 'undefined_thing').
CUDA = {
    "axpy": ("axpy", r'''
extern "C" __global__ void axpy(float* y, const float* x, float a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += a * x[i];
}'''),
    # column-major: element (i, j) of an m x n matrix at i + m * j
    "transpose": ("transpose_into", r'''
extern "C" __global__ void transpose_into(float* out, const float* a, int m, int n) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= m * n) return;
    int i = k % m, j = k / m;
    out[j + n * i] = a[k];
}'''),
    "bad": ("bad", 'extern "C" __global__ void bad(float* y) { y[0] = undefined_thing; }'),
    "missing": ("missing", None),  # the axpy source, asked for another function
}
WGSL = {
    "axpy": ("main", '''
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> a: f32;
@group(0) @binding(3) var<storage, read> n: i32;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = i32(gid.x);
    if (i < n) { y[i] = y[i] + a * x[i]; }
}'''),
    "transpose": ("main", '''
@group(0) @binding(0) var<storage, read_write> out_: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> m: i32;
@group(0) @binding(3) var<storage, read> n: i32;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = i32(gid.x);
    if (k >= m * n) { return; }
    let i = k % m;
    let j = k / m;
    out_[j + n * i] = a[k];
}'''),
    "bad": ("main", '''
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>) { y[0] = undefined_thing; }'''),
    "missing": ("axpy", None),  # a WGSL kernel's entry point is main
}
SOURCES = {"cuda": CUDA, "webgpu": WGSL}
BLOCK = {"cuda": 128, "webgpu": 64}  # the WGSL kernels above declare @workgroup_size(64)


def kernels_run_on(device):
    return callable(getattr(get_backend(device), "compile_kernel", None))


def kernel(device, what):
    name, src = SOURCES[device.partition(":")[0]][what]
    return M.createKernel(src if src is not None else SOURCES[device.partition(":")[0]]["axpy"][1], name, device=device)


def test_backend_without_custom_kernels_says_so(device):
    if kernels_run_on(device):
        pytest.skip(f"backend '{device}' runs custom kernels (tested below)")
    with pytest.raises(M.KernelError, match=f"backend '{device}' runs no custom kernels"):
        M.createKernel(CUDA["axpy"][1], "axpy", device=device)


def test_axpy_and_a_column_major_transpose(device):
    if not kernels_run_on(device):
        pytest.skip(f"backend '{device}' runs no custom kernels")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((37, 29), dtype=np.float32), rng.standard_normal((37, 29), dtype=np.float32)
    X, Y = M.array(x, device=device), M.array(y, device=device)
    k = kernel(device, "axpy")
    assert k.device == device
    block = BLOCK[device]
    M.executeKernel(k, [Y, X, 2.5, Y.numel], threads=Y.numel, block=block)
    np.testing.assert_allclose(Y.to_numpy(), y + np.float32(2.5) * x, rtol=1e-6, atol=1e-6)
    k(Y, X, -2.5, Y.numel, threads=Y.numel, block=block)  # calling the kernel is executeKernel
    np.testing.assert_allclose(Y.to_numpy(), y, rtol=1e-5, atol=1e-5)
    T = M.zeros(29, 37, device=device)
    M.executeKernel(kernel(device, "transpose"), [T, X, 37, 29], threads=X.numel, block=block)
    np.testing.assert_array_equal(T.to_numpy(), x.T)


def test_kernel_errors_are_clear(device):
    if not kernels_run_on(device):
        pytest.skip(f"backend '{device}' runs no custom kernels")
    with pytest.raises(M.KernelError, match=r"failed to compile[\s\S]*undefined_thing"):
        kernel(device, "bad")
    with pytest.raises(M.KernelError, match="'(missing|axpy)'"):
        kernel(device, "missing")
    k = kernel(device, "axpy")
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


def test_wgsl_kernel_binds_one_argument_a_binding():
    try:
        get_backend("webgpu")
    except Exception as exc:  # noqa: BLE001 (any reason the backend cannot start)
        pytest.skip(f"needs the webgpu backend: {exc}")
    k = kernel("webgpu", "axpy")
    Y = M.zeros(4, 1, device="webgpu")
    with pytest.raises(M.KernelError, match="binds 4 arguments, got 3"):
        M.executeKernel(k, [Y, Y, 1.0], threads=4)
    gap = WGSL["axpy"][1].replace("@binding(3)", "@binding(5)")
    with pytest.raises(M.KernelError, match=r"@binding\(0\), \(1\), ... in order"):
        M.createKernel(gap, "main", device="webgpu")


def test_create_kernel_checks_its_arguments():
    with pytest.raises(M.KernelError, match="non-empty string"):
        M.createKernel("", "axpy")
    with pytest.raises(M.KernelError, match="identifier"):
        M.createKernel(CUDA["axpy"][1], "not a name")
    with pytest.raises(M.KernelError, match="expected a kernel"):
        M.executeKernel("axpy", [], threads=1)
