"""CuPy implementation of the backend primitives (see sukiyaki.backends.base).

Native arrays are CuPy ndarrays in column-major order on one GPU; every primitive returns
F-contiguous storage, as the numpy backend does, and nothing in here reads the device
back to the host except ``to_numpy``, ``item`` and ``export``. Memory comes from CuPy's
memory pool. Float32 arithmetic is float32: cuBLAS and cuDNN run without TF32 unless
``SUKIYAKI_CUDA_PRECISION=tf32`` asks for tensor cores (see PRECISION), or ``bf16`` for
products on bfloat16 operands (see set_precision). ``SUKIYAKI_CUDA_CHANNELS_LAST`` lays
convolution operands out channels-last (NHWC) while cuDNN runs (see set_channels_last).
"""

import os

#: Arithmetic of float32 products (convolutions, matrix products): "fp32" (IEEE single), "tf32"
#: (tensor cores, 10-bit mantissa products, float32 sums) or "bf16" (operands rounded to bfloat16
#: for the product, float32 sums and results: PyTorch's autocast; the blobs, the other layers
#: and the ParamStore's master weights stay float32). Read once, before CuPy and cuDNN start.
PRECISIONS = ("fp32", "tf32", "bf16")
PRECISION = os.environ.get("SUKIYAKI_CUDA_PRECISION", "fp32").lower()
if PRECISION not in PRECISIONS:
    raise ValueError(f"SUKIYAKI_CUDA_PRECISION must be one of {', '.join(PRECISIONS)}, got {PRECISION!r}")
if PRECISION != "tf32":
    os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")  # fp32 means fp32 (read when the libraries start)
else:
    os.environ.setdefault("CUPY_TF32", "1")  # CuPy's matrix products on TF32 tensor cores

import cupy as cp  # noqa: E402
import numpy as np  # noqa: E402

from sukiyaki.backends.arraylike import ArrayModulePrimitives  # noqa: E402
from sukiyaki.backends.cuda import blas, kernels, nn  # noqa: E402

_F64 = np.dtype(np.float64)


