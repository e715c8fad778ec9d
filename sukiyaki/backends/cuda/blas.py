"""float32 matrix products straight through cuBLAS (ctypes), on column-major CuPy arrays.

CuPy refuses every cuBLAS call while a stream is being captured (its ``setStream`` raises
NotImplementedError), though cuBLAS itself records into CUDA graphs when its workspace is
set by the caller. So the backend's float32 products call cuBLAS here, through a handle of
our own with a workspace of our own: the same routine in eager steps and in captured ones.
Column-major operands are what cuBLAS takes, so no transposed views are needed either.
``SUKIYAKI_CUDA_PRECISION=tf32`` selects TF32 tensor cores (cublasGemmEx's compute type);
``bf16`` rounds both operands to bfloat16 (kernels/staging.cu) and sums in float32.
"""

import ctypes

import cupy as cp
import numpy as np

_CUDA_R_32F, _CUDA_R_16BF = 0, 14
_COMPUTE_32F, _COMPUTE_32F_FAST_TF32 = 68, 77
_GEMM_DEFAULT = -1
_OP_N, _OP_T = 0, 1
_WORKSPACE = 32 << 20  # bytes; cuBLAS's own default on Hopper


def _library():
    """libcublas as loaded by CuPy (found in this process's memory map), else by its soname."""
    from cupy_backends.cuda.libs import cublas  # noqa: F401  (makes CuPy load the library)

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "libcublas.so" in line and "Lt" not in line.split("/")[-1]}
    except OSError:
        paths = set()
    for name in sorted(paths) + ["libcublas.so.13", "libcublas.so.12"]:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise RuntimeError("cuda: cuBLAS (libcublas.so.13 or .12) could not be loaded")


class Blas:
    """One cuBLAS handle and workspace on the current device."""

    def __init__(self, tf32=False, bf16=False):
        lib = self.lib = _library()
        self.handle = ctypes.c_void_p()
        _check(lib.cublasCreate_v2(ctypes.byref(self.handle)), "cublasCreate")
        self.workspace = cp.empty(_WORKSPACE, dtype=np.uint8)
        self.compute = _COMPUTE_32F_FAST_TF32 if tf32 else _COMPUTE_32F
        self.staging = None
        if bf16:
            from sukiyaki.backends.cuda.staging import Staging

            self.staging = Staging(bf16=True)
        self.one, self.zero = ctypes.c_float(1.0), ctypes.c_float(0.0)
        self._stream = None
        v, p, i = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int
        lib.cublasGemmEx.argtypes = [v, i, i, i, i, i, p, p, i, i, p, i, i, p, p, i, i, i, i]

    def _bind(self):
        """The handle on the current stream, with our workspace (cublasSetStream resets it)."""
        stream = cp.cuda.get_current_stream().ptr
        if stream != self._stream:
            _check(self.lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(stream)), "cublasSetStream")
            _check(self.lib.cublasSetWorkspace_v2(self.handle, ctypes.c_void_p(self.workspace.data.ptr),
                                                  ctypes.c_size_t(_WORKSPACE)), "cublasSetWorkspace")
            self._stream = stream

    def gemm(self, x, y, trans_x, trans_y):
        """op(x) @ op(y) of 2-d float32 F-contiguous arrays, a new F-contiguous array."""
        m = x.shape[1] if trans_x else x.shape[0]
        k = x.shape[0] if trans_x else x.shape[1]
        n = y.shape[0] if trans_y else y.shape[1]
        out = cp.empty((m, n), dtype=np.float32, order="F")
        if m == 0 or n == 0:
            return out
        if k == 0:
            out.fill(0)
            return out
        ld_x, ld_y, kind = max(x.shape[0], 1), max(y.shape[0], 1), _CUDA_R_32F
        if self.staging is not None:  # bfloat16 copies, the same (column-major) layout
            x, y, kind = self.staging.stage(x, x.size, 1, 1), self.staging.stage(y, y.size, 1, 1), _CUDA_R_16BF
        self._bind()
        _check(self.lib.cublasGemmEx(
            self.handle, _OP_T if trans_x else _OP_N, _OP_T if trans_y else _OP_N, m, n, k,
            ctypes.addressof(self.one), x.data.ptr, kind, ld_x,
            y.data.ptr, kind, ld_y,
            ctypes.addressof(self.zero), out.data.ptr, _CUDA_R_32F, max(m, 1), self.compute, _GEMM_DEFAULT), "cublasGemmEx")
        return out


def usable(x, y):
    """Whether gemm takes these operands (2-d float32, F-contiguous, 32-bit sizes)."""
    return (x.ndim == 2 and y.ndim == 2 and x.dtype == np.float32 and y.dtype == np.float32
            and x.flags.f_contiguous and y.flags.f_contiguous and max(x.shape + y.shape) < 2 ** 31)


def _check(status, what):
    if status != 0:
        raise RuntimeError(f"cuda: {what} failed (cuBLAS status {status})")
