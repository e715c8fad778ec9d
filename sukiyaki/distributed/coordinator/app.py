"""The coordinator's I/O: an aiohttp application (HTTP + WebSocket) around CoordinatorState.

Routes:
    GET  /                    the dashboard (read-only)
    GET  /api/metrics         the run's state as JSON (what the dashboard draws)
    GET  /api/net.json        the network definition
    GET  /api/params.safetensors   the current weights
    GET  /data/{layer}.npz    a data layer's images and labels (the paper's "tiny server")
    POST /api/admin/{action}  pause, resume, stop, save: needs ``Authorization: Bearer <admin token>``
    GET  /ws                  the workers' WebSocket (frames of sukiyaki.distributed.protocol)
    GET  /worker              the browser worker: the runtime page (sukiyaki.web) in worker mode,
                              with its scripts, the wheel and, when given a folder, /pyodide/

Everything that changes the run happens on the event loop, through the state's event
methods; the state does no I/O, this module does nothing else. A worker must send HELLO
with the join token first; every frame is checked by ``protocol.decode_frame`` (size
limits, kinds, shapes), rate-limited per worker, and a bad one is answered with REJECT
and logged, the model untouched.

Streaming: the weights of each version are encoded once, in a thread, and sent to each
worker in PARAMS parts as they are ready (:mod:`.broadcast`), after the worker's TASK; the
workers' GRADS parts are checked (and their sums of squares taken) in threads, then handed
to the state, which has them added to the round's sums as they come, decoded from their bytes
on the sums' own thread (:class:`~sukiyaki.distributed.coordinator.uploads.Sums`). Frames are dispatched to
the handler methods through the instance (``getattr(self, HANDLERS[kind])``), so a subclass
may override one.

Example:
    >>> app = make_app(state, join_token="t", admin_token="a")   # doctest: +SKIP
    >>> web.run_app(app, host="127.0.0.1", port=8765)             # doctest: +SKIP
"""

import asyncio
import hmac
import io
import json
import logging
import time
from importlib import resources

import numpy as np
from aiohttp import WSMsgType, web

from sukiyaki.distributed import codec as C
from sukiyaki.distributed import codec_threads
from sukiyaki.distributed import protocol as P
from sukiyaki.distributed.coordinator.broadcast import Broadcast
from sukiyaki.distributed.coordinator.checkpoint import checkpoint_bytes
from sukiyaki.distributed.memory import keep_freed_memory
from sukiyaki.distributed.coordinator.state import Close, Log, Send, SendParams, WorkerInfo
from sukiyaki.distributed.coordinator.uploads import encoded_stats
from sukiyaki.nn.params import atomic_write, save_safetensors
from sukiyaki.nn.weights import weight_arrays, weights_metadata

log = logging.getLogger("sukiyaki.coordinator")

HELLO_TIMEOUT = 10.0
PING_EVERY = 2.0
#: A worker silent for this long is lost: its work goes to others.
SILENCE_LIMIT = 15.0
#: Messages a worker may send per second (a bucket of twice as many for bursts). Frames of at
#: least BULK_BYTES (the parts of an upload) are not counted: their rate is their link's.
RATE_LIMIT = 200.0
BULK_BYTES = 64 << 10


#: Frames over this many bytes are encoded and decoded in a thread, off the event loop.
OFF_LOOP_BYTES = 1 << 20
#: Bytes a worker socket's transport reads at most per call (None: asyncio's own, 256 KiB): larger
#: reads mean fewer turns of the event loop per upload (scenario L, 8 workers, 16 cores: 4.29 ->
#: 4.09 s a round with 4 MiB).
RECV_BYTES = 4 << 20
#: The coordinator's codec threads at most, unless asked for (see codec_threads.cap_default):
#: scenario L, 8 workers, on 16 cores: 4.29 s a round with 8, 3.60 with 2, 3.60 with 4 (and 4 MiB reads).
COORDINATOR_CODEC_THREADS = 4


async def _off_loop(fn, nbytes, *args, **kwargs):
    """fn(*args, **kwargs), in a thread when nbytes is large (big frames), else right here."""
    if nbytes > OFF_LOOP_BYTES:
        return await asyncio.to_thread(fn, *args, **kwargs)
    return fn(*args, **kwargs)


