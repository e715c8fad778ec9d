"""Where a training step's time goes on the cuda backend (run on the GPU machine through tools/gpu_run.sh).

For each net: images/s of whole steps (no synchronisation inside), then one step with the
GPU synchronised around every layer's forward and backward and around the optimizer,
summed by layer type (the shares are what matter: synchronising adds launch gaps), and
PyTorch eager's images/s in the same run.

    tools/gpu_run.sh python3 tools/cuda_profile.py --nets vgg16,resnet152 --batch 64
"""

import argparse
import collections
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))
sys.path.insert(0, str(HERE.parent))

import gpu_speed  # noqa: E402


def profile_layers(net_name, batch, steps=2):
    import cupy as cp

    step, sync, _ = gpu_speed.ours_runner(net_name, batch)
    net = gpu_speed.LAST_NET[0]
    for _ in range(2):
        step()
    sync()
    totals = collections.defaultdict(float)
    counts = collections.Counter()

    def timed(key, fn):
        def run(*a, **k):
            cp.cuda.runtime.deviceSynchronize()
            t0 = time.perf_counter()
            r = fn(*a, **k)
            cp.cuda.runtime.deviceSynchronize()
            totals[key] += time.perf_counter() - t0
            counts[key] += 1
            return r
        return run

    for layer in net.layers.values():
        layer.forward = timed((layer.type_name, "fwd"), layer.forward)
        layer.backward = timed((layer.type_name, "bwd"), layer.backward)
    opt = gpu_speed.LAST_OPT[0]
    opt.apply = timed(("optimizer", "apply"), opt.apply)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    wall = (time.perf_counter() - t0) / steps
    print(f"  {net_name}: one synchronised step {wall * 1e3:.1f} ms; by layer type (ms per step):")
    for (kind, phase), t in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"    {kind:<24} {phase}  {t / steps * 1e3:8.2f}  ({counts[(kind, phase)] // steps} calls)")
    tuned = getattr(net.backend.nn, "_conv", None)
    if tuned is not None and tuned.tuned:
        print(f"  cuDNN plans chosen: {len(tuned.tuned)}; fallbacks {len(tuned.fallbacks)}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nets", default="vgg16,resnet152")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    for name in args.nets.split(","):
        batch = 64 if name == "lenet" else args.batch
        steps = args.steps * (10 if name == "lenet" else 1)
        ours, mem = gpu_speed.measure(gpu_speed.ours_runner, name, batch, steps, 3)
        theirs, tmem = gpu_speed.measure(gpu_speed.torch_runner, name, batch, steps, 3)
        print(f"{name}: ours {ours:.0f} img/s ({mem:.0f} MiB), torch {theirs:.0f} img/s ({tmem:.0f} MiB), "
              f"ratio {ours / theirs:.2f}", flush=True)
        profile_layers(name, batch)


if __name__ == "__main__":
    main()
