"""Shared helpers for the benchmarks: interleaved timing, medians, memory in a subprocess."""

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time


def machine_line():
    """One line naming the CPU, core count and Python."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def interleaved(fns, repeats, min_seconds=0.2):
    """Time each fn (a dict name -> callable returning work units done) in alternation.

    Returns {name: [units per second for each repeat]}.
    """
    rates = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            units, t0 = 0, time.perf_counter()
            while True:
                units += fn()
                dt = time.perf_counter() - t0
                if dt >= min_seconds:
                    break
            rates[name].append(units / dt)
    return rates


def median(xs):
    return statistics.median(xs)


def rss_mb():
    """Current resident set size of this process in MiB (Linux)."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def peak_rss_mb():
    """Peak resident set size of this process so far in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script, args, timeout=1800):
    """Run `python script args...` and parse the JSON object it prints last."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
