"""The paper's Figure 4: time of each VGG16 convolution layer, ours beside PyTorch, same run.

For each of VGG16's 13 convolutions (3x3, pad 1) at its input size: the forward pass, the
input gradient and the weight gradient (with the bias gradient), in milliseconds, ours
(the backend's conv primitives: cuDNN on cuda, im2col + BLAS on numpy) beside PyTorch's
(F.conv2d and aten.convolution_backward; cuDNN benchmark mode on a GPU) on the same device
in the same process, with the ratio ours / PyTorch (below 1: ours faster). Each figure is
the median of --repeats timed loops (the device synchronized at both ends); ours and
PyTorch's loops alternate so that noise hits both alike.

Usage:
    python benchmarks/conv_layers.py --device cuda --batch 64 --precision fp32   # the GPU figure
    python benchmarks/conv_layers.py --device numpy --batch 1 --size 56 --quick    # CPU smoke run
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

#: VGG16's convolutions: (name, input side at 224, in channels, out channels)
VGG16 = [("conv1_1", 224, 3, 64), ("conv1_2", 224, 64, 64), ("conv2_1", 112, 64, 128), ("conv2_2", 112, 128, 128),
         ("conv3_1", 56, 128, 256), ("conv3_2", 56, 256, 256), ("conv3_3", 56, 256, 256),
         ("conv4_1", 28, 256, 512), ("conv4_2", 28, 512, 512), ("conv4_3", 28, 512, 512),
         ("conv5_1", 14, 512, 512), ("conv5_2", 14, 512, 512), ("conv5_3", 14, 512, 512)]
PASSES = ("forward", "input grad", "weight grad")


def ours(device, side, cin, cout, batch):
    """The three passes of one layer on our backend, as callables, and the device sync."""
    from sukiyaki.backends import get_backend
    from sukiyaki.nn.ops import Ops
    from sukiyaki.nn.shapes import ConvSpec

    ops = Ops.of(get_backend(device))
    spec = ConvSpec.make((side, side, cin), cout, (3, 3), (1, 1), (1, 1))
    rng = np.random.default_rng(0)
    x = ops.upload(np.asfortranarray(rng.standard_normal((side, side, cin, batch), dtype=np.float32)))
    w = ops.upload(np.asfortranarray(rng.standard_normal(spec.weight_shape, dtype=np.float32) * 0.05))
    dy = ops.upload(np.asfortranarray(rng.standard_normal(tuple(spec.out_shape) + (batch,), dtype=np.float32)))
    nn = ops.nn
    passes = {"forward": lambda: nn.conv2d_forward(x, w, None, spec),
              "input grad": lambda: nn.conv2d_backward(x, w, dy, spec, need_dx=True, need_dw=False),
              "weight grad": lambda: nn.conv2d_backward(x, w, dy, spec, need_dx=False, need_dw=True)}
    return passes, _sync(device)


def theirs(device, side, cin, cout, batch):
    """The same passes in PyTorch (NCHW), and its sync."""
    import torch

    dev = torch.device("cuda" if device.startswith("cuda") else "cpu")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cin, side, side, generator=g).to(dev)
    w = (torch.randn(cout, cin, 3, 3, generator=g) * 0.05).to(dev)
    dy = torch.randn(batch, cout, side, side, generator=g).to(dev)
    conv_bwd = torch.ops.aten.convolution_backward

    def grad(mask):
        return lambda: conv_bwd(dy, x, w, [cout], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)

    passes = {"forward": lambda: torch.nn.functional.conv2d(x, w, None, 1, 1),
              "input grad": grad([True, False, False]),
              "weight grad": grad([False, True, True])}
    return passes, (torch.cuda.synchronize if dev.type == "cuda" else (lambda: None))


def _sync(device):
    if device.startswith("cuda"):
        import cupy as cp

        return cp.cuda.runtime.deviceSynchronize
    if device == "webgpu":
        from sukiyaki.backends import get_backend

        backend = get_backend(device)
        return lambda: backend.to_numpy(backend.full((1,), 0, np.dtype(np.float32)))
    return lambda: None


def loop_ms(fn, sync, n):
    """Milliseconds per call over a loop of n calls, synchronized at both ends."""
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - t0) * 1e3 / n


def measure(device, side, cin, cout, batch, repeats, min_ms):
    """{pass: (ours ms, torch ms)} of one layer (medians, loops interleaved)."""
    a, sync_a = ours(device, side, cin, cout, batch)
    b, sync_b = theirs(device, side, cin, cout, batch)
    out = {}
    for name in PASSES:
        for fn, sync in ((a[name], sync_a), (b[name], sync_b)):
            fn()  # builds plans, autotunes
            fn()
        n = max(1, int(min_ms / max(loop_ms(a[name], sync_a, 1), 1e-3)))
        ta, tb = [], []
        for _ in range(repeats):
            ta.append(loop_ms(a[name], sync_a, n))
            tb.append(loop_ms(b[name], sync_b, n))
        out[name] = (statistics.median(ta), statistics.median(tb))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="our backend: cuda, cuda:N, numpy, webgpu (default cuda)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=224, help="input side of conv1 (the others scale with it)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "tf32"), help="cuda: products in fp32 or TF32")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--layers", default="", help="comma-separated layer names (default: all 13)")
    p.add_argument("--quick", action="store_true", help="3 layers, 2 repeats, short loops (a smoke run)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args(argv)
    os.environ.setdefault("SUKIYAKI_CUDA_PRECISION", args.precision)
    import torch

    if args.device.startswith("cuda"):
        tf32 = args.precision == "tf32"
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        where = f"{torch.cuda.get_device_name(0)}, {args.precision}"
    else:
        where = f"CPU, {torch.get_num_threads()} PyTorch threads"
    layers = [v for v in VGG16 if not args.layers or v[0] in args.layers.split(",")]
    if args.quick:
        layers, args.repeats = layers[1::5][:3], 2
    print(f"VGG16 convolutions, batch {args.batch}, input {args.size}x{args.size}: ours ({args.device}) beside "
          f"PyTorch {torch.__version__} ({where}); ms per call, median of {args.repeats}")
    print(f"{'layer':<8} {'input':>16} " + " ".join(f"{h + ' ours':>17} {'torch':>8} {'ratio':>6}" for h in PASSES))
    rows, totals = [], {k: [0.0, 0.0] for k in PASSES}
    for name, side, cin, cout in layers:
        side = max(1, side * args.size // 224)
        r = measure(args.device, side, cin, cout, args.batch, args.repeats, 20 if args.quick else 200)
        rows.append({"layer": name, "side": side, "in": cin, "out": cout,
                     **{k: {"ours_ms": v[0], "torch_ms": v[1]} for k, v in r.items()}})
        for k, (a, b) in r.items():
            totals[k][0] += a
            totals[k][1] += b
        print(f"{name:<8} {f'{side}x{side}x{cin}':>16} "
              + " ".join(f"{a:17.3f} {b:8.3f} {a / b:6.2f}" for a, b in r.values()), flush=True)
    print(f"{'total':<8} {'':>16} " + " ".join(f"{a:17.3f} {b:8.3f} {a / b:6.2f}" for a, b in totals.values()))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": args.device, "where": where, "batch": args.batch,
                                               "size": args.size, "layers": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
