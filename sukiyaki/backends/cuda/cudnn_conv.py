"""2-d convolutions through cuDNN's graph API (the ``nvidia-cudnn-frontend`` package).

One cuDNN graph per (direction, spec, batch size, dtype), validated, planned and built
the first time it is needed, then executed on CuPy arrays. With ``autotune`` (the default)
every engine cuDNN's heuristics offer is built and timed on the first call, and the
fastest kept, as PyTorch's ``cudnn.benchmark``; ``deterministic`` keeps only engines that
give the same bits on every run (no atomics), for exact resume. Our blobs are (h, w, c, n)
column-major: cuDNN sees packed NCHW tensors whose "H" is our w and whose "W" is our h,
so kernel, stride and padding are given w first. Every output's dims and strides are
set explicitly (left to inference, fprop was seen to give wrong numbers).

With a ``Staging`` (sukiyaki.backends.cuda.staging) that is active, operands are staged
before each product, in bfloat16 and/or channels-last (NHWC strides; what cuDNN's tensor-core
engines want), with float32 sums; results come back as float32 blobs, the convolution's bias
added on the way.
"""

import numpy as np

from sukiyaki.backends.cuda.staging import Staging

_F32 = np.dtype(np.float32)
_UIDS = (1, 2, 3)  # the uids of every graph's two operands and its output


def _packed(dims):
    """Strides of a packed row-major tensor of these dims."""
    strides, s = [], 1
    for d in reversed(dims):
        strides.append(s)
        s *= d
    return list(reversed(strides))


def _channels_last(dims):
    """Strides of an (n, c, a, b) tensor stored channels-last: c fastest, then b, a, n."""
    n, c, a, b = dims
    return [c * a * b, 1, c * b, c]


def _aligned(cp, x):
    """x as a packed array on a 16-byte boundary, as cuDNN requires (a copy only when it is not)."""
    x = cp.asfortranarray(x)
    return x if x.data.ptr % 16 == 0 else x.copy(order="F")


