"""WebGPU natively (the ``wgpu`` package over the GPU's Vulkan driver) beside our CUDA backend
on the same GPU, same run: the float32 matrix product of two n x n matrices (TF32 off) and
LeNet / VGG16 training images per second (momentum SGD, fp32).

Goals (issue 8, on the lent H200): the 4096-cube product >= 50% of the CUDA backend's rate;
VGG16 fp32 training >= 30% of the CUDA backend's images/s. Each figure is the median of
--repeats timed runs, each device synchronised at both ends (WebGPU: one value read back).

The matrix product is also measured with each float32 kernel of the webgpu backend forced
(``--kernels``: simple, t64, t128, t128k16, t64s, t128s, and the candidates db128, db128x64, db64,
db128k16; see sukiyaki/backends/webgpu/matmul.py and matmul_db.py), beside the rule's own choice
(auto), so a run shows which one wins on that GPU; a candidate named ``NAME:checked`` runs its
bounds-checked variant even where the fast one fits (what a size off its tiles gets).
``--profile`` times each kernel of one training step of the named nets: by GPU timestamps where
the device has the 'timestamp-query' feature and ``SUKIYAKI_WEBGPU_TIMESTAMPS=1`` asks for it
(each dispatch in a compute pass of its own; totals per pipeline key, then the slowest
dispatches with their workgroup grids), else each dispatch alone with the device synchronised
after it (slower than the real step, but it shows where the time goes; the cost of one such
synchronisation is measured and taken off). ``--submit-every 64,32``: the training rows again
with the device submitting its commands every that many. ``--micro`` times the elementwise and lowering
kernels alone (``--digest``: with a hash of each result, to check a kernel change is bit-equal).

Usage (on the GPU machine; Vulkan's loader as tools/gpu_run.sh's notes say):
    python benchmarks/webgpu_native.py --size 4096 --nets lenet,vgg16 --vgg-batch 64
    python benchmarks/webgpu_native.py --quick     # 4096 product per kernel, LeNet, VGG16 b32, profiles
    python benchmarks/webgpu_native.py --nets '' --repeats 3   # the 4096 product per kernel alone
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")  # the CUDA side in plain fp32 (before CuPy starts)

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from matrix_ops import synchronizer  # noqa: E402


#: The float32 matmul kernels measured forced by default (--kernels).
KERNELS = "simple,t64,t128,t128k16,t64s,t128s,db128,db128x64,db64,db128k16,db128:checked"


def median_rate(fn, sync, work, repeats, min_seconds=0.3):
    """work per second of fn: after a warm-up, the median of repeats loops of >= min_seconds."""
    fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    once = max(time.perf_counter() - t0, 1e-6)
    n = max(1, int(min_seconds / once))
    rates = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        rates.append(work * n / (time.perf_counter() - t0))
    return statistics.median(rates)


def matmul_tflops(device, n, repeats, kernel=None):
    """TFLOP/s of the n-cube float32 product on device (kernel: the webgpu kernel forced)."""
    from sukiyaki.backends import get_backend

    backend = get_backend(device)
    rng = np.random.default_rng(0)
    a = backend.from_numpy(np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32)))
    b = backend.from_numpy(np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32)))
    if kernel is None:
        return median_rate(lambda: backend.matmul(a, b), synchronizer(backend), 2 * n ** 3, repeats) / 1e12
    from sukiyaki.backends.webgpu import matmul as MM
    from sukiyaki.backends.webgpu import matmul_db as DB

    kernel, _, how = kernel.partition(":")
    if how not in ("", "checked"):
        raise ValueError(f"kernel {kernel}:{how}: the only suffix is ':checked'")
    before, MM.KERNEL = MM.KERNEL, kernel
    fast, DB.FAST = DB.FAST, DB.FAST and how != "checked"
    try:
        out = backend.to_numpy(backend.matmul(a, b))
        ref = backend.to_numpy(a) @ backend.to_numpy(b)
        err = float(np.abs(out - ref).max() / np.abs(ref).max())
        if err > 1e-4:
            raise AssertionError(f"kernel {kernel}: relative error {err:.2e}")
        return median_rate(lambda: backend.matmul(a, b), synchronizer(backend), 2 * n ** 3, repeats) / 1e12
    finally:
        MM.KERNEL = before
        DB.FAST = fast


def make_net(device, net_name, batch):
    """(net, step function) of momentum-SGD training of net_name at batch on device."""
    from sukiyaki.nn import Net
    from sukiyaki.nn.netdef import read_netdef
    from sukiyaki.nn.optim import get_optimizer

    nets = HERE.parent / "sukiyaki" / "nets"
    rng = np.random.default_rng(0)
    if net_name == "lenet":
        net = Net(nets / "lenet.json", device=device)
        n = 8000
    else:
        images = np.asfortranarray(rng.integers(0, 256, (256, 256, 3, batch), dtype=np.uint8))
        labels = rng.integers(0, 1000, batch)
        defs = nets / f"{net_name}.json"
        data = [d["name"] for d in read_netdef(defs) if d["type"].endswith("_data")]
        net = Net(defs, device=device, data_sources={d: (images, labels) for d in data})
        n = batch
    opt = get_optimizer("momentum_sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        net.zero_grads()
        net.train_batch({"batch": rng.integers(0, n, batch)})
        opt.apply(net.store)

    return net, step


def micro(repeats, digest=False):
    """Medians (ms) of the elementwise and lowering kernels alone on this machine's webgpu
    device: 4M-element add / relu / relu' / mul, a per-channel bias added in place, and
    im2col / col2im of a 56x56x128x8 input (3x3, pad 1); digest: print each result's hash
    (a change of kernel must leave them bit-equal)."""
    import hashlib
    from types import SimpleNamespace

    from sukiyaki.backends import get_backend

    be = get_backend("webgpu")
    sync = synchronizer(be)
    rng = np.random.default_rng(0)
    n = 1 << 22
    a = be.from_numpy(rng.standard_normal(n).astype(np.float32))
    b = be.from_numpy(rng.standard_normal(n).astype(np.float32))
    y = be.from_numpy(rng.standard_normal((56, 56, 128, 8)).astype(np.float32, order="F"))
    bias = be.from_numpy(rng.standard_normal((1, 1, 128, 1)).astype(np.float32))
    spec = SimpleNamespace(in_shape=(56, 56, 128), out_shape=(56, 56, 128), ksize=(3, 3), group=1,
                           stride=(1, 1), pad=(1, 1))
    x = be.from_numpy(rng.standard_normal((56, 56, 128, 8)).astype(np.float32))
    dcols = be.from_numpy(rng.standard_normal(56 * 56 * 9 * 128 * 8).astype(np.float32))
    dx = be._new((56, 56, 128, 8), np.float32)
    params = [56, 56, 128, 56, 56, 3, 3, 1, 1, 1, 1, 0]

    def col2im():
        be.nn._run("col2im", "col2im", [("DX", dx)], [("DCOLS", dcols)], dx.size, params, libs=())
        return dx

    def bias_add():
        be._map(["out", bias], lambda i: "f32", "(x0 + x1)", "f32", np.dtype(np.float32), out=y)
        return y

    cases = [("add 4M", lambda: be.binary["add"](a, b)), ("relu 4M", lambda: be.binary["maximum"](a, 0.0)),
             ("relu' 4M (gt)", lambda: be.binary["gt"](a, 0.0)), ("mul 4M", lambda: be.binary["mul"](a, b)),
             ("bias add 3.2M", bias_add), ("im2col 56x56x128x8", lambda: be.nn._im2col(x, spec, 0, 8)),
             ("col2im 56x56x128x8", col2im)]
    for name, fn in cases:
        out = fn()
        sync()
        times = []
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        line = f"  {name:<22} {statistics.median(times) * 1e3:9.2f} ms (median of {repeats})"
        if digest and name != "bias add 3.2M":
            line += "  " + hashlib.sha256(be.to_numpy(out).tobytes()).hexdigest()[:16]
        print(line)


def profile_step(net_name, batch, top=25):
    """Print the webgpu kernels of one training step by time (each dispatch timed alone).

    Each timed dispatch also pays one synchronisation (a submit and a read back): that floor,
    measured on a one-element kernel first, is printed and taken off each kernel's time
    ("net"), so kernels are not blamed for the round trip. The step is also timed whole
    without those synchronisations, with the host's share (recording, Python) apart."""
    from collections import Counter

    from sukiyaki.backends import get_backend

    backend = get_backend("webgpu")
    sync = synchronizer(backend)
    _, step = make_net("webgpu", net_name, batch)
    step()
    sync()
    plain_times, host_times = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        step()
        t1 = time.perf_counter()
        sync()
        host_times.append(t1 - t0)
        plain_times.append(time.perf_counter() - t0)
    dev = backend.device
    plain = dev.dispatch
    spent, count = Counter(), Counter()

    def timed(pipeline, bindings, groups):
        sync()
        t0 = time.perf_counter()
        plain(pipeline, bindings, groups)
        sync()
        label = getattr(pipeline[0], "label", None) or getattr(pipeline[0], "_label", None) or "?"
        spent[label] += time.perf_counter() - t0
        count[label] += 1

    dev.dispatch = timed
    try:
        one = backend.from_numpy(np.ones(1, np.float32))
        floor = []
        for _ in range(21):
            backend.binary["add"](one, one)
            floor.append(spent.pop("map"))
        floor = statistics.median(floor)
        count.clear()
        t0 = time.perf_counter()
        step()
        sync()
        total = time.perf_counter() - t0
    finally:
        dev.dispatch = plain
    n = sum(count.values())
    print(f"profile {net_name} b{batch}: one step {statistics.median(plain_times) * 1e3:.1f} ms "
          f"(host {statistics.median(host_times) * 1e3:.1f} ms of it); with a sync after each of {n} dispatches "
          f"{total * 1e3:.1f} ms, kernels {sum(spent.values()) * 1e3:.1f} ms, of which the sync floor "
          f"{floor * 1e3:.3f} ms a dispatch (one-element kernel), {n * floor * 1e3:.1f} ms in all:")
    print(f"  {'ms':>9}  {'net ms':>9}  {'count':>5}    {'net/dispatch':>12}  kernel")
    for label, t in spent.most_common(top):
        net = t - count[label] * floor
        print(f"  {t * 1e3:9.2f}  {net * 1e3:9.2f}  {count[label]:5d} x  {net / count[label] * 1e3:9.3f} ms  {label}")


