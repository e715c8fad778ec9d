"""Does 8-bit compression cost accuracy? LeNet trained by the coordinator with real worker processes.

The issue's goal: "LeNet with 8-bit + error feedback reaches fp32's test accuracy within 0.3
points". Each run: ``sukiyaki``'s coordinator in this process (LeNet, momentum SGD, lr 0.02,
momentum 0.9, weight decay 0.0005, batch 64) and 2 native workers as separate processes
(``python -m sukiyaki worker``, one thread each), on the bundled MNIST digits (8,000 train,
2,000 test), for the same number of epochs in every mode; then the test accuracy of the
coordinator's final weights on the 2,000 test digits. Modes (codec of the weights sent down /
of the gradients sent up): fp32 (raw / raw), 8bit (dettmers8 / dettmers8, error feedback on
the workers' gradients), block8 (block8 / block8, error feedback), and the low-communication
mode (as DiLoCo): local (H local steps a round, ``--local-steps``, 64 by default as scenario L of
``distributed_scaling.py``; dettmers8 both ways: the weights down and the workers' weight change
up, with error feedback on the change), local-raw (the same H, raw both ways: what the local
steps cost without the compression). In the local modes each worker takes H momentum-SGD steps
(lr 0.02, momentum 0.9, as the synchronous modes' optimizer) on its half of each batch, and the
coordinator takes the outer Nesterov step on the averaged change (lr 0.7, momentum 0.5, the
``sukiyaki serve`` defaults); the iterations are rounded to a whole number of rounds of H. The
goal of 0.3 points is the 8-bit synchronous codes'; the local modes are reported beside fp32
(their points against it), with no goal of their own. Seeds change the weights' initialisation
and the data order; the mean over seeds is compared (and each seed's pair).

Usage:
    python benchmarks/distributed_accuracy.py                       # 3 seeds x 3 modes, 3 epochs (~3 min here)
    python benchmarks/distributed_accuracy.py --seeds 0,1,2,3,4,5 --epochs 5   # the recorded run (7 min)
    python benchmarks/distributed_accuracy.py --seeds 0 --epochs 1  # a quick look
    python benchmarks/distributed_accuracy.py --modes fp32,local,local-raw --seeds 0,1,2 --epochs 5
    python benchmarks/distributed_accuracy.py --json benchmarks/results/distributed_accuracy.json
"""

import argparse
import asyncio
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: import the package beside it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiohttp import web  # noqa: E402

from _measure import machine_line  # noqa: E402
from sukiyaki.distributed.coordinator.app import CoordinatorServer, make_app  # noqa: E402
from sukiyaki.distributed.coordinator.state import CoordinatorState, Settings  # noqa: E402
from sukiyaki.nn import Net  # noqa: E402
from sukiyaki.nn.train import _data_feed, evaluate, make_optimizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOKEN, ADMIN = "accuracy-join", "accuracy-admin"
#: Mode: (codec both ways, local steps: True for the low-communication mode with --local-steps H).
MODES = {"fp32": ("raw", False), "8bit": ("dettmers8", False), "block8": ("block8", False),
         "local": ("dettmers8", True), "local-raw": ("raw", True)}
GOAL_POINTS = 0.3
LR, MOMENTUM = 0.02, 0.9


def iterations_of(mode, epochs, n_train, batch, local_steps):
    """The run's iterations: ``epochs`` of the training digits, rounded to whole rounds of H in the
    local modes (at least one round)."""
    iterations = epochs * n_train // batch
    if MODES[mode][1]:
        iterations = max(1, round(iterations / local_steps)) * local_steps
    return iterations


