"""Which GPU kernels a training step spends its time in, ours beside PyTorch's (a diagnostic; the
GPU machine). CUPTI (through torch.profiler) records every kernel the process launches, CuPy's,
cuDNN's and cuBLAS's included; the kernels of --steps steps are summed by name and the heaviest
printed per framework, with each step's total GPU time. Ours runs eagerly (the same kernels a
CUDA graph replays).

    tools/gpu_run.sh python3 tools/kernel_profile.py --nets vgg16,resnet152 --precision tf32
"""

import argparse
import collections
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))
sys.path.insert(0, str(HERE.parent))


def kernel_times(step, sync, steps):
    """{kernel name: (total us, calls)} of `steps` steps, after two unrecorded ones."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    for _ in range(2):
        step()
    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        sync()
    out = collections.defaultdict(lambda: [0.0, 0])
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            out[e.name][0] += e.device_time
            out[e.name][1] += 1
    return out


def show(label, times, steps, top):
    total = sum(t for t, _ in times.values()) / steps / 1e3
    print(f"\n{label}: {total:.2f} ms of kernels a step")
    for name, (t, n) in sorted(times.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {t / steps / 1e3:8.3f} ms {n / steps:6.1f}x  {name[:110]}")
    return total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="vgg16,resnet152")
    p.add_argument("--precision", choices=("fp32", "tf32"), default="tf32")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    os.environ["SUKIYAKI_CUDA_PRECISION"] = args.precision
    import gpu_speed

    for net in args.nets.split(","):
        step, sync, _ = gpu_speed.ours_runner(net, args.batch, graph=False)
        ours = show(f"{net} {args.precision} ours", kernel_times(step, sync, args.steps), args.steps, args.top)
        step, sync, _ = gpu_speed.torch_runner(net, args.batch)
        theirs = show(f"{net} {args.precision} torch", kernel_times(step, sync, args.steps), args.steps, args.top)
        print(f"{net}: kernels ours / torch = {ours / theirs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