def gpu_profile_step(net_name, batch, top=30):
    """Print the webgpu kernels of one training step by GPU time, from timestamp queries (each
    dispatch recorded in a compute pass of its own, its start and end stamped by the GPU; the
    step otherwise as in training). False where the device lacks the 'timestamp-query'
    feature (set SUKIYAKI_WEBGPU_TIMESTAMPS=1 before the backend starts to ask for it)."""
    from collections import Counter

    from sukiyaki.backends import get_backend

    backend = get_backend("webgpu")
    dev = backend.device
    gpu = getattr(dev, "_device", None)
    if gpu is None or "timestamp-query" not in gpu.features:
        return False
    wgpu = dev._wgpu
    cap = 2048  # dispatches stamped (a query set holds at most 4096 stamps)
    queries = gpu.create_query_set(type=wgpu.QueryType.timestamp, count=2 * cap)
    resolved = gpu.create_buffer(size=16 * cap, usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC)
    keys = {id(pipe): key for key, pipe in backend.launcher._pipelines.items()}
    records = []
    plain = dev._record_dispatch

    def stamped(enc, pipeline, bindings, groups):
        pipe, bgl, dynamic = pipeline
        i = len(records)
        if i >= cap:
            return plain(enc, pipeline, bindings, groups)
        dev._end_pass()
        group = dev._groups.get(bgl, bindings, dynamic)
        cp = enc.begin_compute_pass(timestamp_writes={"query_set": queries, "beginning_of_pass_write_index": 2 * i,
                                                      "end_of_pass_write_index": 2 * i + 1})
        cp.set_pipeline(pipe)
        cp.set_bind_group(0, group, [bindings[-1][1]] if dynamic else [])
        cp.dispatch_workgroups(*groups)
        cp.end()
        key = keys.get(id(pipeline)) or (pipe.label,)
        records.append((str(key)[:110], max(size for _, _, size in bindings[:-1] or bindings), tuple(groups)))

    sync = synchronizer(backend)
    _, step = make_net("webgpu", net_name, batch)
    step()
    sync()
    keys.update({id(pipe): key for key, pipe in backend.launcher._pipelines.items()})
    dev._record_dispatch = stamped
    try:
        step()
        sync()
    finally:
        dev._record_dispatch = plain
    n = len(records)
    enc = gpu.create_command_encoder()
    enc.resolve_query_set(queries, 0, 2 * n, resolved, 0)
    gpu.queue.submit([enc.finish()])
    ticks = np.frombuffer(gpu.queue.read_buffer(resolved, 0, 16 * n), np.uint64).astype(np.float64)
    try:
        from wgpu.backends.wgpu_native import lib

        period = float(lib.wgpuQueueGetTimestampPeriod(gpu.queue._internal))
    except (ImportError, AttributeError):
        period = 1.0
    ms = (ticks[1::2] - ticks[0::2]) * period * 1e-6
    span = (ticks[-1] - ticks[0]) * period * 1e-6
    spent, count = Counter(), Counter()
    by_label = Counter()
    for (key, _, _), t in zip(records, ms):
        spent[key] += t
        count[key] += 1
        by_label[key.split(",")[0].strip("('\"")] += t
    print(f"gpu profile {net_name} b{batch}: {n} dispatches, {ms.sum():.1f} ms of kernels (GPU timestamps, "
          f"period {period} ns), first start to last end {span:.1f} ms")
    print("  by kernel: " + ", ".join(f"{k} {v:.1f}" for k, v in by_label.most_common()))
    print(f"  {'ms':>8}  {'count':>5}  key")
    for key, t in spent.most_common(top):
        print(f"  {t:8.2f}  {count[key]:5d}  {key}")
    print("  slowest dispatches (ms, largest binding MiB, workgroups, key):")
    for i in np.argsort(-ms)[:top]:
        key, nbytes, groups = records[i]
        print(f"  {ms[i]:8.3f}  {nbytes / 2**20:9.1f}  {str(groups):>16}  {key}")
    return True


