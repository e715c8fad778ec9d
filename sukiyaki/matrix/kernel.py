"""Custom kernels: a user's own GPU code called on matrices (the original's createKernel /
executeKernel), in the language of the matrices' backend: CUDA C for ``cuda``, WGSL for
``webgpu`` (where the backend offers it).

A kernel is compiled once by :func:`createKernel` and run by :func:`executeKernel` (or by
calling it) over ``threads`` threads. Arguments are matrices on the kernel's device, passed
as pointers to their column-major elements and written in place, and numbers: a Python
``int`` is passed as a 32-bit ``int``, a ``float`` as a ``float``, a numpy scalar
(``np.int64(5)``) as its own type. A kernel that fails to compile raises :class:`KernelError`
with the compiler's log.

Example (CUDA):
    k = M.createKernel('''
    extern "C" __global__ void axpy(float* y, const float* x, float a, int n) {
        int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] += a * x[i];
    }''', "axpy", device="cuda")
    M.executeKernel(k, [Y, X, 2.0, Y.numel], threads=Y.numel)
"""

import numpy as np

from sukiyaki.backends import get_backend
from sukiyaki.matrix.matrix import Matrix


class KernelError(ValueError):
    """A custom kernel that cannot be compiled or run as asked (the message says why)."""


class Kernel:
    """A compiled custom kernel on one backend (made by :func:`createKernel`)."""

    __slots__ = ("name", "device", "_backend", "_native")

    def __init__(self, name, backend, native):
        self.name, self.device, self._backend, self._native = name, backend.name, backend, native

    def __call__(self, *args, threads, block=256):
        """Run over ``threads`` threads in blocks (workgroups) of ``block``: see executeKernel."""
        return executeKernel(self, list(args), threads=threads, block=block)

    def __repr__(self):
        return f"<Kernel {self.name!r} on {self.device}>"


def _supports(backend):
    return callable(getattr(backend, "compile_kernel", None)) and callable(getattr(backend, "launch_kernel", None))


def createKernel(source, name, device="cuda"):  # noqa: N802 (the original's name)
    """Compile ``source`` (CUDA C with ``extern "C" __global__ void name(...)`` for the cuda
    backend) and return its kernel ``name`` on ``device``."""
    if not isinstance(source, str) or not source.strip():
        raise KernelError("createKernel: the source must be a non-empty string")
    if not isinstance(name, str) or not name.isidentifier():
        raise KernelError(f"createKernel: the kernel name must be an identifier, got {name!r}")
    backend = get_backend(device)
    if not _supports(backend):
        raise KernelError(f"createKernel: backend '{backend.name}' runs no custom kernels "
                          f"(CUDA C on 'cuda'; WGSL on 'webgpu' where offered)")
    return Kernel(name, backend, backend.compile_kernel(source, name))


def _argument(kernel, i, a):
    if isinstance(a, Matrix):
        if a._backend is not kernel._backend:
            raise KernelError(f"kernel {kernel.name!r}: argument {i} is on '{a.device}', the kernel on "
                              f"'{kernel.device}' (move it with gpuArray(A, '{kernel.device}'))")
        return a._data
    if isinstance(a, bool):
        return np.int32(a)
    if isinstance(a, int):
        if not -2 ** 31 <= a < 2 ** 31:
            raise KernelError(f"kernel {kernel.name!r}: argument {i} ({a}) does not fit a 32-bit int; "
                              f"pass np.int64({a}) for a long long parameter")
        return np.int32(a)
    if isinstance(a, float):
        return np.float32(a)
    if isinstance(a, np.generic) and a.dtype.kind in "biuf":
        return a
    raise KernelError(f"kernel {kernel.name!r}: argument {i} must be a matrix or a number, got {type(a).__name__}")


def executeKernel(kernel, args, threads, block=256):  # noqa: N802 (the original's name)
    """Run ``kernel`` on ``args`` (matrices written in place, numbers) over ``threads``
    threads, ``block`` to a block (CUDA) or workgroup (WGSL)."""
    if not isinstance(kernel, Kernel):
        raise KernelError(f"executeKernel: expected a kernel from createKernel, got {type(kernel).__name__}")
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
        raise KernelError(f"kernel {kernel.name!r}: threads must be a non-negative integer, got {threads!r}")
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or not 1 <= block <= 1024:
        raise KernelError(f"kernel {kernel.name!r}: block must be an integer in 1..1024, got {block!r}")
    natives = tuple(_argument(kernel, i, a) for i, a in enumerate(args))
    if threads:
        kernel._backend.launch_kernel(kernel._native, natives, int(threads), int(block))


create_kernel, execute_kernel = createKernel, executeKernel