async def _run(mode, seed, epochs, batch, workers, logdir, local_steps=64):
    net = Net("lenet", seed=seed)
    _, n_train = _data_feed(net, "train")
    codec, local = MODES[mode]
    steps = local_steps if local else 1
    iterations = iterations_of(mode, epochs, n_train, batch, local_steps)
    settings = Settings(batch_size=batch, iterations=iterations, seed=seed, codec_down=codec, codec_up=codec,
                        first_deadline=600.0, local_steps=steps, inner_lr=LR, inner_momentum=MOMENTUM)
    if local:  # as `sukiyaki serve`: the coordinator's optimizer stands for the outer step
        opt = make_optimizer("momentum_sgd", lr=settings.outer_lr, momentum=settings.outer_momentum, weight_decay=0.0)
    else:
        opt = make_optimizer("momentum_sgd", lr=LR, momentum=MOMENTUM, weight_decay=0.0005)
    state = CoordinatorState(net, settings, opt)
    state.pause()  # no round before every worker has joined
    server = CoordinatorServer(state, TOKEN, ADMIN)
    runner = web.AppRunner(make_app(server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    env = dict(os.environ, SUKIYAKI_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    procs, logs = [], []
    t0 = time.monotonic()
    try:
        for k in range(workers):
            log = open(Path(logdir) / f"{mode}_{seed}_{k}.log", "w")
            logs.append(log)
            procs.append(subprocess.Popen([sys.executable, "-m", "sukiyaki", "worker", url, "--token", TOKEN,
                                           "--name", f"proc{k}"], env=env, stdout=log, stderr=subprocess.STDOUT))
        while len(state.workers) < workers:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker process ended before joining; see {logdir}")
            await asyncio.sleep(0.05)
        t0 = time.monotonic()
        await server.run_actions(state.resume(time.monotonic()))
        await asyncio.wait_for(server.done.wait(), 3600)
    finally:
        await runner.cleanup()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    seconds = time.monotonic() - t0
    if state.diverged:
        raise RuntimeError(state.diverged)
    state.settle()
    result = evaluate(state.net, 500)
    return {"mode": mode, "seed": seed, "iterations": state.iteration, "epochs": epochs, "batch": batch,
            "local_steps": steps, "codec": codec,
            "accuracy": float(result["accuracy"]), "test_loss": float(result["loss"]),
            "final_train_loss": float(state.history[-1][1]), "seconds": round(seconds, 1),
            "bytes_per_sample": (server.bytes_in + server.bytes_out) / state.samples_total}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", default="fp32,8bit,block8")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--local-steps", type=int, default=64,
                   help="H of the local modes (default 64: scenario L's in distributed_scaling.py)")
    p.add_argument("--json", help="write the results to this file")
    a = p.parse_args(argv)
    modes = [m for m in a.modes.split(",") if m]
    seeds = [int(s) for s in a.seeds.split(",") if s]
    bad = [m for m in modes if m not in MODES]
    if bad or "fp32" not in modes:
        p.error(f"--modes: from {list(MODES)}, fp32 included (the reference); got {modes}")
    started = time.monotonic()
    print(f"machine: {machine_line()}; load average {os.getloadavg()[0]:.2f}")
    print(f"LeNet, bundled MNIST (8,000 train / 2,000 test), batch {a.batch}, {a.epochs} epochs, {a.workers} worker "
          f"processes, momentum SGD lr {LR}; seeds {seeds}", flush=True)
    if any(MODES[m][1] for m in modes):
        print(f"local modes: H = {a.local_steps} local steps a round (inner momentum SGD lr {LR}, momentum {MOMENTUM}; "
              f"outer Nesterov lr 0.7, momentum 0.5)", flush=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="sukiyaki-accuracy-") as logdir:
        for seed in seeds:
            for mode in modes:
                r = asyncio.run(_run(mode, seed, a.epochs, a.batch, a.workers, logdir, a.local_steps))
                runs.append(r)
                print(f"  seed {seed} {mode:<7} test accuracy {100 * r['accuracy']:.2f} %  loss {r['test_loss']:.4f}  "
                      f"({r['iterations']} iterations, {r['seconds']:.0f} s, {r['bytes_per_sample'] / 1e3:.1f} KB "
                      f"moved per sample)", flush=True)
    summary = {}
    for mode in modes:
        acc = [r["accuracy"] for r in runs if r["mode"] == mode]
        summary[mode] = {"mean_accuracy": statistics.fmean(acc), "accuracies": acc,
                         "stdev": statistics.stdev(acc) if len(acc) > 1 else 0.0}
    ref = summary["fp32"]["mean_accuracy"]
    print(f"\n{'mode':<10}{'mean test accuracy':>18}{'vs fp32 (points)':>18}{'goal':>6}  per seed (%)")
    goals = []
    for mode in modes:
        s = summary[mode]
        diff = 100 * (s["mean_accuracy"] - ref)
        per = ", ".join(f"{100 * x:.2f}" for x in s["accuracies"])
        local = MODES[mode][1]
        verdict = "" if mode == "fp32" or local else ("PASS" if diff >= -GOAL_POINTS else "FAIL")
        s["points_vs_fp32"] = diff
        if local:
            s["local_steps"] = a.local_steps
            per_sample = {m: statistics.fmean(r["bytes_per_sample"] for r in runs if r["mode"] == m)
                          for m in ("fp32", mode)}
            s["bytes_per_sample_vs_fp32"] = per_sample["fp32"] / per_sample[mode]
        print(f"{mode:<10}{100 * s['mean_accuracy']:>17.2f}%{diff:>+18.2f}{verdict:>6}  {per}"
              + (f"  (H = {a.local_steps}; {s['bytes_per_sample_vs_fp32']:.0f}x fewer bytes per sample than fp32)"
                 if local else ""))
        if mode != "fp32" and not local:
            goals.append({"goal": f"LeNet {mode} (error feedback) within {GOAL_POINTS} points of fp32's test accuracy",
                          "result": verdict, "value": round(diff, 3)})
    out = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine_line(),
           "args": vars(a), "runs": runs, "summary": summary, "goals": goals,
           "run_s": round(time.monotonic() - started, 1)}
    print(f"\nrun time: {out['run_s']:.0f} s")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
