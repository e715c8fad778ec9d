"""A native worker: ``sukiyaki worker URL --token T [--backend numpy|cuda|webgpu]``.

It joins the coordinator's WebSocket, builds the network of the WELCOME on its backend,
downloads the data layers' samples (the coordinator serves them), and then, for each TASK,
loads the weights of the latest PARAMS and returns the gradient of its samples: summed over
sub-batches of at most ``sub_batch`` samples, scaled by the task's loss scale, compressed
with the run's gradient codec (lossy codecs with error feedback). Dropout and augmentation
draw from Philox keyed by (seed, layer) and counted by (iteration, sample), so what a worker
computes for a sample does not depend on which worker it is. It answers pings while it
computes (the work runs in a thread), and reconnects by itself when the connection drops.

The connection is a transport (:mod:`sukiyaki.distributed.transport`): aiohttp here, the
browser's WebSocket in a tab (``sukiyaki.web.jstransport``), where this same loop runs in
Pyodide with the computation inline (no threads). Nothing else differs.

Example:
    >>> asyncio.run(Worker("http://127.0.0.1:8765", token="t").run())   # doctest: +SKIP
"""

import asyncio
import io
import logging
import platform
import time

import numpy as np

from sukiyaki.distributed import codec as C
from sukiyaki.distributed import protocol as P
from sukiyaki.distributed.coordinator.state import STATE_PREFIX
from sukiyaki.distributed.transport import AiohttpTransport

log = logging.getLogger("sukiyaki.worker")


class FatalError(RuntimeError):
    """The coordinator refused this worker (token, version): reconnecting would not help."""


