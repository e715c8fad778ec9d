"""The browser runtime's Python side: what the Web Worker runs in Pyodide.

The page never runs Python (DESIGN.md, decision 12): it posts commands to a Web Worker
(``static/worker.js``), which boots Pyodide, installs this package's wheel and calls the
functions here. Everything the page shows comes back through ``post``, a function taking
one JSON-able dict (the Web Worker's ``postMessage``); kinds of message:

- ``{"type": "backend", "backend", "why"}``: which backend computes, and why that one;
- ``{"type": "progress", "iteration", "loss", "images_per_s", "first_gradient_s", "seconds"}``:
  after each training iteration;
- ``{"type": "validation", "iteration", "accuracy", "loss", "images"}``: test digits;
- ``{"type": "stopped", "iteration", "reason"}``: training ended;
- ``{"type": "worker", "event", ...}``: the distributed worker's state (see :func:`run_worker`).

Nothing here imports ``js`` or ``pyodide`` at module level, so it also runs (and is tested)
under CPython; long loops yield to the event loop between steps (``await asyncio.sleep(0)``),
which in Pyodide lets the Web Worker receive the page's Stop.

Example:
    >>> msgs = []
    >>> choose_backend(has_webgpu=False)[0]
    'numpy'
"""

import asyncio
import base64
import time

import numpy as np

#: Where the bundled digits are read in the tab: the first n of the 2,000 test digits are validated.
VAL_DIGITS = 500


def choose_backend(has_webgpu):
    """(backend, why) for a page whose browser has (or lacks) ``navigator.gpu``."""
    if has_webgpu:
        return "numpy", "numpy (WebGPU in the browser is not wired yet)"
    return "numpy", "numpy (this browser gives the page no WebGPU: navigator.gpu is missing)"


def js_poster(fn):
    """A post function for :class:`TrainSession` and :func:`run_worker` from a JavaScript function
    (Pyodide only): each message dict reaches it as a plain JavaScript object."""
    from js import Object
    from pyodide.ffi import to_js

    def post(msg):
        fn(to_js(msg, dict_converter=Object.fromEntries))

    return post


def _b64(array):
    """Base64 of a float32 array's bytes in column-major order (exact bits across postMessage)."""
    return base64.b64encode(np.asarray(array, dtype="<f4").tobytes(order="F")).decode("ascii")


def arrays_message(arrays):
    """{name: {"shape", "b64"}} of float32 arrays (what :func:`gradients` posts)."""
    return {n: {"shape": list(a.shape), "b64": _b64(a)} for n, a in arrays.items()}


def decode_arrays(message):
    """The inverse of :func:`arrays_message`: {name: float32 array}."""
    return {n: np.frombuffer(base64.b64decode(v["b64"]), dtype="<f4").reshape(v["shape"], order="F").copy()
            for n, v in message.items()}


class TrainSession:
    """LeNet (or another shipped net) training in the tab, step by step, reporting each iteration.

    Args:
        post: function taking one message dict.
        net: a shipped definition's name.
        batch_size: samples per iteration.
        seed: initialisation, shuffle and random draws.
        val_every: validate on the first VAL_DIGITS test digits every this many iterations (0: never).
        iterations: stop after this many (None: until stopped).
    """

    def __init__(self, post, net="lenet", batch_size=64, seed=0, val_every=100, iterations=None):
        self.post = post
        self.net_name = net
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.val_every = int(val_every)
        self.iterations = iterations
        self.stopping = False
        self.trainer = None

    def stop(self):
        """Ask the loop to end after the current iteration."""
        self.stopping = True

    def _build(self):
        from sukiyaki.data import load_mnist
        from sukiyaki.nn import Net
        from sukiyaki.nn.train import Trainer, make_optimizer

        sources = None
        if self.net_name == "lenet":  # validation on a few test digits keeps it short in the tab
            xt, tt = load_mnist(split="test")
            sources = {"d_test": (xt[..., :VAL_DIGITS], tt[:, :VAL_DIGITS])}
        net = Net(self.net_name, seed=self.seed, data_sources=sources)
        return Trainer(net, make_optimizer("momentum_sgd"), batch_size=self.batch_size, iterations=1 << 40,
                       val_cycle=None, seed=self.seed, progress=False, log=None, read_every=1)

    async def run(self):
        """Train until stopped (or ``iterations``); returns the last iteration."""
        t0 = time.perf_counter()
        self.trainer = tr = self._build()
        await asyncio.sleep(0)
        first = None
        t_train, images = 0.0, 0
        reason = "stopped"
        while not self.stopping:
            t = time.perf_counter()
            tr.step()
            (it, n, loss), = tr.read_losses()
            t_train += time.perf_counter() - t
            images += n
            if first is None:
                first = time.perf_counter() - t0  # the network built and the first gradient applied
            self.post({"type": "progress", "iteration": it, "loss": loss, "images_per_s": images / t_train,
                       "first_gradient_s": first, "seconds": t_train})
            if self.val_every and it % self.val_every == 0:
                await asyncio.sleep(0)
                self._validate(it)
            if self.iterations is not None and it >= self.iterations:
                reason = f"done {it} iterations"
                break
            await asyncio.sleep(0)  # the Web Worker takes the page's messages (Stop) here
        self.post({"type": "stopped", "iteration": tr.iteration, "reason": reason})
        return tr.iteration

    def _validate(self, it):
        result = self.trainer.validate(batch_size=VAL_DIGITS)
        if result:
            self.post({"type": "validation", "iteration": it, "accuracy": result.get("accuracy"),
                       "loss": result.get("loss"), "images": result.get("images")})