def _size(tensors):
    """Bytes of a message's tensors, roughly (what decides whether encoding leaves the loop)."""
    return sum(len(t[1].data) if isinstance(t[1], P.Encoded) else getattr(t[1], "nbytes", 0) for t in tensors)


def _decode(data, max_bytes, defer=False):
    """A worker's frame, checked, with each float32 piece's (finite, sum of squares) taken from its
    bytes (``piece.stats``, decoded a step at a time: no array of its size) where the caller runs
    it; the pieces stay encoded (the round's sums decode them as they add them). ProtocolError as
    ``protocol.decode_frame`` for bytes a codec refuses. ``defer``: an 8-bit
    piece's scales are checked and its sum of squares left to the sums, which take it as they add it
    (``stats`` (True, None))."""
    frame = P.decode_frame(data, max_bytes=max_bytes, lazy=True)
    for p in frame.pieces:
        if p.dtype == "float32":
            try:
                if defer and p.codec in C.EIGHT_BIT:  # finite: its sum of squares is taken as it is added
                    C.check_scales(p.data, p.codec, p.count)
                    p.stats = (True, None)
                else:
                    p.stats = encoded_stats(p)
                continue
            except ValueError as exc:  # e.g. a non-finite 8-bit scale: a bad frame, said as decoding says it
                frame.decode()
                raise P.ProtocolError(f"{frame.kind}: tensor {p.name!r}: {exc}") from None
        a = p.decode()
        if p.whole:
            frame.tensors[p.name] = a
    return frame