class Worker:
    """One worker process's connection and network (see module docstring).

    Args:
        url: the coordinator's base URL (http:// or https://).
        token: the join token the coordinator printed.
        backend: 'numpy', 'cuda' or 'webgpu'.
        name: how the dashboard calls it (default: host name and backend).
        max_batch: the most samples one pass may hold (larger tasks are split).
        reconnect: reconnect after a lost connection (with a growing delay).
        max_tasks: leave after this many tasks (None: never; for tests).
        link: a :class:`sukiyaki.distributed.link.Throttle` pacing what this worker sends and
            receives (experiments; None: the real network).
        cafile: a PEM file of the certificate(s) to trust for an https coordinator whose
            certificate no system authority signed (e.g. self-signed); None: the system's.
        transport: how to reach the coordinator (default: :class:`AiohttpTransport`).
        device: what the dashboard shows as the device (default: from the backend).
        on_status: a function ``(event, **info)`` told of ``connecting``, ``joined`` (worker),
            ``task`` (task, iteration, samples, seconds, tasks), ``lost`` (reason, retry_s);
            default: nothing (the log says it).
    """

    def __init__(self, url, token, backend="numpy", name=None, max_batch=256, reconnect=True, max_tasks=None,
                 link=None, cafile=None, transport=None, device=None, on_status=None):
        self.url = url.rstrip("/")
        self.token = token
        self.backend = backend
        self.name = name or f"{platform.node()}:{backend}"
        self.max_batch = int(max_batch)
        self.reconnect = reconnect
        self.max_tasks = max_tasks
        self.net = None
        self.settings = None
        self.params_version = -1
        self.feedback = C.ErrorFeedback()
        self.tasks_done = 0
        self.seq = 0
        self._data = {}
        self._ws = None
        self._session = None
        self._work = None
        self._inner = None
        self._round_states = {}  # running statistics as the last PARAMS gave them
        self.link = link
        self.ssl = True  # https: the system's authorities (plain http ignores it)
        if cafile is not None:
            import ssl

            self.ssl = ssl.create_default_context(cafile=cafile)
        self.transport = transport if transport is not None else AiohttpTransport(ssl=self.ssl)
        self.device = device
        self.on_status = on_status

    def _status(self, event, **info):
        if self.on_status is not None:
            self.on_status(event, **info)

    async def _offload(self, fn, *args):
        """fn(*args) in a thread where the transport allows it (pings answered meanwhile), else inline."""
        if self.transport.threads:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    # ------------------------------------------------------------------ connection
    async def run(self):
        """Join and work until stopped (or refused); returns the number of tasks done."""
        delay = 0.5
        lost = self.transport.errors + (ConnectionError, asyncio.TimeoutError, OSError)
        async with self.transport.session() as session:
            self._session = session
            while True:
                reason = "the coordinator closed the connection"
                try:
                    self._status("connecting", url=self.url)
                    await self._session_loop(session)
                    delay = 0.5
                except FatalError:
                    raise
                except lost as exc:
                    reason = str(exc) or type(exc).__name__
                    log.info(f"connection to {self.url} lost: {reason}")
                if not self.reconnect or (self.max_tasks is not None and self.tasks_done >= self.max_tasks):
                    return self.tasks_done
                self._status("lost", reason=reason, retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _session_loop(self, session):
        ws_url = self.url.replace("http://", "ws://").replace("https://", "wss://") + "/ws"
        async with self.transport.connect(session, ws_url) as ws:
            self._ws = ws
            await self.send(P.HELLO, {"token": self.token, "version": P.VERSION, "name": self.name,
                                      "backend": self.backend, "device": self._device(), "codecs": list(C.CODECS),
                                      "max_batch": self.max_batch})
            async for data in self.transport.messages(ws):
                if self.link is not None:
                    await self.link.pace(len(data))
                try:
                    frame = P.decode_frame(data)
                except P.ProtocolError as exc:
                    log.warning(f"bad frame from the coordinator: {exc}")
                    continue
                if frame.kind not in P.TO_WORKER:
                    log.warning(f"unexpected {frame.kind} from the coordinator")
                    continue
                await HANDLERS[frame.kind](self, frame)
            if self._work is not None:
                self._work.cancel()

    async def send(self, kind, fields, tensors=()):
        self.seq += 1
        data = P.encode_frame(kind, fields, tensors, seq=self.seq)
        if self.link is not None:
            await self.link.pace(len(data))
        await self._ws.send_bytes(data)

    def _device(self):
        if self.device:
            return self.device
        if self.backend == "numpy":
            return f"cpu ({platform.machine()})"
        return self.backend

    # ------------------------------------------------------------------ handlers
    async def on_welcome(self, frame):
        from sukiyaki.nn import Net

        f = frame.fields
        self.settings = f["settings"]
        if self.settings.get("deterministic") and self.backend == "numpy":
            from sukiyaki.backends.numpy.threads import set_workers

            set_workers(1)  # a shard's gradient computed the same way on every worker
        sources = {}
        for layer, path in f["data"].items():
            if path not in self._data:
                self._data[path] = await self._fetch_npz(path)
            sources[layer] = self._data[path]
        self.net = await self._offload(lambda: Net(f["netdef"], device=self.backend, data_sources=sources))
        expected = [(e["name"], tuple(e["shape"])) for e in f["layout"]]
        mine = [(n, self.net.store.entries[n].shape) for n in self.net.store.names("trained")]
        if expected != mine:
            raise FatalError("the coordinator's parameter layout differs from this worker's network")
        self.params_version = -1
        self.feedback.reset()
        self._inner = None
        log.info(f"joined as worker {f['worker']}: {len(self.net.layers)} layers on {self.backend}")
        self._status("joined", worker=f["worker"], layers=len(self.net.layers))

    async def _fetch_npz(self, path):
        body = await self.transport.fetch(self._session, self.url + path)
        with np.load(io.BytesIO(body), allow_pickle=False) as z:
            return z["images"], z["labels"]

    async def on_params(self, frame):
        if self.net is None:
            return
        arrays = {n[len(STATE_PREFIX):] if n.startswith(STATE_PREFIX) else n: a for n, a in frame.tensors.items()}
        await self._offload(self.net.store.load_arrays, arrays)
        # every task of the round starts from these running statistics (not from the last task's)
        self._round_states = {n[len(STATE_PREFIX):]: a for n, a in frame.tensors.items() if n.startswith(STATE_PREFIX)}
        self.params_version = frame.fields["version"]

    async def on_task(self, frame):
        """Start the task's computation; the receive loop goes on (pings are answered meanwhile)."""
        if self.net is None:
            return
        if self._work is not None and not self._work.done():
            log.warning(f"task {frame.fields['task']} came while another runs: it waits its turn")
            await self._work
        self._work = asyncio.get_running_loop().create_task(self._do_task(frame))

    async def _do_task(self, frame):
        try:
            await self._task(frame)
        except (ConnectionError, RuntimeError) as exc:  # the connection went away: the coordinator reassigns
            log.info(f"task {frame.fields['task']}: not sent ({exc})")
        except Exception as exc:  # a bug or a backend failure: say so, keep the worker alive
            log.exception(f"task {frame.fields['task']} failed: {exc}")

    async def _task(self, frame):
        f = frame.fields
        if f["params_version"] != self.params_version:
            log.warning(f"task {f['task']}: weights of version {f['params_version']} asked, "
                        f"version {self.params_version} held")
        ids = frame.tensors.get("ids")
        if ids is None:
            return
        t0 = time.perf_counter()
        compute = self._local_steps if f.get("local_steps", 1) > 1 else self._compute
        if self._round_states:
            await self._offload(self.net.store.load_arrays, self._round_states)
        grads, loss = await self._offload(compute, ids.reshape(-1).astype(np.int64), f)
        seconds = time.perf_counter() - t0
        up = self.settings["codec_up"]
        finite = np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())
        if not finite:
            up = "raw"  # the 8-bit codes cannot carry NaN: the coordinator sees them raw and decides
        tensors = []
        for name, g in grads.items():
            if up == "raw":
                tensors.append((name, g, up))
            else:
                tensors.append((name, P.Encoded(self.feedback.compress(name, g, up), g.shape), up))
        states = self.net.store.arrays(names=self.net.store.names("state"))
        tensors += [(STATE_PREFIX + n, a, "raw") for n, a in states.items()]
        await self.send(P.RESULT, {"iteration": f["iteration"], "task": f["task"], "samples": int(ids.size),
                                   "loss": float(loss) if np.isfinite(loss) else 0.0, "seconds": float(seconds),
                                   "nonfinite": not finite}, tensors)
        self.tasks_done += 1
        self._status("task", task=f["task"], iteration=f["iteration"], samples=int(ids.size), seconds=seconds,
                     tasks=self.tasks_done)
        if self.max_tasks is not None and self.tasks_done >= self.max_tasks:
            await self.send(P.BYE, {"reason": f"done {self.tasks_done} tasks"})
            self.reconnect = False
            await self._ws.close()

    def _compute(self, ids, f):
        """The task's gradient (summed over sub-batches, scaled) and loss, on the worker's backend."""
        net = self.net
        batch = self.settings["batch_size"]
        net.zero_grads()
        inputs = [d for d in net.schedules["train"].inputs]
        losses = []
        sub = max(1, int(f["sub_batch"]))
        for lo in range(0, len(ids), sub):
            part = ids[lo:lo + sub]
            out = net.train_batch({b: part for b in inputs}, loss_scale=len(part) / batch,
                                  seed=self.settings["seed"], iteration=f["iteration"])
            losses += [(v, len(part) / batch) for v in out.values()]
        store = net.store
        grads = store.slot_arrays(store.grad)
        loss = sum(float(v) * s for v, s in losses)
        return grads, loss

    def _local_steps(self, ids, f):
        """Low-communication mode: H optimizer steps on the task's samples (H equal parts); returns
        the change of the weights (start - end) and the mean loss times the task's share."""
        from sukiyaki.nn.optim import get_optimizer

        net, st = self.net, self.settings
        store = net.store
        steps = int(f["local_steps"])
        if self._inner is None:  # the inner optimizer's state lives as long as the connection
            self._inner = get_optimizer("momentum_sgd", lr=st["inner_lr"], momentum=st["inner_momentum"])
        start = store.slot_arrays(store.trained)
        inputs = list(net.schedules["train"].inputs)
        sub = max(1, int(f["sub_batch"]))
        losses = []
        for k, chunk in enumerate(np.array_split(ids, steps)):
            if len(chunk) == 0:
                continue
            net.zero_grads()
            for lo in range(0, len(chunk), sub):
                part = chunk[lo:lo + sub]
                out = net.train_batch({b: part for b in inputs}, loss_scale=len(part) / len(chunk),
                                      seed=st["seed"], iteration=f["iteration"] + k)
                losses += [(v, len(part) / len(chunk)) for v in out.values()]
            self._inner.apply(store)
        end = store.slot_arrays(store.trained)
        change = {n: start[n] - end[n] for n in start}
        loss = sum(float(v) * s for v, s in losses) / steps * f["loss_scale"]
        return change, loss

    async def on_reject(self, frame):
        log.warning(f"the coordinator refused a {frame.fields['refers_to']}: {frame.fields['reason']}")

    async def on_ping(self, frame):
        await self.send(P.PONG, {"t": frame.fields["t"]})

    async def on_error(self, frame):
        raise FatalError(f"the coordinator refused this worker: {frame.fields['reason']}")

    async def on_bye(self, frame):
        self.reconnect = False
        await self._ws.close()


#: The handler of every kind the coordinator sends (checked below, when the module is imported).
HANDLERS = {P.WELCOME: Worker.on_welcome, P.PARAMS: Worker.on_params, P.TASK: Worker.on_task,
            P.REJECT: Worker.on_reject, P.PING: Worker.on_ping, P.ERROR: Worker.on_error, P.BYE: Worker.on_bye}
P.check_handlers(HANDLERS, P.TO_WORKER, "worker")
