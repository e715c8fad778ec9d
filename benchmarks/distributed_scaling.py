"""Distributed training speed-up against the number of workers: the paper's Figure 6, for this system.

Paper (Fig. 6 right): VGG16, batch 256, clients with a K80 (about 5 images/s each) in browsers,
8-bit weights and gradients (Dettmers): 2.8x faster with 4 clients than with 1, saturating at 8
(29 s an iteration with 8). This script measures the same curve for sukiyaki's coordinator.

Part A, real compute: LeNet on the bundled digits, the coordinator in this process, 1, 2, 4, 8
native workers as separate processes (``python -m sukiyaki worker URL --token T``), one BLAS
and kernel thread each (one device per worker, as the paper's clients). Images/s and speed-up.
On a machine of C cores the speed-up cannot pass about C (2 here): part A validates the
machinery (processes, protocol, coordinator), not the scaling.

Part B, VGG16 at scale, simulated: the coordinator holds the real VGG16 (138 M parameters, its
ParamStore, momentum SGD, a tiny random data source of 256x256x3 uint8 images and 1000-class
labels); it encodes, sends, receives, checks, decodes and sums for real, over the real protocol
(version 2: weights and gradients streamed layer by layer in parts of 4 MiB) on loopback, paced
by ``link.Throttle``: 1 Gbit/s for each worker, 10 Gbit/s for the coordinator. The workers run
in a second process (one thread and event loop each, as separate machines), so that their
simulation costs CPU there, not in the coordinator's process (both share this machine's cores);
they are :class:`Worker` subclasses that speak the real protocol through the real worker loop,
and what their own machines would compute is replaced by waits:

- compute: ``samples / rate`` seconds a task, split across VGG16's layers in proportion to each
  layer's FLOPs (2 x weights x output positions for a convolution or linear layer, 0 for the
  others), 1/3 in the forward pass and 2/3 in the backward pass (a convolution's or a linear
  layer's backward is two products of its forward's size, for the input's and the weights'
  gradients). Before each layer's forward wait, the worker waits until that layer's weights
  have arrived; after each layer's backward wait, its gradient is reported and goes out while
  the next layers' backward waits run. The local-steps mode waits ``samples / rate`` in one
  piece (its weight change is known only after the H steps);
- gradient encoding: a wait of the measured time the real path takes once, on this machine,
  before the mode's points (``Worker.encode_tensor`` of every tensor: the finiteness check,
  then ``ErrorFeedback.compress_pieces`` with a residual in pieces of ``PART_BYTES`` for 8-bit
  codecs, raw pieces for fp32; the codec's threads as this machine gives them, printed),
  split across the pieces in proportion to their size and taken in the worker's encoding thread
  beside its backward pass (as a worker whose GPU computes while its CPU encodes), then the
  bytes of one real encoding are sent (reused every iteration, shared by the workers): encoding
  138 M values per worker per iteration (1-3 s each here) for 8 workers would make this 2-core
  machine, not the links, the bottleneck;
- weight decoding: each PARAMS part's header and sizes are checked, its tensors are not decoded;
  the worker waits the measured time ``protocol.decode_frame`` takes on the whole weights, in
  proportion to the part's bytes.

The gradients are real-shaped (small random values, one set shared by the workers; the
workers keep no weights). Scenario P (the paper's): 5 images/s per worker, batch 256; scenario
L (laptop GPUs): 50 images/s. Modes: fp32 (raw both ways), 8bit (dettmers8 both ways), block8
(block8 both ways, error feedback on the worker), local (the low-communication mode, as DiLoCo:
H local steps a round, dettmers8 both ways: the new weights down, the workers' weight change up
with error feedback on the worker). H is the scenario's (``--local-steps`` sets it for all):
P 8, L 64. On L's links a round moves 2 x 138 MB per worker (about 2.2 s at 1 Gbit/s) whatever
H is; with H = 8 that is 2.2 s against 5.1 s of compute at 8 workers, and the link bound itself
allows only about 5.9x; H = 64 (40.96 s of compute a round at 8 workers) lets the exchange be
a few per cent of the round, as DiLoCo's H = 500 does on its networks, and moves 4 H = 256x
fewer bytes per sample than synchronous fp32 (8 bits instead of 32, once per H batches).
``benchmarks/distributed_accuracy.py --modes fp32,local,local-raw`` trains LeNet with the same
H and codes, beside synchronous fp32.

Rounds per point: one warm-up round, then ``--iterations`` (2) measured rounds, or 1 when the
warm-up round took longer than ``--long-round-s`` (30 s); a point whose round is more than
``--no-warmup-above`` (40 s) of compute runs one measured round and no warm-up (P at 1 worker,
P local at every N, L local at 1). The workers declare their speed when they join, so each
task's deadline is 5 times what that speed predicts; the coordinator's silence limit is its
default (15 s).

Per point: the iteration time (median of the measured rounds; a round of the local mode is
H iterations), images/s, speed-up over 1 worker of the same mode, bytes moved per round
and per sample (the coordinator's bytes_in + bytes_out), the CPU seconds per round of the
coordinator's process (every thread) and of the simulated workers' process, and two link
references:

- link bound = S/(N r) + max((d+u)/Lw, N (d+u)/Ls), the issue's: a worker's compute, plus its own
  link's time for its weights down (d) and its gradient up (u), or the coordinator's link
  carrying all N workers' traffic if that is longer (S samples a round, r images/s a worker,
  Lw = 1 Gbit/s, Ls = 10 Gbit/s, d and u measured: the coordinator's bytes out and in per round
  / N). It assumes the transfers wait for the compute: streaming beats it;
- floor = max(S/(N r), (d+u)/Lw, N (d+u)/Ls): the same with the transfers wholly overlapped with
  the compute, what no schedule can beat on these links.

And a round timeline per point (``benchmarks/_round_probe.py``): the CPU time and the lag of the
coordinator's event-loop thread, and when, from the round's start, the new weights were encoded,
the last PARAMS part left the coordinator and reached the workers, the last worker finished
computing and sent its RESULT, and the coordinator took it and had its sums; with each worker's
download and upload spans beside what its link alone needs. The simulated workers note their
events on the system's monotonic clock (written to a file when their process ends); nothing of
this changes what is sent or computed.

Goals (the issue's): P 8bit >= 3.8x at 4 workers and >= 7x at 8; L local >= 6.5x at 8; L 8bit
within 15% of the link bound; local steps move >= 50x fewer bytes per sample than fp32.

Usage:
    python benchmarks/distributed_scaling.py                 # everything (about an hour on 2 cores)
    python benchmarks/distributed_scaling.py --quick         # tiny network, 1-2 workers, seconds
    python benchmarks/distributed_scaling.py --parts sim --scenarios L --modes 8bit,local --workers 1,8
    python benchmarks/distributed_scaling.py --parts sim --scenarios L --modes local --local-steps 8   # the old H
    python benchmarks/distributed_scaling.py --json benchmarks/results/distributed_scaling.json
"""

