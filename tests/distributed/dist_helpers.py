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
