"""Paper Table 1 matrix tasks: sukiyaki.matrix beside numpy (and CuPy on GPU), same run.

Tasks (the paper's Table 1, then three extra lines):
  T1 add of two 1000x1000 single matrices;  T2 elementwise log of a positive 1000x1000;
  T3 1000x100 times 100x10;  T4 1000x1000 times 1000x1000;
  T5 one elementwise plus of 1x1 matrices (per-op overhead, microseconds);
  T6 one ``get`` of a scalar element;  T7 ``sum`` of a 1000x1000 along dim 1.

Method: inputs are made once, outside the timing. Each measurement is the median of R
repeats; a repeat times (time.perf_counter) a loop of n calls, n calibrated after a
warm-up so that one loop lasts at least ~20 ms. Ours and the peer's repeats are
interleaved (A B A B ...) so that the machine's noise hits both alike. On a GPU the
device is synchronized before the clock starts and before it stops. GPU backends are
measured twice: "resident" (inputs already on the device, result left there: no
transfers) and "with transfer" (inputs uploaded and the result downloaded inside the
timing, as the paper measured). Peers: numpy on the CPU, CuPy beside our cuda backend,
numpy (CPU) beside our webgpu backend (information only; no Python WebGPU peer).

Goals: ratio ours/peer <= 1.10 on T1-T4; the 1x1 plus at most 3 us above the peer's.
T6 and T7 are information. The exit status is 0 (it is a report) unless ``--check``
is given, in which case a failed goal makes it 1.

Example:
    python benchmarks/matrix_ops.py                 # full run, prints the table
    python benchmarks/matrix_ops.py --quick         # CI smoke run (seconds)
    python benchmarks/matrix_ops.py --repeats 21 --json results.json --check
"""

import argparse
import ctypes
import io
import json
import math
import operator
import os
import platform
import statistics
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: import the package beside it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import sukiyaki.matrix as M  # noqa: E402
from sukiyaki.backends import available_backends, get_backend  # noqa: E402

RATIO_GOAL = 1.10
OVERHEAD_GOAL_US = 3.0

#: Paper Table 1, node.js rows, ms: (Sushi2 CPU, Sushi2 + WebCL).
PAPER_MS = {"T1": (1.8, 4.0), "T2": (26.4, 14.0), "T3": (2.0, 3.8), "T4": (1891.0, 5.2)}

#: id -> (label, unit, goal kind: 'ratio', 'overhead' or None for information only)
TASKS = {
    "T1": ("add 1000x1000 + 1000x1000", "ms", "ratio"),
    "T2": ("log of 1000x1000", "ms", "ratio"),
    "T3": ("mtimes 1000x100 * 100x10", "ms", "ratio"),
    "T4": ("mtimes 1000x1000 * 1000x1000", "ms", "ratio"),
    "T5": ("plus 1x1 + 1x1 (per-op overhead)", "us", "overhead"),
    "T6": ("get of a scalar element", "us", None),
    "T7": ("sum 1000x1000 along dim 1", "ms", None),
}