import argparse
import asyncio
import datetime
import gc
import json
import logging
import math
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: import the package beside it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from aiohttp import web  # noqa: E402

from _measure import machine_line, median, peak_rss_mb  # noqa: E402
from _round_probe import CoordinatorProbe, WorkerTrace, load_traces, print_timelines, save_traces, timeline  # noqa: E402
from sukiyaki.distributed import codec as C  # noqa: E402
from sukiyaki.distributed import codec_threads  # noqa: E402
from sukiyaki.distributed import protocol as P  # noqa: E402
from sukiyaki.distributed.coordinator import app as coordinator_app  # noqa: E402
from sukiyaki.distributed.coordinator.app import CoordinatorServer, make_app  # noqa: E402
from sukiyaki.distributed.coordinator.state import CoordinatorState, Settings  # noqa: E402
from sukiyaki.distributed.link import Throttle  # noqa: E402
from sukiyaki.distributed.worker import FatalError, Worker  # noqa: E402
from sukiyaki.nn import Net  # noqa: E402
from sukiyaki.nn.train import make_optimizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOKEN, ADMIN = "bench-join", "bench-admin"
WORKER_LINK, SERVER_LINK = 1e9, 10e9  # bits/s
#: Scenario: images/s per worker, batch, label, H of the local-steps mode.
SCENARIOS = {"P": (5.0, 256, "the paper's: K80-class clients, 5 img/s each", 8),
             "L": (50.0, 256, "laptop GPUs, 50 img/s each", 64)}
#: Mode: (codec both ways, local steps H; None: the scenario's H).
MODES = {"fp32": ("raw", 1), "8bit": ("dettmers8", 1), "block8": ("block8", 1), "local": ("dettmers8", None)}


def mode_steps(mode, scenario, local_steps=None):
    """(codec, H) of a mode in a scenario: H is 1 for the synchronous modes; the local mode's is
    ``local_steps`` when given, else the scenario's."""
    codec, steps = MODES[mode]
    if steps is None:
        steps = local_steps or SCENARIOS[scenario][3]
    return codec, steps


PAPER = {4: "2.8x", 8: "saturated (29 s/it)"}
LOSS = math.log(1000.0)


# ====================================================================== shared helpers
async def serve(state, **server_kw):
    """(server, runner, url) of a coordinator on an ephemeral loopback port."""
    server = CoordinatorServer(state, TOKEN, ADMIN, **server_kw)
    runner = web.AppRunner(make_app(server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return server, runner, f"http://127.0.0.1:{port}"


_CLOCK = os.sysconf("SC_CLK_TCK")


class RoundClock:
    """Records, at the end of each round, the time, the CPU time of this process (the coordinator:
    every thread of it) and of the simulated workers' process (``child``, when there is one), the
    bytes moved, and the CPU time of the event loop's thread (the rounds end on it).

    It wraps the state's ``_finish_round`` (on this instance only; behaviour unchanged)."""

    def __init__(self, state):
        self.state = state
        self.server = None
        self.child = None  # pid of the simulated workers' process
        self.marks = []
        self.after_round = None  # called with the number of rounds done, before the next round starts
        inner = state._finish_round

        def finish(now):
            actions = inner(now)
            self.marks.append(self._mark())
            if self.after_round is not None:
                self.after_round(len(self.marks) - 1)
            return actions

        state._finish_round = finish
        self.task_seconds = []  # (round, seconds a worker reported computing its task)
        on_result = state.on_result

        def result(wid, frame, now):
            self.task_seconds.append((len(self.marks) - 1, frame.fields.get("seconds", 0.0)))
            return on_result(wid, frame, now)

        state.on_result = result

    def _mark(self):
        s = self.server
        coord, sim = process_cpu(), (process_cpu(self.child) if self.child else 0.0)
        return (time.monotonic(), coord, s.bytes_in if s else 0, s.bytes_out if s else 0, sim, time.thread_time())

    def start(self):
        self.marks = [self._mark()]

    def rounds(self):
        """Per round: (seconds, coordinator CPU seconds, bytes in, bytes out, slowest worker's compute
        seconds, simulated workers' CPU seconds)."""
        m = self.marks
        slowest = {}
        for k, sec in self.task_seconds:
            slowest[k] = max(slowest.get(k, 0.0), sec)
        return [(b[0] - a[0], b[1] - a[1], b[2] - a[2], b[3] - a[3], slowest.get(k, 0.0), b[4] - a[4])
                for k, (a, b) in enumerate(zip(m, m[1:]))]


class CoordinatorEvents(logging.Handler):
    """Collects the coordinator's log lines about lost, late or refused work during a point."""

    KEYS = ("silent", "handed back", "rejected", "diverged")

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []
        self.logger = logging.getLogger("sukiyaki.coordinator")

    def emit(self, record):
        text = record.getMessage()
        if any(k in text for k in self.KEYS):
            self.lines.append(text)

    def __enter__(self):
        self._level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self._level)


async def wait_for(cond, timeout, what):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.02)


def summarise(rounds, warmup, samples):
    """Median over the rounds after the warm-up: seconds, CPU, bytes in/out (per round)."""
    meas = rounds[warmup:]
    if not meas:
        raise RuntimeError(f"no measured round (got {len(rounds)} rounds, warm-up {warmup})")
    sec = median([r[0] for r in meas])
    return {"iter_s": sec, "iter_s_all": [round(r[0], 4) for r in rounds], "img_s": samples / sec,
            "coord_cpu_s": median([r[1] for r in meas]),
            "bytes_in": median([r[2] for r in meas]), "bytes_out": median([r[3] for r in meas]),
            "worker_compute_s": median([r[4] for r in meas]), "sim_cpu_s": median([r[5] for r in meas]),
            "rounds_measured": len(meas)}


