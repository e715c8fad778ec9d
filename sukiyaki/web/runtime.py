"""The browser runtime's Python side: what the Web Worker runs in Pyodide.

The page never runs Python (DESIGN.md, decision 12): it posts commands to a Web Worker
(``static/worker.js``), which boots Pyodide, installs this package's wheel and calls the
functions here. Everything the page shows comes back through ``post``, a function taking
one JSON-able dict (the Web Worker's ``postMessage``); kinds of message:

- ``{"type": "backend", "backend", "why", "detail"}``: which backend computes, and why that one
  (``detail``: the longer reason, e.g. a shader's compiler log, or "");
- ``{"type": "progress", "iteration", "loss", "images_per_s", "first_gradient_s", "seconds", "backend"}``:
  after each training iteration;
- ``{"type": "validation", "iteration", "accuracy", "loss", "images"}``: test digits;
- ``{"type": "stopped", "iteration", "reason"}``: training ended;
- ``{"type": "worker", "event", ...}``: the distributed worker's state (see :func:`run_worker`).

The backend is chosen once, at boot (:func:`select_backend`): WebGPU when the browser gives
an adapter and the backend passes a quick check against numpy, numpy otherwise, and the
reason is posted; ``backend=numpy`` forces numpy, ``backend=webgpu`` forces WebGPU (an error
when it cannot run). The WebGPU adapter (``sukiyaki/backends/webgpu/browser.py``) awaits the
GPU with ``pyodide.ffi.run_sync``, which works only when Python was entered asynchronously:
so the Web Worker calls the functions that compute as coroutines (:func:`select_backend`,
:meth:`TrainSession.run`, :func:`start_worker`) or with ``callPromising`` (:func:`gradients`).

Nothing here imports ``js`` or ``pyodide`` at module level, so it also runs (and is tested)
under CPython; long loops yield to the event loop between steps (``await asyncio.sleep(0)``),
which in Pyodide lets the Web Worker receive the page's Stop.

Example:
    >>> choose_backend(has_webgpu=False)["backend"]
    'numpy'
"""

import asyncio
import base64
import time

import numpy as np

#: Where the bundled digits are read in the tab: the first n of the 2,000 test digits are validated.
VAL_DIGITS = 500


#: What the page may ask for (``?backend=``, ``sukiyaki web --backend``).
BACKEND_CHOICES = ("auto", "webgpu", "numpy")
#: The backend the tab computes on (set by :func:`select_backend`; numpy until then).
_current = {"backend": "numpy"}


class BackendChoiceError(RuntimeError):
    """The page asked for a backend that cannot run here (the message says why)."""


def current_backend():
    """The backend the tab computes on ('numpy' or 'webgpu')."""
    return _current["backend"]


def _describe(be):
    """'google swiftshader, a software adapter' and the like, from a WebGPU backend's adapter info."""
    info = be.device.info
    name = " ".join(dict.fromkeys(v for v in (info.get("vendor"), info.get("architecture"), info.get("device"),
                                              info.get("description")) if v)) or "an unnamed adapter"
    if str(info.get("adapter_type", "")).lower() == "cpu":
        name += ", a software adapter: correct but slow"
    return name


def check_webgpu():
    """Open the WebGPU backend and check a few kernels (elementwise, matmul) against numpy.

    Returns:
        The backend.
    Raises:
        BackendUnavailable (no adapter), ShaderError (a kernel does not compile, with its log),
        DeviceError, MemoryError, or RuntimeError naming a kernel whose numbers are wrong.
    """
    from sukiyaki.backends import get_backend

    be, nb = get_backend("webgpu"), get_backend("numpy")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((37, 19)).astype(np.float32)
    b = rng.standard_normal((19, 11)).astype(np.float32)
    x, y = be.from_numpy(np.asfortranarray(a)), be.from_numpy(np.asfortranarray(b))
    checks = (("add", be.to_numpy(be.binary["add"](x, x)), nb.binary["add"](a, a), 0.0),
              ("exp", be.to_numpy(be.unary["exp"](x)), nb.unary["exp"](a), 1e-6),
              ("matmul", be.to_numpy(be.matmul(x, y)), nb.matmul(a, b), 1e-5))
    for name, got, ref, tol in checks:
        if got.shape != ref.shape or not np.allclose(got, ref, rtol=tol, atol=tol):
            worst = float(np.max(np.abs(got - ref))) if got.shape == ref.shape else float("nan")
            raise RuntimeError(f"the {name} kernel gave wrong numbers on this adapter (largest error {worst:.3g})")
    return be