def _flag(name, default):
    """A 0/1 environment setting."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value not in ("0", "1"):
        raise ValueError(f"{name} must be 0 or 1, got {value!r}")
    return value == "1"


def _back(r):
    """The column-major result of a kernel run on transposed views (r.T, copied only if needed)."""
    r = r.T
    return r if r.flags.f_contiguous else cp.asfortranarray(r)


def _elementwise(fn):
    """fn on the transposed (row-major) views of its column-major operands, the result transposed
    back. CuPy's kernels number their threads in row-major order: on column-major operands of
    two or more dims neighbouring threads would touch memory far apart (uncoalesced; measured
    10-50x slower on an H200 for VGG16's activations)."""
    def run(*args):
        return _back(fn(*[a.T if isinstance(a, cp.ndarray) else a for a in args]))

    run.__name__ = getattr(fn, "__name__", "op")
    return run


def _axes_t(axis, ndim):
    """Axis numbers of the transposed view."""
    if axis is None:
        return None
    if isinstance(axis, (tuple, list)):
        return tuple(ndim - 1 - a for a in axis)
    return ndim - 1 - axis


def _round_half_away(x):
    """MATLAB round: halves go away from zero."""
    if x.dtype.kind != "f":
        return x.copy()
    return cp.where(cp.abs(x - cp.trunc(x)) == 0.5, cp.trunc(x) + cp.sign(x), cp.round(x)).astype(x.dtype, copy=False)


def _sigmoid(x):
    e = cp.exp(-cp.abs(x))
    return cp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _mod(x, y):
    """MATLAB mod: sign of the divisor, mod(x, 0) = x (no read back to decide)."""
    return cp.where(cp.asarray(y) == 0, x, cp.mod(x, y))


_EXACT = ("-ftz=false", "-prec-div=true", "-prec-sqrt=true")


def _exact_binary(expr, name):
    """An elementwise kernel of kernels/arith.cu for float operands (numbers broadcast), IEEE exact;
    other dtypes take CuPy's ufunc."""
    kernel = cp.ElementwiseKernel("T x, T y", "T z", f"z = {expr}(x, y)", name,
                                  preamble=kernels.source("arith"), options=_EXACT)
    ufunc = {"sk_pow": cp.power}[expr]

    def run(x, y):
        xa, ya = isinstance(x, cp.ndarray), isinstance(y, cp.ndarray)
        dt = cp.result_type(x if xa else np.float32, y if ya else np.float32) if (xa or ya) else None
        if dt is None or dt.kind != "f":
            return ufunc(x, y)
        x = x.astype(dt, copy=False) if xa else dt.type(x)
        y = y.astype(dt, copy=False) if ya else dt.type(y)
        return kernel(x, y)

    return run


def _nan_ignoring(fn):
    """max or min reduction that ignores NaN unless all are NaN (fmax/fmin folded), with no
    read back (cupy.nanmax checks for all-NaN slices on the host)."""
    kernels_by_dtype = {}
    nan = {np.dtype(np.float32): "__int_as_float(0x7fc00000)",
           np.dtype(np.float64): "__longlong_as_double(0x7ff8000000000000LL)"}

    def run(x, axis):
        k = kernels_by_dtype.get(x.dtype)
        if k is None:
            t = x.dtype.name
            k = kernels_by_dtype[x.dtype] = cp.ReductionKernel(f"{t} x", f"{t} y", "x", f"{fn}(a, b)", "y = a",
                                                               nan[x.dtype], f"sukiyaki_{fn}_{t}")
        return k(x, axis=axis, keepdims=True)

    return run


_FMAX, _FMIN = _nan_ignoring("fmax"), _nan_ignoring("fmin")

BINARY = {
    "add": cp.add, "sub": cp.subtract, "mul": cp.multiply, "div": cp.true_divide,
    "pow": _exact_binary("sk_pow", "sukiyaki_pow"),
    "maximum": cp.fmax, "minimum": cp.fmin, "mod": _mod, "rem": cp.fmod, "atan2": cp.arctan2,
    "eq": cp.equal, "ne": cp.not_equal, "lt": cp.less, "le": cp.less_equal, "gt": cp.greater,
    "ge": cp.greater_equal, "and": cp.logical_and, "or": cp.logical_or, "xor": cp.logical_xor,
}
UNARY = {
    "neg": cp.negative, "exp": cp.exp, "expm1": cp.expm1, "log": cp.log, "log1p": cp.log1p, "log2": cp.log2,
    "log10": cp.log10, "sqrt": cp.sqrt, "abs": cp.abs, "sign": cp.sign, "floor": cp.floor, "ceil": cp.ceil,
    "fix": cp.trunc, "round": _round_half_away, "sin": cp.sin, "cos": cp.cos, "tan": cp.tan,
    "asin": cp.arcsin, "acos": cp.arccos, "atan": cp.arctan, "sinh": cp.sinh, "cosh": cp.cosh,
    "tanh": cp.tanh, "not": cp.logical_not, "isnan": cp.isnan, "isinf": cp.isinf, "isfinite": cp.isfinite,
    "sigmoid": _sigmoid,
}


class CudaBackend(ArrayModulePrimitives):
    """Arrays are column-major CuPy ndarrays on one GPU (shape and indexing primitives:
    sukiyaki.backends.arraylike)."""

    is_gpu = True
    xp = cp

    def __init__(self, device=0):
        self.device_id = device
        self.name = "cuda" if device == 0 else f"cuda:{device}"
        cp.cuda.Device(device).use()
        self.nn = nn.Kernels(self)
        self.precision = PRECISION
        self.channels_last = _flag("SUKIYAKI_CUDA_CHANNELS_LAST", PRECISION == "bf16")
        self.set_deterministic(os.environ.get("SUKIYAKI_CUDA_DETERMINISTIC", "0") == "1")
        self._rng = cp.random.default_rng()
        self._blas = None  # sukiyaki.backends.cuda.blas.Blas, made on the first float32 product
        self.binary = {op: _elementwise(fn) for op, fn in BINARY.items()}
        self.unary = {op: _elementwise(fn) for op, fn in UNARY.items()}

    def set_deterministic(self, flag=True):
        """Deterministic mode: the same bits on every run (exact resume of a checkpoint, runs
        compared bit for bit). cuDNN then uses only engines that sum without atomics, and the
        heuristics' first choice instead of the fastest timed one (timings differ from run to
        run). Off by default (faster, as PyTorch); SUKIYAKI_CUDA_DETERMINISTIC=1 turns it on."""
        self.deterministic = bool(flag)
        self.autotune = not self.deterministic and os.environ.get("SUKIYAKI_CUDNN_AUTOTUNE", "1") != "0"
        self.nn.reset_convolutions()

    def set_precision(self, mode):
        """Switch the products between "fp32" and "bf16" (tf32 is chosen at start only: the libraries
        read NVIDIA_TF32_OVERRIDE when they load). Convolution graphs are built again on next use."""
        if mode not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {mode!r}")
        if (mode == "tf32") != (self.precision == "tf32"):
            raise ValueError(f"precision {mode}: this process started its CUDA libraries in {self.precision}; "
                             f"tf32 is set before start (SUKIYAKI_CUDA_PRECISION=tf32 or --precision tf32)")
        self.precision = mode
        self._blas = None
        self.nn.reset_convolutions()

    def set_channels_last(self, flag=True):
        """Convolution operands staged channels-last (NHWC) for cuDNN, the layout its tensor-core
        engines want; the blobs themselves stay (h, w, c, n). On by default in bf16."""
        self.channels_last = bool(flag)
        self.nn.reset_convolutions()

    def staging(self):
        """How convolution operands are staged (sukiyaki.backends.cuda.staging.Staging)."""
        from sukiyaki.backends.cuda.staging import Staging

        return Staging(bf16=self.precision == "bf16", channels_last=self.channels_last)

    # --- CUDA graphs (optional: sukiyaki.backends.base.OPTIONAL_CAPABILITIES) ---
    def capture(self, fn):
        """fn's GPU work recorded as a CUDA graph (sukiyaki.backends.cuda.graph.CapturedGraph:
        ``outputs``, ``replay()``); CaptureError says why where it cannot be."""
        from sukiyaki.backends.cuda.graph import CapturedGraph

        return CapturedGraph(fn)

    # --- custom kernels (sukiyaki.matrix.kernel) ---
    def compile_kernel(self, source, name):
        """CuPy's RawKernel of CUDA C ``source``, compiled now (NVRTC); KernelError with the log."""
        from sukiyaki.matrix.kernel import KernelError

        kernel = cp.RawKernel(source, name, options=("-std=c++17",))
        try:
            kernel.compile()
        except cp.cuda.compiler.CompileException as exc:
            raise KernelError(f"kernel {name!r} failed to compile (NVRTC):\n{exc.get_message()}") from None
        except cp.cuda.driver.CUDADriverError as exc:  # compiled, but the function is not in it
            raise KernelError(f"kernel {name!r}: {exc} (is it declared extern \"C\" __global__?)") from None
        return kernel

    def launch_kernel(self, kernel, args, threads, block):
        kernel(((threads + block - 1) // block,), (block,), args)

    # --- transfers and memory ---
    def from_numpy(self, a):
        return cp.asarray(np.asarray(a), order="F")

    def to_numpy(self, x):
        return cp.asnumpy(x, order="F")

    def item(self, x):
        return x.reshape(-1, order="F")[0].item()

    def export(self, x):
        return x

    def free(self, x):
        return None  # the memory returns to CuPy's pool when the last reference goes

    def available_memory(self):
        free, _ = cp.cuda.runtime.memGetInfo()
        pool = cp.get_default_memory_pool()
        return free + pool.free_bytes()

    # --- creation ---

    def full(self, shape, value, dtype):
        if isinstance(value, (int, float, bool)) and value == 0:
            return cp.zeros(shape, dtype=dtype, order="F")
        return cp.full(tuple(reversed(shape)), value, dtype=dtype).T

    def arange(self, start, step, count, dtype):
        return self.cast_wrap(start + step * cp.arange(count, dtype=_F64), dtype)

    def rand(self, shape, dtype):
        return cp.asfortranarray(self._rng.random(shape, dtype=np.float32).astype(dtype, copy=False))

    def randn(self, shape, dtype):
        return cp.asfortranarray(self._rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False))

    def randint(self, low, high, shape, dtype):
        return cp.asfortranarray(self._rng.integers(low, high + 1, size=shape).astype(dtype))

    def seed(self, n):
        self._rng = cp.random.default_rng(n)

    def philox_uniform(self, key, iteration, sample_ids, per_sample):
        n = sample_ids.shape[0]
        out = cp.empty((per_sample, n), dtype=np.float32, order="F")
        ids = cp.ascontiguousarray(sample_ids).view(cp.uint32)
        blocks = -(-per_sample // 4)
        if isinstance(iteration, cp.ndarray):  # a step counter in device memory (CUDA graphs)
            func, iteration = "philox_uniform_dev", iteration.view(cp.uint32)
        else:
            func, iteration = "philox_uniform", np.uint32(iteration)
        kernels.launch("philox", func, blocks * n,
                       (ids, out, np.uint32(key[0]), np.uint32(key[1]), iteration, np.int64(per_sample), np.int64(n)))
        return out

    # --- copies and conversions ---

    def astype(self, x, dtype):
        if x.dtype == dtype:
            return x
        return _back(x.T.astype(dtype, copy=False))

    def cast_wrap(self, x, dtype):
        return _back(self._cast_wrap(x.T, dtype))

    @staticmethod
    def _cast_wrap(x, dtype):
        dtype = np.dtype(dtype)
        if dtype.kind == "b":
            return x != 0
        if dtype.kind == "f" or x.dtype == dtype:
            return x.astype(dtype, copy=False)
        if x.dtype.kind in "iub":
            return x.astype(dtype)
        bits = 8 * dtype.itemsize
        t = cp.where(cp.isfinite(x), cp.trunc(x), 0.0)
        t = cp.fmod(t, 2.0 ** bits)
        return t.astype(np.int64).astype(dtype)

    # --- reductions and products ---
    def reduce(self, op, x, axis):
        return _back(self._reduce(op, x.T, _axes_t(axis, x.ndim)))

    @staticmethod
    def _reduce(op, x, axis):
        if op == "sum":
            r = cp.sum(x, axis=axis, keepdims=True)
        elif op == "prod":
            r = cp.prod(x, axis=axis, keepdims=True)
        elif op == "max":  # NaN ignored unless all are NaN
            r = _FMAX(x, axis) if x.dtype.kind == "f" else cp.max(x, axis=axis, keepdims=True)
        elif op == "min":
            r = _FMIN(x, axis) if x.dtype.kind == "f" else cp.min(x, axis=axis, keepdims=True)
        elif op == "any":
            r = cp.any(x, axis=axis, keepdims=True)
        elif op == "all":
            r = cp.all(x, axis=axis, keepdims=True)
        else:
            raise ValueError(f"unknown reduction {op!r}")
        return r

    def argreduce(self, op, x, axis):
        v, i = self._argreduce(op, x.T, _axes_t(axis, x.ndim))
        return _back(v), _back(i)

    @staticmethod
    def _argreduce(op, x, axis):
        if op not in ("max", "min"):
            raise ValueError(f"unknown arg-reduction {op!r}")
        pick = cp.argmax if op == "max" else cp.argmin
        if x.dtype.kind != "f":
            idx = pick(x, axis=axis, keepdims=True)
            return cp.take_along_axis(x, idx, axis=axis), idx.astype(np.int64, copy=False)
        # NaN ignored unless all are NaN, with no read back: NaN -> -Inf (+Inf), then prefer a
        # real element over a NaN that tied with the extreme
        nan = cp.isnan(x)
        y = cp.where(nan, -np.inf if op == "max" else np.inf, x)
        idx = pick(y, axis=axis, keepdims=True)
        best = cp.take_along_axis(y, idx, axis=axis)
        chosen_nan = cp.take_along_axis(nan, idx, axis=axis) & ~cp.all(nan, axis=axis, keepdims=True)
        alt = cp.argmax(~nan & (y == best), axis=axis, keepdims=True)
        idx = cp.where(chosen_nan, alt, idx)
        return cp.take_along_axis(x, idx, axis=axis), idx.astype(np.int64, copy=False)

    def cumulative(self, op, x, axis):
        if op == "cumsum":
            return _back(cp.cumsum(x.T, axis=_axes_t(axis, x.ndim)))
        if op == "cumprod":
            return _back(cp.cumprod(x.T, axis=_axes_t(axis, x.ndim)))
        raise ValueError(f"unknown cumulative op {op!r}")

    def matmul(self, x, y, trans_x=False, trans_y=False):
        if blas.usable(x, y):  # cuBLAS through our handle: capturable in CUDA graphs
            if self._blas is None:
                self._blas = blas.Blas(tf32=self.precision == "tf32", bf16=self.precision == "bf16")
            return self._blas.gemm(x, y, trans_x, trans_y)
        yt = y if trans_y else y.T
        xt = x if trans_x else x.T
        return cp.matmul(yt, xt).T  # (op(x) op(y))' row-major is the column-major result

    # --- shape (the rest: sukiyaki.backends.arraylike) ---
    def concat(self, xs, axis):
        return _back(cp.concatenate([x.T for x in xs], axis=_axes_t(axis, xs[0].ndim)))

    def where(self, cond, x, y):
        return _elementwise(cp.where)(cond, x, y)

    def copy(self, x):
        return _back(x.T.copy())

    def gather(self, x, keys):
        if len(keys) == x.ndim and all(isinstance(k, slice) for k in keys):
            return _back(x.T[tuple(reversed(keys))].copy())
        return super().gather(x, keys)

    def scatter(self, x, keys, values):
        whole = not isinstance(values, cp.ndarray) or values.ndim == x.ndim
        if whole and len(keys) == x.ndim and all(isinstance(k, slice) for k in keys):
            x.T[tuple(reversed(keys))] = values.T if isinstance(values, cp.ndarray) else values
        else:
            super().scatter(x, keys, values)

    # --- in-place updates ---
    def assign_(self, x, y):
        if isinstance(y, cp.ndarray):
            cp.copyto(x.T, y.T, casting="unsafe")
        else:
            x.T.fill(y)

    def scale_(self, x, a):
        cp.multiply(x.T, x.dtype.type(a), out=x.T)

    def axpy_(self, y, a, x):
        if y.shape != x.shape:
            raise ValueError(f"axpy_: shapes differ: {y.shape} and {x.shape}")
        a = y.dtype.type(a)
        yt, xt = y.T, x.T
        if a == 1:
            cp.add(yt, xt, out=yt)
        else:
            yt += a * xt