class Connection:
    """One worker's WebSocket, its sequence counter and its rate bucket."""

    def __init__(self, ws, wid):
        self.ws = ws
        self.wid = wid
        self.seq = 0
        self.tokens = 2 * RATE_LIMIT
        self.stamp = time.monotonic()
        self.errors = 0
        self.sending = asyncio.Lock()  # one frame at a time, in order (encoding may run in a thread)

    def allow(self):
        """Take a token of the rate bucket (False when empty)."""
        now = time.monotonic()
        self.tokens = min(2 * RATE_LIMIT, self.tokens + (now - self.stamp) * RATE_LIMIT)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class CoordinatorServer:
    """Binds a CoordinatorState to the network (see module docstring).

    Args:
        state: the :class:`~sukiyaki.distributed.coordinator.state.CoordinatorState`.
        join_token: what a worker must present in HELLO.
        admin_token: what admin requests must present.
        checkpoint: path of the coordinator's checkpoint (None: none), written every
            ``checkpoint_every`` iterations and when asked.
        pyodide: where the browser worker page (/worker) loads Pyodide: None (the official
            CDN), an http(s) URL, or a local folder served under /pyodide/ (see
            :func:`sukiyaki.web.server.pyodide_source`; ValueError when it is not one).
        metrics_log: a path to which JSON lines are appended, as ``sukiyaki train --log``
            writes them: one per iteration (iteration, loss, images_per_s, time) and one per
            validation (iteration, validation, time); None: none.
    """

    def __init__(self, state, join_token, admin_token, checkpoint=None, checkpoint_every=100, link=None,
                 pyodide=None, metrics_log=None):
        from sukiyaki.web.server import pyodide_source

        keep_freed_memory()  # frames of MiBs come and go every round: their pages are not faulted in afresh
        codec_threads.cap_default(COORDINATOR_CODEC_THREADS)
        self.pyodide = pyodide_source(pyodide)
        self.state = state
        self.link = link  # a Throttle of the coordinator's own link (experiments; None: the real network)
        self.join_token = join_token
        self.admin_token = admin_token
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.connections = {}
        self.bytes_in = 0
        self.bytes_out = 0
        self.started = time.monotonic()
        self.done = asyncio.Event()
        self._data_cache = {}
        limit = 4 * sum(e.size for e in state.net.store.entries.values())
        self.max_frame = 2 * limit + (1 << 20)  # weights or gradients of the whole network, with room
        self._tasks = []
        self.broadcast = None  # the current version's PARAMS parts (Broadcast)
        state.deferred_step = True  # each step of W taken as its new weights are encoded
        self._streams = {}  # worker id -> the Task streaming it PARAMS
        self.metrics_log = metrics_log
        self._logged_at = state.iteration
        self._log_clock = (time.monotonic(), state.samples_total)

    # ------------------------------------------------------------------ actions
    async def run_actions(self, actions):
        for a in actions:
            if isinstance(a, Log):
                log.info(a.text)
            elif isinstance(a, Send):
                await self.send(a.worker, a.kind, a.fields, a.tensors)
            elif isinstance(a, SendParams):
                self.stream_params(a.worker)
            elif isinstance(a, Close):
                conn = self.connections.get(a.worker)
                if conn is not None:
                    await self.send(a.worker, P.ERROR, {"reason": a.reason})
                    await conn.ws.close()

    async def send(self, wid, kind, fields, tensors=()):
        conn = self.connections.get(wid)
        if conn is None or conn.ws.closed:
            return
        async with conn.sending:
            conn.seq += 1
            data = await _off_loop(P.encode_frame, _size(tensors), kind, fields, tensors, seq=conn.seq)
            await self._send_bytes(wid, conn, data)

    # ------------------------------------------------------------------ weights, streamed
    def current_broadcast(self):
        """The Broadcast of the current weights (started when first asked for)."""
        st = self.state
        if self.broadcast is None or self.broadcast.key != (st.iteration, st.weights_generation):
            self.broadcast = Broadcast(st, asyncio.get_running_loop())
        return self.broadcast

    def stream_params(self, wid):
        """Send a worker the current weights, part after part as they are encoded (in a Task: the
        other actions go on); a stream still running to that worker is cancelled."""
        old = self._streams.pop(wid, None)
        if old is not None and not old.done():
            old.cancel()
        task = asyncio.get_running_loop().create_task(self._stream(wid, self.current_broadcast()))
        self._streams[wid] = task
        task.add_done_callback(lambda t: self._streams.pop(wid, None) if self._streams.get(wid) is t else None)

    async def _stream(self, wid, bc):
        for k in range(bc.parts):
            await bc.ready[k].wait()
            conn = self.connections.get(wid)
            if bc.error or conn is None or conn.ws.closed:
                return
            fields = {"version": bc.version, "codec": bc.codec, "part": k, "parts": bc.parts}
            async with conn.sending:
                conn.seq += 1
                data = P.encode_header(P.PARAMS, fields, bc.entries[k], conn.seq) + bc.payloads[k]
                await self._send_bytes(wid, conn, data)

    async def _weights_settled(self):
        """Wait until the current weights are encoded (they must not change under the encoder)."""
        bc = self.broadcast
        if bc is not None and not bc.encoded.is_set():
            await bc.encoded.wait()

    async def _sums_settled(self):
        """Wait until the adds asked of the round's sums so far are done (their thread takes them)."""
        rnd = self.state.round
        pending = rnd.sums.pending() if rnd is not None else None
        if pending is not None:
            await asyncio.wait([asyncio.wrap_future(pending)])

    async def _send_bytes(self, wid, conn, data):
        self.bytes_out += len(data)
        w = self.state.workers.get(wid)
        if w is not None:
            w.bytes_out += len(data)
        if self.link is not None:
            await self.link.pace(len(data))
        try:
            await conn.ws.send_bytes(data)
        except (ConnectionError, RuntimeError) as exc:
            log.info(f"worker {wid}: send failed ({exc})")

    # ------------------------------------------------------------------ the worker socket
    async def websocket(self, request):
        ws = web.WebSocketResponse(max_msg_size=self.max_frame, heartbeat=None)
        await ws.prepare(request)
        if RECV_BYTES and isinstance(getattr(request.transport, "max_size", None), int):
            request.transport.max_size = max(request.transport.max_size, RECV_BYTES)
        peer = request.remote
        try:
            msg = await asyncio.wait_for(ws.receive(), HELLO_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning(f"refused a worker from {peer}: no hello within {HELLO_TIMEOUT:g} s")
            await self._refuse(ws, f"no hello within {HELLO_TIMEOUT:g} s")
            return ws
        info = self._check_hello(msg)
        if isinstance(info, str):
            log.warning(f"refused a worker from {peer}: {info}")
            await self._refuse(ws, info)
            return ws
        now = time.monotonic()
        actions = self.state.add_worker(info, now)
        wid = max(self.state.workers)
        self.connections[wid] = Connection(ws, wid)
        try:
            await self.run_actions(actions)
            async for msg in ws:
                await self._receive(wid, msg)
        finally:
            self.connections.pop(wid, None)
            if wid in self.state.workers:
                await self.run_actions(self.state.remove_worker(wid, time.monotonic(), "disconnected"))
        return ws

    async def _refuse(self, ws, reason):
        try:
            await ws.send_bytes(P.encode_frame(P.ERROR, {"reason": reason}))
        except (ConnectionError, RuntimeError):  # the peer is gone already (e.g. after an oversized frame)
            pass
        finally:
            await ws.close()

    def _check_hello(self, msg):
        """A WorkerInfo, or why the first message is refused."""
        if msg.type == WSMsgType.ERROR:  # e.g. a frame over max_frame: aiohttp says which
            return f"the connection failed before HELLO ({msg.data})"
        if msg.type != WSMsgType.BINARY:
            return "the first message must be a binary HELLO frame"
        try:
            frame = P.decode_frame(msg.data, max_bytes=1 << 16)
        except P.ProtocolError as exc:
            return f"bad hello: {exc}"
        if frame.kind != P.HELLO:
            return f"the first message must be HELLO, got {frame.kind}"
        f = frame.fields
        # surrogatepass: a JSON string may hold a lone surrogate, which plain UTF-8 cannot encode
        if not hmac.compare_digest(f["token"].encode("utf-8", "surrogatepass"), self.join_token.encode()):
            return "wrong join token"
        if f["version"] != P.VERSION:
            return f"protocol version {f['version']} is not supported (the coordinator speaks {P.VERSION})"
        if not all(isinstance(c, str) for c in f["codecs"]) or f["max_batch"] < 1:
            return "hello: codecs must be a list of names and max_batch positive"
        missing = {self.state.settings.codec_down, self.state.settings.codec_up} - set(f["codecs"])
        if missing:
            return f"this run uses codec(s) {sorted(missing)}, which the worker does not support"
        speed = f.get("speed")
        if speed is not None and not speed > 0:
            return f"hello: speed must be positive samples/s, got {speed!r}"
        return WorkerInfo(f["name"][:64], f["backend"][:32], f["device"][:64], list(f["codecs"]), f["max_batch"],
                          None if speed is None else float(speed))

    async def _receive(self, wid, msg):
        conn = self.connections[wid]
        now = time.monotonic()
        if msg.type == WSMsgType.ERROR:  # e.g. a frame over max_frame: aiohttp closes the connection
            await self._bad(wid, f"connection error ({msg.data})")
            return
        if msg.type != WSMsgType.BINARY:
            await self._bad(wid, f"a {msg.type.name} message where a binary frame belongs")
            return
        self.bytes_in += len(msg.data)
        self.state.seen(wid, now)  # it arrived: the worker lives (however long decoding then takes)
        w = self.state.workers.get(wid)
        if w is not None:
            w.bytes_in += len(msg.data)
        if self.link is not None:
            await self.link.pace(len(msg.data))
        if len(msg.data) < BULK_BYTES and not conn.allow():
            await self._bad(wid, f"over the rate limit of {RATE_LIMIT:.0f} messages/s: dropped")
            return
        try:  # a large frame decodes in a thread: the loop goes on answering the others meanwhile
            frame = await _off_loop(_decode, len(msg.data), msg.data, self.max_frame,
                                    not self.state.settings.deterministic)
        except P.ProtocolError as exc:
            await self._bad(wid, f"bad frame: {exc}")
            return
        if frame.kind not in P.TO_COORDINATOR or frame.kind == P.HELLO:
            await self._bad(wid, f"{frame.kind} is not a message a joined worker sends")
            return
        await getattr(self, HANDLERS[frame.kind])(wid, frame, now)

    async def _bad(self, wid, reason):
        conn = self.connections.get(wid)
        log.warning(f"worker {wid}: {reason}")
        await self.send(wid, P.REJECT, {"reason": reason, "refers_to": "frame"})
        if conn is not None:
            conn.errors += 1
            if conn.errors >= 20:
                await self.run_actions([Close(wid, "too many bad frames")])

    async def on_grads(self, wid, frame, now):
        await self._weights_settled()  # the sums live where the optimizer step reads its gradient
        await self.run_actions(self.state.on_grads(wid, frame, now))

    async def on_result(self, wid, frame, now):
        await self._weights_settled()  # the round may end here: no optimizer step under the encoder
        await self._sums_settled()  # the round's sums, whole (waited for here, not on the loop)
        await self.run_actions(self.state.on_result(wid, frame, now))
        await self._after_round()

    async def on_pong(self, wid, frame, now):
        pass

    async def on_bye(self, wid, frame, now):
        await self.run_actions(self.state.remove_worker(wid, now, f"said bye ({frame.fields['reason'][:100]})"))
        conn = self.connections.get(wid)
        if conn is not None:
            await conn.ws.close()

    async def on_hello(self, wid, frame, now):
        await self._bad(wid, "hello twice")

    # ------------------------------------------------------------------ housekeeping
    async def _after_round(self):
        st = self.state
        if st.iteration != self._logged_at:
            self._log_iteration()
        if st.stopped:
            st.settle()  # the final weights, whole
        cycle = st.settings.val_cycle
        if cycle and st.iteration and (st.iteration % cycle == 0 or st.stopped) \
                and getattr(self, "_validated_at", -1) != st.iteration:
            self._validated_at = st.iteration
            await self.validate()
        if self.checkpoint and st.iteration and st.iteration % self.checkpoint_every == 0 \
                and getattr(self, "_saved_at", -1) != st.iteration:
            self._saved_at = st.iteration
            await self.save()
        if st.stopped and not self.done.is_set():
            if self.checkpoint:
                await self.save()
            for wid in list(self.connections):  # the run is over: workers leave instead of reconnecting
                await self.send(wid, P.BYE, {"reason": f"the run is complete (iteration {st.iteration})"})
            self.done.set()

    async def validate(self):
        """Evaluate the current weights on the test phase, in a thread, on a copy of the network
        (the run goes on meanwhile); the result joins the dashboard's validation plot."""
        from sukiyaki.nn import Net
        from sukiyaki.nn.train import evaluate

        st = self.state
        if "test" not in st.net.schedules:
            return
        if getattr(self, "_val_net", None) is None:
            sources = {n: (layer.images, layer.labels) for n, layer in st.net.layers.items()
                       if layer.is_data and layer.images is not None}
            self._val_net = Net(st.net.defs, data_sources=sources)
        iteration = st.iteration
        st.settle()
        self._val_net.store.load_arrays(st.net.store.arrays())
        result = await asyncio.to_thread(evaluate, self._val_net, st.settings.batch_size)
        metrics = {k: v for k, v in result.items() if k != "images"}
        st.validations.append((iteration, metrics))
        log.info(f"iteration {iteration}: " + ", ".join(f"val {k} {v:.4f}" for k, v in metrics.items()))
        self._write_metrics({"iteration": iteration, "validation": {k: float(v) for k, v in metrics.items()},
                             "time": round(time.time(), 3)})

    # ------------------------------------------------------------------ the metrics log
    def _log_iteration(self):
        """One JSON line per round finished since the last call (as ``sukiyaki train --log``)."""
        st = self.state
        now, samples = time.monotonic(), st.samples_total
        t0, s0 = self._log_clock
        rate = (samples - s0) / max(now - t0, 1e-9)
        new = []
        for it, loss in reversed(st.history):  # (a round's first iteration, its loss)
            if it < self._logged_at:
                break
            new.append((it, loss))
        for it, loss in reversed(new):
            self._write_metrics({"iteration": it + st.settings.local_steps, "loss": float(loss),
                                 "images_per_s": round(rate, 3), "time": round(time.time(), 3)})
        self._logged_at = st.iteration
        self._log_clock = (now, samples)

    def _write_metrics(self, record):
        if self.metrics_log is None:
            return
        try:
            with open(self.metrics_log, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:
            log.warning(f"metrics log {self.metrics_log}: cannot append ({exc.strerror or exc})")

    async def save(self):
        """Write the coordinator checkpoint (atomically, in a thread)."""
        blob = checkpoint_bytes(self.state, log=self.metrics_log)
        await asyncio.to_thread(atomic_write, self.checkpoint, lambda f: f.write(blob))
        log.info(f"checkpoint written: {self.checkpoint} (iteration {self.state.iteration})")

    async def housekeeping(self):
        """Deadlines, pings, lost workers: every half second."""
        last_ping = 0.0
        while not self.done.is_set():
            await asyncio.sleep(0.5)
            now = time.monotonic()
            await self.run_actions(self.state.tick(now))
            for wid, w in list(self.state.workers.items()):
                if now - w.last_seen > SILENCE_LIMIT:
                    conn = self.connections.get(wid)
                    await self.run_actions(self.state.remove_worker(wid, now, f"silent for {SILENCE_LIMIT:.0f} s"))
                    if conn is not None:
                        await conn.ws.close()
            if now - last_ping >= PING_EVERY:
                last_ping = now
                for wid in list(self.connections):
                    await self.send(wid, P.PING, {"t": now})
            await self._after_round()

    # ------------------------------------------------------------------ HTTP
    async def dashboard(self, request):
        html = resources.files("sukiyaki.distributed.coordinator").joinpath("dashboard.html").read_text("utf-8")
        return web.Response(text=html, content_type="text/html")

    async def metrics(self, request):
        now = time.monotonic()
        m = self.state.metrics(now)
        elapsed = max(now - self.started, 1e-9)
        m.update(bytes_in=self.bytes_in, bytes_out=self.bytes_out, seconds=round(elapsed, 3),
                 images_per_s=self.state.samples_total / elapsed)
        return web.json_response(m)

    async def netdef(self, request):
        return web.json_response(self.state.net.defs)

    async def params(self, request):
        self.state.settle()
        net = self.state.net
        blob = save_safetensors(None, weight_arrays(net), metadata=weights_metadata(net))
        return web.Response(body=blob, content_type="application/octet-stream",
                            headers={"Content-Disposition": "attachment; filename=params.safetensors"})

    async def data(self, request):
        name = request.match_info["layer"]
        layer = self.state.net.layers.get(name)
        if layer is None or not layer.is_data:
            raise web.HTTPNotFound(text=f"no data layer {name!r}")
        blob = self._data_cache.get(name)
        if blob is None:
            layer._ensure()
            buf = io.BytesIO()
            np.savez(buf, images=layer.images, labels=layer.labels.reshape(-1))
            blob = self._data_cache[name] = buf.getvalue()
        return web.Response(body=blob, content_type="application/octet-stream")

    async def admin(self, request):
        auth = request.headers.get("Authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.admin_token}".encode()):
            raise web.HTTPForbidden(text="admin actions need Authorization: Bearer <admin token>")
        action = request.match_info["action"]
        now = time.monotonic()
        if action == "pause":
            await self.run_actions(self.state.pause())
        elif action == "resume":
            await self.run_actions(self.state.resume(now))
        elif action == "stop":
            self.state.stopped = True
            await self._after_round()
        elif action == "save":
            if not self.checkpoint:
                raise web.HTTPBadRequest(text="no checkpoint path was given (--checkpoint)")
            await self.save()
        else:
            raise web.HTTPNotFound(text=f"unknown admin action {action!r}; known: pause, resume, stop, save")
        return web.json_response({"ok": True, "action": action, "iteration": self.state.iteration})


#: The handler method of every kind a worker sends (checked when the module is imported; frames
#: are dispatched through the instance, so a subclass's override is the one called).
HANDLERS = P.bind_handlers({P.HELLO: "on_hello", P.GRADS: "on_grads", P.RESULT: "on_result", P.PONG: "on_pong",
                            P.BYE: "on_bye"}, CoordinatorServer, P.TO_COORDINATOR, "coordinator")


def make_app(server):
    """The aiohttp application of a CoordinatorServer."""
    from sukiyaki.web.server import add_runtime_routes

    app = web.Application(client_max_size=1 << 20)
    app.router.add_get("/", server.dashboard)
    app.router.add_get("/api/metrics", server.metrics)
    app.router.add_get("/api/net.json", server.netdef)
    app.router.add_get("/api/params.safetensors", server.params)
    app.router.add_get("/data/{layer}.npz", server.data)
    app.router.add_post("/api/admin/{action}", server.admin)
    app.router.add_get("/ws", server.websocket)
    add_runtime_routes(app, "worker", server.pyodide, page="/worker")

    async def start(app):
        server._tasks.append(asyncio.get_running_loop().create_task(server.housekeeping()))

    async def stop(app):
        server.done.set()
        for t in server._tasks + list(server._streams.values()):
            t.cancel()
        for conn in list(server.connections.values()):
            await conn.ws.close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return app


def metrics_json(server):
    """The metrics as a JSON string (for logs and tests)."""
    return json.dumps(server.state.metrics(time.monotonic()))