# ====================================================================== part A: real compute
async def _real_point(n, batch, warmup, iters, env, logdir):
    net = Net("lenet", seed=0)
    settings = Settings(batch_size=batch, iterations=warmup + iters, seed=0, deadline=600.0)
    state = CoordinatorState(net, settings, make_optimizer("momentum_sgd", lr=0.01, momentum=0.9))
    state.pause()  # no round before every worker has joined: the first split is equal
    clock = RoundClock(state)
    server, runner, url = await serve(state)
    clock.server = server
    procs, logs = [], []
    try:
        for k in range(n):
            log = open(Path(logdir) / f"worker{n}_{k}.log", "w")
            logs.append(log)
            procs.append(subprocess.Popen([sys.executable, "-m", "sukiyaki", "worker", url, "--token", TOKEN,
                                           "--name", f"proc{k}"], env=env, stdout=log, stderr=subprocess.STDOUT))
        await wait_for(lambda: len(state.workers) == n or any(p.poll() is not None for p in procs), 180,
                       f"{n} worker processes joining")
        if len(state.workers) != n:
            raise RuntimeError(f"a worker process exited before joining; see {logdir}")
        clock.start()
        await server.run_actions(state.resume(time.monotonic()))
        await asyncio.wait_for(server.done.wait(), 600)
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
    return summarise(clock.rounds(), warmup, batch)


