"""Helpers of the distributed tests: a coordinator and workers on loopback, in one event loop.

``run_cluster`` builds a CoordinatorState around a fresh network, serves it on an ephemeral
port of 127.0.0.1, starts in-process workers (their gradients computed in threads), waits
until the run completes, and returns the state. LeNet on a few hundred digits keeps a run
to seconds.
"""

import asyncio
import json
from pathlib import Path

import numpy as np
from aiohttp import web

from sukiyaki.data import load_mnist
from sukiyaki.distributed.coordinator.app import CoordinatorServer, make_app
from sukiyaki.distributed.coordinator.state import CoordinatorState, Settings
from sukiyaki.distributed.worker import Worker
from sukiyaki.nn import Net
from sukiyaki.nn.train import make_optimizer

LENET = Path(__file__).resolve().parents[2] / "sukiyaki" / "nets" / "lenet.json"
TOKEN, ADMIN = "join-token", "admin-token"


def small_lenet(n_train=256, n_test=64, seed=0, defs=None):
    """LeNet on the first n_train training and n_test test digits."""
    x, t = load_mnist(split="train")
    xt, tt = load_mnist(split="test")
    return Net(defs or json.loads(LENET.read_text()), seed=seed,
               data_sources={"d_train": (x[..., :n_train], t[:, :n_train]), "d_test": (xt[..., :n_test], tt[:, :n_test])})


def make_state(settings=None, net=None, optimizer=None):
    """A CoordinatorState of a small LeNet."""
    settings = settings or Settings(batch_size=32, iterations=4, seed=0)
    return CoordinatorState(net or small_lenet(), settings, optimizer or make_optimizer("momentum_sgd", lr=0.02))


async def serve(state, **server_kw):
    """(server, runner, url) of a coordinator on an ephemeral loopback port."""
    server = CoordinatorServer(state, TOKEN, ADMIN, **server_kw)
    runner = web.AppRunner(make_app(server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return server, runner, f"http://127.0.0.1:{port}"


async def run_cluster(state, n_workers=2, timeout=60, worker_kw=None, **server_kw):
    """Serve state, run n_workers in-process workers until the run completes; returns the server."""
    server, runner, url = await serve(state, **server_kw)
    kws = worker_kw or [{}] * n_workers
    workers = [Worker(url, TOKEN, name=f"w{i}", **kw) for i, kw in enumerate(kws)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        await asyncio.wait_for(server.done.wait(), timeout)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
    server.workers_run = workers
    return server


def weights(state):
    """{name: array} of the coordinator's current weights."""
    return state.net.store.arrays()


def assert_same_weights(a, b, rtol=0.0, atol=0.0):
    """Weights equal (bitwise when both tolerances are 0)."""
    assert list(a) == list(b)
    for k in a:
        if rtol == atol == 0.0:
            assert a[k].tobytes() == b[k].tobytes(), f"{k}: max diff {np.abs(a[k] - b[k]).max()}"
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=k)


# ------------------------------------------------------------------ real processes
# (``python -m sukiyaki serve`` and ``worker`` subprocesses on loopback, for the fault tests)

import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def digits_npz(path, n=256):
    """Write the first n training digits as an .npz for ``--data d_train=PATH``; returns the path."""
    x, t = load_mnist(split="train")
    np.savez(path, images=x[..., :n], labels=t.reshape(-1)[:n])
    return path


def free_port():
    """A TCP port free on 127.0.0.1 now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, timeout=2.0):
    """GET url as JSON, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def admin(url, action, timeout=5.0):
    """POST an admin action with the test's admin token; returns the JSON answer."""
    req = urllib.request.Request(f"{url}/api/admin/{action}", data=b"", method="POST",
                                 headers={"Authorization": f"Bearer {ADMIN}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def checkpoint_tensors(path):
    """{name: array} of a coordinator checkpoint: the weights and the optimizer state."""
    from sukiyaki.nn.params import load_safetensors

    return load_safetensors(Path(path).read_bytes())[0]


class Processes:
    """Subprocesses of one test, each logging to a file; every one killed on exit.

    Example:
        >>> with Processes(tmp_path) as ps:                                   # doctest: +SKIP
        ...     ps.start("serve", "serve", "lenet", "--port", "8765")
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.procs = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()  # SIGKILL ends a stopped process too
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def start(self, name, *args):
        """Start ``python -m sukiyaki ARGS`` under this name (its output in NAME.log)."""
        # one BLAS thread: on a small machine, threaded BLAS in three processes ran 5-20 times slower
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1",
                   OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        out = open(self.folder / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "sukiyaki", *map(str, args)], stdout=out,
                                            stderr=subprocess.STDOUT, env=env, cwd=self.folder)
        out.close()
        return self.procs[name]

    def signal(self, name, sig):
        os.kill(self.procs[name].pid, sig)

    def log(self, name):
        path = self.folder / f"{name}.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def logs(self, tail=3000):
        return "\n".join(f"----- {n} (rc {p.poll()}):\n{self.log(n)[-tail:]}" for n, p in self.procs.items())

    def wait_until(self, predicate, timeout, what):
        """Poll predicate (every 50 ms) until it returns a true value; fail with every log when it does not."""
        end = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{self.logs()}")
            time.sleep(0.05)

    def wait_exit(self, name, timeout):
        """The exit status of a process, failing (with the logs) if it runs past timeout."""
        try:
            return self.procs[name].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{name} still running after {timeout} s\n{self.logs()}") from None


def serve_command(npz, port, iterations, *extra, seed=3, deterministic=True):
    """The arguments of a small ``serve`` (deterministic by default): LeNet, batch 32, shards of 8."""
    return ["serve", "lenet", "--data", f"d_train={npz}", "--batch-size", 32, "--shard-size", 8, "--iterations",
            iterations, "--seed", seed, *(["--deterministic"] if deterministic else []), "--val-cycle", 0,
            "--port", port, "--token", TOKEN, "--admin-token", ADMIN, *extra]


def rss_bytes(pid):
    """The resident set size of a process now (Linux /proc), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for process {pid}")


def worker_by_name(metrics, name):
    """The dashboard entry of the worker called name, or None."""
    return next((w for w in (metrics or {}).get("workers", []) if w["name"] == name), None)


SIGSTOP, SIGCONT, SIGKILL = signal.SIGSTOP, signal.SIGCONT, signal.SIGKILL


class ThreadedCluster:
    """A coordinator on 127.0.0.1 with in-process native workers, its event loop in a background
    thread (for tests that drive a browser from the main thread). Subclasses give
    ``make_server()`` and ``names`` (the native workers started with it).

    Args:
        state: the CoordinatorState.
        port: 0 for any free port.
    """

    names = ()

    def __init__(self, state, port=0):
        import threading

        self.state, self.port = state, port
        self.ready = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._thread, daemon=True)
        self.thread.start()
        if not self.ready.wait(30) or self.error:
            raise RuntimeError(f"the coordinator did not start: {self.error!r}")

    def make_server(self):
        return CoordinatorServer(self.state, TOKEN, ADMIN)

    def _thread(self):
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by __init__ or stop()
            self.error = exc
            self.ready.set()

    async def _main(self):
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.server = self.make_server()
        runner = web.AppRunner(make_app(self.server), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        tasks = [asyncio.create_task(Worker(self.url, TOKEN, name=n).run()) for n in self.names]
        self.ready.set()
        try:
            await self._stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()

    def stop(self):
        """Shut the coordinator down (its port closes) and wait for the thread."""
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
            self.thread.join(30)
        assert not self.thread.is_alive(), "the coordinator thread did not end"
