"""A native worker: ``sukiyaki worker URL --token T [--backend numpy|cuda|webgpu]``.

It joins the coordinator's WebSocket, builds the network of the WELCOME on its backend,
downloads the data layers' samples (the coordinator serves them), and then, for each TASK,
computes the gradient of its samples: summed over sub-batches of at most ``sub_batch``
samples, scaled by the task's loss scale, compressed with the run's gradient codec (lossy
codecs with error feedback). Dropout and augmentation draw from Philox keyed by (seed,
layer) and counted by (iteration, sample), so what a worker computes for a sample does not
depend on which worker it is. It answers pings while it computes (the work runs in a
thread), and reconnects by itself when the connection drops.

Streaming, layer by layer (protocol version 2; :mod:`sukiyaki.distributed.streams`): the
TASK comes first and the weights follow in PARAMS parts in forward order; the forward pass
starts at once and waits, before each layer, only until that layer's weights are in. In the
last sub-batch, each layer's gradient is final as soon as the backward pass has left that
layer: it is encoded (in a thread, while the backward pass goes on) and sent in GRADS parts,
the last layers first; RESULT closes the upload with the running statistics, the loss and
the compute seconds (waits for the weights not counted).

The connection is a transport (:mod:`sukiyaki.distributed.transport`): aiohttp here, the
browser's WebSocket in a tab (``sukiyaki.web.jstransport``), where this same loop runs in
Pyodide with the computation inline (no threads: the whole weights are awaited first, the
gradient sent after the pass). Nothing else differs.

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
from sukiyaki.distributed.coordinator.records import STATE_PREFIX
from sukiyaki.distributed.memory import keep_freed_memory
from sukiyaki.distributed.streams import Aborted, Incoming, Upload
from sukiyaki.distributed.transport import AiohttpTransport

log = logging.getLogger("sukiyaki.worker")
#: A frame larger than this is decoded or encoded in a thread (where the transport has them).
OFF_LOOP_BYTES = 1 << 20


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
        speed: the samples/s this worker expects to compute, declared when joining (None: the
            coordinator measures it on the first task); it sets the first task's deadline.
    """

    def __init__(self, url, token, backend="numpy", name=None, max_batch=256, reconnect=True, max_tasks=None,
                 link=None, cafile=None, transport=None, device=None, on_status=None, speed=None):
        self.url = url.rstrip("/")
        self.token = token
        self.backend = backend
        self.name = name or f"{platform.node()}:{backend}"
        self.max_batch = int(max_batch)
        self.reconnect = reconnect
        self.max_tasks = max_tasks
        self.speed = speed
        self.net = None
        self.settings = None
        self.params_version = -1  # the version of the weights wholly in the store
        self.feedback = C.ErrorFeedback()
        self.tasks_done = 0
        self.seq = 0
        self._data = {}
        self._ws = None
        self._session = None
        self._work = None
        self._inner = None
        self._round_states = {}  # running statistics as the last PARAMS gave them
        self._incoming = None  # the weights arriving (Incoming)
        self._held, self._held_version = set(), -1  # store names loaded from the weights of that version
        self._layer_names = {}  # layer -> store names of its parameters and statistics
        self._trained = set()  # store names of the trained parameters
        self._wire_names = {}  # store name -> its name in PARAMS (statistics: state: + name)
        self._task_state = None
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
        if self.transport.threads:  # native: frames of MiBs come and go every round (not under Pyodide)
            keep_freed_memory()
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

    def hello_fields(self):
        """What HELLO says of this worker."""
        f = {"token": self.token, "version": P.VERSION, "name": self.name, "backend": self.backend,
             "device": self._device(), "codecs": list(C.CODECS), "max_batch": self.max_batch}
        if self.speed:
            f["speed"] = float(self.speed)
        return f

    async def _session_loop(self, session):
        ws_url = self.url.replace("http://", "ws://").replace("https://", "wss://") + "/ws"
        try:
            async with self.transport.connect(session, ws_url) as ws:
                self._ws = ws
                await self.send(P.HELLO, self.hello_fields())
                async for data in self.transport.messages(ws):
                    if self.link is not None:
                        await self.link.pace(len(data))
                    try:
                        frame = P.decode_frame(data, lazy=True)  # tensors decoded by the handlers
                    except P.ProtocolError as exc:
                        log.warning(f"bad frame from the coordinator: {exc}")
                        continue
                    if frame.kind not in P.TO_WORKER:
                        log.warning(f"unexpected {frame.kind} from the coordinator")
                        continue
                    await getattr(self, HANDLERS[frame.kind])(frame)
        finally:
            if self._incoming is not None:
                self._incoming.abort()  # a task waiting for its weights gives up
                self._incoming = None
            if self._work is not None:
                self._work.cancel()

    async def send(self, kind, fields, tensors=()):
        self.seq += 1
        big = sum(len(t[1].data) if isinstance(t[1], P.Encoded) else getattr(t[1], "nbytes", 0) for t in tensors)
        if big > OFF_LOOP_BYTES and self.transport.threads:
            data = await asyncio.to_thread(P.encode_frame, kind, fields, tensors, self.seq)
        else:
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
        elif self.settings.get("deterministic"):
            from sukiyaki.backends import get_backend

            backend = get_backend(self.backend)
            if callable(getattr(backend, "set_deterministic", None)):
                backend.set_deterministic(True)  # cuda: cuDNN engines without atomics, no timing-based choice
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
        store = self.net.store
        self._layer_names = self.layer_names()
        self._trained = set(store.names("trained"))
        self._wire_names = {n: n if n in self._trained else STATE_PREFIX + n
                            for n in store.names("trained") + store.names("state")}
        self._reset_weights()
        self.feedback.reset()
        self._inner = None
        log.info(f"joined as worker {f['worker']}: {len(self.net.layers)} layers on {self.backend}")
        self._status("joined", worker=f["worker"], layers=len(self.net.layers))

    def _reset_weights(self):
        self.params_version = -1
        if self._incoming is not None:
            self._incoming.abort()
        self._incoming = None
        self._held, self._held_version = set(), -1

    def layer_names(self):
        """{layer: store names of its parameters and running statistics} of the train phase."""
        store = self.net.store
        out = {}
        for d in self.net.schedules["train"].order:
            layer = self.net.layers[d["name"]]
            names = [f"{d['name']}/{k}" for k in list(layer.param_shapes()) + list(layer.state_shapes())]
            out[d["name"]] = [n for n in names if n in store.entries and store.entries[n].kind in ("trained", "state")]
        return out

    async def _fetch_npz(self, path):
        body = await self.transport.fetch(self._session, self.url + path)
        with np.load(io.BytesIO(body), allow_pickle=False) as z:
            return z["images"], z["labels"]

    def _incoming_for(self, version):
        """The Incoming of a version (a new one when the version is new: the older one is given up)."""
        if self._incoming is None or self._incoming.version != version:
            if self._incoming is not None:
                self._incoming.abort()
            self._incoming = Incoming(version)
        return self._incoming

    async def on_params(self, frame):
        """A part of the weights of a version: decoded into the Incoming (the compute thread loads
        each layer's tensors into the store when it reaches that layer)."""
        if self.net is None:
            return
        f = frame.fields
        inc = self._incoming_for(f["version"])
        arrays = await self._decode_pieces(frame)
        for p, a in zip(frame.pieces, arrays):
            inc.put(p, a)
        if f["part"] + 1 >= f["parts"]:
            inc.finish()

    async def _decode_pieces(self, frame):
        """The decoded values of a frame's pieces (in a thread when large)."""
        if frame.nbytes > OFF_LOOP_BYTES and self.transport.threads:
            return await asyncio.to_thread(lambda: [p.decode() for p in frame.pieces])
        return [p.decode() for p in frame.pieces]

    async def on_task(self, frame):
        """Start the task's computation; the receive loop goes on (pings are answered meanwhile)."""
        if self.net is None:
            return
        if self._work is not None and not self._work.done():
            log.warning(f"task {frame.fields['task']} came while another runs: it waits its turn")
            if self._incoming is not None and self._incoming.version != frame.fields["params_version"]:
                self._incoming.abort()  # the one running waits for weights that are not coming
            await asyncio.gather(self._work, return_exceptions=True)
        frame.decode()
        self._work = asyncio.get_running_loop().create_task(self._do_task(frame))

    async def _do_task(self, frame):
        try:
            await self._task(frame)
        except Aborted as exc:
            log.info(f"task {frame.fields['task']}: given up ({exc})")
        except (ConnectionError, RuntimeError) as exc:  # the connection went away: the coordinator reassigns
            log.info(f"task {frame.fields['task']}: not sent ({exc})")
        except Exception as exc:  # a bug or a backend failure: say so, keep the worker alive
            log.exception(f"task {frame.fields['task']} failed: {exc}")

    # ------------------------------------------------------------------ the weights, layer by layer
    def _load_from(self, inc, names):
        """Load store names from the Incoming into the store (waiting for them); seconds waited."""
        todo = [n for n in names if n not in self._held]
        if not todo:
            return 0.0
        waited = inc.wait([self._wire_names[n] for n in todo])
        store = self.net.store
        arrays = {n: inc.values[self._wire_names[n]].reshape(store.entries[n].shape, order="F") for n in todo}
        store.load_arrays(arrays)
        self._held.update(todo)
        return waited

    def _before_layer(self, layer):
        """Before a layer runs (in the compute thread): its weights of the task's version, loaded."""
        ts = self._task_state
        if ts is None or ts["incoming"] is None:
            return
        ts["waited"] += self._load_from(ts["incoming"], self._layer_names.get(layer, ()))

    def _after_layer(self, layer):
        """After a layer's backward in the task's last sub-batch (in the compute thread): its
        gradients are final, to be sent."""
        ts = self._task_state
        if ts is None:
            return
        names = [n for n in self._layer_names.get(layer, ()) if n in self._trained]
        if names:
            ts["report"](names)

    def _all_weights(self):
        """Wait for (and load) every tensor of the task's version (the local-steps mode needs all)."""
        ts = self._task_state
        if ts is not None and ts["incoming"] is not None:
            for names in self._layer_names.values():
                ts["waited"] += self._load_from(ts["incoming"], names)

    def _weights_in(self, version):
        """After a task: when every tensor of the version is loaded, the store holds that version."""
        inc = self._incoming
        if inc is None or inc.version != version or not inc.done:
            return
        rest = [n for names in self._layer_names.values() for n in names if n not in self._held]
        if rest:
            self._load_from(inc, rest)
        if self.params_version != version:
            self.params_version = version
            self._round_states = {n: inc.values[STATE_PREFIX + n].reshape(self.net.store.entries[n].shape, order="F")
                                  for n in self.net.store.names("state")}
            self._incoming = None  # its values are in the store now

    # ------------------------------------------------------------------ a task
    async def _task(self, frame):
        f = frame.fields
        ids = frame.tensors.get("ids")
        if ids is None:
            return
        version = f["params_version"]
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()
        threads = self.transport.threads
        inc = None
        if version != self.params_version:
            inc = self._incoming_for(version)
            if self._held_version != version:
                self._held, self._held_version = set(), version
            if not threads:  # computing inline blocks the loop: every part first
                await inc.event.wait()
                if not inc.done:
                    raise Aborted(f"the weights of version {version} will not come")
        elif self._round_states:  # every task of the round starts from the statistics sent with the weights
            await self._offload(self.net.store.load_arrays, self._round_states)

        def report(names):
            if threads:
                loop.call_soon_threadsafe(queue.put_nowait, names)
            else:
                queue.put_nowait(names)

        self._task_state = {"incoming": inc, "waited": 0.0, "report": report}
        upload = Upload(self, f)
        reporter = loop.create_task(self._stream_up(queue, upload))
        t0 = time.perf_counter()
        compute = self._local_steps if f.get("local_steps", 1) > 1 else self._compute
        try:
            try:
                grads, loss = await self._offload(compute, ids.reshape(-1).astype(np.int64), f)
            finally:
                waited = self._task_state["waited"]
                self._task_state = None
            seconds = max(time.perf_counter() - t0 - waited, 1e-6)
            queue.put_nowait(None)
            await reporter  # the gradients reported layer by layer are encoded
            self._weights_in(version)
            rest = [n for n in grads if n not in upload.sent]
            if rest:  # what was not reported as it was made (e.g. a local-steps change): now
                await upload.send_encoded(rest, grads)
            tensors = await upload.finish() + self.state_tensors()
        except BaseException:
            reporter.cancel()
            upload.cancel()
            raise
        finite = bool(np.isfinite(loss)) and not upload.nonfinite
        await self.send(P.RESULT, {"iteration": f["iteration"], "task": f["task"], "samples": int(ids.size),
                                   "loss": float(loss) if np.isfinite(loss) else 0.0, "seconds": float(seconds),
                                   "parts": upload.parts, "nonfinite": not finite}, tensors)
        self.tasks_done += 1
        self._status("task", task=f["task"], iteration=f["iteration"], samples=int(ids.size), seconds=seconds,
                     tasks=self.tasks_done)
        if self.max_tasks is not None and self.tasks_done >= self.max_tasks:
            await self.send(P.BYE, {"reason": f"done {self.tasks_done} tasks"})
            self.reconnect = False
            await self._ws.close()

    async def _stream_up(self, queue, upload):
        """Send each group of gradients reported by the backward pass, as it comes: a thread encodes
        them piece after piece while the pieces already made go out."""
        while True:
            names = await queue.get()
            if names is None:
                return
            names = [n for n in names if n not in upload.sent]
            if names:
                await upload.send_encoded(names, None)

    def encode_tensor(self, name, grads=None):
        """Yield (shape, codec, lo, hi, bytes, finite) for each piece of a gradient (the store's, or
        ``grads[name]``), compressed with the run's codec (error feedback for lossy ones) piece
        after piece; a non-finite gradient goes raw (8-bit codes cannot carry NaN: the
        coordinator sees it and decides)."""
        g = grads[name] if grads is not None else self.grad_of(name)
        finite = C.all_finite(g)
        codec = self.settings["codec_up"] if finite else "raw"
        bounds = C.piece_bounds(g.size, codec, P.PART_BYTES) or [(0, 0)]
        shape = tuple(g.shape)
        if codec == "raw":
            pieces = C.encode_pieces(g, codec, bounds)
        else:
            pieces = self.feedback.compress_pieces(name, g, codec, bounds)
        # strict: after the last piece zip asks ``pieces`` once more, so that compress_pieces runs
        # to its end and stores the residual (a plain zip stops at ``bounds`` and the error
        # feedback would silently keep nothing)
        for (lo, hi), data in zip(bounds, pieces, strict=True):
            yield shape, codec, lo, hi, data, finite

    def state_tensors(self):
        """The running statistics after the task, as RESULT tensors."""
        states = self.net.store.arrays(names=self.net.store.names("state"))
        return [(STATE_PREFIX + n, a, "raw") for n, a in states.items()]

    def grad_of(self, name):
        """The current gradient of a trained parameter, as a host array (column-major)."""
        store = self.net.store
        g = np.asarray(store.ops.download(store.ops.native(store.grad_view(name))), dtype=np.float32)
        return np.array(g.reshape(store.entries[name].shape, order="F"), order="F")

    def _compute(self, ids, f):
        """The task's gradient (summed over sub-batches, scaled) and loss, on the worker's backend.

        Each layer's weights are loaded just before the layer first runs (``_before_layer``); in
        the last sub-batch each layer's gradients are reported as final (``_after_layer``), so
        they go out while the backward pass goes on. Returns ({name: gradient} of what was not
        reported, loss).
        """
        net = self.net
        batch = self.settings["batch_size"]
        net.zero_grads()
        inputs = [d for d in net.schedules["train"].inputs]
        losses = []
        sub = max(1, int(f["sub_batch"]))
        for lo in range(0, len(ids), sub):
            part = ids[lo:lo + sub]
            last = lo + sub >= len(ids)
            out = net.train_batch({b: part for b in inputs}, loss_scale=len(part) / batch,
                                  seed=self.settings["seed"], iteration=f["iteration"],
                                  before_layer=self._before_layer, after_layer=self._after_layer if last else None)
            losses += [(v, len(part) / batch) for v in out.values()]
        loss = sum(float(v) * s for v, s in losses)
        return {}, loss

    def _local_steps(self, ids, f):
        """Low-communication mode: H optimizer steps on the task's samples (H equal parts); returns
        the change of the weights (start - end) and the mean loss times the task's share."""
        from sukiyaki.nn.optim import get_optimizer

        self._all_weights()
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


#: The handler method of every kind the coordinator sends (checked when the module is imported;
#: frames are dispatched through the instance, so a subclass's override is the one called).
HANDLERS = P.bind_handlers({P.WELCOME: "on_welcome", P.PARAMS: "on_params", P.TASK: "on_task",
                            P.REJECT: "on_reject", P.PING: "on_ping", P.ERROR: "on_error", P.BYE: "on_bye"},
                           Worker, P.TO_WORKER, "worker")