def run_real(workers, batch, warmup, iters):
    env = dict(os.environ, SUKIYAKI_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    rows = []
    with tempfile.TemporaryDirectory(prefix="sukiyaki-scaling-") as logdir:
        for n in workers:
            r = asyncio.run(_real_point(n, batch, warmup, iters, env, logdir))
            r.update(workers=n, batch=batch)
            rows.append(r)
            print(f"  real: {n} worker process(es) done: {r['iter_s'] * 1e3:.1f} ms/it", flush=True)
    base = next((r for r in rows if r["workers"] == 1), None)
    for r in rows:
        r["speedup"] = r["img_s"] / base["img_s"] if base else float("nan")
    return rows


def print_real(rows, batch, warmup, iters):
    cores = os.cpu_count()
    print(f"\nA. Real compute: LeNet, bundled digits, batch {batch}; coordinator in this process; workers are "
          f"processes (python -m sukiyaki worker), 1 thread each; median of {iters} iterations after {warmup} warm-up")
    print(f"   This machine has {cores} cores: the real-compute speed-up cannot pass ~{cores}x here; part A "
          f"validates the machinery, not the scaling.")
    print("   reference: paper Fig. 6 left (LeNet on Nexus 7 tablets, batch 120): 'nearly linear'; "
          f"ideal here = min(N, {cores} cores)")
    print("   worker compute = the slowest worker's own compute time per iteration (RESULT 'seconds'); the rest "
          "of an iteration is protocol, coordinator and waiting for a core")
    head = (f"{'workers':>8}{'ms/it':>10}{'img/s':>10}{'speed-up':>10}{'ideal':>7}{'x ideal':>9}"
            f"{'worker compute ms':>19}{'KB/it':>10}{'coord CPU ms/it':>17}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ideal = min(r["workers"], cores)
        print(f"{r['workers']:>8}{r['iter_s'] * 1e3:>10.1f}{r['img_s']:>10.0f}{r['speedup']:>10.2f}{ideal:>7}"
              f"{r['speedup'] / ideal:>9.2f}{r['worker_compute_s'] * 1e3:>19.1f}"
              f"{(r['bytes_in'] + r['bytes_out']) / 1e3:>10.0f}"
              f"{r['coord_cpu_s'] * 1e3:>17.1f}")


# ====================================================================== part B: simulated workers
#: The share of a sample's compute in the forward pass (the backward pass of a convolution or a
#: linear layer is two products of the forward's size, for the input's and the weights' gradients).
FORWARD_SHARE = 1 / 3


@dataclass
class SimCodec:
    """What the simulated workers of one mode share: their gradients' encoded bytes, measured times."""

    codec: str
    layout: list       # [(name, shape)] of the trained parameters
    layers: list       # [(layer, [parameter names], forward FLOPs per sample)] in forward order
    encoded: dict      # name -> the bytes of the worker's pieces of the (random) gradient of name, one after another
    encode_s: float    # measured: the worker's per-iteration encoding path (Worker.encode_tensor), once (all tensors)
    decode_s: float    # measured: protocol.decode_frame on the coordinator's weights, once (all tensors)
    params_bytes: int  # the weights' encoded bytes (a PARAMS part waits decode_s times its share)
    encode_threads: int = 1  # the codec's threads when encode_s was measured
    folder: str = None  # where it is saved for the simulated workers' process

    def save(self, folder):
        """Write it to a folder (the simulated workers' process maps the bytes); returns the spec path."""
        folder = Path(folder)
        index, offset = {}, 0
        with open(folder / "encoded.bin", "wb") as f:
            for name, _ in self.layout:
                data = self.encoded[name]
                f.write(data)
                index[name] = [offset, len(data)]
                offset += len(data)
        spec = {"codec": self.codec, "layout": [[n, list(shape)] for n, shape in self.layout], "layers": self.layers,
                "index": index, "encode_s": self.encode_s, "decode_s": self.decode_s,
                "params_bytes": self.params_bytes, "encode_threads": self.encode_threads}
        (folder / "sim.json").write_text(json.dumps(spec))
        self.folder = str(folder)
        return folder / "sim.json"

    @staticmethod
    def load(path):
        """The SimCodec saved in path's folder (its bytes memory-mapped, not copied)."""
        import mmap

        spec = json.loads(Path(path).read_text())
        with open(Path(path).parent / "encoded.bin", "rb") as f:
            view = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
        encoded = {n: view[o:o + k] for n, (o, k) in spec["index"].items()}
        return SimCodec(spec["codec"], [(n, tuple(shape)) for n, shape in spec["layout"]],
                        [(a, list(b), c) for a, b, c in spec["layers"]], encoded, spec["encode_s"], spec["decode_s"],
                        spec["params_bytes"], spec["encode_threads"])


def sim_layers(net):
    """[(layer, parameter names, forward FLOPs per sample)] of the train phase, in forward order:
    2 x weights x output positions for a layer with weights (convolution, linear), 0 otherwise."""
    out = []
    for d in net.schedules["train"].order:
        layer = net.layers[d["name"]]
        shapes = layer.param_shapes()
        flops = 0.0
        if "weight" in shapes:
            spec = layer.out_specs[0]
            channels = math.prod(shapes["bias"]) if "bias" in shapes else spec.shape[-1]
            flops = 2.0 * math.prod(shapes["weight"]) * spec.size / channels
        out.append((d["name"], [f"{d['name']}/{k}" for k in shapes], flops))
    return out


class _Simulated:
    """Stands where a worker's network would be: none is built, no weights are kept."""


SIMULATED = _Simulated()


class SimWorker(Worker):
    """A worker whose own machine's work is replaced by waits (see the module docstring).

    It speaks the real protocol through the real :class:`Worker` loop (TASK, PARAMS parts, GRADS
    parts, RESULT); what differs: the weights are counted, not decoded (a wait of the measured
    decode time, in proportion to each part's bytes), the forward and backward passes are waits
    split across the layers in proportion to their FLOPs (forward 1/3, backward 2/3 of the task's
    ``samples / rate`` seconds), and encoding a layer's gradient is a wait of the measured
    encoding time in proportion to its size (in the worker's encoding thread, beside the
    backward pass) before the bytes of one real encoding are sent.

    Args:
        url, token, name, link: as :class:`Worker`.
        rate: images/s this worker computes (also declared to the coordinator when joining).
        sim: the mode's :class:`SimCodec`.
    """

    def __init__(self, url, token, name, rate, sim, link):
        super().__init__(url, token, backend="numpy", name=name, max_batch=1 << 20, reconnect=False, link=link,
                         device="simulated", speed=rate)
        self.rate = float(rate)
        self.sim = sim
        self._sizes = {n: math.prod(shape) for n, shape in sim.layout}
        self._shapes = dict(sim.layout)
        self._total = sum(self._sizes.values())
        self._flops = sum(f for _, _, f in sim.layers)
        self.trace = WorkerTrace()  # when its tasks' events happened (benchmarks/_round_probe.py)

    async def on_task(self, frame):
        self.trace.note(frame.fields["iteration"], "task")
        await super().on_task(frame)

    async def send(self, kind, fields, tensors=()):
        if kind == P.GRADS:
            self.trace.note(fields["iteration"], "grads_first", first=True)
        await super().send(kind, fields, tensors)
        if kind == P.RESULT:
            self.trace.note(fields["iteration"], "result_sent")

    async def on_welcome(self, frame):
        f = frame.fields
        self.settings = f["settings"]
        if [(e["name"], tuple(e["shape"])) for e in f["layout"]] != self.sim.layout:
            raise FatalError("the coordinator's parameter layout differs from the simulated gradients'")
        self.net = SIMULATED
        self._layer_names = {layer: names for layer, names, _ in self.sim.layers}
        self._trained = set(self._sizes)
        self._wire_names = {n: n for n in self._sizes}
        self._reset_weights()

    async def on_params(self, frame):
        f = frame.fields
        inc = self._incoming_for(f["version"])
        await asyncio.sleep(self.sim.decode_s * frame.nbytes / self.sim.params_bytes)  # the real one decodes here
        for p in frame.pieces:
            inc.put(p, None)  # counted, not kept
        if f["part"] + 1 >= f["parts"]:
            inc.finish()
            self.trace.note(f["version"], "params_in")

    def _load_from(self, inc, names):
        todo = [n for n in names if n not in self._held]
        if not todo:
            return 0.0
        waited = inc.wait(todo)
        self._held.update(todo)
        return waited

    def _weights_in(self, version):
        inc = self._incoming
        if inc is not None and inc.version == version and inc.done:
            self.params_version = version
            self._incoming = None

    def state_tensors(self):
        return []

    def _compute(self, ids, f):
        t = len(ids) / self.rate
        for layer, _, flops in self.sim.layers:  # forward: each layer waits for its weights, then computes
            self._before_layer(layer)
            if flops:
                time.sleep(t * FORWARD_SHARE * flops / self._flops)
        for layer, _, flops in reversed(self.sim.layers):  # backward: a layer's gradient is out when done
            if flops:
                time.sleep(t * (1 - FORWARD_SHARE) * flops / self._flops)
            self._after_layer(layer)
        self.trace.note(f["iteration"], "computed")
        return {}, LOSS * f["loss_scale"]

    def _local_steps(self, ids, f):
        self._all_weights()
        time.sleep(len(ids) / self.rate)  # the task's samples: its share of all H steps
        self.trace.note(f["iteration"], "computed")
        return dict.fromkeys(self._sizes), LOSS * f["loss_scale"]

    def encode_tensor(self, name, grads=None):
        codec, n, blob = self.settings["codec_up"], self._sizes[name], self.sim.encoded[name]
        at = 0
        for lo, hi in C.piece_bounds(n, codec, P.PART_BYTES) or [(0, 0)]:
            time.sleep(self.sim.encode_s * (hi - lo) / self._total)  # the real one encodes this piece here
            size = C.encoded_size(hi - lo, codec)
            yield self._shapes[name], codec, lo, hi, blob[at:at + size], True
            at += size


def _run_in_thread(worker, errors):
    def main():
        try:
            asyncio.run(worker.run())
        except BaseException as exc:  # reported by the point
            errors.append(f"{worker.name}: {type(exc).__name__}: {exc}")

    t = threading.Thread(target=main, name=f"sim-{worker.name}", daemon=True)
    t.start()
    return t


def sim_child(spec_path):
    """The simulated workers' process: N SimWorkers (a thread and an event loop each) of a point."""
    spec = json.loads(Path(spec_path).read_text())
    sim = SimCodec.load(spec["sim"])
    errors = []
    workers = [SimWorker(spec["url"], TOKEN, f"sim{k}", spec["rate"], sim, Throttle(WORKER_LINK))
               for k in range(spec["workers"])]
    threads = [_run_in_thread(w, errors) for w in workers]
    for t in threads:
        t.join()
    if spec.get("trace"):
        save_traces(spec["trace"], [w.trace for w in workers])
    for e in errors:
        print(e, file=sys.stderr, flush=True)
    return 1 if errors else 0


def process_cpu(pid=None):
    """CPU seconds (user + system, every thread) of a process (this one by default; Linux /proc)."""
    with open(f"/proc/{pid or 'self'}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK


def make_sim_codec(net, codec, grads, cache, folder):
    """The mode's SimCodec: encode the gradients once (timed) and time the decode of the weights;
    saved in a folder of ``folder`` for the simulated workers' process."""
    if codec in cache:
        return cache[codec]
    names = net.store.names("trained")
    layout = [(n, tuple(net.store.entries[n].shape)) for n in names]
    enc_times, encoded = [], None
    for _ in range(2):  # the best of 2 trials, each timing a round after a first (a residual, as every round after the first)
        worker = Worker("http://127.0.0.1:9", TOKEN, reconnect=False)  # its real encode_tensor, on this machine
        worker.settings = {"codec_up": codec}
        for n in names:
            for _ in worker.encode_tensor(n, grads):
                pass
        t0 = time.perf_counter()
        pieces = {n: [item[4] for item in worker.encode_tensor(n, grads)] for n in names}
        enc_times.append(time.perf_counter() - t0)
        encoded = {n: b"".join(p) for n, p in pieces.items()}  # each piece's bytes, in order
        del worker, pieces
    weights = net.store.arrays(names=names)
    frame = P.encode_frame(P.PARAMS, {"version": 0, "codec": codec, "part": 0, "parts": 1},
                           [(n, weights[n], codec) for n in names])
    del weights
    dec_times = []
    for _ in range(2):
        t0 = time.perf_counter()
        P.decode_frame(frame)  # what a worker's PARAMS parts cost it, all together
        dec_times.append(time.perf_counter() - t0)
    params_bytes = len(frame)
    del frame
    gc.collect()
    sim = SimCodec(codec, layout, sim_layers(net), encoded, min(enc_times), min(dec_times), params_bytes,
                   codec_threads.threads())
    (Path(folder) / codec).mkdir(exist_ok=True)
    sim.save(Path(folder) / codec)
    cache.clear()  # one mode's bytes at a time
    cache[codec] = sim
    return sim


async def _sim_point(net, mode, steps, rate, batch, n, warmup, rounds, sim, long_round_s):
    with CoordinatorEvents() as events:
        return await _sim_point_logged(net, mode, steps, rate, batch, n, warmup, rounds, sim, long_round_s, events)


async def _sim_point_logged(net, mode, steps, rate, batch, n, warmup, rounds, sim, long_round_s, events):
    """One point: ``warmup`` rounds, then ``rounds`` measured, or 1 when the warm-up round took
    longer than ``long_round_s`` (long rounds are dominated by steady work, not by noise)."""
    codec = MODES[mode][0]
    settings = Settings(batch_size=batch, iterations=(warmup + rounds) * steps, seed=0, codec_down=codec,
                        codec_up=codec, local_steps=steps)  # deadlines: 5 x what each worker's declared speed predicts
    if steps > 1:  # as `sukiyaki serve`: the coordinator's optimizer stands for the outer step
        opt = make_optimizer("momentum_sgd", lr=settings.outer_lr, momentum=settings.outer_momentum, weight_decay=0.0)
    else:
        opt = make_optimizer("momentum_sgd", lr=0.01, momentum=0.9, weight_decay=0.0005)
    state = CoordinatorState(net, settings, opt)
    state.pause()
    clock = RoundClock(state)

    def after_round(done):
        if warmup and done == warmup and long_round_s and clock.marks[-1][0] - clock.marks[-2][0] > long_round_s:
            state.settings.iterations = (warmup + 1) * steps  # checked when the next round would start

    clock.after_round = after_round
    server, runner, url = await serve(state, link=Throttle(SERVER_LINK))
    clock.server = server
    probe = CoordinatorProbe(server)
    samples = batch * steps
    compute = samples / n / rate
    spec = Path(sim.folder) / f"point_{n}.json"
    trace = Path(sim.folder) / f"point_{n}.trace.json"
    spec.write_text(json.dumps({"sim": str(Path(sim.folder) / "sim.json"), "url": url, "rate": rate, "workers": n,
                                "trace": str(trace)}))
    log = open(Path(sim.folder) / f"point_{n}.log", "w")
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--sim-child", str(spec)],
                             stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    clock.child = child.pid
    errors = []
    try:
        await wait_for(lambda: len(state.workers) == n or child.poll() is not None, 120,
                       f"{n} simulated workers joining")
        if child.poll() is not None:
            raise RuntimeError(f"the simulated workers' process ended: {Path(log.name).read_text()[-2000:]}")
        clock.start()
        probe.start()
        await server.run_actions(state.resume(time.monotonic()))
        limit = (warmup + rounds) * (compute + 600) + 600
        await wait_for(lambda: server.done.is_set() or child.poll() is not None, limit,
                       f"{warmup + rounds} rounds of {n} simulated workers")
        if not server.done.is_set():
            raise RuntimeError(f"every simulated worker left before the run completed (round {len(clock.marks)}); "
                               f"coordinator: {events.lines[-3:]}; workers: {Path(log.name).read_text()[-2000:]}")
    finally:
        probe.stop()
        await runner.cleanup()
        try:
            if child.wait(timeout=60):
                errors.append(Path(log.name).read_text()[-2000:])
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()
    if errors or state.diverged:
        raise RuntimeError("; ".join(errors) or state.diverged)
    r = summarise(clock.rounds(), warmup, samples)
    tasks = state._next_task - 1  # more than one task per worker and round: work was handed back and redone
    done = len(clock.marks) - 1
    if tasks != done * n:
        print(f"  note: {tasks} tasks for {done * n} expected (reassigned work)", flush=True)
    r.update(workers=n, compute_s=compute, samples=samples, tasks=tasks, warmup=warmup,
             coordinator_events=events.lines[:20],
             timeline=timeline(probe, clock.marks, load_traces(trace), warmup, steps))
    for line in events.lines[:5]:
        print(f"  coordinator: {line}", flush=True)
    return r


def link_refs(r):
    """The link bound (transfers after compute, not overlapped: the issue's) and the streaming floor
    (transfers wholly overlapped with compute) of a point (see the module docstring)."""
    n, c = r["workers"], r["compute_s"]
    d, u = r["bytes_out"] / n, r["bytes_in"] / n
    lw, ls = WORKER_LINK / 8, SERVER_LINK / 8
    bound = c + max((d + u) / lw, n * (d + u) / ls)
    floor = max(c, (d + u) / lw, n * (d + u) / ls)
    return bound, floor


def plan(compute, iterations, no_warmup_above):
    """(rounds at most, warm-up rounds) of a point whose round is ``compute`` seconds of work.

    One warm-up round, unless a round's compute passes ``no_warmup_above`` seconds: then the
    first round is measured (the warm-up's extra seconds, about 2-3 s here, are small against
    it) and it is the only one. How many of the others are measured is decided after the
    warm-up (see ``_sim_point_logged``).
    """
    if no_warmup_above and compute > no_warmup_above:
        return 1, 0
    return iterations, 1


#: --coordinator-codec-threads (None: the codec's own default).
COORDINATOR_CODEC_THREADS = None


def run_sim(net, scenarios, modes, workers, iterations, no_warmup_above, long_round_s, rate_scale, local_steps=None):
    with tempfile.TemporaryDirectory(prefix="sukiyaki-sim-") as folder:
        return _run_sim(net, scenarios, modes, workers, iterations, no_warmup_above, long_round_s, rate_scale, folder,
                        local_steps)


def _run_sim(net, scenarios, modes, workers, iterations, no_warmup_above, long_round_s, rate_scale, folder,
             local_steps=None):
    grads = _gradients(net)
    cache, out = {}, {}
    for sc in scenarios:
        rate, batch = SCENARIOS[sc][:2]
        rate *= rate_scale
        out[sc] = []
        for mode in modes:
            codec, steps = mode_steps(mode, sc, local_steps)
            sim = make_sim_codec(net, codec, grads, cache, folder)
            print(f"  sim {sc}/{mode}: worker encode {sim.encode_s:.2f} s ({sim.encode_threads} codec threads), "
                  f"decode {sim.decode_s:.2f} s (measured once, on this machine, before the points)", flush=True)
            measured_threads = codec_threads.threads()
            if COORDINATOR_CODEC_THREADS:
                codec_threads.set_threads(COORDINATOR_CODEC_THREADS)
                print(f"  sim {sc}/{mode}: the coordinator codes with {COORDINATOR_CODEC_THREADS} threads", flush=True)
            for n in workers:
                compute = batch * steps / n / rate
                rounds, warmup = plan(compute, iterations, no_warmup_above)
                t0 = time.monotonic()
                r = asyncio.run(_sim_point(net, mode, steps, rate, batch, n, warmup, rounds, sim, long_round_s))
                gc.collect()
                r.update(mode=mode, codec=codec, local_steps=steps, rate=rate, batch=batch,
                         encode_s=sim.encode_s, decode_s=sim.decode_s, encode_threads=sim.encode_threads)
                r["link_bound_s"], r["floor_s"] = link_refs(r)
                out[sc].append(r)
                r["peak_rss_mb"] = peak_rss_mb()
                print(f"  sim {sc}/{mode}/{n} (H = {steps}): {r['iter_s']:.2f} s/round (link bound "
                      f"{r['link_bound_s']:.2f}, of the bytes this point moved), "
                      f"rounds {r['iter_s_all']}, point {time.monotonic() - t0:.0f} s, peak RSS so far "
                      f"{r['peak_rss_mb'] / 1024:.1f} GiB", flush=True)
            if COORDINATOR_CODEC_THREADS:
                codec_threads.set_threads(measured_threads)
        for r in out[sc]:
            base = next((b for b in out[sc] if b["mode"] == r["mode"] and b["workers"] == 1), None)
            r["speedup"] = r["img_s"] / base["img_s"] if base else float("nan")
            # what the link bound allows: 1 worker's bound round over this one's (same mode, same bytes model)
            r["bound_speedup"] = (base["link_bound_s"] / base["samples"]) / (r["link_bound_s"] / r["samples"]) \
                if base else float("nan")
    return out


def _gradients(net):
    rng = np.random.default_rng(0)
    store = net.store
    return {n: np.asfortranarray(rng.standard_normal(store.entries[n].shape, dtype=np.float32) * np.float32(1e-3))
            for n in store.names("trained")}


def print_sim(out, netname, nparams, quick, rate_scale):
    for sc, rows in out.items():
        rate, batch, label = SCENARIOS[sc][:3]
        print(f"\nB. Simulated, scenario {sc} ({label}{f'; quick: rates x{rate_scale:g}' if quick else ''}): "
              f"{netname} ({nparams / 1e6:.1f} M parameters) on the coordinator, batch {batch}, workers at "
              f"{rate * rate_scale:g} img/s behind 1 Gbit/s links, coordinator link 10 Gbit/s")
        hs = sorted({r["local_steps"] for r in rows if r["mode"] == "local"})
        print("   s/round: median of the measured rounds (rounds = warm-up + measured; a local round = H iterations "
              f"of the batch{', H = ' + ', '.join(map(str, hs)) if hs else ''}: the H column); img/s = samples/round "
              "/ s/round")
        print("   bound = S/(N r) + max((d+u)/Lw, N(d+u)/Ls), the link bound (transfers not overlapped; d, u: the "
              "bytes this point moved down and up per worker and round); floor = max(S/(N r), (d+u)/Lw, N(d+u)/Ls), "
              "the same wholly overlapped; bound sp = the speed-up the link bound allows (bound at 1 / bound at N)")
        print("   coord CPU / sim CPU = CPU s/round of the coordinator's process (every thread) / of the simulated "
              "workers' process; this machine has " f"{os.cpu_count()} cores for both")
        head = (f"{'mode':<7}{'N':>3}{'s/round':>9}{'img/s':>9}{'speed-up':>9}{'compute':>9}{'bound':>8}"
                f"{'x bound':>8}{'bound sp':>9}{'floor':>8}{'coord CPU':>10}{'sim CPU':>8}{'MB/round':>10}"
                f"{'KB/sample':>10}{'rounds':>7}{'H':>4}  paper")
        print(head)
        print("-" * len(head))
        for r in rows:
            moved = r["bytes_in"] + r["bytes_out"]
            rounds = f"{r['warmup']}+{r['rounds_measured']}"
            paper = PAPER.get(r["workers"], "") if (sc == "P" and r["mode"] == "8bit" and not quick) else ""
            print(f"{r['mode']:<7}{r['workers']:>3}{r['iter_s']:>9.3f}{r['img_s']:>9.2f}{r['speedup']:>9.2f}"
                  f"{r['compute_s']:>9.3f}{r['link_bound_s']:>8.3f}{r['iter_s'] / r['link_bound_s']:>8.2f}"
                  f"{r.get('bound_speedup', float('nan')):>9.2f}"
                  f"{r['floor_s']:>8.3f}{r['coord_cpu_s']:>10.3f}{r['sim_cpu_s']:>8.3f}{moved / 1e6:>10.1f}"
                  f"{moved / r['samples'] / 1e3:>10.1f}{rounds:>7}{r['local_steps']:>4}  {paper}")
        print_timelines(rows, WORKER_LINK / 8)
        enc = {r["mode"]: (r["encode_s"], r["decode_s"], r.get("encode_threads", 1)) for r in rows}
        print("   simulated worker waits (measured once per mode on this machine, before its points): " + ", ".join(
            f"{m} encode {e:.2f} s ({t} codec threads) + decode {d:.2f} s" for m, (e, d, t) in enc.items()))


# ====================================================================== goals
def _find(out, sc, mode, n):
    return next((r for r in out.get(sc, []) if r["mode"] == mode and r["workers"] == n), None)


def _dominant(r):
    """What stands between the round and its floor: the streaming floor (compute or links), and the
    CPU that this machine's cores gave the coordinator and the simulated workers per round."""
    cores = os.cpu_count() or 1
    cpu = r["coord_cpu_s"] + r["sim_cpu_s"]
    return (f"{r['iter_s']:.2f} s/round against a floor of {r['floor_s']:.2f} s (compute {r['compute_s']:.2f} s; "
            f"links {r['floor_s'] if r['floor_s'] > r['compute_s'] else 0:.2f} s); CPU per round: coordinator "
            f"{r['coord_cpu_s']:.2f} s + simulated workers {r['sim_cpu_s']:.2f} s = {cpu:.2f} s on {cores} shared "
            f"cores ({cpu / cores:.2f} s of the machine)")


def goals(out, quick):
    res = []

    def speed(sc, mode, n, target, name):
        r = _find(out, sc, mode, n)
        if r is None:
            res.append({"goal": name, "result": "n/a", "value": None, "why": "not measured"})
            return
        ok = r["speedup"] >= target
        res.append({"goal": name, "result": "PASS" if ok else "FAIL", "value": round(r["speedup"], 3),
                    "local_steps": r["local_steps"], "bound_speedup": round(r.get("bound_speedup", float("nan")), 3),
                    "why": "" if ok else f"{_dominant(r)}; the link bound allows {r.get('bound_speedup', 0):.2f}x "
                                         f"(H = {r['local_steps']})"})

    speed("P", "8bit", 4, 3.8, "P synchronous 8-bit speed-up at 4 workers >= 3.8x")
    speed("P", "8bit", 8, 7.0, "P synchronous 8-bit speed-up at 8 workers >= 7x")
    speed("L", "local", 8, 6.5, "L local steps speed-up at 8 workers >= 6.5x")
    rows = [r for r in out.get("L", []) if r["mode"] == "8bit"]
    if rows:
        worst = max(rows, key=lambda r: r["iter_s"] / r["link_bound_s"])
        x = worst["iter_s"] / worst["link_bound_s"]
        ok = x <= 1.15
        res.append({"goal": "L synchronous 8-bit within 15% of the link bound (every N)",
                    "result": "PASS" if ok else "FAIL",
                    "value": round(x, 3), "why": "" if ok else f"worst at N={worst['workers']}: {_dominant(worst)}; "
                    f"the streaming floor is {worst['floor_s']:.2f} s"})
    else:
        res.append({"goal": "L synchronous 8-bit within 15% of the link bound", "result": "n/a", "value": None,
                    "why": "not measured"})
    ratios = []
    for sc, rs in out.items():
        for r in rs:
            if r["mode"] == "local":
                f = _find(out, sc, "fp32", r["workers"])
                if f:
                    per = lambda x: (x["bytes_in"] + x["bytes_out"]) / x["samples"]  # noqa: E731
                    ratios.append((per(f) / per(r), sc, r["workers"], r["local_steps"]))
    if ratios:
        low = min(ratios)
        ok = low[0] >= 50
        res.append({"goal": "local steps move >= 50x fewer bytes per sample than synchronous fp32",
                    "result": "PASS" if ok else "FAIL", "value": round(low[0], 2), "local_steps": low[3],
                    "why": "" if ok else f"lowest at {low[1]}/N={low[2]}: H = {low[3]} steps x 4 (8-bit vs 32-bit "
                                         f"codes) gives at most ~{4 * low[3]}x; >= 50x needs H >= 13 at 8 bits"})
    else:
        res.append({"goal": "local steps move >= 50x fewer bytes per sample than synchronous fp32", "result": "n/a",
                    "value": None, "why": "not measured (needs the local and fp32 modes at the same N)"})
    return res


def print_goals(res, quick):
    print("\nGoals" + (" (quick mode: a tiny network and scaled rates, not the goals' setting)" if quick else ""))
    for g in res:
        v = "" if g["value"] is None else f" ({g['value']})"
        print(f"  {g['result']:<5} {g['goal']}{v}")
        if g["why"]:
            print(f"        {g['why']}")


# ====================================================================== main
CLUSTER_RATE = re.compile(r"in ([0-9.]+) s of training, ([0-9,.]+) images/s")


def gpu_count():
    """(GPUs here, why none) through CuPy."""
    try:
        import cupy
    except ImportError:
        return 0, "CuPy is not installed"
    try:
        return cupy.cuda.runtime.getDeviceCount(), None
    except Exception as exc:  # no driver
        return 0, f"no usable CUDA driver ({type(exc).__name__})"


def run_cluster(workers, batch, iterations, device, netname):
    """Part C: ``sukiyaki train --distributed`` with N ranks on this host (one process each)."""
    env = dict(os.environ, SUKIYAKI_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    rows = []
    with tempfile.TemporaryDirectory(prefix="sukiyaki-cluster-") as folder:
        from sukiyaki.data import load_mnist

        x, t = load_mnist(split="test")
        small = Path(folder) / "test20.npz"
        np.savez(small, images=x[..., :20], labels=t[0, :20])
        for n in workers:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            procs = []
            for rank in range(n):
                out = Path(folder) / f"n{n}_rank{rank}"
                out.mkdir()
                e = dict(env, RANK=str(rank), WORLD_SIZE=str(n), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                         MASTER_PORT=str(port))
                argv = [sys.executable, "-m", "sukiyaki", "train", netname, "--distributed", "--device", device,
                        "--iterations", str(iterations), "--batch-size", str(batch), "--no-progress",
                        "--val-cycle", "0", "--out-dir", str(out)]
                if netname == "lenet":
                    argv += ["--data", f"d_test={small}"]
                procs.append(subprocess.Popen(argv, env=e, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True))
            outs = [p.communicate(timeout=3600) for p in procs]
            bad = [(r, p.returncode, err) for r, (p, (_, err)) in enumerate(zip(procs, outs)) if p.returncode]
            if bad:
                raise RuntimeError(f"cluster run of {n} rank(s): rank {bad[0][0]} exited {bad[0][1]}: {bad[0][2][-2000:]}")
            m = CLUSTER_RATE.search(outs[0][0])
            seconds, rate = float(m.group(1)), float(m.group(2).replace(",", ""))
            rows.append({"ranks": n, "batch": batch, "iterations": iterations, "seconds": seconds, "img_s": rate})
            print(f"  cluster: {n} rank(s) done: {rate:,.0f} img/s", flush=True)
    base = next((r for r in rows if r["ranks"] == 1), None)
    for r in rows:
        r["speedup"] = r["img_s"] / base["img_s"] if base else float("nan")
    return rows


def print_cluster(rows, device, netname, batch, iterations):
    cores = os.cpu_count()
    print(f"\nC. Cluster mode (sukiyaki train --distributed, no coordinator): {netname}, global batch {batch}, "
          f"{iterations} iterations, device {device}, one process per rank on this host, gradients averaged "
          f"{'by NCCL' if device == 'cuda' else 'through rank 0 (host communicator)'}; images/s of the whole run "
          f"(first iterations included)")
    if device != "cuda":
        print(f"   This machine has {cores} cores: the speed-up cannot pass ~{cores}x here (part C on CPUs validates "
              f"the machinery; GPU clusters average through NCCL)")
    print("   peer: PyTorch DistributedDataParallel on the same GPUs is not measured yet")
    print(f"{'ranks':>8}{'img/s':>10}{'speed-up':>10}{'x N':>7}")
    for r in rows:
        print(f"{r['ranks']:>8}{r['img_s']:>10,.0f}{r['speedup']:>10.2f}{r['speedup'] / r['ranks']:>7.2f}")


def _positive_int(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _list(kind, choices=None, cast=str):
    def parse(text):
        items = [cast(x.strip()) for x in text.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{kind}: give at least one")
        if choices is not None:
            bad = [x for x in items if x not in choices]
            if bad:
                raise argparse.ArgumentTypeError(f"{kind}: {bad} not in {list(choices)}")
        return items
    return parse


def versions():
    import aiohttp

    import sukiyaki

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"python": platform.python_version(), "numpy": np.__version__, "aiohttp": aiohttp.__version__,
            "sukiyaki": getattr(sukiyaki, "__version__", "?"), "commit": commit}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--sim-child"]:  # the simulated workers' process of a point
        return sim_child(argv[1])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny network (LeNet), 1-2 workers, scaled rates: seconds")
    p.add_argument("--parts", type=_list("--parts", ("real", "sim", "cluster", "cluster-gpu")), default=["real", "sim"],
                   help="real, sim (the coordinator); cluster: sukiyaki train --distributed on CPU ranks; "
                        "cluster-gpu: the same on one GPU per rank (refused without as many GPUs as ranks)")
    p.add_argument("--scenarios", type=_list("--scenarios", SCENARIOS), default=list(SCENARIOS))
    p.add_argument("--modes", type=_list("--modes", MODES), default=list(MODES))
    p.add_argument("--workers", type=_list("--workers", cast=int), default=[1, 2, 4, 8])
    p.add_argument("--iterations", type=int, default=2, help="measured rounds per simulated point (after 1 warm-up)")
    p.add_argument("--local-steps", type=int, default=None,
                   help="H of the local mode in every scenario (default: the scenario's, P "
                        f"{SCENARIOS['P'][3]}, L {SCENARIOS['L'][3]})")
    p.add_argument("--long-round-s", type=float, default=30.0,
                   help="a point whose warm-up round took longer than this measures 1 round (0: never)")
    p.add_argument("--no-warmup-above", type=float, default=40.0,
                   help="a point whose round is more than this many seconds of compute runs 1 round, no warm-up "
                        "(0: never)")
    p.add_argument("--real-batch", type=int, default=128)
    p.add_argument("--real-iterations", type=int, default=30, help="measured iterations per real point")
    p.add_argument("--real-warmup", type=int, default=5)
    p.add_argument("--cluster-net", default="lenet", help="network of the cluster parts (default lenet)")
    p.add_argument("--cluster-batch", type=int, default=64, help="global batch of the cluster parts")
    p.add_argument("--cluster-iterations", type=int, default=20, help="iterations per cluster point")
    p.add_argument("--coordinator-codec-threads", type=_positive_int, default=None,
                   help="sim: codec threads of the coordinator's process during the points (default: the "
                        "coordinator's own cap, app.COORDINATOR_CODEC_THREADS, of the codec's default)")
    p.add_argument("--json", help="write the results to this file")
    a = p.parse_args(argv)
    if "cluster-gpu" in a.parts:
        have, why = gpu_count()
        if have < max(a.workers):
            p.exit(2, f"distributed_scaling.py: --parts cluster-gpu with --workers {','.join(map(str, a.workers))} "
                      f"needs {max(a.workers)} GPUs, one per rank; this machine has {have}"
                      f"{f' ({why})' if why else ''}\n")
    if a.iterations < 1 or a.real_iterations < 1 or a.real_batch < 1 or a.real_warmup < 1:
        p.error("--iterations, --real-iterations, --real-warmup and --real-batch must be at least 1")
    if any(n < 1 for n in a.workers):
        p.error("--workers must be positive")
    if a.local_steps is not None and a.local_steps < 2:
        p.error("--local-steps must be at least 2")
    rate_scale = 1.0
    if a.quick:
        a.workers = [n for n in a.workers if n <= 2] or [1, 2]
        a.iterations, a.long_round_s, a.no_warmup_above, rate_scale = 2, 0, 0, 1000.0
        a.real_batch, a.real_iterations, a.real_warmup = 64, 4, 2
    started = time.monotonic()
    print(f"machine: {machine_line()}, numpy {np.__version__}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}; load average {os.getloadavg()[0]:.2f}; "
          f"deadlines: 5 x what each worker's declared speed predicts; coordinator silence limit "
          f"{coordinator_app.SILENCE_LIMIT:.0f} s (its default); parts of {P.PART_BYTES >> 20} MiB", flush=True)
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine_line(),
              "cores": os.cpu_count(), "versions": versions(), "args": vars(a), "quick": a.quick}
    if "real" in a.parts:
        rows = run_real(a.workers, a.real_batch, a.real_warmup, a.real_iterations)
        print_real(rows, a.real_batch, a.real_warmup, a.real_iterations)
        result["real"] = rows
    for part, device in (("cluster", "numpy"), ("cluster-gpu", "cuda")):
        if part in a.parts:
            batch, iters = (32, 4) if a.quick else (a.cluster_batch, a.cluster_iterations)
            rows = run_cluster(a.workers, batch, iters, device, a.cluster_net)
            print_cluster(rows, device, a.cluster_net, batch, iters)
            result[part] = rows
    if "sim" in a.parts:
        if a.quick:
            net = Net("lenet", seed=0)
            netname = "LeNet (quick)"
        else:
            rng = np.random.default_rng(0)
            images = rng.integers(0, 256, (256, 256, 3, 256), dtype=np.uint8)  # (h, w, c, n): one batch
            labels = rng.integers(0, 1000, 256)
            net = Net("vgg16", seed=0, data_sources={"d_train": (images, labels),
                                                     "d_test": (images[..., :8], labels[:8])})
            netname = "VGG16"
        nparams = net.store.trained_size
        global COORDINATOR_CODEC_THREADS
        COORDINATOR_CODEC_THREADS = a.coordinator_codec_threads
        out = run_sim(net, a.scenarios, a.modes, a.workers, a.iterations, a.no_warmup_above, a.long_round_s,
                      rate_scale, a.local_steps)
        print_sim(out, netname, nparams, a.quick, rate_scale)
        res = goals(out, a.quick)
        print_goals(res, a.quick)
        result.update(simulated=out, goals=res, network=netname, parameters=nparams)
    result["run_s"] = round(time.monotonic() - started, 1)
    print(f"\nrun time: {result['run_s']:.0f} s")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