# ---------------------------------------------------------------------------
# machine description


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _openblas_runtime():
    """(threads, core name) of the OpenBLAS numpy loaded, read through ctypes; None if unknown."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    libs = sorted({ln.split()[-1] for ln in maps.splitlines() if "openblas" in ln.lower() and ".so" in ln})
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_"), ("openblas", "")):
            fn = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if fn is None:
                continue
            fn.restype = ctypes.c_int
            core = getattr(lib, f"{prefix}_get_corename{suffix}", None)
            name = "?"
            if core is not None:
                core.restype = ctypes.c_char_p
                name = core().decode(errors="replace")
            return fn(), name
    return None


def _blas_summary():
    try:
        with redirect_stdout(io.StringIO()):
            cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        text = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
        conf = blas.get("openblas configuration")
        if conf:
            keep = [w for w in conf.split() if w.startswith("MAX_THREADS") or w in ("USE64BITINT", "DYNAMIC_ARCH")]
            text += f" ({', '.join(keep)})" if keep else ""
    except Exception:  # older numpy: parse the printed form
        buf = io.StringIO()
        with redirect_stdout(buf):
            np.show_config()
        lines = [ln.strip() for ln in buf.getvalue().splitlines() if "name" in ln or "libraries" in ln]
        text = "; ".join(lines[:2]) or "unknown"
    rt = _openblas_runtime()
    if rt is not None:
        text += f", runtime core {rt[1]}"
    return text, (rt[0] if rt else None)


def machine_info(backends):
    """A dict describing where the numbers were measured."""
    blas, blas_threads = _blas_summary()
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    info = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpus_usable": affinity,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "blas_threads": blas_threads,
        "thread_env": env,
        "backends": backends,
    }
    if "cuda" in backends:
        try:
            import cupy as cp

            props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
            name = props["name"]
            info["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
            info["cupy"] = cp.__version__
        except Exception as exc:  # pragma: no cover - GPU machines only
            info["gpu"] = f"unknown ({exc})"
    return info


# ---------------------------------------------------------------------------
# timing


def _no_sync():
    return None


def synchronizer(backend):
    """A function that waits for the backend's queued work (a no-op on the CPU)."""
    if not backend.is_gpu:
        return _no_sync
    own = getattr(backend, "synchronize", None)
    if callable(own):
        return own
    if backend.name == "cuda":
        import cupy as cp

        return cp.cuda.Device().synchronize
    # generic: read one element back; GPU queues run in order, so this waits for all queued work
    probe = backend.from_numpy(np.ones((1, 1), np.float32))

    def readback_one():
        backend.item(probe)

    return readback_one


def _loop(fn, args, n):
    if len(args) == 2:
        a, b = args
        for _ in range(n):
            fn(a, b)
    elif len(args) == 1:
        (a,) = args
        for _ in range(n):
            fn(a)
    else:
        for _ in range(n):
            fn(*args)


def time_loop(fn, args, n, sync):
    """Seconds per call of fn(*args), over a loop of n calls, device synchronized."""
    sync()
    t0 = time.perf_counter()
    _loop(fn, args, n)
    sync()
    return (time.perf_counter() - t0) / n


