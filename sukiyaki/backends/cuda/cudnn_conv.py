"""2-d convolutions through cuDNN's graph API (the ``nvidia-cudnn-frontend`` package).

One cuDNN graph per (direction, spec, batch size, dtype), validated, planned and built
the first time it is needed, then executed on CuPy arrays. With ``autotune`` (the default)
every engine cuDNN's heuristics offer is built and timed on the first call, and the
fastest kept, as PyTorch's ``cudnn.benchmark``; ``deterministic`` keeps only engines that
give the same bits on every run (no atomics), for exact resume. Our blobs are (h, w, c, n)
column-major: cuDNN sees packed NCHW tensors whose "H" is our w and whose "W" is our h,
so kernel, stride and padding are given w first. Every output's dims and strides are
set explicitly (left to inference, fprop was seen to give wrong numbers).
"""

import numpy as np

_F32 = np.dtype(np.float32)
_UIDS = (1, 2, 3)  # the uids of every graph's two operands and its output


def _packed(dims):
    """Strides of a packed row-major tensor of these dims."""
    strides, s = [], 1
    for d in reversed(dims):
        strides.append(s)
        s *= d
    return list(reversed(strides))


def _aligned(cp, x):
    """x as a packed array on a 16-byte boundary, as cuDNN requires (a copy only when it is not)."""
    x = cp.asfortranarray(x)
    return x if x.data.ptr % 16 == 0 else x.copy(order="F")


class CudnnConv:
    """Memoized cuDNN convolution graphs on the current CuPy stream."""

    def __init__(self, deterministic=False, autotune=True, precision="fp32", heuristics=("A", "FALLBACK")):
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
        names = ("REDUCED_PRECISION_REDUCTION", "DOWN_CONVERT_INPUTS") if self.precision == "fp32" else ()
        names += ("NONDETERMINISTIC",) if self.deterministic else ()
        return [getattr(enum, n) for n in names if enum is not None and hasattr(enum, n)]

    def _build(self, kind, spec, n, strict):
        cudnn = self.cudnn
        xd, wd, yd, conv = self._dims(spec, n)
        g = cudnn.pygraph(io_data_type=cudnn.data_type.FLOAT, intermediate_data_type=cudnn.data_type.FLOAT,
                          compute_data_type=cudnn.data_type.FLOAT, handle=self.handle)
        if kind == "fprop":
            a = g.tensor(name="x", dim=xd, stride=_packed(xd), data_type=cudnn.data_type.FLOAT, uid=_UIDS[0])
            b = g.tensor(name="w", dim=wd, stride=_packed(wd), data_type=cudnn.data_type.FLOAT, uid=_UIDS[1])
            out = g.conv_fprop(image=a, weight=b, compute_data_type=cudnn.data_type.FLOAT, **conv)
            od = yd
        elif kind == "dgrad":
            a = g.tensor(name="dy", dim=yd, stride=_packed(yd), data_type=cudnn.data_type.FLOAT, uid=_UIDS[0])
            b = g.tensor(name="w", dim=wd, stride=_packed(wd), data_type=cudnn.data_type.FLOAT, uid=_UIDS[1])
            out = g.conv_dgrad(loss=a, filter=b, compute_data_type=cudnn.data_type.FLOAT, **conv)
            od = xd
        else:
            a = g.tensor(name="x", dim=xd, stride=_packed(xd), data_type=cudnn.data_type.FLOAT, uid=_UIDS[0])
            b = g.tensor(name="dy", dim=yd, stride=_packed(yd), data_type=cudnn.data_type.FLOAT, uid=_UIDS[1])
            out = g.conv_wgrad(image=a, loss=b, compute_data_type=cudnn.data_type.FLOAT, **conv)
            od = wd
        out.set_uid(_UIDS[2]).set_output(True).set_dim(od).set_stride(_packed(od))
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
        cp = self.cp
        g, a, b, out, ws = self._graph(kind, spec, n)
        if self._workspace.size < ws:
            self._workspace = cp.empty(ws, dtype=np.uint8)
        result = cp.empty(out_shape, dtype=_F32, order="F")
        self.cudnn.set_stream(handle=self.handle, stream=cp.cuda.get_current_stream().ptr)
        # operands in uid order: the frontend's ordered path (no per-call Python dict binding)
        g.execute((_aligned(cp, first), _aligned(cp, second), result), self._workspace, handle=self.handle,
                  tensor_uids=_UIDS)
        return result

    def forward(self, x, w, spec, n):
        """y (h', w', out, n) of x (h, w, c, n) and w (kh, kw, c/g, out)."""
        return self._run("fprop", spec, n, x, w, tuple(spec.out_shape) + (n,))

    def backward_data(self, dy, w, spec, n):
        """dx (h, w, c, n)."""
        return self._run("dgrad", spec, n, dy, w, tuple(spec.in_shape) + (n,))

    def backward_filter(self, x, dy, spec, n):
        """dw (kh, kw, c/g, out)."""
        return self._run("wgrad", spec, n, x, dy, spec.weight_shape)