class CudnnConv:
    """Memoized cuDNN convolution graphs on the current CuPy stream."""

    def __init__(self, deterministic=False, autotune=True, precision="fp32", heuristics=("A", "FALLBACK"),
                 staging=None):
        try:
            import cudnn
        except ImportError as exc:
            raise RuntimeError(f"backend 'cuda': convolutions need cuDNN's Python frontend ({exc}); install it "
                               f"with: pip install 'sukiyaki[cuda]' (nvidia-cudnn-frontend)") from None
        import cupy as cp

        self.cudnn = cudnn
        self.cp = cp
        self.handle = cudnn.create_handle()
        self._workspace = cp.empty(1, dtype=np.uint8)
        self.fallbacks = []  # graphs built without the deterministic, full-precision filter, and why
        self.deterministic, self.autotune, self.precision = bool(deterministic), bool(autotune), precision
        self.staging = staging or Staging()
        self.staged = self.staging.active  # operands staged (bf16 and/or channels-last) around each product
        self.heuristics = [getattr(cudnn.heur_mode, h) for h in heuristics]  # where the candidate engines come from
        self._graphs = {}  # (kind, spec, n) -> the built graph and its tensors
        self.tuned = {}  # (kind, spec, n) -> (plan name, milliseconds, plans tried) of autotuning

    def _dims(self, spec, n):
        h, w, c = spec.in_shape
        oh, ow, o = spec.out_shape
        kh, kw = spec.ksize
        x = [n, c, w, h]
        wt = [o, c // spec.group, kw, kh]
        y = [n, o, ow, oh]
        conv = dict(padding=[spec.pad[1], spec.pad[0]], stride=[spec.stride[1], spec.stride[0]], dilation=[1, 1])
        return x, wt, y, conv

    def _graph(self, kind, spec, n):
        """The built graph: engines that pass the filter (_strict_notes) when cuDNN has one, else any."""
        key = (kind, spec, n)
        graph = self._graphs.get(key)
        if graph is None:
            try:
                graph = self._build(kind, spec, n, strict=True)
            except Exception as exc:  # no engine left after the filter (cuDNN's errors have several types)
                self.fallbacks.append(f"{kind} {spec.in_shape}->{spec.out_shape} n={n}: {type(exc).__name__}: {exc}")
                graph = self._build(kind, spec, n, strict=False)
            self._graphs[key] = graph
        return graph

    def _strict_notes(self):
        """Numerical notes we refuse: reduced precision in fp32, nondeterministic engines when
        deterministic. Winograd and FFT engines stay: within float32 tolerance, as in PyTorch."""
        enum = getattr(self.cudnn, "numerical_note", None)
        names = {"fp32": ("REDUCED_PRECISION_REDUCTION", "DOWN_CONVERT_INPUTS"),  # float32 throughout
                 "bf16": ("REDUCED_PRECISION_REDUCTION",)}.get(self.precision, ())  # float32 sums of bf16 products
        names += ("NONDETERMINISTIC",) if self.deterministic else ()
        return [getattr(enum, n) for n in names if enum is not None and hasattr(enum, n)]

    def _build(self, kind, spec, n, strict):
        cudnn = self.cudnn
        xd, wd, yd, conv = self._dims(spec, n)
        dt = cudnn.data_type.BFLOAT16 if self.staging.bf16 else cudnn.data_type.FLOAT
        strides = _channels_last if self.staging.channels_last else _packed
        g = cudnn.pygraph(io_data_type=dt, intermediate_data_type=cudnn.data_type.FLOAT,
                          compute_data_type=cudnn.data_type.FLOAT, handle=self.handle)
        first, second, od = {"fprop": (("x", xd), ("w", wd), yd), "dgrad": (("dy", yd), ("w", wd), xd),
                             "wgrad": (("x", xd), ("dy", yd), wd)}[kind]
        a, b = (g.tensor(name=name, dim=d, stride=strides(d), data_type=dt, uid=uid)
                for (name, d), uid in zip((first, second), _UIDS))
        if kind == "fprop":
            out = g.conv_fprop(image=a, weight=b, compute_data_type=cudnn.data_type.FLOAT, **conv)
        elif kind == "dgrad":
            out = g.conv_dgrad(loss=a, filter=b, compute_data_type=cudnn.data_type.FLOAT, **conv)
        else:
            out = g.conv_wgrad(image=a, loss=b, compute_data_type=cudnn.data_type.FLOAT, **conv)
        out.set_uid(_UIDS[2]).set_output(True).set_dim(od).set_stride(strides(od)).set_data_type(dt)
        g.validate()
        g.build_operation_graph()
        g.create_execution_plans(self.heuristics)
        if strict:  # the same bits on every run (exact resume), and float32 accuracy
            g.deselect_numeric_notes(self._strict_notes())
        g.check_support()
        if not self.autotune:
            g.build_plans()
            return g, a, b, out, max(1, int(g.get_workspace_size()))
        g.build_plans(cudnn.build_plan_policy.ALL)
        dims = {"fprop": (xd, wd, yd), "dgrad": (yd, wd, xd), "wgrad": (xd, yd, wd)}[kind]
        best = self._fastest(g, (a, b, out), dims, kind, spec, n)
        g.build_plan_at_index(best)
        return g, a, b, out, max(1, int(g.get_workspace_size()))

    def _fastest(self, g, tensors, dims, kind, spec, n):
        """Index of the fastest plan that runs (each timed on random operands: one warm-up, best of 3)."""
        cp = self.cp
        pack = {t: cp.random.standard_normal(int(np.prod(d)), dtype=_F32) for t, d in zip(tensors, dims)}
        if self.staging.bf16:  # the same values' upper halves: bfloat16 bit patterns
            pack = {t: (v.view(np.uint32) >> 16).astype(np.uint16) for t, v in pack.items()}
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        stream = cp.cuda.get_current_stream()
        self.cudnn.set_stream(handle=self.handle, stream=stream.ptr)
        best, best_ms, ws = None, float("inf"), None
        for i in range(g.get_execution_plan_count()):
            try:
                ws = cp.empty(max(1, int(g.get_workspace_size_plan_at_index(i))), dtype=np.uint8)
                g.execute_plan_at_index(pack, ws, index=i, handle=self.handle)
                times = []
                for _ in range(3):
                    start.record(stream)
                    g.execute_plan_at_index(pack, ws, index=i, handle=self.handle)
                    stop.record(stream)
                    stop.synchronize()
                    times.append(cp.cuda.get_elapsed_time(start, stop))
            except Exception:  # a plan that did not build or does not run here: the next one
                continue
            if min(times) < best_ms:
                best, best_ms = i, min(times)
        del pack, ws
        cp.get_default_memory_pool().free_all_blocks()  # the trial operands and workspaces go back to the device
        if best is None:
            raise RuntimeError(f"cuDNN: no {kind} plan runs for {spec.in_shape}->{spec.out_shape} n={n}")
        try:
            name = g.get_plan_name_at_index(best)
        except Exception:  # names are informative only
            name = str(best)
        self.tuned[(kind, spec, n)] = (name, best_ms, g.get_execution_plan_count())
        return best

    def _run(self, kind, spec, n, first, second, out_shape):
        """The product's result: a float32 blob of out_shape, or, staged, a flat staged array."""
        cp = self.cp
        g, a, b, out, ws = self._graph(kind, spec, n)
        if self._workspace.size < ws:
            self._workspace = cp.empty(ws, dtype=np.uint8)
        if self.staged:
            result = cp.empty(int(np.prod(out_shape)), dtype=self.staging.dtype)
        else:
            result = cp.empty(out_shape, dtype=_F32, order="F")
        self.cudnn.set_stream(handle=self.handle, stream=cp.cuda.get_current_stream().ptr)
        # operands in uid order: the frontend's ordered path (no per-call Python dict binding)
        g.execute((_aligned(cp, first), _aligned(cp, second), result), self._workspace, handle=self.handle,
                  tensor_uids=_UIDS)
        return result

    @staticmethod
    def _scn(spec, n):
        """(S, C, N) of x, w and y as the staging sees them."""
        h, w, c = spec.in_shape
        oh, ow, o = spec.out_shape
        kh, kw = spec.ksize
        return (h * w, c, n), (kh * kw, c // spec.group, o), (oh * ow, o, n)

    def forward(self, x, w, spec, n, bias=None):
        """y (h', w', out, n) of x (h, w, c, n) and w (kh, kw, c/g, out); plus bias where staged
        (else the caller adds it)."""
        shape = tuple(spec.out_shape) + (n,)
        if not self.staged:
            return self._run("fprop", spec, n, x, w, shape)
        xs, ws, ys = self._scn(spec, n)
        st = self.staging
        y = self._run("fprop", spec, n, st.stage(x, *xs), st.stage(w, *ws), shape)
        return st.unstage(y, shape, *ys, bias=bias)

    def backward(self, x, w, dy, spec, n, need_dx=True, need_dw=True):
        """(dx, dw), each None where not needed; staged operands are staged once for both."""
        if not self.staged:
            return (self.backward_data(dy, w, spec, n) if need_dx else None,
                    self.backward_filter(x, dy, spec, n) if need_dw else None)
        xs, ws, ys = self._scn(spec, n)
        st = self.staging
        dys = st.stage(dy, *ys)
        dx = dw = None
        if need_dx:
            shape = tuple(spec.in_shape) + (n,)
            dx = st.unstage(self._run("dgrad", spec, n, dys, st.stage(w, *ws), shape), shape, *xs)
        if need_dw:
            dw = st.unstage(self._run("wgrad", spec, n, st.stage(x, *xs), dys, spec.weight_shape),
                            spec.weight_shape, *ws)
        return dx, dw

    def backward_data(self, dy, w, spec, n):
        """dx (h, w, c, n)."""
        if self.staged:
            return self.backward(None, w, dy, spec, n, need_dw=False)[0]
        return self._run("dgrad", spec, n, dy, w, tuple(spec.in_shape) + (n,))

    def backward_filter(self, x, dy, spec, n):
        """dw (kh, kw, c/g, out)."""
        if self.staged:
            return self.backward(x, None, dy, spec, n, need_dx=False)[1]
        return self._run("wgrad", spec, n, x, dy, spec.weight_shape)
