"""Training speed on one NVIDIA GPU: our cuda backend beside PyTorch eager, same run, same GPU.

LeNet on MNIST digits (batch 64) and VGG16 / ResNet-152 (224x224 crops of random 256x256
images, batch --batch) in each precision mode: images per second (the median of --repeats
timed runs of --steps steps each, the GPU synchronized at both ends) and the GPU memory each
framework's allocator holds after training (CuPy's pool total, PyTorch's reserved). Each
(net, precision) runs in a process of its own (the precision is chosen before the CUDA
libraries start; the allocators start empty). PyTorch runs with cudnn.benchmark on; fp32:
TF32 off for both (NVIDIA_TF32_OVERRIDE=0); tf32: TF32 on for both; bf16: PyTorch under
autocast(bfloat16) with the model and input channels-last (its recommended recipe), ours in
its bf16 mode (bfloat16 products, float32 master weights; convolutions staged channels-last
unless --channels-last off).

Usage (on the GPU machine, see tools/gpu_run.sh):
    python benchmarks/gpu_speed.py --nets lenet,vgg16,resnet152 --batch 64 --precision fp32,tf32,bf16
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
NETS = HERE.parent / "sukiyaki" / "nets"


LAST_NET, LAST_OPT = [None], [None]  # the latest runner's network and optimizer (tools/cuda_profile.py)


def ours_runner(net_name, batch, graph=True):
    import cupy as cp

    from sukiyaki.nn import Net
    from sukiyaki.nn.optim import get_optimizer

    rng = np.random.default_rng(0)
    if net_name == "lenet":
        net = Net(NETS / "lenet.json", device="cuda")
        n = 8000
    else:
        images = rng.integers(0, 256, (256, 256, 3, batch), dtype=np.uint8)
        labels = rng.integers(0, 1000, batch)
        defs = NETS / f"{net_name}.json"
        from sukiyaki.nn.netdef import read_netdef

        data = [d["name"] for d in read_netdef(defs) if d["type"].endswith("_data")]
        net = Net(defs, device="cuda", data_sources={d: (images, labels) for d in data})
        n = batch
    opt = get_optimizer("momentum_sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)
    LAST_NET[0], LAST_OPT[0] = net, opt
    from sukiyaki.nn.captured import CapturedStep

    captured = CapturedStep(net, log=lambda line: print(line, file=sys.stderr)) if graph else None
    inputs = list(net.schedules["train"].host_inputs)
    it = [0]

    def step():
        idx = rng.integers(0, n, batch) if net_name == "lenet" else np.arange(batch)
        if captured is None or captured.run(idx, 0, it[0], inputs, opt) is None:
            net.zero_grads()
            net.train_batch({b: idx for b in inputs}, iteration=it[0])
            opt.apply(net.store)
        it[0] += 1

    def sync():
        cp.cuda.runtime.deviceSynchronize()

    def memory():  # CuPy's pool and the graph's private one
        return cp.get_default_memory_pool().total_bytes() + (captured.memory_bytes() if captured else 0)

    return step, sync, memory


def torch_runner(net_name, batch):
    import torch

    from torch_models import LeNet, resnet, vgg16

    precision = os.environ.get("SUKIYAKI_CUDA_PRECISION", "fp32")
    tf32, bf16 = precision == "tf32", precision == "bf16"
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    dev = torch.device("cuda")
    if net_name == "lenet":
        from sukiyaki.data import load_mnist

        images, labels = load_mnist(split="train")
        x_all = torch.from_numpy(np.ascontiguousarray(images.transpose(3, 2, 0, 1)))
        y_all = torch.from_numpy(labels.reshape(-1).astype(np.int64))
        model = LeNet().to(dev)
    else:
        x_all = torch.from_numpy(rng.integers(0, 256, (batch, 3, 224, 224), dtype=np.uint8))
        y_all = torch.from_numpy(rng.integers(0, 1000, batch).astype(np.int64))
        model = (vgg16() if net_name == "vgg16" else resnet()).to(dev)
    model.train()
    layout = torch.channels_last if bf16 else torch.contiguous_format
    model = model.to(memory_format=layout)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        idx = torch.from_numpy(rng.integers(0, x_all.shape[0], batch)) if net_name == "lenet" else slice(None)
        x = x_all[idx].to(dev, non_blocking=False).float().mul_(1 / 256).contiguous(memory_format=layout)
        y = y_all[idx].to(dev)
        opt.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step, torch.cuda.synchronize, torch.cuda.memory_reserved


def measure(runner, net_name, batch, steps, repeats):
    step, sync, memory = runner(net_name, batch)
    for _ in range(3):
        step()
    sync()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        rates.append(batch * steps / (time.perf_counter() - t0))
    return statistics.median(rates), memory() / 2**20


def child(net, precision, batch, steps, repeats, graph):
    """One (net, precision) in this process: a JSON line of both frameworks' figures."""
    ours, ours_mem = measure(lambda *a: ours_runner(*a, graph=graph), net, batch, steps, repeats)
    theirs, their_mem = measure(torch_runner, net, batch, steps, repeats)
    print(json.dumps(dict(net=net, precision=precision, batch=batch, graph=graph, ours=ours, torch=theirs,
                          ours_mib=ours_mem, torch_mib=their_mem)), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="lenet,vgg16,resnet152")
    p.add_argument("--batch", type=int, default=64, help="batch of the big nets (LeNet: 64)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precision", default="fp32", help="comma-separated precision modes: fp32, tf32, bf16")
    p.add_argument("--channels-last", choices=("default", "on", "off"), default="default",
                   help="ours: convolutions staged channels-last (default: in bf16 only)")
    p.add_argument("--graph", default="on", help="ours with the step as one CUDA graph (on), eagerly (off), or both (on,off)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        batch = 64 if args.nets == "lenet" else args.batch
        child(args.nets, args.precision, batch, args.steps * (10 if args.nets == "lenet" else 1), args.repeats,
              args.graph == "on")
        return 0
    import torch

    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; PyTorch eager, cudnn.benchmark on")
    print(f"{'net':<10} {'mode':<5} {'graph':<5} {'batch':>5} {'ours img/s':>11} {'torch img/s':>12} {'ratio':>6} "
          f"{'ours MiB':>9} {'torch MiB':>10} {'mem ratio':>9}")
    failed = 0
    for name in [n for n in args.nets.split(",") if n]:
        for precision, graph in [(m, g) for m in args.precision.split(",") if m for g in args.graph.split(",") if g]:
            env = dict(os.environ, SUKIYAKI_CUDA_PRECISION=precision)
            if args.channels_last != "default":
                env["SUKIYAKI_CUDA_CHANNELS_LAST"] = "1" if args.channels_last == "on" else "0"
            cmd = [sys.executable, __file__, "--child", "--nets", name, "--precision", precision, "--batch",
                   str(args.batch), "--steps", str(args.steps), "--repeats", str(args.repeats), "--graph", graph]
            run = subprocess.run(cmd, env=env, capture_output=True, text=True)
            lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
            notes = [ln for ln in run.stderr.splitlines() if "CUDA graph off" in ln]
            if run.returncode or not lines:
                failed += 1
                print(f"{name:<10} {precision:<5} failed (exit {run.returncode}): {run.stderr.strip()[-2000:]}")
                continue
            r = json.loads(lines[-1])
            for note in notes:
                print(f"  ({name} {precision}) {note}")
            print(f"{name:<10} {precision:<5} {graph:<5} {r['batch']:>5} {r['ours']:11.0f} {r['torch']:12.0f} "
                  f"{r['ours'] / r['torch']:6.2f} {r['ours_mib']:9.0f} {r['torch_mib']:10.0f} "
                  f"{r['ours_mib'] / r['torch_mib']:9.2f}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
