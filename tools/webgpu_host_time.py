"""Host (Python) time of recording one webgpu training step, apart from the device's execution.

A VGG16 (or another shipped net) with small images (``--image``: the data size; the crop is
``--image - 8``) so that the device's work is small, momentum SGD as benchmarks/webgpu_native.py.
Each timed step starts with the device idle (synchronised) and is timed from its start to its
return (the last command recorded; submits made on the way included), wall and the Python
thread's CPU time (on a CPU adapter such as lavapipe the device's threads share the cores,
so the wall time counts their work too: the CPU time is the host's own), then the device is
synchronised apart. Medians and least values are printed (the least: the least disturbed).
The dispatch count is that of one step. ``--profile``: cProfile of the recording of a few
steps (sorted by own time), to see what costs.

Usage:
    python tools/webgpu_host_time.py --net vgg16 --batch 2 --image 40 --steps 10
    python tools/webgpu_host_time.py --profile 30
"""

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def small_netdef(net_name, image):
    """The layer list of a shipped net with data of image x image and crops of image - 8
    (declared input shapes of linear layers dropped: they are inferred)."""
    from sukiyaki.nn.netdef import read_netdef

    defs = read_netdef(ROOT / "sukiyaki" / "nets" / f"{net_name}.json")
    for d in defs:
        params = d.get("params", {})
        if d["type"].endswith("_data") and "size" in params:
            params["size"] = [image, image]
        if d["type"] == "data_augmentation":
            params["out_shape"] = [image - 8, image - 8]
        if "in_shape" in params:  # a linear layer after the convolutions: inferred again
            del params["in_shape"]
    return defs


def make_step(net_name, batch, image):
    """(backend, step function): momentum-SGD training of the small net on webgpu."""
    from sukiyaki.backends import get_backend
    from sukiyaki.nn import Net
    from sukiyaki.nn.optim import get_optimizer

    rng = np.random.default_rng(0)
    images = np.asfortranarray(rng.integers(0, 256, (image, image, 3, batch), dtype=np.uint8))
    labels = rng.integers(0, 10, batch)
    defs = small_netdef(net_name, image)
    data = [d["name"] for d in defs if d["type"].endswith("_data")]
    net = Net(defs, device="webgpu", data_sources={d: (images, labels) for d in data})
    opt = get_optimizer("momentum_sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        net.zero_grads()
        net.train_batch({"batch": rng.integers(0, batch, batch)})
        opt.apply(net.store)

    return get_backend("webgpu"), step


def count_dispatches(backend, step, sync):
    """Dispatches (and clears and copies) recorded by one step."""
    dev = backend.device
    counts = {"dispatch": 0, "clear": 0, "copy": 0}
    plain = {k: getattr(dev, k) for k in counts}

    def counted(kind):
        def run(*a):
            counts[kind] += 1
            return plain[kind](*a)
        return run

    for k in counts:
        setattr(dev, k, counted(k))
    try:
        step()
        sync()
    finally:
        for k in counts:
            setattr(dev, k, plain[k])
    return counts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", default="vgg16")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--image", type=int, default=40)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--profile", type=int, default=0, help="cProfile the recording: print this many rows")
    args = p.parse_args(argv)
    from matrix_ops import synchronizer

    backend, step = make_step(args.net, args.batch, args.image)
    sync = synchronizer(backend)
    for _ in range(2):  # compile every pipeline, create the long-lived buffers
        step()
        sync()
    counts = count_dispatches(backend, step, sync)
    n = counts["dispatch"]
    submits0 = backend.device.submits
    walls, cpus, execs = [], [], []
    for _ in range(args.steps):
        sync()
        t0, c0 = time.perf_counter(), time.thread_time()
        step()
        t1, c1 = time.perf_counter(), time.thread_time()
        sync()
        walls.append(t1 - t0)
        cpus.append(c1 - c0)
        execs.append(time.perf_counter() - t1)
    submits = (backend.device.submits - submits0) / args.steps
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"{args.net} b{args.batch} {args.image}px: {n} dispatches, {counts['clear']} clears, {counts['copy']} copies, "
          f"{submits:.1f} submits a step (incl. the sync's)")
    print(f"  host wall {wall * 1e3:.1f} ms a step, {wall / n * 1e3:.3f} ms a dispatch; host CPU {cpu * 1e3:.1f} ms, "
          f"{cpu / n * 1e3:.3f} ms a dispatch; then the device {statistics.median(execs) * 1e3:.1f} ms more "
          f"(median of {args.steps})")
    print(f"  least of {args.steps}: host wall {min(walls) * 1e3:.1f} ms ({min(walls) / n * 1e3:.3f} a dispatch), "
          f"host CPU {min(cpus) * 1e3:.1f} ms ({min(cpus) / n * 1e3:.3f} a dispatch)")
    if args.profile:
        prof = cProfile.Profile()
        for _ in range(3):
            sync()
            prof.enable()
            step()
            prof.disable()
        sync()
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
