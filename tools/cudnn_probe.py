"""Where the CUDA backend's convolutional step loses time to PyTorch (a diagnostic; the GPU machine).

For VGG16's convolutions and the convolution shapes of ResNet-152's bottlenecks, at one batch
size: the input and weight gradients (and, with --fprop, the forward pass) with the fastest
cuDNN plan of each candidate source (our default, heuristics A + fallback; adding heuristics
B; the same without our numerical-note filter), beside PyTorch's call; then the bias gradient
(our channel-sum kernel, the CuPy reduction it replaced, PyTorch's sum) and batch
normalization's forward and backward (ours, PyTorch's). Milliseconds per call, CUDA events
around a loop, median of --repeats.

    tools/gpu_run.sh python3 tools/cudnn_probe.py --batch 64 --precision fp32
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

#: ResNet-152's convolution shapes: (name, side, in channels, out channels, kernel, stride)
RESNET = [("r1x1a", 56, 256, 64, 1, 1), ("r3x3a", 56, 64, 64, 3, 1), ("r1x1b", 56, 64, 256, 1, 1),
          ("r1x1c", 28, 512, 128, 1, 1), ("r3x3c", 28, 128, 128, 3, 1), ("r1x1d", 14, 1024, 256, 1, 1),
          ("r3x3d", 14, 256, 256, 3, 1), ("r1x1e", 14, 256, 1024, 1, 1), ("r3x3f", 7, 512, 512, 3, 1)]
SOURCES = {"ours": (("A", "FALLBACK"), True), "+B": (("A", "B", "FALLBACK"), True),
           "+B loose": (("A", "B", "FALLBACK"), False)}


def timer(repeats, calls=10):
    """ms per call of fn: CUDA events around loops of `calls` calls, median of `repeats` loops."""
    import cupy as cp

    def run(fn):
        fn()
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        times = []
        for _ in range(repeats):
            start.record()
            for _ in range(calls):
                fn()
            stop.record()
            stop.synchronize()
            times.append(cp.cuda.get_elapsed_time(start, stop) / calls)
        return statistics.median(times)
    return run


def convolutions(args, ms, layers, kinds):
    import cupy as cp
    import torch

    from sukiyaki.backends.cuda.cudnn_conv import CudnnConv
    from sukiyaki.nn.shapes import ConvSpec

    engines = {}
    for label, (heur, strict) in SOURCES.items():
        conv = CudnnConv(precision=args.precision, heuristics=heur)
        if not strict:
            conv._strict_notes = list
        engines[label] = conv
    n = args.batch
    header = " ".join(f"{label:>10}" for label in SOURCES)
    print(f"{'layer':<8} {'shape':>18} {'pass':<6} {header} {'torch':>8}  ours/torch  best plan (tried)", flush=True)
    total = {k: [0.0, 0.0, 0.0] for k in kinds}
    for name, side, cin, cout, k, stride in layers:
        spec = ConvSpec.make((side, side, cin), cout, (k, k), (stride, stride), (k // 2, k // 2))
        rng = cp.random.default_rng(0)
        x = cp.asfortranarray(rng.standard_normal((side, side, cin, n), dtype=np.float32))
        w = cp.asfortranarray(rng.standard_normal(spec.weight_shape, dtype=np.float32) * 0.05)
        dy = cp.asfortranarray(rng.standard_normal(tuple(spec.out_shape) + (n,), dtype=np.float32))
        tx = torch.randn(n, cin, side, side, device="cuda")
        tw = torch.randn(cout, cin, k, k, device="cuda") * 0.05
        tdy = torch.randn(n, cout, spec.out_shape[1], spec.out_shape[0], device="cuda")
        bwd = torch.ops.aten.convolution_backward
        theirs = {"fprop": lambda: torch.nn.functional.conv2d(tx, tw, None, stride, k // 2),
                  "dgrad": lambda: bwd(tdy, tx, tw, None, [stride] * 2, [k // 2] * 2, [1, 1], False, [0, 0], 1,
                                       [True, False, False]),
                  "wgrad": lambda: bwd(tdy, tx, tw, None, [stride] * 2, [k // 2] * 2, [1, 1], False, [0, 0], 1,
                                       [False, True, False])}
        for kind in kinds:
            if kind == "dgrad" and cin == 3:
                continue
            row, best = [], None
            for label, conv in engines.items():
                fn = {"fprop": lambda c=conv: c.forward(x, w, spec, n),
                      "dgrad": lambda c=conv: c.backward_data(dy, w, spec, n),
                      "wgrad": lambda c=conv: c.backward_filter(x, dy, spec, n)}[kind]
                try:
                    t = ms(fn)
                except Exception as exc:  # a source that offers no plan here
                    print(f"  {label}: {type(exc).__name__}: {str(exc)[:120]}")
                    t = float("nan")
                row.append(t)
                if label == "+B loose":
                    best = conv.tuned.get((kind, spec, n))
            t_torch = ms(theirs[kind])
            total[kind][0] += row[0]
            total[kind][1] += min(row[:2])
            total[kind][2] += t_torch
            plans = " ".join(f"{t:10.3f}" for t in row)
            print(f"{name:<8} {f'{side}x{side}x{cin}>{cout}':>18} {kind:<6} {plans} {t_torch:8.3f}  "
                  f"{row[0] / t_torch:10.2f}  {best[0][:40] if best else '?'} ({best[2] if best else '?'})", flush=True)
    for kind, (a, b, c) in total.items():
        if c == 0:  # no layer asked for
            continue
        print(f"total {kind}: ours {a:.2f} ms, with B {b:.2f} ms, torch {c:.2f} ms ({a / c:.2f}, {b / c:.2f})")


def graph_timer(repeats, calls=20):
    """ms per call of fn replayed from a CUDA graph of `calls` calls (no host launch cost): ours
    through CapturedGraph, PyTorch's through torch.cuda.graph; eager timing where capture fails."""
    import cupy as cp
    import torch

    from sukiyaki.backends.cuda.graph import CapturedGraph

    def run(fn, torch_side=False):
        fn()
        try:
            if torch_side:
                graph, stream = torch.cuda.CUDAGraph(), torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    fn()
                torch.cuda.current_stream().wait_stream(stream)
                with torch.cuda.graph(graph):
                    for _ in range(calls):
                        fn()
                replay = graph.replay
            else:
                captured = CapturedGraph(lambda: [fn() for _ in range(calls)])
                replay = captured.replay
        except Exception as exc:  # noqa: BLE001 - said, and timed eagerly instead
            print(f"  (capture failed: {type(exc).__name__}: {str(exc)[:100]}; eager)")
            return timer(repeats)(fn)
        replay()
        torch.cuda.synchronize()
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        times = []
        for _ in range(repeats):
            torch.cuda.synchronize()
            start.record()
            replay()
            stop.record()
            stop.synchronize()
            times.append(cp.cuda.get_elapsed_time(start, stop) / calls)
        return statistics.median(times)
    return run


