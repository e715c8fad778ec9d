"""Training speed on one NVIDIA GPU: our cuda backend beside PyTorch eager, same run, same GPU.

LeNet on MNIST digits (batch 64) and VGG16 / ResNet-152 (224x224 crops of random 256x256
images, batch --batch) in fp32: images per second (the median of --repeats timed runs of
--steps steps each, the GPU synchronized at both ends) and the GPU memory each framework's
allocator holds after training (CuPy's pool total, PyTorch's reserved). PyTorch runs with
cudnn.benchmark on and TF32 off, as our fp32 mode (NVIDIA_TF32_OVERRIDE=0).

Usage (on the GPU machine, see tools/gpu_run.sh):
    python benchmarks/gpu_speed.py --nets lenet,vgg16,resnet152 --batch 64
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
NETS = HERE.parent / "sukiyaki" / "nets"


def ours_runner(net_name, batch):
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

    def step():
        net.zero_grads()
        net.train_batch({"batch": rng.integers(0, n, batch) if net_name == "lenet" else np.arange(batch)})
        opt.apply(net.store)

    def sync():
        cp.cuda.runtime.deviceSynchronize()

    def memory():
        return cp.get_default_memory_pool().total_bytes()

    return step, sync, memory


def torch_runner(net_name, batch):
    import torch

    from torch_models import LeNet, resnet, vgg16

    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
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
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        idx = torch.from_numpy(rng.integers(0, x_all.shape[0], batch)) if net_name == "lenet" else slice(None)
        x = x_all[idx].to(dev, non_blocking=False).float().mul_(1 / 256)
        y = y_all[idx].to(dev)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="lenet,vgg16,resnet152")
    p.add_argument("--batch", type=int, default=64, help="batch of the big nets (LeNet: 64)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    import torch

    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; fp32 (TF32 off) for both")
    print(f"{'net':<10} {'batch':>5} {'ours img/s':>11} {'torch img/s':>12} {'ratio':>6} {'ours MiB':>9} {'torch MiB':>10}")
    for name in [n for n in args.nets.split(",") if n]:
        batch = 64 if name == "lenet" else args.batch
        steps = args.steps * (10 if name == "lenet" else 1)
        ours, ours_mem = measure(ours_runner, name, batch, steps, args.repeats)
        theirs, their_mem = measure(torch_runner, name, batch, steps, args.repeats)
        print(f"{name:<10} {batch:>5} {ours:11.0f} {theirs:12.0f} {ours / theirs:6.2f} {ours_mem:9.0f} {their_mem:10.0f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
