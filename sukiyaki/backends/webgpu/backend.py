"""WebGPU implementation of the backend primitives (see sukiyaki.backends.base).

Native arrays are :class:`~sukiyaki.backends.webgpu.array.GPUArray`: a buffer, an element
offset, a shape and a dtype, column-major. Every primitive records compute passes on the
device (kernels/*.wgsl through kernels.py); only ``to_numpy``, ``item`` and ``export`` read
back, and ``nonzero_linear`` reads its count (its result's size depends on the data).
The device access itself is native.py (wgpu) or, in a browser, its replacement.
"""

import re

import numpy as np

from sukiyaki.backends.base import BINARY_OPS, UNARY_OPS
from sukiyaki.backends.webgpu import elementwise as E
from sukiyaki.backends.webgpu import kernels as K
from sukiyaki.backends.webgpu.array import GPUArray, Storage, from_storage, kind_of, storage_of, to_storage

LIBS = ("f64", "common", "math")
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)
_I32 = np.dtype(np.int32)
_BOOL = np.dtype(np.bool_)
_NUMBERS = (int, float, bool, np.number, np.bool_)


def _prod(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _fstrides(shape):
    """Column-major element strides."""
    out, s = [], 1
    for n in shape:
        out.append(s)
        s *= n
    return out


def _dense_tables(shape):
    """Offset tables of a column-major array of shape (one per axis)."""
    return [np.arange(n, dtype=np.int64) * s for n, s in zip(shape, _fstrides(shape))]


def _broadcast_shape(*shapes):
    first = shapes[0]
    if all(s == first for s in shapes):
        return tuple(first)
    nd = max(len(s) for s in shapes)
    out = []
    for d in range(nd):
        dims = {s[d - nd + len(s)] if d - nd + len(s) >= 0 else 1 for s in shapes}
        dims.discard(1)
        if len(dims) > 1:
            raise ValueError(f"webgpu: shapes {' and '.join(map(str, shapes))} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _bcast_strides(shape, out_shape):
    """Element strides of an array of shape read as out_shape (0 on broadcast axes)."""
    nd = len(out_shape)
    padded = (1,) * (nd - len(shape)) + tuple(shape)
    strides = _fstrides(shape)
    strides = [0] * (nd - len(shape)) + strides
    return [0 if padded[d] == 1 and out_shape[d] != 1 else strides[d] for d in range(nd)]


def _collapse(shape, strides):
    """(shape, per-operand strides) with the axes of length 1 dropped and neighbouring axes
    merged where every operand steps through them as through one (a per-channel bias on
    (h, w, c, n) becomes (h * w, c, n) with strides (0, 1, 0)): fewer axes to index."""
    axes = [d for d, s in enumerate(shape) if s != 1]
    if not axes:  # one element
        return [1], [[1] for _ in strides]
    out_shape, out_strides = [shape[axes[0]]], [[st[axes[0]]] for st in strides]
    for d in axes[1:]:
        if all(st[d] == o[-1] * out_shape[-1] for st, o in zip(strides, out_strides)):
            out_shape[-1] *= shape[d]
        else:
            out_shape.append(shape[d])
            for st, o in zip(strides, out_strides):
                o.append(st[d])
    return out_shape, out_strides


class WebGPUBackend:
    """The primitives on one WebGPU device (see the module docstring)."""

    name = "webgpu"
    is_gpu = True

    def __init__(self, device):
        from sukiyaki.backends.webgpu.nn import Kernels

        self.device = device
        self.launcher = K.Launcher(device)
        self.nn = Kernels(self)
        self.binary = {op: self._binary_op(op) for op in BINARY_OPS}
        self.unary = {op: self._unary_op(op) for op in UNARY_OPS}
        self._key = (0, 0)
        self._counter = 0
        self._scratch = {}
        self._layouts = {}  # memo of _map_layout
        self.seed(None)

    # --- custom kernels (sukiyaki.matrix.kernel; see user_kernel.py) ---
    def compile_kernel(self, source, name):
        from sukiyaki.backends.webgpu.user_kernel import compile_user_kernel

        return compile_user_kernel(self, source, name)

    def launch_kernel(self, kernel, args, threads, block):
        from sukiyaki.backends.webgpu.user_kernel import launch_user_kernel

        launch_user_kernel(self, kernel, args, threads, block)

    # ------------------------------------------------------------------ plumbing

    def _check_size(self, nbytes, shape, dtype):
        limit = self.device.limits.get("max-buffer-size")
        if limit and nbytes > limit:
            raise MemoryError(f"webgpu: an array {'x'.join(map(str, shape))} {dtype} needs a buffer of {nbytes} bytes, "
                              f"more than this device's max-buffer-size ({limit} bytes)")

    def _new(self, shape, dtype, zero=True):
        """A new array of shape and dtype: zero-filled, or, zero=False, with whatever bytes its
        buffer's last owner left (for outputs a kernel writes whole: see pool.py)."""
        dtype = np.dtype(dtype)
        _, words, _ = storage_of(dtype)
        nbytes = 4 * words * _prod(shape)
        self._check_size(nbytes, shape, dtype)
        return GPUArray(Storage(self.device, self.device.buffer(nbytes, zero), nbytes), 0, shape, dtype)

    def _scratch_f32(self, n, slot="splitk"):
        """A float32 GPUArray of n elements in the scratch buffer ``slot``, kept for reuse (the
        split-K partial products, a convolution's columns): work runs in the order it was
        recorded, so later work may reuse the buffer; what it held is then gone."""
        nbytes = 4 * max(1, int(n))
        st = self._scratch.get(slot)
        if st is None or st.nbytes < nbytes:
            self._check_size(nbytes, (n,), _F32)
            size = max(nbytes, 1 << 20)
            st = self._scratch[slot] = Storage(self.device, self.device.buffer(size), size)
        return GPUArray(st, 0, (int(n),), _F32)

    @staticmethod
    def _range(a):
        """(buffer, byte offset, bytes) of a's elements."""
        buf = a.storage.buffer
        if buf is None:
            raise RuntimeError("webgpu: this array's memory was freed")
        w = 4 * a.words
        return (buf, w * a.offset, w * a.size)

    def _run(self, key, make_code, n_threads, outputs, inputs, params=()):
        """Compile (memoized) and launch; outputs/inputs are GPUArrays or (buffer, offset, nbytes)."""
        pipe = self.launcher.pipeline(key, make_code, len(outputs), len(inputs))
        ranges_out = [self._range(a) if isinstance(a, GPUArray) else a for a in outputs]
        ranges_in = [self._range(a) if isinstance(a, GPUArray) else a for a in inputs]
        self.launcher.launch(pipe, n_threads, ranges_out, ranges_in, params)

    def _detach(self, x, outputs):
        """x, or a copy of it when it shares storage with one of outputs (a pass may not read
        and write one buffer through two bindings)."""
        if isinstance(x, GPUArray) and any(isinstance(o, GPUArray) and o.storage is x.storage for o in outputs):
            return self.copy(x)
        return x

    def _map(self, operands, ctype_of, expr, rt, out_dtype, shape=None, out=None):
        """Elementwise kernel: operands are GPUArrays, numbers, or 'out' (out's own element);
        ctype_of(i) is operand i's compute type; expr in x0, x1, ... and t."""
        arrays = [x for x in operands if isinstance(x, GPUArray)]
        if shape is None:
            shape = out.shape if out is not None else _broadcast_shape(*(a.shape for a in arrays)) if arrays else ()
        shape = tuple(shape)
        n = _prod(shape)
        if out is None:
            out = self._new(shape, out_dtype, zero=False)  # every element written below
        if n == 0:
            return out
        descs, consts, ins = [], [], []
        for i, x in enumerate(operands):
            if isinstance(x, GPUArray):
                if x.storage is out.storage:  # see _detach
                    x = self.copy(x)
                descs.append(("arr", x.kind, ctype_of(i)))
                ins.append(x)
            elif isinstance(x, str) and x == "out":
                descs.append(("out", out.kind, ctype_of(i)))
            else:
                consts += E.scalar_words(x.item() if isinstance(x, np.generic) else x, ctype_of(i))
                descs.append(("const", ctype_of(i)))
        bcast, cshape, cstrides = self._map_layout(shape, tuple(a.shape for a in ins))
        out_dtype = out.dtype
        key = ("map", tuple(descs), expr, rt, out_dtype.str, bcast)
        n_in = len(ins)
        per = E.PER_THREAD

        def code():
            body = E.map_kernel(descs, expr, rt, out_dtype, bcast)
            return K.assemble("map", ["OUT"], [f"IN{k}" for k in range(n_in)], LIBS, body=body)

        if bcast is not None:
            params = list(consts) + [n] + list(cshape) + [v for st in cstrides for v in st]
            self._run(key, code, -(-n // per), [out], ins, params)
            return out
        if max([out.storage_nbytes] + [a.storage_nbytes for a in ins]) <= self.launcher.max_binding \
                or re.search(r"\bt\b", expr):
            self._run(key, code, -(-n // per), [out], ins, list(consts) + [n])
            return out
        # arrays larger than one binding may be: consecutive pieces (elementwise, so any cut works)
        for start, count in self._pieces(n, [out] + ins):
            self._run(key, code, -(-count // per), [self._piece(out, start, count)],
                      [self._piece(a, start, count) for a in ins], list(consts) + [count])
        return out

    def _map_layout(self, shape, in_shapes):
        """(bcast, collapsed shape, per-input strides) of inputs of in_shapes read as shape:
        bcast None when every input has the shape (memoized: a training step repeats them)."""
        got = self._layouts.get((shape, in_shapes))
        if got is None:
            bcast = cshape = cstrides = None
            if any(s != shape for s in in_shapes):
                cshape, cstrides = _collapse(shape, [_bcast_strides(s, shape) for s in in_shapes])
                if any(st != _fstrides(cshape) for st in cstrides):
                    bcast = tuple(tuple(v != 0 for v in st) for st in cstrides)
            if len(self._layouts) >= 4096:
                self._layouts.clear()
            got = self._layouts[(shape, in_shapes)] = (bcast, cshape, cstrides)
        return got

    def _pieces(self, n, arrays):
        """(start, count) pieces of n elements whose bindings fit the device's limit."""
        words = max(a.words for a in arrays)
        step = max(1, (self.launcher.max_binding - self.launcher.align) // (4 * words))
        step -= step % 64
        return [(s, min(step, n - s)) for s in range(0, n, step)]

    @staticmethod
    def _piece(a, start, count):
        """Elements start .. start + count of a (flat), sharing its storage."""
        return GPUArray(a.storage, a.offset + start, (count,), a.dtype)

    def _binary_op(self, op):
        exprs = {}  # compute type -> (expression in x0, x1, its type)

        def run(x, y):
            ctype, out_dtype = E.resolve_binary(op, x, y)
            got = exprs.get(ctype)
            if got is None:
                expr, rt = E.binary_expr(op, ctype)
                got = exprs[ctype] = (expr.format(a="x0", b="x1"), rt)
            return self._map([x, y], lambda i: ctype, got[0], got[1], out_dtype)

        run.__name__ = op
        return run

    def _unary_op(self, op):
        def run(x):
            ctype, out_dtype = E.resolve_unary(op, x)
            expr, rt = E.unary_expr(op, ctype)
            return self._map([x], lambda i: ctype, expr.format(a="x0"), rt, out_dtype)

        run.__name__ = op
        return run

    # ------------------------------------------------------------------ transfers and memory
    def from_numpy(self, a):
        a = np.asarray(a)
        if a.dtype.kind == "f" and a.dtype.itemsize > 8:
            a = a.astype(np.float64)
        data = to_storage(a)
        self._check_size(data.nbytes, a.shape, a.dtype)
        buf = self.device.upload(data.tobytes() if data.size else b"\0\0\0\0")
        return GPUArray(Storage(self.device, buf, max(4, data.nbytes)), 0, a.shape, a.dtype)

    def to_numpy(self, x):
        raw = self.device.read(x.buffer, x.byte_offset, x.storage_nbytes) if x.size else b""
        return from_storage(raw, x.shape, x.dtype)

    def item(self, x):
        if x.size == 0:
            raise ValueError("webgpu: item() of an empty array")
        raw = self.device.read(x.buffer, x.byte_offset, 4 * x.words)
        return from_storage(raw, (1,), x.dtype)[0].item()

    def export(self, x):
        return self.to_numpy(x)

    def free(self, x):
        if isinstance(x, GPUArray) and x.offset == 0 and x.storage_nbytes >= x.storage.nbytes - 4:
            x.storage.release()

    def available_memory(self):
        """WebGPU does not report free memory. A CPU adapter (lavapipe) allocates host memory:
        the host's available memory; a GPU: the largest buffer the device allows (each of the
        parameter and gradient buffers must fit in one), a bound, not a measurement."""
        limit = self.device.limits.get("max-buffer-size")
        if str(self.device.info.get("adapter_type", "")).lower() == "cpu":
            from sukiyaki.backends.numpy.backend import _memory_available

            host = _memory_available()
            return host if host is not None else limit
        return limit

    # ------------------------------------------------------------------ creation
    def empty(self, shape, dtype):
        return self._new(tuple(shape), dtype, zero=False)

    def full(self, shape, value, dtype):
        dtype = np.dtype(dtype)
        v = np.full(1, value, dtype=dtype)[0]  # numpy's conversion of the value (and its errors)
        if not v.any() and not (dtype.kind == "f" and np.signbit(v)):
            return self._new(tuple(shape), dtype)  # zero-filled
        out = self._new(tuple(shape), dtype, zero=False)
        self._fill(out, v)
        return out

    def _fill(self, out, v):
        """Set every element of out to the numpy scalar v (of out's dtype)."""
        nat = E.NATURAL[out.kind]
        self._map([v.item()], lambda i: nat, "x0", nat, out.dtype, out=out)

    def eye(self, n, m, dtype):
        dtype = np.dtype(dtype)
        out = self._new((n, m), dtype, zero=False)
        nat = E.NATURAL[out.kind]
        one = E.convert("true", "bool", nat if nat != "i64" else "i64")
        zero = E.convert("false", "bool", nat if nat != "i64" else "i64")
        return self._map([n], lambda i: "u32", f"select({zero}, {one}, t % x0 == t / x0)", nat, dtype, out=out)

    def arange(self, start, step, count, dtype):
        """start + step * k in doubles, then cast_wrap to dtype (as the numpy backend)."""
        dtype = np.dtype(dtype)
        out = self._new((int(count),), dtype, zero=False)
        expr = "f64_add(x0, f64_mul(x1, f64_from_u32(t)))"
        if dtype.kind == "b":
            expr, rt = E.convert(expr, "f64", "bool"), "bool"
        elif dtype.kind in "iu":
            expr, rt = (f"f64_wrap64({expr})", "i64") if out.kind == "i64" else (f"f64_wrap32({expr})", "u32")
        else:
            rt = "f64"
        return self._map([float(start), float(step)], lambda i: "f64", expr, rt, dtype, out=out)

    # random numbers: Philox4x32-10 keyed by the seed, one counter value per call
    def seed(self, n):
        if n is None:
            n = int.from_bytes(np.random.default_rng().bytes(8), "little")
        n = int(n) & 0xFFFFFFFFFFFFFFFF
        self._key = (n & 0xFFFFFFFF, n >> 32)
        self._counter = 0

    def _random(self, shape, dtype, mode, low=0, span=0):
        dtype = np.dtype(dtype)
        out = self._new(tuple(shape), dtype, zero=False)
        n = out.size
        if n == 0:
            return out
        call = self._counter
        self._counter += 1
        key = ("random", mode, out.dtype.str)

        def code():
            vtype = {"uniform": "f32", "normal": "f32", "integer": "i32"}[mode]
            w = "off(0u) + t" + (" * 2u" if out.words == 2 else "")
            body = K.source("random").replace("$MODE", mode).replace(
                "$STORE", E.store(dtype, "OUT", w, E.convert("v", vtype, E.NATURAL[out.kind])))
            return K.assemble("random", ["OUT"], [], LIBS + ("philox",), body=body)

        self._run(key, code, n, [out], [], [self._key[0], self._key[1], call & 0xFFFFFFFF, call >> 32,
                                            low & 0xFFFFFFFF, span & 0xFFFFFFFF])
        return out

    def rand(self, shape, dtype):
        return self._random(shape, dtype, "uniform")

    def randn(self, shape, dtype):
        return self._random(shape, dtype, "normal")

    def randint(self, low, high, shape, dtype):
        low, high = int(low), int(high)
        if high < low:
            raise ValueError(f"randint: high ({high}) < low ({low})")
        return self._random(shape, dtype, "integer", low, high - low + 1)

    def philox_uniform(self, key, iteration, sample_ids, per_sample):
        from sukiyaki.backends.numpy.philox import _word

        k0, k1 = key
        k0, k1 = _word("key[0]", k0), _word("key[1]", k1)
        iteration = _word("iteration", iteration)
        per_sample = int(per_sample)
        n = sample_ids.shape[0]
        out = self._new((per_sample, n), _F32, zero=False)
        blocks = -(-per_sample // 4)
        if blocks * n == 0:
            return out
        ids = sample_ids if sample_ids.kind in ("i32", "u32") else self.astype(sample_ids, _I32)

        def code():
            return K.assemble("philox_uniform", ["OUT"], ["IDS"], ("philox",), body=K.source("philox_uniform"))

        self._run(("philox_uniform",), code, blocks * n, [out], [ids], [k0, k1, iteration, per_sample, n])
        return out

    # ------------------------------------------------------------------ copies and conversions
    def copy(self, x):
        out = self._new(x.shape, x.dtype, zero=False)
        if x.size:
            self.device.copy(x.buffer, x.byte_offset, out.buffer, 0, x.storage_nbytes)
        return out

    def astype(self, x, dtype):
        dtype = np.dtype(dtype)
        if x.dtype == dtype:
            return x
        nat = E.NATURAL[x.kind]
        return self._map([x], lambda i: nat, "x0", nat, dtype)

    def cast_wrap(self, x, dtype):
        dtype = np.dtype(dtype)
        nat = E.NATURAL[x.kind]
        if dtype.kind == "b":
            return self._map([x], lambda i: nat, E.convert("x0", nat, "bool"), "bool", dtype)
        if dtype == x.dtype:
            return self.copy(x)
        if dtype.kind == "f" or x.dtype.kind in "iub":
            return self._map([x], lambda i: nat, "x0", nat, dtype)
        if kind_of(dtype) == "i64":
            return self._map([x], lambda i: nat, f"f64_wrap64({E.convert('x0', nat, 'f64')})", "i64", dtype)
        wrap = "f32_wrap32(x0)" if nat == "f32" else "f64_wrap32(x0)"
        return self._map([x], lambda i: nat, wrap, "u32", dtype)

    def where(self, cond, x, y):
        dtype = np.result_type(*[v.dtype if isinstance(v, GPUArray) else v for v in (x, y)])  # numpy's rules
        ctype = E.compute_of(dtype)
        cnat = E.NATURAL[cond.kind] if isinstance(cond, GPUArray) else "bool"
        if not isinstance(cond, GPUArray):
            cond = bool(cond)
        expr = f"select(x2, x1, {E.convert('x0', cnat, 'bool')})"
        shapes = [v.shape for v in (cond, x, y) if isinstance(v, GPUArray)]
        return self._map([cond, x, y], lambda i: cnat if i == 0 else ctype, expr, ctype, dtype,
                         shape=_broadcast_shape(*shapes))

    # ------------------------------------------------------------------ reductions and products
    @staticmethod
    def _split(shape, axis):
        pre = _prod(shape[:axis])
        return pre, shape[axis], _prod(shape[axis + 1:])

    def reduce(self, op, x, axis):
        if op not in ("sum", "prod", "max", "min", "any", "all"):
            raise ValueError(f"unknown reduction {op!r}")
        if op in ("sum", "prod"):
            with np.errstate(all="ignore"):
                out_dtype = getattr(np, op)(np.zeros(1, x.dtype)).dtype
        elif op in ("any", "all"):
            out_dtype = _BOOL
        else:
            out_dtype = x.dtype
        shape = list(x.shape)
        pre, n, post = self._split(shape, axis)
        shape[axis] = 1
        out = self._new(tuple(shape), out_dtype, zero=False)
        if out.size == 0:
            return out
        ctype = "bool" if op in ("any", "all") else E.compute_of(out_dtype)
        nat = E.NATURAL[x.kind]
        key = ("reduce", op, x.kind, ctype, out_dtype.str)

        def code():
            from sukiyaki.backends.webgpu import reduce as R

            return K.assemble("reduce", ["OUT"], ["X"], LIBS, body=R.reduce_kernel(op, x.kind, nat, ctype, out_dtype))

        self._run(key, code, pre * post, [out], [x], [pre, n, post])
        return out

    def argreduce(self, op, x, axis):
        if op not in ("max", "min"):
            raise ValueError(f"unknown arg-reduction {op!r}")
        shape = list(x.shape)
        pre, n, post = self._split(shape, axis)
        shape[axis] = 1
        vals = self._new(tuple(shape), x.dtype, zero=False)
        idx = self._new(tuple(shape), _I64, zero=False)
        if vals.size == 0:
            return vals, idx
        if n == 0:
            raise ValueError("argreduce of an empty axis")
        ctype = E.compute_of(x.dtype)
        key = ("argreduce", op, x.kind, ctype, x.dtype.str)

        def code():
            from sukiyaki.backends.webgpu import reduce as R

            body = R.argreduce_kernel(op, x.kind, ctype, x.dtype)
            return K.assemble("argreduce", ["VALS", "IDX"], ["X"], LIBS, body=body)

        self._run(key, code, pre * post, [vals, idx], [x], [pre, n, post])
        return vals, idx

    def cumulative(self, op, x, axis):
        if op not in ("cumsum", "cumprod"):
            raise ValueError(f"unknown cumulative op {op!r}")
        with np.errstate(all="ignore"):
            out_dtype = getattr(np, op)(np.zeros(1, x.dtype)).dtype
        out = self._new(x.shape, out_dtype, zero=False)
        if out.size == 0:
            return out
        pre, n, post = self._split(list(x.shape), axis)
        ctype = E.compute_of(out_dtype)
        key = ("cumulative", op, x.kind, ctype, out_dtype.str)

        def code():
            from sukiyaki.backends.webgpu import reduce as R

            body = R.cumulative_kernel(op, x.kind, ctype, out_dtype)
            return K.assemble("cumulative", ["OUT"], ["X"], LIBS, body=body)

        self._run(key, code, pre * post, [out], [x], [pre, n, post])
        return out

    def matmul(self, x, y, trans_x=False, trans_y=False):
        from sukiyaki.backends.webgpu import matmul as MM

        return MM.matmul(self, x, y, trans_x, trans_y)

    # ------------------------------------------------------------------ shape
    def reshape(self, x, shape):
        shape = tuple(int(s) for s in shape)
        if -1 in shape:
            known = _prod(s for s in shape if s != -1)
            shape = tuple(x.size // known if s == -1 and known else s for s in shape)
        if _prod(shape) != x.size:
            raise ValueError(f"webgpu: cannot reshape an array of {x.size} elements to {shape}")
        return GPUArray(x.storage, x.offset, shape, x.dtype)

    def view(self, buffer, offset, shape):
        shape = tuple(int(s) for s in shape)
        offset = int(offset)
        if offset < 0 or offset + _prod(shape) > buffer.size:
            raise ValueError(f"webgpu: view of elements {offset}..{offset + _prod(shape)} of a buffer of {buffer.size}")
        return GPUArray(buffer.storage, buffer.offset + offset, shape, buffer.dtype)

    def _index_copy(self, dst, src, it_shape, src_tables, dst_tables, last_wins=False):
        from sukiyaki.backends.webgpu import indexing as IX

        IX.index_copy(self, dst, src, it_shape, src_tables, dst_tables, last_wins)

    def transpose(self, x, axes):
        axes = [int(a) for a in axes]
        shape = tuple(x.shape[a] for a in axes)
        out = self._new(shape, x.dtype, zero=False)
        st = _fstrides(x.shape)
        src = [np.arange(x.shape[a], dtype=np.int64) * st[a] for a in axes]
        dst = _dense_tables(shape)
        self._index_copy(out, x, shape, src, dst)
        return out

    def concat(self, xs, axis):
        xs = list(xs)
        dtype = np.result_type(*[x.dtype for x in xs])
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        out = self._new(tuple(shape), dtype)
        ost = _fstrides(shape)
        start = 0
        for x in xs:
            if x.size:
                src = _dense_tables(x.shape)
                dst = [(np.arange(n, dtype=np.int64) + (start if d == axis else 0)) * ost[d]
                       for d, n in enumerate(x.shape)]
                self._index_copy(out, x, x.shape, src, dst)
            start += x.shape[axis]
        return out

    def tile(self, x, reps):
        reps = tuple(int(r) for r in reps)
        nd = max(len(reps), x.ndim)
        xs = (1,) * (nd - x.ndim) + x.shape
        reps = (1,) * (nd - len(reps)) + reps
        shape = tuple(a * r for a, r in zip(xs, reps))
        out = self._new(shape, x.dtype, zero=False)
        if out.size == 0:
            return out
        st = _fstrides(xs)
        src = [(np.arange(shape[d], dtype=np.int64) % xs[d]) * st[d] for d in range(nd)]
        dst = _dense_tables(shape)
        self._index_copy(out, x, shape, src, dst)
        return out

    # ------------------------------------------------------------------ indexing
    def gather(self, x, keys):
        from sukiyaki.backends.webgpu import indexing as IX

        return IX.gather(self, x, keys)

    def scatter(self, x, keys, values):
        from sukiyaki.backends.webgpu import indexing as IX

        IX.scatter(self, x, keys, values)

    def take_linear(self, x, idx):
        from sukiyaki.backends.webgpu import indexing as IX

        return IX.take_linear(self, x, idx)

    def put_linear(self, x, idx, values):
        from sukiyaki.backends.webgpu import indexing as IX

        IX.put_linear(self, x, idx, values)

    def nonzero_linear(self, x):
        from sukiyaki.backends.webgpu import indexing as IX

        return IX.nonzero_linear(self, x)

    # ------------------------------------------------------------------ in place
    def assign_(self, x, y):
        if isinstance(y, GPUArray):
            if y.shape != x.shape:
                y_shape = _broadcast_shape(x.shape, y.shape)
                if y_shape != x.shape:
                    raise ValueError(f"assign_: {y.shape} does not fit {x.shape}")
            nat = E.NATURAL[y.kind]
            self._map([y], lambda i: nat, "x0", nat, x.dtype, out=x)
        else:
            with np.errstate(all="ignore"):
                v = np.array(y.item() if isinstance(y, np.generic) else y).astype(x.dtype)
            self._fill(x, v)

    def scale_(self, x, a):
        ctype = E.compute_of(x.dtype)
        a = x.dtype.type(a).item()
        expr, rt = E.binary_expr("mul", ctype)
        self._map(["out", a], lambda i: ctype, expr.format(a="x0", b="x1"), rt, x.dtype, out=x)

    def axpy_(self, y, a, x):
        if y.shape != x.shape:
            raise ValueError(f"axpy_: shapes differ: {y.shape} and {x.shape}")
        ctype = E.compute_of(y.dtype)
        a = y.dtype.type(a).item()
        mul, _ = E.binary_expr("mul", ctype)
        add, rt = E.binary_expr("add", ctype)
        if a == 1:
            expr = add.format(a="x0", b="x2")
        else:
            expr = add.format(a="x0", b=mul.format(a="x2", b="x1"))
        self._map(["out", a, x], lambda i: ctype, expr, rt, y.dtype, out=y)
