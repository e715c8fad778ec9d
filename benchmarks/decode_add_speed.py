"""The coordinator's decode-and-add path alone: its speed, and how much it holds the GIL.

What the round's sums do with an 8-bit upload (:mod:`sukiyaki.distributed.coordinator.uploads`):
one thread (here the "adder") takes the pieces in order, each ``codec.decode_add(..., squares=True)``
into its slice of one float32 buffer, spread over the codec's threads. Measured, for 1, 2 and 4
codec threads (``--threads``), on ``--values`` values (138 M: VGG16) in pieces of ``--piece-mib``
MiB (4, the protocol's parts):

- speed: the wall time of one upload's adds and the CPU time of the process over it (every
  thread), best of ``--repeats``;
- GIL hold: a main thread runs a probe while the adder thread adds pieces over and over: "spin",
  a tight loop of tiny Python work (it never lets the GIL go but when asked: its rate shows how
  often and how long the adds take the GIL from it), "hop", tiny Python work and a system call
  that releases the GIL in turn (as an event loop's socket calls: each time it takes the GIL
  back it may wait for a codec thread), and "lag", an asyncio loop sleeping 1 ms a time (its
  mean and worst lag past the 1 ms). For each: the probe's slowdown against it alone, and the
  share of its wall time spent waiting for the GIL: wall - on CPU - waiting for a CPU
  (/proc/thread-self/schedstat, Linux), which leaves out what sharing the cores costs; and the
  adder's rate (M values/s) meanwhile. On 2 cores the cores are shared too (another process
  streaming memory slows "spin" about 1.9x on this machine): compare GIL waits, and one code
  with another.

Usage:
    python benchmarks/decode_add_speed.py
    python benchmarks/decode_add_speed.py --threads 1,2,4,8 --values 138000000
"""

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: import the package beside it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _measure import machine_line  # noqa: E402
from sukiyaki.distributed import codec as C  # noqa: E402
from sukiyaki.distributed import codec_threads  # noqa: E402


def make_pieces(values, piece_values, distinct=4):
    """(offset, count, bytes) covering ``values``: a few distinct encoded pieces, cycled."""
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(distinct):
        g = (rng.standard_normal(piece_values) * 1e-3).astype(np.float32)
        blobs.append(C.encode(g, "dettmers8"))
    out = []
    for k, lo in enumerate(range(0, values, piece_values)):
        n = min(piece_values, values - lo)
        data = blobs[k % distinct] if n == piece_values else C.encode(np.full(n, 1e-3, np.float32), "dettmers8")
        out.append((lo, n, data))
    return out


def add_all(pieces, dst, stop=None):
    """The adder: every piece added with its sums of squares, as the coordinator's sums do."""
    total = 0.0
    for lo, n, data in pieces:
        if stop is not None and stop.is_set():
            break
        for d in C.decode_add(data, "dettmers8", n, dst[lo:lo + n], 1.0, squares=True):
            total += d
    return total


def speed(pieces, dst, repeats):
    best = None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        add_all(pieces, dst)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if best is None or wall < best[0]:
            best = (wall, cpu)
    return best


def spin(seconds):
    """Tiny Python work for ``seconds``: iterations per second."""
    n, t0 = 0, time.perf_counter()
    end = t0 + seconds
    while True:
        x = 0
        for i in range(1000):
            x += i
        n += 1000
        if (n & 0xFFFF) < 1000 and time.perf_counter() >= end:
            break
    return n / (time.perf_counter() - t0)


def hop(seconds):
    """Tiny Python work and a system call that releases the GIL (a byte to /dev/null, as an event
    loop's socket calls) in turn for ``seconds``: rounds per second."""
    fd = os.open(os.devnull, os.O_WRONLY)
    n, t0 = 0, time.perf_counter()
    end = t0 + seconds
    try:
        while True:
            x = 0
            for i in range(20):
                x += i
            os.write(fd, b"x")
            n += 1
            if not n & 0xFF and time.perf_counter() >= end:
                break
    finally:
        os.close(fd)
    return n / (time.perf_counter() - t0)