def bias_and_norm(args):
    import cupy as cp
    import torch

    from sukiyaki.backends import get_backend
    from sukiyaki.nn.ops import Ops

    ms = graph_timer(args.repeats)
    nn = Ops.of(get_backend("cuda")).nn
    n = args.batch
    print(f"CUDA-graph replays: {'shape':>18} {'op':<14} {'ours':>8} {'cupy':>8} {'torch':>8}  ours/torch")
    for side, c in ((224, 64), (112, 128), (56, 256), (28, 512), (14, 1024), (7, 2048)):
        dy = cp.asfortranarray(cp.random.standard_normal((side, side, c, n), dtype=np.float32))
        tdy = torch.randn(n, c, side, side, device="cuda")
        ours = ms(lambda: nn.channel_sums(dy, c, n))
        old = ms(lambda: dy.reshape(-1, c, n, order="F").T.sum(axis=(0, 2)))
        theirs = ms(lambda: tdy.sum((0, 2, 3)), True)
        got = nn.channel_sums(dy, c, n).ravel()
        want = dy.reshape(-1, c, n, order="F").astype(np.float64).sum(axis=(0, 2))
        err = float(cp.abs(got - want).max() / cp.abs(want).max())
        print(f"{f'{side}x{side}x{c}':>18} {'bias grad':<14} {ours:8.3f} {old:8.3f} {theirs:8.3f}  {ours / theirs:10.2f}"
              f"  (rel err {err:.1e})", flush=True)
        x = cp.asfortranarray(cp.random.standard_normal((side, side, c, n), dtype=np.float32))
        g, b = cp.ones(c, np.float32), cp.zeros(c, np.float32)
        rm, rv = cp.zeros(c, np.float32), cp.ones(c, np.float32)

        def fwd():
            mean, var, inv = nn.batchnorm_stats(x, 2, 1e-5, (rm, rv, 0.9))
            return nn.batchnorm_apply(x, mean, inv, g, b, 2)
        mean, var, inv = nn.batchnorm_stats(x, 2, 1e-5)
        tx = torch.randn(n, c, side, side, device="cuda")
        tg, tb = torch.ones(c, device="cuda"), torch.zeros(c, device="cuda")
        trm, trv = torch.zeros(c, device="cuda"), torch.ones(c, device="cuda")
        _, smean, sinv, reserve = torch.ops.aten.cudnn_batch_norm(tx, tg, tb, trm, trv, True, 0.1, 1e-5)
        t_f = ms(lambda: torch.ops.aten.cudnn_batch_norm(tx, tg, tb, trm, trv, True, 0.1, 1e-5), True)
        o_f = ms(fwd)
        print(f"{f'{side}x{side}x{c}':>18} {'bn forward':<14} {o_f:8.3f} {'':>8} {t_f:8.3f}  {o_f / t_f:10.2f}", flush=True)
        o_b = ms(lambda: nn.batchnorm_backward(dy, x, mean, inv, g, 2, True))
        t_b = ms(lambda: torch.ops.aten.cudnn_batch_norm_backward(tx, tdy, tg, trm, trv, smean, sinv, 1e-5, reserve),
                 True)
        print(f"{f'{side}x{side}x{c}':>18} {'bn backward':<14} {o_b:8.3f} {'':>8} {t_b:8.3f}  {o_b / t_b:10.2f}", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--precision", choices=("fp32", "tf32"), default="fp32")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--nets", default="vgg16,resnet152")
    p.add_argument("--fprop", action="store_true", help="also the forward passes")
    p.add_argument("--no-norm", action="store_true", help="skip the bias-gradient and batch-normalization part")
    args = p.parse_args(argv)
    os.environ["SUKIYAKI_CUDA_PRECISION"] = args.precision
    import sukiyaki.backends.cuda.backend  # noqa: F401 - fp32: TF32 off (NVIDIA_TF32_OVERRIDE) before the libraries start
    import torch

    from conv_layers import VGG16

    tf32 = args.precision == "tf32"
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
          f"{args.precision}, batch {args.batch}", flush=True)
    ms = timer(args.repeats)
    kinds = ("fprop", "dgrad", "wgrad") if args.fprop else ("dgrad", "wgrad")
    t0 = time.perf_counter()
    layers = []
    if "vgg16" in args.nets:
        layers += [(name, side, cin, cout, 3, 1) for name, side, cin, cout in VGG16]
    if "resnet152" in args.nets:
        layers += RESNET
    convolutions(args, ms, layers, kinds)
    print(f"convolutions: {time.perf_counter() - t0:.0f} s", flush=True)
    if not args.no_norm:
        bias_and_norm(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
