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
on loopback, paced by ``link.Throttle``: 1 Gbit/s for each worker, 10 Gbit/s for the coordinator.
The workers are in-process :class:`Worker` subclasses, each with its own event loop in its own
thread (as separate machines); what their own machines would compute is replaced by waits:

- compute: ``time.sleep(samples / rate)`` in the worker's compute thread (``_compute``, or
  ``_local_steps`` for the H samples' worth of local steps);
- gradient encoding: a wait of the measured time the real path takes once (finiteness check and
  ``ErrorFeedback.compress`` with a residual for 8-bit codecs; raw serialization for fp32),
  then the bytes of that one real encoding are sent (reused every iteration, shared by the
  workers): encoding 138 M values per worker per iteration (1-3 s each here) for 8 workers
  would make this 2-core machine, not the links, the bottleneck;
- weight decoding: the PARAMS frame's header and sizes are checked, its tensors are not
  decoded; the worker waits the measured time ``protocol.decode_frame`` takes on that frame.

The gradients are real-shaped (small random values, one set shared by the workers; the
workers keep no weights). Scenario P (the paper's): 5 images/s per worker, batch 256; scenario
L (laptop GPUs): 50 images/s. Modes: fp32 (raw both ways), 8bit (dettmers8 both ways), block8
(block8 both ways, error feedback on the worker), local (local_steps H = 8, dettmers8).

Rounds per point: one warm-up round, then ``--iterations`` (2) measured rounds, or 1 when the
warm-up round took longer than ``--long-round-s`` (30 s); a point whose round is more than
``--no-warmup-above`` (40 s) of compute runs one measured round and no warm-up (P at 1 worker,
P local at every N, L local at 1: the first round's extra seconds, about 2-3 s here, are small
against it).
That keeps the full run near an hour on this machine, where a round of 8 workers costs the
coordinator a minute of CPU. The coordinator runs with ``Settings(deadline=3600)`` (the default
30 s is shorter than a 1-worker round of P) and ``app.SILENCE_LIMIT`` raised to 900 s (at 15 s
it drops workers whose RESULT waits behind the other workers' uploads, see SILENCE_LIMIT).

Per point: the iteration time (median of the measured rounds; a round of the local mode is
H = 8 iterations), images/s, speed-up over 1 worker of the same mode, bytes moved per round
and per sample (the coordinator's bytes_in + bytes_out), the coordinator thread's CPU seconds
per round, and two link references:

- link bound = S/(N r) + max((d+u)/Lw, N (d+u)/Ls): a worker's compute, plus its own link's
  time for its weights down (d) and its gradient up (u), or the coordinator's link carrying all
  N workers' traffic if that is longer (S samples a round, r images/s a worker, Lw = 1 Gbit/s,
  Ls = 10 Gbit/s, d and u measured: the coordinator's bytes out and in per round / N);
- throttle model = S/(N r) + (d+u)/Lw + (N d + u)/Ls: the best the Throttles as built allow:
  a message is paced through the coordinator's link and then the worker's (store and forward,
  not overlapped), and the coordinator sends the weights to one worker after another.

Goals (the issue's): P 8bit >= 3.8x at 4 workers and >= 7x at 8; L local >= 6.5x at 8; L 8bit
within 15% of the link bound; local steps move >= 50x fewer bytes per sample than fp32.

Usage:
    python benchmarks/distributed_scaling.py                 # everything (60-70 min on 2 cores)
    python benchmarks/distributed_scaling.py --quick         # tiny network, 1-2 workers, seconds
    python benchmarks/distributed_scaling.py --parts sim --scenarios L --modes 8bit,local --workers 1,8
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
import struct
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
from sukiyaki.distributed import codec as C  # noqa: E402
from sukiyaki.distributed import protocol as P  # noqa: E402
from sukiyaki.distributed.coordinator import app as coordinator_app  # noqa: E402
from sukiyaki.distributed.coordinator.app import CoordinatorServer, make_app  # noqa: E402
from sukiyaki.distributed.coordinator.state import CoordinatorState, Settings  # noqa: E402
from sukiyaki.distributed.link import Throttle  # noqa: E402
from sukiyaki.distributed.worker import HANDLERS, FatalError, Worker  # noqa: E402
from sukiyaki.nn import Net  # noqa: E402
from sukiyaki.nn.train import make_optimizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOKEN, ADMIN = "bench-join", "bench-admin"
WORKER_LINK, SERVER_LINK = 1e9, 10e9  # bits/s
#: Scenario: images/s per worker, batch, label.
SCENARIOS = {"P": (5.0, 256, "the paper's: K80-class clients, 5 img/s each"),
             "L": (50.0, 256, "laptop GPUs, 50 img/s each")}
#: Mode: (codec both ways, local steps H).
MODES = {"fp32": ("raw", 1), "8bit": ("dettmers8", 1), "block8": ("block8", 1), "local": ("dettmers8", 8)}
PAPER = {4: "2.8x", 8: "saturated (29 s/it)"}
#: A task may take this long before the coordinator hands it to another worker (Settings.deadline):
#: the default 30 s is shorter than a P round of one worker (51 s of compute).
DEADLINE = 3600.0
#: Seconds of silence before the coordinator drops a worker (app.SILENCE_LIMIT, 15 s): raised
#: here, since the coordinator's own backlog (VGG16 uploads checked and summed one after another
#: on its event loop, several seconds each) counts as the waiting worker's silence.
SILENCE_LIMIT = 900.0
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


class RoundClock:
    """Records, at the end of each round, the time, the coordinator thread's CPU time and bytes.

    It wraps the state's ``_finish_round`` (on this instance only; behaviour unchanged)."""

    def __init__(self, state):
        self.state = state
        self.server = None
        self.marks = []
        self.after_round = None  # called with the number of rounds done, before the next round starts
        inner = state._finish_round

        def finish(now):
            actions = inner(now)
            s = self.server
            self.marks.append((time.monotonic(), time.thread_time(), s.bytes_in if s else 0, s.bytes_out if s else 0))
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

    def start(self):
        s = self.server
        self.marks = [(time.monotonic(), time.thread_time(), s.bytes_in, s.bytes_out)]

    def rounds(self):
        """Per round: (seconds, coordinator CPU seconds, bytes in, bytes out, slowest worker's compute seconds)."""
        m = self.marks
        slowest = {}
        for k, sec in self.task_seconds:
            slowest[k] = max(slowest.get(k, 0.0), sec)
        return [(b[0] - a[0], b[1] - a[1], b[2] - a[2], b[3] - a[3], slowest.get(k, 0.0))
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
            "worker_compute_s": median([r[4] for r in meas]),
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
@dataclass
class SimCodec:
    """What the simulated workers of one mode share: gradients, their encoded bytes, measured times."""

    codec: str
    layout: list       # [(name, shape)] of the trained parameters
    grads: dict        # name -> float32 array (small random values), shared
    encoded: dict      # name -> bytes of the real codec's encoding of grads[name]
    encode_s: float    # measured: the worker's per-iteration encoding path, once
    decode_s: float    # measured: protocol.decode_frame on the coordinator's PARAMS frame


class _Simulated:
    """Stands where a worker's network would be: none is built, no weights are kept."""


SIMULATED = _Simulated()


class SimWorker(Worker):
    """A worker whose own machine's work is replaced by waits (see the module docstring).

    Args:
        url, token, name, link: as :class:`Worker`.
        rate: images/s this worker computes.
        sim: the mode's :class:`SimCodec`.
    """

    def __init__(self, url, token, name, rate, sim, link):
        super().__init__(url, token, backend="numpy", name=name, max_batch=1 << 20, reconnect=False, link=link)
        self.rate = float(rate)
        self.sim = sim

    async def _session_loop(self, session):
        # Worker._session_loop, except: PARAMS are not decoded (self._decode), and handlers are
        # looked up on self (worker.HANDLERS holds the base class's functions: overrides would be skipped).
        import aiohttp

        ws_url = self.url.replace("http://", "ws://").replace("https://", "wss://") + "/ws"
        async with session.ws_connect(ws_url, max_msg_size=0, heartbeat=None) as ws:
            self._ws = ws
            await self.send(P.HELLO, {"token": self.token, "version": P.VERSION, "name": self.name,
                                      "backend": self.backend, "device": "simulated", "codecs": list(C.CODECS),
                                      "max_batch": self.max_batch})
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    continue
                if self.link is not None:
                    await self.link.pace(len(msg.data))
                frame = self._decode(msg.data)
                if frame.kind not in P.TO_WORKER:
                    continue
                await getattr(self, HANDLERS[frame.kind].__name__)(frame)
            if self._work is not None:
                self._work.cancel()

    def _decode(self, data):
        """A frame; PARAMS: header and sizes checked, tensors not decoded, the measured decode time waited."""
        (hlen,) = struct.unpack_from("<I", data, 0)
        header = json.loads(bytes(data[4:4 + hlen]))
        if header.get("kind") != P.PARAMS:
            return P.decode_frame(data)
        names = [e["name"] for e in header["tensors"]]
        sizes = sum(e["nbytes"] for e in header["tensors"])
        expected = sum(C.encoded_size(math.prod(s), header["codec"]) for _, s in self.sim.layout)
        if names != [n for n, _ in self.sim.layout] or sizes != expected or 4 + hlen + sizes != len(data):
            raise P.ProtocolError(f"PARAMS: {len(names)} tensors of {sizes} bytes in a frame of {len(data)}; "
                                  f"expected {len(self.sim.layout)} tensors of {expected} bytes")
        time.sleep(self.sim.decode_s)  # the real worker decodes here, on its own loop: the measured time
        fields = {k: v for k, v in header.items() if k not in ("v", "kind", "seq", "tensors")}
        return P.Frame(P.PARAMS, fields, {}, len(data), header.get("seq", 0))

    async def on_welcome(self, frame):
        f = frame.fields
        self.settings = f["settings"]
        layout = [(e["name"], tuple(e["shape"])) for e in f["layout"]]
        if layout != self.sim.layout:
            raise FatalError("the coordinator's parameter layout differs from the simulated gradients'")
        self.net = SIMULATED
        self.params_version = -1

    async def on_params(self, frame):
        self.params_version = frame.fields["version"]  # the weights are not kept (the coordinator's are the copy)

    def _compute(self, ids, f):
        time.sleep(len(ids) / self.rate)
        return self.sim.grads, LOSS * f["loss_scale"]

    def _local_steps(self, ids, f):
        time.sleep(len(ids) / self.rate)  # the task's samples: its share of all H steps
        return self.sim.grads, LOSS * f["loss_scale"]

    async def _task(self, frame):
        # Worker._task, with the encoding replaced by a wait of its measured time and its bytes reused.
        f = frame.fields
        ids = frame.tensors.get("ids")
        if ids is None:
            return
        t0 = time.perf_counter()
        compute = self._local_steps if f.get("local_steps", 1) > 1 else self._compute
        grads, loss = await asyncio.to_thread(compute, ids.reshape(-1).astype(np.int64), f)
        seconds = time.perf_counter() - t0
        time.sleep(self.sim.encode_s)  # the real worker encodes here, on its own loop: the measured time
        up = self.settings["codec_up"]
        tensors = [(n, P.Encoded(self.sim.encoded[n], g.shape), up) for n, g in grads.items()]
        await self.send(P.RESULT, {"iteration": f["iteration"], "task": f["task"], "samples": int(ids.size),
                                   "loss": float(loss), "seconds": float(seconds), "nonfinite": False}, tensors)
        self.tasks_done += 1


def _run_in_thread(worker, errors):
    def main():
        try:
            asyncio.run(worker.run())
        except BaseException as exc:  # reported by the point
            errors.append(f"{worker.name}: {type(exc).__name__}: {exc}")

    t = threading.Thread(target=main, name=f"sim-{worker.name}", daemon=True)
    t.start()
    return t


def make_sim_codec(net, codec, grads, cache):
    """The mode's SimCodec: encode the gradients once (timed) and time the decode of a PARAMS frame."""
    if codec in cache:
        return cache[codec]
    names = net.store.names("trained")
    layout = [(n, tuple(net.store.entries[n].shape)) for n in names]
    enc_times, encoded = [], None
    for _ in range(2):  # the second call: error feedback with a residual, as every iteration after the first
        fb = C.ErrorFeedback()
        if codec != "raw":
            for n in names:
                fb.compress(n, grads[n], codec)
        t0 = time.perf_counter()
        all(np.all(np.isfinite(g)) for g in grads.values())  # the worker's finiteness check
        if codec == "raw":
            encoded = {n: C.encode(grads[n], "raw") for n in names}
        else:
            encoded = {n: fb.compress(n, grads[n], codec) for n in names}
        enc_times.append(time.perf_counter() - t0)
        del fb
    weights = net.store.arrays(names=names)
    frame = P.encode_frame(P.PARAMS, {"version": 0, "codec": codec}, [(n, weights[n], codec) for n in names])
    del weights
    dec_times = []
    for _ in range(2):
        t0 = time.perf_counter()
        P.decode_frame(frame)  # as the worker calls it
        dec_times.append(time.perf_counter() - t0)
    del frame
    gc.collect()
    sim = SimCodec(codec, layout, grads, encoded, min(enc_times), min(dec_times))
    cache.clear()  # one mode's bytes at a time
    cache[codec] = sim
    return sim


async def _sim_point(net, mode, rate, batch, n, warmup, rounds, sim, long_round_s):
    with CoordinatorEvents() as events:
        return await _sim_point_logged(net, mode, rate, batch, n, warmup, rounds, sim, long_round_s, events)


async def _sim_point_logged(net, mode, rate, batch, n, warmup, rounds, sim, long_round_s, events):
    """One point: ``warmup`` rounds, then ``rounds`` measured, or 1 when the warm-up round took
    longer than ``long_round_s`` (long rounds are dominated by steady work, not by noise)."""
    codec, steps = MODES[mode]
    settings = Settings(batch_size=batch, iterations=(warmup + rounds) * steps, seed=0, codec_down=codec,
                        codec_up=codec, deadline=DEADLINE, local_steps=steps)
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
    errors, threads = [], []
    samples = batch * steps
    compute = samples / n / rate
    try:
        workers = [SimWorker(url, TOKEN, f"sim{k}", rate, sim, Throttle(WORKER_LINK)) for k in range(n)]
        threads = [_run_in_thread(w, errors) for w in workers]
        await wait_for(lambda: len(state.workers) == n or errors, 120, f"{n} simulated workers joining")
        if errors:
            raise RuntimeError("; ".join(errors))
        clock.start()
        await server.run_actions(state.resume(time.monotonic()))
        limit = (warmup + rounds) * (compute + 600) + 600
        await wait_for(lambda: server.done.is_set() or not any(t.is_alive() for t in threads), limit,
                       f"{warmup + rounds} rounds of {n} simulated workers")
        if not server.done.is_set():
            raise RuntimeError(f"every simulated worker left before the run completed (round {len(clock.marks)}); "
                               f"coordinator: {events.lines[-3:]}; workers: {errors}")
    finally:
        await runner.cleanup()
        for t in threads:
            t.join(timeout=60)
    if errors or state.diverged:
        raise RuntimeError("; ".join(errors) or state.diverged)
    r = summarise(clock.rounds(), warmup, samples)
    tasks = state._next_task - 1  # more than one task per worker and round: work was handed back and redone
    done = len(clock.marks) - 1
    if tasks != done * n:
        print(f"  note: {tasks} tasks for {done * n} expected (reassigned work)", flush=True)
    r.update(workers=n, compute_s=compute, samples=samples, tasks=tasks, warmup=warmup,
             coordinator_events=events.lines[:20])
    for line in events.lines[:5]:
        print(f"  coordinator: {line}", flush=True)
    return r


def link_refs(r):
    """The link bound and the throttle model of a point (see the module docstring)."""
    n, c = r["workers"], r["compute_s"]
    d, u = r["bytes_out"] / n, r["bytes_in"] / n
    lw, ls = WORKER_LINK / 8, SERVER_LINK / 8
    bound = c + max((d + u) / lw, n * (d + u) / ls)
    model = c + (d + u) / lw + (n * d + u) / ls
    return bound, model


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


def run_sim(net, scenarios, modes, workers, iterations, no_warmup_above, long_round_s, rate_scale):
    grads = _gradients(net)
    cache, out = {}, {}
    for sc in scenarios:
        rate, batch, _ = SCENARIOS[sc]
        rate *= rate_scale
        out[sc] = []
        for mode in modes:
            codec, steps = MODES[mode]
            sim = make_sim_codec(net, codec, grads, cache)
            print(f"  sim {sc}/{mode}: worker encode {sim.encode_s:.2f} s, decode {sim.decode_s:.2f} s (measured)",
                  flush=True)
            for n in workers:
                compute = batch * steps / n / rate
                rounds, warmup = plan(compute, iterations, no_warmup_above)
                t0 = time.monotonic()
                r = asyncio.run(_sim_point(net, mode, rate, batch, n, warmup, rounds, sim, long_round_s))
                gc.collect()
                r.update(mode=mode, codec=codec, local_steps=steps, rate=rate, batch=batch,
                         encode_s=sim.encode_s, decode_s=sim.decode_s)
                r["link_bound_s"], r["throttle_model_s"] = link_refs(r)
                out[sc].append(r)
                r["peak_rss_mb"] = peak_rss_mb()
                print(f"  sim {sc}/{mode}/{n}: {r['iter_s']:.2f} s/round (link bound {r['link_bound_s']:.2f}), "
                      f"rounds {r['iter_s_all']}, point {time.monotonic() - t0:.0f} s, peak RSS so far "
                      f"{r['peak_rss_mb'] / 1024:.1f} GiB", flush=True)
        for r in out[sc]:
            base = next((b for b in out[sc] if b["mode"] == r["mode"] and b["workers"] == 1), None)
            r["speedup"] = r["img_s"] / base["img_s"] if base else float("nan")
    return out


def _gradients(net):
    rng = np.random.default_rng(0)
    store = net.store
    return {n: np.asfortranarray(rng.standard_normal(store.entries[n].shape, dtype=np.float32) * np.float32(1e-3))
            for n in store.names("trained")}


def print_sim(out, netname, nparams, quick, rate_scale):
    for sc, rows in out.items():
        rate, batch, label = SCENARIOS[sc]
        print(f"\nB. Simulated, scenario {sc} ({label}{f'; quick: rates x{rate_scale:g}' if quick else ''}): "
              f"{netname} ({nparams / 1e6:.1f} M parameters) on the coordinator, batch {batch}, workers at "
              f"{rate * rate_scale:g} img/s behind 1 Gbit/s links, coordinator link 10 Gbit/s")
        print("   s/round: median of the measured rounds (rounds = warm-up + measured; a local round = 8 iterations "
              "of the batch); img/s = samples/round / s/round")
        print("   bound = S/(N r) + max((d+u)/Lw, N(d+u)/Ls); model = S/(N r) + (d+u)/Lw + (N d + u)/Ls "
              "(store-and-forward Throttles, sequential sends); coord CPU = the coordinator thread's CPU s/round")
        head = (f"{'mode':<7}{'N':>3}{'s/round':>9}{'img/s':>9}{'speed-up':>9}{'compute':>9}{'bound':>8}"
                f"{'x bound':>8}{'model':>8}{'coord CPU':>10}{'MB/round':>10}{'KB/sample':>10}{'rounds':>7}  paper")
        print(head)
        print("-" * len(head))
        for r in rows:
            moved = r["bytes_in"] + r["bytes_out"]
            rounds = f"{r['warmup']}+{r['rounds_measured']}"
            paper = PAPER.get(r["workers"], "") if (sc == "P" and r["mode"] == "8bit" and not quick) else ""
            print(f"{r['mode']:<7}{r['workers']:>3}{r['iter_s']:>9.3f}{r['img_s']:>9.2f}{r['speedup']:>9.2f}"
                  f"{r['compute_s']:>9.3f}{r['link_bound_s']:>8.3f}{r['iter_s'] / r['link_bound_s']:>8.2f}"
                  f"{r['throttle_model_s']:>8.3f}{r['coord_cpu_s']:>10.3f}{moved / 1e6:>10.1f}"
                  f"{moved / r['samples'] / 1e3:>10.1f}{rounds:>7}  {paper}")
        enc = {r["mode"]: (r["encode_s"], r["decode_s"]) for r in rows}
        print("   simulated worker waits (measured once on this machine): " + ", ".join(
            f"{m} encode {e:.2f} s + decode {d:.2f} s" for m, (e, d) in enc.items()))


# ====================================================================== goals
def _find(out, sc, mode, n):
    return next((r for r in out.get(sc, []) if r["mode"] == mode and r["workers"] == n), None)


def _dominant(r):
    """What the round's time goes to, roughly: compute, links (beyond compute), or the coordinator's CPU."""
    links = r["link_bound_s"] - r["compute_s"]
    parts = {"compute": r["compute_s"], "links": links, "coordinator CPU": r["coord_cpu_s"]}
    other = r["iter_s"] - sum(parts.values())
    top = max(parts, key=parts.get)
    return (f"{r['iter_s']:.1f} s/round = compute {r['compute_s']:.1f} + links {links:.1f} + coordinator CPU "
            f"{r['coord_cpu_s']:.1f} + other {other:.1f} (largest: {top})")


def goals(out, quick):
    res = []

    def speed(sc, mode, n, target, name):
        r = _find(out, sc, mode, n)
        if r is None:
            res.append({"goal": name, "result": "n/a", "value": None, "why": "not measured"})
            return
        ok = r["speedup"] >= target
        res.append({"goal": name, "result": "PASS" if ok else "FAIL", "value": round(r["speedup"], 3),
                    "why": "" if ok else _dominant(r)})

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
                    f"the Throttles' own model is {worst['throttle_model_s']:.2f} s"})
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
                    ratios.append((per(f) / per(r), sc, r["workers"]))
    if ratios:
        low = min(ratios)
        ok = low[0] >= 50
        res.append({"goal": "local steps move >= 50x fewer bytes per sample than synchronous fp32",
                    "result": "PASS" if ok else "FAIL", "value": round(low[0], 2),
                    "why": "" if ok else f"lowest at {low[1]}/N={low[2]}: H = 8 steps x 4 (8-bit vs 32-bit codes) "
                                         f"gives at most ~32x; >= 50x needs H >= 13 at 8 bits"})
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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny network (LeNet), 1-2 workers, scaled rates: seconds")
    p.add_argument("--parts", type=_list("--parts", ("real", "sim")), default=["real", "sim"])
    p.add_argument("--scenarios", type=_list("--scenarios", SCENARIOS), default=list(SCENARIOS))
    p.add_argument("--modes", type=_list("--modes", MODES), default=list(MODES))
    p.add_argument("--workers", type=_list("--workers", cast=int), default=[1, 2, 4, 8])
    p.add_argument("--iterations", type=int, default=2, help="measured rounds per simulated point (after 1 warm-up)")
    p.add_argument("--long-round-s", type=float, default=30.0,
                   help="a point whose warm-up round took longer than this measures 1 round (0: never)")
    p.add_argument("--no-warmup-above", type=float, default=40.0,
                   help="a point whose round is more than this many seconds of compute runs 1 round, no warm-up "
                        "(0: never)")
    p.add_argument("--real-batch", type=int, default=128)
    p.add_argument("--real-iterations", type=int, default=30, help="measured iterations per real point")
    p.add_argument("--real-warmup", type=int, default=5)
    p.add_argument("--json", help="write the results to this file")
    a = p.parse_args(argv)
    if a.iterations < 1 or a.real_iterations < 1 or a.real_batch < 1 or a.real_warmup < 1:
        p.error("--iterations, --real-iterations, --real-warmup and --real-batch must be at least 1")
    if any(n < 1 for n in a.workers):
        p.error("--workers must be positive")
    rate_scale = 1.0
    if a.quick:
        a.workers = [n for n in a.workers if n <= 2] or [1, 2]
        a.iterations, a.long_round_s, a.no_warmup_above, rate_scale = 2, 0, 0, 1000.0
        a.real_batch, a.real_iterations, a.real_warmup = 64, 4, 2
    coordinator_app.SILENCE_LIMIT = max(coordinator_app.SILENCE_LIMIT, SILENCE_LIMIT)
    started = time.monotonic()
    print(f"machine: {machine_line()}, numpy {np.__version__}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}; settings: deadline {DEADLINE:.0f} s, "
          f"coordinator silence limit raised to {coordinator_app.SILENCE_LIMIT:.0f} s (see the docstring)", flush=True)
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine_line(),
              "cores": os.cpu_count(), "versions": versions(), "args": vars(a), "quick": a.quick}
    if "real" in a.parts:
        rows = run_real(a.workers, a.real_batch, a.real_warmup, a.real_iterations)
        print_real(rows, a.real_batch, a.real_warmup, a.real_iterations)
        result["real"] = rows
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
        out = run_sim(net, a.scenarios, a.modes, a.workers, a.iterations, a.no_warmup_above, a.long_round_s,
                      rate_scale)
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