async def lag_probe(seconds):
    """Mean and worst lag (s) of 1 ms sleeps over ``seconds``."""
    loop = asyncio.get_running_loop()
    lags, end = [], loop.time() + seconds
    while loop.time() < end:
        t = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - t - 0.001)
    return sum(lags) / len(lags), max(lags)


def _schedstat():
    """(ns on CPU, ns waiting for a CPU) of this thread (Linux; zeros elsewhere)."""
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as f:
            on, wait, _ = (int(v) for v in f.read().split())
        return on, wait
    except (OSError, ValueError):
        return 0, 0


def timed(probe, seconds):
    """(probe(seconds), share of the wall time waiting for the GIL): wall - on CPU - waiting for a
    CPU (the thread blocks on nothing else here)."""
    on0, rq0 = _schedstat()
    t0 = time.perf_counter()
    result = probe(seconds)
    wall = time.perf_counter() - t0
    on1, rq1 = _schedstat()
    return result, max(0.0, wall - (on1 - on0) / 1e9 - (rq1 - rq0) / 1e9) / wall


def loaded(pieces, dst, probe, seconds):
    """probe(seconds) in this thread while an adder thread adds pieces over and over: (probe's
    result, its share of time waiting for the GIL, the adder's M values/s)."""
    stop, done = threading.Event(), [0, 0.0]

    def adder():
        t0 = time.perf_counter()
        while not stop.is_set():
            for piece in pieces:
                if stop.is_set():
                    break
                add_all([piece], dst)
                done[0] += piece[1]
        done[1] = time.perf_counter() - t0

    th = threading.Thread(target=adder)
    th.start()
    time.sleep(0.2)  # the adder under way
    try:
        result, gil = timed(probe, seconds)
    finally:
        stop.set()
        th.join()
    return result, gil, done[0] / max(done[1], 1e-9) / 1e6


def lag(seconds):
    return asyncio.run(lag_probe(seconds))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--values", type=int, default=138_357_544)
    ap.add_argument("--piece-mib", type=float, default=4.0)
    ap.add_argument("--threads", default="1,2,4")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--probe-s", type=float, default=3.0)
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    piece_values = int(args.piece_mib * 2**20)
    print(f"machine: {machine_line()}, numpy {np.__version__}; code: {Path(C.__file__).resolve()}")
    pieces = make_pieces(args.values, piece_values)
    dst = np.zeros(args.values, np.float32)
    print(f"{args.values / 1e6:.1f} M values of dettmers8 in {len(pieces)} pieces of {args.piece_mib:g} MiB, "
          "decode_add with squares, weight 1")
    spin0, hop0 = spin(args.probe_s), hop(args.probe_s)
    lag0 = lag(args.probe_s)
    print(f"probes alone: spin {spin0 / 1e6:.2f} M it/s, hop {hop0 / 1e3:.0f} k/s, lag mean {lag0[0] * 1e3:.3f} ms "
          f"worst {lag0[1] * 1e3:.2f} ms")
    print("                                        |  spin: slower GIL wait adder M/s |   hop: slower GIL wait adder M/s "
          "|  lag: mean ms worst ms GIL wait adder M/s")
    print("threads  wall s   CPU s  CPU/wall  M val/s |" + " " * 35 + "|" + " " * 35 + "|")
    for t in threads:
        codec_threads.set_threads(t)
        add_all(pieces[:8], dst)  # warm: pool, scratch, tables
        wall, cpu = speed(pieces, dst, args.repeats)
        rs, gs, ads = loaded(pieces, dst, spin, args.probe_s)
        rh, gh, adh = loaded(pieces, dst, hop, args.probe_s)
        (lm, lx), gl, adl = loaded(pieces, dst, lag, args.probe_s)
        print(f"{t:7d} {wall:7.3f} {cpu:7.3f} {cpu / wall:9.2f} {args.values / wall / 1e6:8.0f} | "
              f"{spin0 / rs:12.2f} {gs:8.1%} {ads:9.0f} | {hop0 / rh:12.2f} {gh:8.1%} {adh:9.0f} | "
              f"{lm * 1e3:9.3f} {lx * 1e3:8.2f} {gl:8.1%} {adl:9.0f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