def gradients(ids, net="lenet", seed=0, iteration=0):
    """One training step's gradient (no update) of a fresh network, with its weights.

    What the tests compare with the native CPU's gradient of the same weights and batch.

    Args:
        ids: sample indices of the batch.
        net: a shipped definition's name.
        seed: the network's seed (initialisation and random draws).
        iteration: the step's iteration (counter of the random draws).
    Returns:
        {"weights": arrays_message, "gradients": arrays_message, "loss": float, "seconds": float,
        "numpy": numpy's version, "no_blas": the numpy backend's switch for numpy without a BLAS}.
    """
    from sukiyaki.backends.numpy import blas
    from sukiyaki.nn import Net

    n = Net(net, seed=seed)
    ids = np.asarray(list(ids), dtype=np.int64)
    inputs = list(n.schedules["train"].inputs)
    t = time.perf_counter()
    n.zero_grads()
    out = n.train_batch({b: ids for b in inputs}, loss_scale=1.0, seed=seed, iteration=iteration)
    loss = sum(float(v) for v in out.values())
    grads = n.store.slot_arrays(n.store.grad)
    seconds = time.perf_counter() - t
    weights = n.store.arrays(names=n.store.names("trained"))
    return {"weights": arrays_message(weights), "gradients": arrays_message(grads), "loss": loss,
            "seconds": seconds, "numpy": np.__version__, "no_blas": blas.NO_BLAS}


async def run_worker(post, url, token, name="browser", device="browser", max_batch=64, transport=None):
    """The distributed worker in the tab: the native worker's loop over the page's WebSocket.

    Posts ``{"type": "worker", "event": ..., ...}`` messages: ``connecting``, ``joined``
    (worker id), ``task`` (tasks done, samples, samples/s), ``lost`` (why, retry in seconds),
    ``refused`` (the coordinator's reason: no retry), ``left``.

    Args:
        post: function taking one message dict.
        url: the coordinator's base URL (the page's origin).
        token: the join token.
        name, device: what the dashboard shows.
        max_batch: the most samples one pass holds.
        transport: how to reach the coordinator (default: the browser's WebSocket and fetch).
    Returns:
        tasks done.
    """
    from sukiyaki.distributed.worker import FatalError, Worker

    if transport is None:
        from sukiyaki.web.jstransport import JsTransport

        transport = JsTransport()
    stats = {"samples": 0, "seconds": 0.0}

    def status(event, **info):
        if event == "task":
            stats["samples"] += info.get("samples", 0)
            stats["seconds"] += info.get("seconds", 0.0)
            info["samples_total"] = stats["samples"]
            info["samples_per_s"] = stats["samples"] / stats["seconds"] if stats["seconds"] > 0 else 0.0
        post(dict(info, type="worker", event=event))

    worker = Worker(url, token, backend="numpy", name=name, device=device, max_batch=max_batch,
                    transport=transport, on_status=status)
    try:
        done = await worker.run()
    except FatalError as exc:
        status("refused", reason=str(exc))
        return worker.tasks_done
    status("left", tasks=done)
    return done


_worker_task = []  # the running worker's Task (at most one)


def start_worker(post, url, token, name="browser", device="browser", max_batch=64):
    """:func:`run_worker` as an asyncio Task (what the Web Worker awaits; :func:`stop_worker` cancels it)."""
    task = asyncio.ensure_future(run_worker(post, url, token, name=name, device=device, max_batch=max_batch))
    _worker_task[:] = [task]
    task.add_done_callback(lambda t: _worker_task.remove(t) if t in _worker_task else None)
    return task


def stop_worker():
    """Cancel the running worker (its connection closes; the coordinator hands its task to others)."""
    for task in list(_worker_task):
        task.cancel()