def choose_backend(has_webgpu, preference="auto", probe=check_webgpu):
    """Which backend the tab computes on, and why.

    Args:
        has_webgpu: whether the browser has ``navigator.gpu``.
        preference: 'auto' (WebGPU when it works here, numpy otherwise), 'webgpu' (WebGPU or an
            error), 'numpy'.
        probe: opens and checks the WebGPU backend (returns it, raises with the reason).
    Returns:
        {"backend", "why", "detail"}: the name, a one-line reason the page shows, and the
        longer reason ("" or, e.g., a shader's compiler log).
    Raises:
        ValueError for an unknown preference; BackendChoiceError when 'webgpu' cannot run.
    """
    preference = (preference or "auto").lower()
    if preference not in BACKEND_CHOICES:
        raise ValueError(f"backend must be one of {', '.join(BACKEND_CHOICES)}, got {preference!r}")
    if preference == "numpy":
        return {"backend": "numpy", "why": "numpy (asked for: backend=numpy)", "detail": ""}
    if not has_webgpu:
        reason = "this browser gives the page no WebGPU: navigator.gpu is missing"
        if preference == "webgpu":
            raise BackendChoiceError(f"backend=webgpu was asked for, but {reason}")
        return {"backend": "numpy", "why": f"numpy ({reason})", "detail": ""}
    try:
        be = probe()
    except Exception as exc:  # every failure is a reason to report: no adapter, a shader, the numbers
        text = str(exc).strip() or type(exc).__name__
        text = text.removeprefix("backend 'webgpu' cannot run here: ")
        head = text.split("\n")[0]
        if preference == "webgpu":
            raise BackendChoiceError(f"backend=webgpu was asked for, but WebGPU cannot run here: {text}") from None
        detail = text if text != head else ""
        return {"backend": "numpy", "why": f"numpy (WebGPU cannot run here: {head.rstrip(':')}"
                                           f"{'; details below' if detail else ''})", "detail": detail}
    return {"backend": "webgpu", "why": f"WebGPU ({_describe(be)})", "detail": ""}


async def select_backend(has_webgpu, preference="auto"):
    """:func:`choose_backend` with the real probe, remembered as the tab's backend (a
    coroutine: the WebGPU adapter awaits the GPU, which needs Python entered asynchronously)."""
    choice = choose_backend(has_webgpu, preference)
    _current["backend"] = choice["backend"]
    return choice


def _device_failed(exc):
    """Whether exc is the WebGPU device failing (lost, or an error it reported)."""
    from sukiyaki.backends.webgpu.device import DeviceError

    return isinstance(exc, DeviceError)


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
        backend: 'numpy' or 'webgpu' (default: the tab's, see :func:`select_backend`).
    """

    def __init__(self, post, net="lenet", batch_size=64, seed=0, val_every=100, iterations=None, backend=None):
        self.post = post
        self.backend = backend or current_backend()
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
        net = Net(self.net_name, device=self.backend, seed=self.seed, data_sources=sources)
        return Trainer(net, make_optimizer("momentum_sgd"), batch_size=self.batch_size, iterations=1 << 40,
                       val_cycle=None, seed=self.seed, progress=False, log=None, read_every=1)

    async def run(self):
        """Train until stopped (or ``iterations``); returns the last iteration.

        A WebGPU device that fails (lost, or reporting an error) ends the run with the error,
        and the tab's backend becomes numpy (posted), so the next run trains on numpy."""
        try:
            return await self._run()
        except Exception as exc:
            if self.backend == "webgpu" and _device_failed(exc):
                _current["backend"] = "numpy"
                self.post({"type": "backend", "backend": "numpy", "detail": str(exc),
                           "why": "numpy (the WebGPU device failed while training; Start trains on numpy)"})
            raise

    async def _run(self):
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
                       "first_gradient_s": first, "seconds": t_train, "backend": self.backend})
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


def gradients(ids, net="lenet", seed=0, iteration=0, backend=None):
    """One training step's gradient (no update) of a fresh network, with its weights.

    What the tests compare with the native CPU's gradient of the same weights and batch (on
    WebGPU the Web Worker calls it with ``callPromising``: the adapter awaits the GPU).

    Args:
        ids: sample indices of the batch.
        net: a shipped definition's name.
        seed: the network's seed (initialisation and random draws).
        iteration: the step's iteration (counter of the random draws).
        backend: 'numpy' or 'webgpu' (default: the tab's).
    Returns:
        {"weights": arrays_message, "gradients": arrays_message, "loss": float, "seconds": float,
        "numpy": numpy's version, "no_blas": the numpy backend's switch for numpy without a BLAS,
        "backend": the backend}.
    """
    from sukiyaki.backends.numpy import blas
    from sukiyaki.nn import Net

    backend = backend or current_backend()
    n = Net(net, seed=seed, device=backend)
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
            "seconds": seconds, "numpy": np.__version__, "no_blas": blas.NO_BLAS,
            "backend": backend}


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

    worker = Worker(url, token, backend=current_backend(), name=name, device=device, max_batch=max_batch,
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