def train_rate(device, net_name, batch, repeats):
    from sukiyaki.backends import get_backend

    _, step = make_net(device, net_name, batch)
    return median_rate(step, synchronizer(get_backend(device)), batch, repeats)


def submitting_every(every, fn, *args):
    """fn(*args) with the webgpu device submitting its command encoder every ``every`` commands."""
    from sukiyaki.backends.webgpu import device

    saved, device.SUBMIT_EVERY = device.SUBMIT_EVERY, every
    try:
        return fn(*args)
    finally:
        device.SUBMIT_EVERY = saved


def _counts(text):
    """argparse type of --submit-every: comma-separated positive integers."""
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        counts = [0]
    if any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive command counts, got {text!r}")
    return counts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--nets", default="lenet,vgg16")
    p.add_argument("--vgg-batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--kernels", default=KERNELS,
                   help="webgpu float32 matmul kernels to measure forced, beside auto ('' for none)")
    p.add_argument("--profile", default="", help="nets whose webgpu training step is profiled kernel by kernel")
    p.add_argument("--submit-every", type=_counts, default=[],
                   help="comma-separated command counts: the webgpu training rows again with the device "
                        "submitting its encoder every that many commands (default: device.SUBMIT_EVERY)")
    p.add_argument("--no-cuda", action="store_true", help="webgpu alone (no CUDA backend here)")
    p.add_argument("--quick", action="store_true",
                   help="the issue's figures in one go: --vgg-batch 32 --repeats 3 --profile lenet,vgg16")
    p.add_argument("--micro", action="store_true", help="time the elementwise and lowering kernels alone, then stop")
    p.add_argument("--digest", action="store_true", help="with --micro: print a hash of each result")
    args = p.parse_args(argv)
    if args.micro:
        micro(args.repeats, args.digest)
        return 0
    if args.quick:
        args.vgg_batch, args.repeats, args.profile = 32, 3, args.profile or "lenet,vgg16"
    from sukiyaki.backends import get_backend

    web = get_backend("webgpu")
    print(f"webgpu adapter: {web.device.info}")
    print(f"webgpu limits: {web.device.limits}")
    rows = []

    def peer(fn, *a):
        return float("nan") if args.no_cuda else fn("cuda", *a)

    try:
        cuda = peer(matmul_tflops, args.size, args.repeats)
        ours = matmul_tflops("webgpu", args.size, args.repeats)
        rows.append((f"matmul {args.size}^3 (TFLOP/s)", ours, cuda, 0.5))
    except Exception as exc:  # reported, the rest still runs
        print(f"matmul: failed: {type(exc).__name__}: {exc}")
    for kernel in [k for k in args.kernels.split(",") if k]:
        try:
            ours = matmul_tflops("webgpu", args.size, args.repeats, kernel)
            rows.append((f"  kernel {kernel} (TFLOP/s)", ours, cuda if rows else float("nan"), None))
        except Exception as exc:
            print(f"matmul kernel {kernel}: failed: {type(exc).__name__}: {exc}")
    for name in [x for x in args.nets.split(",") if x]:
        batch = 64 if name == "lenet" else args.vgg_batch
        try:
            cuda = peer(train_rate, name, batch, args.repeats)
            ours = train_rate("webgpu", name, batch, args.repeats)
            rows.append((f"{name} b{batch} train (img/s)", ours, cuda, 0.3 if name == "vgg16" else None))
            for every in args.submit_every:
                rate = submitting_every(every, train_rate, "webgpu", name, batch, args.repeats)
                rows.append((f"  submit every {every}", rate, cuda, None))
        except Exception as exc:
            print(f"{name}: failed: {type(exc).__name__}: {str(exc)[:500]}")
    print(f"{'task':<32} {'webgpu':>10} {'cuda':>10} {'ratio':>6} {'goal':>6}")
    for task, ours, cuda, goal in rows:
        verdict = "" if goal is None else (f">={goal:.2f} " + ("met" if ours / cuda >= goal else "NOT met"))
        print(f"{task:<32} {ours:10.3f} {cuda:10.3f} {ours / cuda:6.2f} {verdict}")
    for name in [x for x in args.profile.split(",") if x]:
        try:
            batch = 64 if name == "lenet" else args.vgg_batch
            if not gpu_profile_step(name, batch):
                profile_step(name, batch)
        except Exception as exc:
            print(f"profile {name}: failed: {type(exc).__name__}: {str(exc)[:500]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
