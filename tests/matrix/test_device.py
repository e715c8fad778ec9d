"""Devices: A.device, gpuArray/gather, mixed-device operations, destruct and autodestruct."""

import numpy as np
import pytest

import sukiyaki.matrix as M
from sukiyaki.backends import BackendUnavailable, available_backends
from matrix_helpers import assert_matrix, mat, to_numpy

#: Backends that behave as a device (CPU operands uploaded); strict, the test backend, is one.
GPUS = [b for b in available_backends() if b != "numpy"]
#: Real GPU backends (cuda, webgpu) present here.
REAL_GPUS = [b for b in available_backends(include_test=False) if b != "numpy"]


def test_device_property(device):
    A = M.ones(2, device=device)
    assert A.device == device
    assert (A + 1).device == device and M.sum(A).device == device and A.get(1, ":").device == device
    assert M.gather(A).device == "numpy"
    assert isinstance(M.gather(A).to_numpy(), np.ndarray)


def test_cpu_matrix_on_numpy():
    A = M.ones(2)
    assert A.device == "numpy"
    assert M.gather(A) is A  # already on the CPU


@pytest.mark.skipif(bool(REAL_GPUS), reason="a GPU backend is available here")
def test_gpuarray_without_gpu_names_the_extra():
    with pytest.raises(BackendUnavailable) as info:
        M.gpuArray(M.ones(2))
    msg = str(info.value)
    assert "sukiyaki[cuda]" in msg and "sukiyaki[webgpu]" in msg
    with pytest.raises(BackendUnavailable, match=r"sukiyaki\[cuda\]"):
        M.gpuArray(M.ones(2), "cuda")
    with pytest.raises(BackendUnavailable, match=r"sukiyaki\[webgpu\]"):
        M.zeros(2, device="webgpu")
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        M.zeros(2, device="tpu")


@pytest.mark.skipif(not GPUS, reason="no device backend here (not even the strict test backend)")
@pytest.mark.parametrize("gpu", GPUS)
def test_gpuarray_gather_and_mixed_operands(gpu):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    G = M.gpuArray(M.array(a), gpu)
    assert G.device == gpu and M.gpuArray(G, gpu) is G
    C = M.array(np.ones((2, 3), np.float32))
    for out in (G + C, C + G, M.max(C, G), G * 2, C @ M.transpose(G)):
        assert out.device == gpu  # a CPU operand is uploaded to the GPU
    back = M.gather(G + C)
    assert back.device == "numpy"
    np.testing.assert_array_equal(back.to_numpy(), a + 1)


def test_destruct(device):
    A = M.ones(2, 3, device=device)
    M.destruct(A)
    for use in (lambda: A + 1, lambda: M.sum(A), lambda: A.get(1), lambda: A.to_numpy(),
                lambda: np.asarray(A), lambda: A.shape, lambda: A[0, 0], lambda: A.set(1, 0.0),
                lambda: M.exp(A), lambda: A.copy(), lambda: M.reshape(A, 3, 2), lambda: A.item(),
                lambda: M.save(__import__("io").BytesIO(), A)):
        with pytest.raises(RuntimeError, match="destructed"):
            use()
    assert "destructed" in repr(A)  # printing a destructed matrix says so instead of failing
    M.destruct(A)  # twice is harmless
    M.destruct(3)  # non-matrices are ignored


def test_autodestruct_function_form(device):
    made = {}

    def step():
        a = M.ones(2, device=device)
        b = a * 3
        c = b + 1
        made.update(a=a, b=b, c=c)
        return c

    out = M.autodestruct(step)
    assert out is made["c"]
    assert_matrix(out, np.full((2, 2), 4.0), device=device)
    for name in ("a", "b"):
        with pytest.raises(RuntimeError, match="destructed"):
            made[name] + 1


def test_autodestruct_keeps_containers_and_outer_matrices(device):
    outer = M.ones(2, device=device)
    kept = {}

    def step():
        t = outer * 2
        u = t + 1
        v = t - 1
        w = t * t
        kept.update(t=t, w=w)
        return u, [v], {"k": outer}

    u, (v,), d = M.autodestruct(step)
    assert u.get(1) == 3.0 and v.get(1) == 1.0 and d["k"] is outer
    assert outer.get(1) == 1.0  # made outside: untouched
    with pytest.raises(RuntimeError):
        kept["t"].get(1)
    with pytest.raises(RuntimeError):
        kept["w"].get(1)


def test_autodestruct_with_block(device):
    with M.autodestruct() as scope:
        a = M.rand(3, device=device)
        b = a + 1
        c = scope.keep(M.sum(b))
        d = M.sum(a)
    assert c.shape == (1, 3) and np.all(to_numpy(c) >= 3)
    for m in (a, b, d):
        with pytest.raises(RuntimeError, match="destructed"):
            m.get(1)


def test_autodestruct_nested(device):
    def inner():
        x = M.ones(2, device=device)
        return x + 1

    def outer():
        y = M.autodestruct(inner)
        z = y * 10
        return z, y

    z, y = M.autodestruct(outer)
    assert z.get(1) == 20.0 and y.get(1) == 2.0


def test_autodestruct_on_error_still_unwinds(device):
    def bad():
        M.ones(2, device=device)
        raise KeyError("boom")

    with pytest.raises(KeyError):
        M.autodestruct(bad)
    A = M.ones(2, device=device)
    assert A.get(1) == 1.0  # no scope left open: later matrices are not collected
    from sukiyaki.matrix.matrix import SCOPES

    assert SCOPES == []


def test_operands_on_matrices_of_other_klasses_stay_on_device(device):
    A = mat(np.array([[1, 2]], np.uint8), device)
    B = mat(np.array([[0.5, 1]], np.float32), device)
    assert (A + B).device == device and (A < B).device == device and M.cast(A, "int32").device == device


def test_autodestruct_survivor_of_inner_scope_belongs_to_outer(device):
    seen = {}

    def inner():
        return M.ones(2, device=device) + 1

    def outer():
        y = M.autodestruct(inner)   # survives inner, but outer does not return it
        seen["y"] = y
        return y * 10

    z = M.autodestruct(outer)
    assert z.get(1) == 20.0
    with pytest.raises(RuntimeError, match="destructed"):
        seen["y"].get(1)
    with M.autodestruct():
        w = M.autodestruct(inner)
    with pytest.raises(RuntimeError, match="destructed"):
        w.get(1)