def calibrate(fn, args, sync, min_time, warmup=3):
    """Loop length n whose loop lasts at least min_time seconds (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn(*args)
    sync()
    n = 1
    while True:
        per = time_loop(fn, args, n, sync)
        if per * n >= min_time:
            return n
        n = max(n + 1, min(n * 100, math.ceil(1.2 * min_time / max(per, 1e-9))))


def measure_pair(ours, peer, repeats, min_time, warmup=3):
    """Interleaved (ours, peer, ours, peer...) repeats; lists of seconds per call."""
    fa, aa, sa = ours
    fb, ab, sb = peer
    na = calibrate(fa, aa, sa, min_time, warmup)
    nb = calibrate(fb, ab, sb, min_time, warmup)
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(time_loop(fa, aa, na, sa))
        tb.append(time_loop(fb, ab, nb, sb))
    return ta, tb, na, nb


# ---------------------------------------------------------------------------
# the tasks, per backend and mode


def make_inputs(peer_order="C"):
    """CPU inputs, made once: our matrices and numpy copies of the same values.

    ``peer_order`` 'C' gives numpy its natural row-major layout; 'F' the same
    column-major memory as ours (isolates our front end's overhead from layout effects).
    """
    M.rng(0)
    ours = {
        "A": M.rand(1000, 1000), "B": M.rand(1000, 1000), "P": M.rand(1000, 1000) + 0.5,
        "C": M.rand(1000, 100), "D": M.rand(100, 10), "E": M.rand(1000, 1000),
        "x": M.rand(1, 1), "y": M.rand(1, 1),
    }
    order = np.ascontiguousarray if peer_order == "C" else np.asfortranarray
    peer = {k: order(v.to_numpy()).copy(order="K") for k, v in ours.items()}
    for k, v in peer.items():
        assert v.dtype == np.float32 and v.shape == ours[k].shape, k
    return ours, peer


_GET_IJ = (500, 321)  # 1-based (MATLAB) subscripts of the element read by T6


def _get_np(a, ij=(_GET_IJ[0] - 1, _GET_IJ[1] - 1)):
    return a[ij]


def _sum1_np(a):
    return a.sum(axis=0, keepdims=True)


def _sum1_ours(A):
    return M.sum(A, 1)


def _get_ours(A):
    return A.get(*_GET_IJ)


def cpu_cases(ours, peer):
    """{task: ((fn, args), (fn, args))} for ours on numpy beside numpy."""
    o, p = ours, peer
    return {
        "T1": ((operator.add, (o["A"], o["B"])), (operator.add, (p["A"], p["B"]))),
        "T2": ((M.log, (o["P"],)), (np.log, (p["P"],))),
        "T3": ((operator.matmul, (o["C"], o["D"])), (operator.matmul, (p["C"], p["D"]))),
        "T4": ((operator.matmul, (o["A"], o["E"])), (operator.matmul, (p["A"], p["E"]))),
        "T5": ((operator.add, (o["x"], o["y"])), (operator.add, (p["x"], p["y"]))),
        "T6": ((_get_ours, (o["A"],)), (_get_np, (p["A"],))),
        "T7": ((_sum1_ours, (o["A"],)), (_sum1_np, (p["A"],))),
    }


def gpu_cases(name, ours, peer_np, xp, transfer):
    """Cases for our GPU backend ``name`` beside ``xp`` (cupy, or numpy for webgpu).

    With ``transfer``, each call uploads its inputs and downloads its result (T6 reads
    one element of a resident matrix back to the host, which is its transfer).
    """
    dev = {k: M.gpuArray(v, name) for k, v in ours.items()}
    on_gpu = xp is not np
    pdev = {k: xp.asarray(v) for k, v in peer_np.items()} if on_gpu else peer_np
    up = (lambda X: M.gpuArray(X, name))
    down = M.gather
    to_host = (xp.asnumpy if on_gpu else np.asarray)
    to_dev = (xp.asarray if on_gpu else np.asarray)
    p = pdev
    if not transfer:
        return {
            "T1": ((operator.add, (dev["A"], dev["B"])), (operator.add, (p["A"], p["B"]))),
            "T2": ((M.log, (dev["P"],)), (xp.log, (p["P"],))),
            "T3": ((operator.matmul, (dev["C"], dev["D"])), (operator.matmul, (p["C"], p["D"]))),
            "T4": ((operator.matmul, (dev["A"], dev["E"])), (operator.matmul, (p["A"], p["E"]))),
            "T5": ((operator.add, (dev["x"], dev["y"])), (operator.add, (p["x"], p["y"]))),
            "T6": ((_get_ours, (dev["A"],)), (_get_np, (p["A"],))),
            "T7": ((_sum1_ours, (dev["A"],)), (_sum1_np, (p["A"],))),
        }
    o, h = ours, peer_np  # host-side inputs

    def ours2(op):
        return lambda X, Y: down(op(up(X), up(Y)))

    def peer2(op):
        return lambda x, y: to_host(op(to_dev(x), to_dev(y)))

    return {
        "T1": ((ours2(operator.add), (o["A"], o["B"])), (peer2(operator.add), (h["A"], h["B"]))),
        "T2": ((lambda X: down(M.log(up(X))), (o["P"],)), (lambda x: to_host(xp.log(to_dev(x))), (h["P"],))),
        "T3": ((ours2(operator.matmul), (o["C"], o["D"])), (peer2(operator.matmul), (h["C"], h["D"]))),
        "T4": ((ours2(operator.matmul), (o["A"], o["E"])), (peer2(operator.matmul), (h["A"], h["E"]))),
        "T5": ((ours2(operator.add), (o["x"], o["y"])), (peer2(operator.add), (h["x"], h["y"]))),
        "T6": ((lambda X: _get_ours(X).item(), (dev["A"],)), (lambda a: _get_np(a).item(), (p["A"],))),
        "T7": ((lambda X: down(_sum1_ours(up(X))), (o["A"],)),
               (lambda x: to_host(to_dev(x).sum(axis=0, keepdims=True)), (h["A"],))),
    }


def configurations(backends, ours, peer):
    """(backend, mode, peer name, goals apply, sync ours, sync peer, cases) per measured setup."""
    cpu = get_backend("numpy")
    out = [("numpy", "cpu", "numpy", True, synchronizer(cpu), _no_sync, lambda: cpu_cases(ours, peer))]
    if "cuda" in backends:
        try:
            import cupy as cp
        except ImportError:
            cp = None
        if cp is not None:
            s_ours = synchronizer(get_backend("cuda"))
            s_peer = cp.cuda.Device().synchronize
            for mode, tr in (("resident", False), ("with transfer", True)):
                out.append(("cuda", mode, "CuPy", True, s_ours, s_peer,
                            (lambda tr=tr: gpu_cases("cuda", ours, peer, cp, tr))))
    if "webgpu" in backends:
        s_ours = synchronizer(get_backend("webgpu"))
        for mode, tr in (("resident", False), ("with transfer", True)):
            out.append(("webgpu", mode, "numpy (CPU)", False, s_ours, _no_sync,
                        (lambda tr=tr: gpu_cases("webgpu", ours, peer, np, tr))))
    return out


# ---------------------------------------------------------------------------
# report


def judge(task, goals, ratio, overhead_s):
    """(goal text, 'PASS'/'FAIL'/'info') from the paired ratio and the paired time difference."""
    kind = TASKS[task][2] if goals else None
    if kind == "ratio":
        return f"ratio <= {RATIO_GOAL:.2f}", ("PASS" if ratio <= RATIO_GOAL else "FAIL")
    if kind == "overhead":
        d = overhead_s * 1e6
        return f"+{d:.2f} us <= +{OVERHEAD_GOAL_US:g} us", ("PASS" if d <= OVERHEAD_GOAL_US else "FAIL")
    return "-", "info"


def _fmt(seconds, unit):
    if unit == "us":
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e3:.3f} ms"


def _paper(task):
    if task not in PAPER_MS:
        return "-", "-"
    cpu, gpu = PAPER_MS[task]
    return f"{cpu:g} ms", f"{gpu:g} ms"


def run(args):
    backends = available_backends(include_test=False)
    if args.backends:
        wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
        backends = [b for b in backends if b in wanted or b == "numpy"]
    info = machine_info(backends)
    info["peer_order"] = args.peer_order
    repeats = args.repeats or (3 if args.quick else 15)
    min_time = args.min_time if args.min_time is not None else (0.002 if args.quick else 0.02)
    ours, peer = make_inputs(args.peer_order)
    warmup = 1 if args.quick else 3
    rows = []
    for be_name, mode, peer_name, goals, s_ours, s_peer, build in configurations(backends, ours, peer):
        cases = build()
        for task, ((fa, aa), (fb, ab)) in cases.items():
            ta, tb, na, nb = measure_pair((fa, aa, s_ours), (fb, ab, s_peer), repeats, min_time, warmup)
            mo, mp = statistics.median(ta), statistics.median(tb)
            # each repeat of ours is paired with the peer's repeat measured right after it, so
            # the median of the paired ratios is robust to the machine's load drifting
            paired = sorted(a / b for a, b in zip(ta, tb))
            q = statistics.quantiles(paired, n=4) if len(paired) >= 2 else [paired[0]] * 3
            ratio = statistics.median(paired)
            overhead = statistics.median(a - b for a, b in zip(ta, tb))
            goal, verdict = judge(task, goals, ratio, overhead)
            rows.append({
                "task": task, "label": TASKS[task][0], "unit": TASKS[task][1],
                "backend": be_name, "mode": mode, "peer": peer_name,
                "ours_s": mo, "peer_s": mp, "ratio": ratio, "ratio_of_medians": mo / mp,
                "paired_ratio_q1": q[0], "paired_ratio_q3": q[2],
                "overhead_us": overhead * 1e6,
                "ours_all_s": ta, "peer_all_s": tb, "loop_ours": na, "loop_peer": nb,
                "goal": goal, "result": verdict,
                "paper_sushi2_cpu_ms": PAPER_MS.get(task, (None, None))[0],
                "paper_sushi2_webcl_ms": PAPER_MS.get(task, (None, None))[1],
            })
            if args.verbose:
                print(f"  measured {be_name}/{mode} {task}", file=sys.stderr)
    return info, rows, repeats, min_time


def print_report(info, rows, repeats, min_time):
    print("sukiyaki benchmarks/matrix_ops.py: the paper's Table 1 tasks, ours beside the peer, same run")
    print(f"method: median of {repeats} interleaved repeats (ours, peer, ours, peer...), each a loop "
          f"of >= {min_time * 1e3:g} ms timed with time.perf_counter after a warm-up; inputs made once")
    print(f"machine: {info['cpu']}; {info['logical_cpus']} logical CPUs ({info['cpus_usable']} usable); "
          f"Python {info['python']}; numpy {info['numpy']}")
    thr = info["blas_threads"] if info["blas_threads"] is not None else "unknown"
    env = ", ".join(f"{k}={v}" for k, v in info["thread_env"].items()) or "no thread env vars set"
    print(f"BLAS: {info['blas']}; BLAS threads {thr} ({env})")
    if "gpu" in info:
        print(f"GPU: {info['gpu']}; CuPy {info.get('cupy', '?')}")
    print(f"backends measured: {', '.join(info['backends'])}; numpy peer arrays in {info['peer_order']} order "
          f"(ours are column-major)")
    print("transfers: cpu rows have none; GPU 'resident' rows exclude them (inputs on the device, result "
          "left there, device synchronized before the clock stops); GPU 'with transfer' rows include "
          "upload of the inputs and download of the result (as the paper did)")
    head = ("task", "backend/mode", "ours", "peer", "ratio", "ratio IQR", "goal", "result",
            "Sushi2 CPU", "Sushi2+WebCL")
    table = []
    for r in rows:
        cpu, gpu = _paper(r["task"])
        table.append((
            f"{r['task']} {r['label']}", f"{r['backend']}/{r['mode']} vs {r['peer']}",
            _fmt(r["ours_s"], r["unit"]), _fmt(r["peer_s"], r["unit"]),
            f"{r['ratio']:.3f}", f"{r['paired_ratio_q1']:.2f}-{r['paired_ratio_q3']:.2f}",
            r["goal"], r["result"], cpu, gpu,
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    print()
    print(line)
    print("-" * len(line))
    for t in table:
        print("  ".join(str(x).ljust(w) for x, w in zip(t, widths)))
    print()
    print("ours, peer = median time per call; ratio = median of the per-repeat paired ratios ours/peer "
          "(ratio IQR: their quartiles); the 1x1 goal uses the median paired difference; "
          "paper columns: Table 1, node.js rows (AMD FirePro S9170 / Core i7-5930K), for context only")
    failed = [r for r in rows if r["result"] == "FAIL"]
    print(f"goals: {sum(r['result'] == 'PASS' for r in rows)} passed, {len(failed)} failed"
          + (": " + ", ".join(f"{r['task']} ({r['backend']}/{r['mode']})" for r in failed) if failed else ""))
    return failed


def main(argv=None):
    """Run the benchmark; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=None, help="repeats per measurement (default 15; 3 with --quick)")
    ap.add_argument("--quick", action="store_true", help="CI smoke run: few repeats, short loops")
    ap.add_argument("--min-time", type=float, default=None,
                    help="seconds one timed loop must last at least (default 0.02; 0.002 with --quick)")
    ap.add_argument("--backends", metavar="LIST",
                    help="comma list of backends to measure among those available (numpy always; default all)")
    ap.add_argument("--peer-order", choices=("C", "F"), default="C",
                    help="numpy peer's memory layout: C (numpy's natural, default) or F (the same as ours)")
    ap.add_argument("--json", metavar="PATH", help="also write the machine and every measurement as JSON")
    ap.add_argument("--check", action="store_true", help="exit 1 when a goal fails")
    ap.add_argument("--verbose", action="store_true", help="progress on stderr")
    args = ap.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")
    info, rows, repeats, min_time = run(args)
    failed = print_report(info, rows, repeats, min_time)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": info, "repeats": repeats, "min_time_s": min_time, "quick": args.quick,
             "goals": {"ratio_max": RATIO_GOAL, "overhead_us_max": OVERHEAD_GOAL_US}, "rows": rows},
            indent=1))
        print(f"wrote {args.json}")
    return 1 if (args.check and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
