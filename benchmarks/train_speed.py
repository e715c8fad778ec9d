"""Training speed on the CPU, ours beside PyTorch in the same run (the paper's Tables 3 and 4).

1. LeNet on MNIST, batch 64 (Table 3): images per second, both frameworks fed the same
   uint8 digits through the same indexing and scaling, timed in alternation.
2. VGG16 and ResNet-152 training steps (Table 4) on a few 224x224 images: seconds per
   step and images per second, with peak memory, each framework in its own fresh
   process (peak resident memory above what the process held after its imports).

Threads: ``--threads default,2`` measures LeNet at each setting: 'default' leaves both
frameworks their own defaults (every core); a number N limits both to N threads (numpy's
BLAS and our kernels' pool through OPENBLAS_NUM_THREADS / SUKIYAKI_NUM_THREADS, PyTorch
through torch.set_num_threads). Goals (the backend-contract issue): >= 0.8x PyTorch at the
default threads, >= 1.0x at 2 threads.

Usage:
    python benchmarks/train_speed.py            # everything (several minutes)
    python benchmarks/train_speed.py --quick    # LeNet only, short
    python benchmarks/train_speed.py --nets none --threads default,2
    python benchmarks/train_speed.py --nets vgg16 --batch 4
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _measure import interleaved, machine_line, median, peak_rss_mb, rss_mb, run_child  # noqa: E402

NETS = HERE.parent / "sukiyaki" / "nets"
PAPER_TABLE3 = "paper Table 3 (LeNet, batch 64): Sukiyaki2 on node.js+WebCL 4770 img/s, ConvNetJS 88 img/s"
PAPER_TABLE4 = {"vgg16": "paper Table 4 on a K80: Sukiyaki2 4.9 img/s (batch 16), Caffe+cuDNN 14.4",
                "resnet152": "paper Table 4 on a K80: Sukiyaki2 2.7 img/s (batch 8), Caffe+cuDNN 9.4"}


# ---------------------------------------------------------------- LeNet, in process
def lenet_runners(batch):
    import torch

    from sukiyaki.data import load_mnist
    from sukiyaki.nn import Net
    from sukiyaki.nn.optim import get_optimizer

    sys.path.insert(0, str(HERE))
    from torch_models import LeNet

    images, labels = load_mnist(split="train")
    n = images.shape[-1]
    rng = np.random.default_rng(0)
    net = Net(NETS / "lenet.json")
    opt = get_optimizer("momentum_sgd", lr=0.01, momentum=0.9)

    def ours():
        idx = rng.integers(0, n, batch)
        net.zero_grads()
        net.train_batch({"batch": idx})
        opt.apply(net.store)
        return batch

    torch.manual_seed(0)
    model = LeNet()
    topt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    timgs = np.ascontiguousarray(images.transpose(3, 2, 0, 1))  # (n, c, h, w) uint8, prepared once
    tlab = torch.from_numpy(labels.reshape(-1).astype(np.int64))

    def theirs():
        idx = rng.integers(0, n, batch)
        x = torch.from_numpy(timgs[idx]).float().mul_(1 / 256)
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), tlab[idx])
        loss.backward()
        topt.step()
        return batch

    return ours, theirs


def lenet_child(framework, batch, seconds):
    """In a fresh process: warm up, then images/s over `seconds` of LeNet training."""
    if os.environ.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    ours, theirs = lenet_runners(batch)
    fn = ours if framework == "ours" else theirs
    for _ in range(10):
        fn()
    rates = interleaved({framework: fn}, 3, min_seconds=seconds / 3)[framework]
    return {"rate": median(rates)}


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SUKIYAKI_NUM_THREADS")


def limit_threads(setting):
    """Set (or clear, for 'default') the thread-count variables the children inherit."""
    for var in THREAD_VARS:
        if setting == "default":
            os.environ.pop(var, None)
        else:
            os.environ[var] = str(int(setting))


def bench_lenet(repeats, batch, seconds):
    """Alternate fresh processes of ours and PyTorch (in one process their thread pools fight)."""
    rates = {"ours": [], "pytorch": []}
    for _ in range(repeats):
        for fw in rates:
            rates[fw].append(run_child(__file__, ["--child-lenet", fw, str(batch), str(seconds)])["rate"])
    ratios = [a / b for a, b in zip(rates["ours"], rates["pytorch"])]
    return {"ours": median(rates["ours"]), "pytorch": median(rates["pytorch"]), "ratio": median(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios), "runs": rates}


# ---------------------------------------------------------------- big nets, one process each
def child(framework, net_name, batch, steps):
    """Run in a fresh process: build, train `steps` steps, report times and memory."""
    base = rss_mb()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (256, 256, 3, max(batch, 4)), dtype=np.uint8)
    labels = rng.integers(0, 1000, (1, images.shape[-1])).astype(np.int32)
    times = []
    if framework == "ours":
        from sukiyaki.nn import Net
        from sukiyaki.nn.optim import get_optimizer

        base = rss_mb()
        net = Net(NETS / f"{net_name}.json", data_sources={
            name: (images, labels) for name, layer in _data_layers(NETS / f"{net_name}.json")})
        opt = get_optimizer("momentum_sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)
        built = rss_mb()
        for _ in range(steps):
            t = time.perf_counter()
            net.zero_grads()
            net.train_batch({"batch": np.arange(batch)})
            opt.apply(net.store)
            times.append(time.perf_counter() - t)
    else:
        import torch

        from torch_models import resnet, vgg16

        base = rss_mb()
        torch.manual_seed(0)
        model = vgg16() if net_name == "vgg16" else resnet()
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        built = rss_mb()
        x_all = np.ascontiguousarray(images[16:240, 16:240].transpose(3, 2, 0, 1))
        y_all = torch.from_numpy(labels.reshape(-1).astype(np.int64))
        for _ in range(steps):
            t = time.perf_counter()
            x = torch.from_numpy(x_all[:batch]).float()
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y_all[:batch]).backward()
            opt.step()
            times.append(time.perf_counter() - t)
    return {"base_mb": base, "model_mb": built - base, "peak_mb": peak_rss_mb() - base, "times": times}


def _data_layers(path):
    with open(path, encoding="utf-8") as f:
        defs = json.load(f)
    data_types = {"mnist_data", "cifar10_data", "image_folder_data", "blob_data"}
    return [(d["name"], d) for d in defs if d["type"] in data_types]


def bench_big(net_name, batch, steps):
    res = {}
    for fw in ("pytorch", "ours"):
        res[fw] = run_child(__file__, ["--child", fw, net_name, str(batch), str(steps)])
    return res


# ---------------------------------------------------------------- report
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="LeNet only, few repeats (smoke run)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--nets", default="vgg16,resnet152", help="big nets to step (comma list, or 'none')")
    p.add_argument("--batch", type=int, default=2, help="images per step for the big nets")
    p.add_argument("--steps", type=int, default=3, help="steps per big net (the first is warm-up)")
    p.add_argument("--seconds", type=float, default=None, help="timed seconds per LeNet process (default 4; 1 with --quick)")
    p.add_argument("--threads", default="default", help="LeNet thread settings, comma list of 'default' and numbers")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    p.add_argument("--child-lenet", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_lenet:
        fw, batch, seconds = args.child_lenet
        print(json.dumps(lenet_child(fw if fw == "ours" else "pytorch", int(batch), float(seconds))))
        return 0
    if args.child:
        fw, net_name, batch, steps = args.child
        print(json.dumps(child(fw, net_name, int(batch), int(steps))))
        return 0
    import torch

    print(f"machine: {machine_line()}")
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    results = {}
    repeats = args.repeats or (2 if args.quick else 5)
    print(f"\nTable 3: LeNet training on MNIST, batch 64, images/s (median of {repeats} alternating fresh processes each)")
    print(f"{'threads':>8} {'ours':>8} {'PyTorch CPU':>12} {'ratio':>8}  goal")
    for setting in [t.strip() for t in args.threads.split(",") if t.strip()]:
        limit_threads(setting)
        r = bench_lenet(repeats, 64, args.seconds or (1.0 if args.quick else 4.0))
        results["lenet" if setting == "default" else f"lenet_threads_{setting}"] = r
        goal = 0.8 if setting == "default" else 1.0
        print(f"{setting:>8} {r['ours']:8.0f} {r['pytorch']:12.0f} {r['ratio']:8.2f}  >= {goal}: "
              f"{'PASS' if r['ratio'] >= goal else 'FAIL'} (ratio range {r['ratio_min']:.2f}-{r['ratio_max']:.2f})")
    limit_threads("default")
    print(PAPER_TABLE3)
    nets = [] if args.quick or args.nets == "none" else [n for n in args.nets.split(",") if n]
    if nets:
        print(f"\nTable 4 on the CPU: training step, batch {args.batch}, 224x224 (median of steps after the first)")
        print(f"{'net':<10} {'ours s/step':>12} {'torch s/step':>13} {'speed ratio':>12} "
              f"{'ours peak MB':>13} {'torch peak MB':>14} {'mem ratio':>10}  goal")
    for net_name in nets:
        res = bench_big(net_name, args.batch, args.steps)
        results[net_name] = res
        to = median(res["ours"]["times"][1:] or res["ours"]["times"])
        tt = median(res["pytorch"]["times"][1:] or res["pytorch"]["times"])
        mo, mt = res["ours"]["peak_mb"], res["pytorch"]["peak_mb"]
        goal = f"mem <= 1.3: {'PASS' if mo / mt <= 1.3 else 'FAIL'}" if net_name == "vgg16" else ""
        print(f"{net_name:<10} {to:12.2f} {tt:13.2f} {tt / to:12.2f} {mo:13.0f} {mt:14.0f} {mo / mt:10.2f}  {goal}")
        print(f"{'':<10} images/s: ours {args.batch / to:.2f}, PyTorch {args.batch / tt:.2f}; {PAPER_TABLE4[net_name]}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
