"""A protocol fuzzer against a running coordinator that trains with one honest worker.

The coordinator and the honest worker run in a background thread's event loop; the fuzzer's
raw WebSocket connections run there too, driven from the test (and from hypothesis) one
exchange at a time. Every malformed, replayed, misdirected or excessive message must be
answered (REJECT to a joined worker, ERROR before joining) or refused with a logged reason;
the coordinator stays up, the honest run completes, and its final weights equal, bit for
bit (deterministic mode), those of the same run without the fuzzer.

The honest worker computes nothing of the last iterations until the fuzzing is over, so
every fuzzed message reaches a run in progress.
"""

import asyncio
import json
import logging
import re
import struct
import threading
import time

import aiohttp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as hs

from sukiyaki.distributed import protocol as P
from sukiyaki.distributed.coordinator import app as A
from sukiyaki.distributed.coordinator.state import Settings
from sukiyaki.distributed.worker import Worker

import dist_helpers as D  # noqa: E402

V = b'{"v":%d,' % P.VERSION  # the start of a header of this version, as bytes
RUN = dict(batch_size=32, iterations=8, seed=7, shard_size=8, deterministic=True, deadline=120.0)
GATE = 6  # the honest worker holds its tasks of iterations >= GATE until the fuzzer is done
FRAMES_PER_CONNECTION = 12  # a fresh connection before the coordinator's bad-frame limit (20)


class HonestWorker(Worker):
    """A native worker that keeps a copy of each RESULT it sends (to be replayed) and waits at the gate."""

    def __init__(self, *a, gate, **kw):
        super().__init__(*a, **kw)
        self.gate = gate
        self.results = []

    def _compute(self, ids, f):
        if f["iteration"] >= GATE:
            assert self.gate.wait(120), "the fuzzer never finished"
        return super()._compute(ids, f)

    async def send(self, kind, fields, tensors=()):
        if kind == P.RESULT:
            self.results.append(P.encode_frame(kind, fields, tensors, seq=self.seq + 1))
        await super().send(kind, fields, tensors)


class LogRecords(logging.Handler):
    """Every record of the coordinator's logger, as text."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    def text(self):
        return "\n".join(self.lines)


class Conn:
    """A raw fuzzer connection (in the coordinator's loop): a reader answers PING, holds any TASK it is
    given (the shard goes back when the connection closes) and queues every REJECT, ERROR and the close."""

    def __init__(self, session, url):
        self.session, self.url = session, url
        self.ws, self.wid, self.sent = None, None, 0
        self.replies = asyncio.Queue()

    async def open(self, hello=True, **hello_fields):
        self.ws = await self.session.ws_connect(self.url + "/ws", max_msg_size=0, heartbeat=None)
        if hello:
            await self.ws.send_bytes(hello_frame(**hello_fields))
            msg = await asyncio.wait_for(self.ws.receive(), 10)
            f = P.decode_frame(msg.data)
            assert f.kind == P.WELCOME, f
            self.wid = f.fields["worker"]
        self.reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self):
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                continue
            f = P.decode_frame(msg.data)
            if f.kind == P.PING:
                await self.ws.send_bytes(P.encode_frame(P.PONG, {"t": f.fields["t"]}))
            elif f.kind in (P.REJECT, P.ERROR):
                await self.replies.put((f.kind, f.fields["reason"]))
        await self.replies.put(("closed", self.ws.close_code))

    async def send(self, data):
        self.sent += 1
        try:
            if isinstance(data, str):
                await self.ws.send_str(data)
            else:
                await self.ws.send_bytes(data)
        except ConnectionError:  # the coordinator dropped the connection (an oversized frame)
            pass

    async def reply(self, timeout=10):
        return await asyncio.wait_for(self.replies.get(), timeout)

    async def close(self):
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self.ws is not None:
            await asyncio.wait_for(self.reader, 10)


def hello_frame(**over):
    f = {"token": D.TOKEN, "version": P.VERSION, "name": "fuzzer", "backend": "numpy", "device": "cpu",
         "codecs": ["raw"], "max_batch": 8}
    f.update(over)
    return P.encode_frame(P.HELLO, f)


def raw_frame(header, tail=b""):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<I", len(text)) + text + tail


def result_header(**over):
    h = {"v": P.VERSION, "kind": "result", "seq": 1, "iteration": 0, "task": 1, "samples": 8, "loss": 0.5,
         "seconds": 0.1, "tensors": []}
    h.update(over)
    return h


def small_result(**over):
    """A well-formed RESULT frame of a few tiny tensors."""
    f = {k: v for k, v in result_header(**over).items() if k not in ("v", "kind", "seq", "tensors")}
    return P.encode_frame(P.RESULT, f, [("a", np.ones((3, 2), np.float32), "raw"), ("b", np.arange(4), "raw")])


class Cluster:
    """The coordinator and the honest worker in a background thread's event loop."""

    def __init__(self, state, gate):
        self.state, self.gate = state, gate
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server, self.runner, self.url = self.call(D.serve(state))
        self.session = self.call(self._session())
        self.honest = HonestWorker(self.url, D.TOKEN, name="honest", gate=gate)
        self.honest_future = self.read(lambda: asyncio.ensure_future(self.honest.run()))

    async def _session(self):
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    def call(self, coro, timeout=60):
        """Run a coroutine in the loop; its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def read(self, fn):
        """fn() run in the loop (so that it sees the state between two events)."""
        async def run():
            return fn()

        return self.call(run())

    def stop(self):
        async def down():
            self.honest_future.cancel()
            await asyncio.gather(self.honest_future, return_exceptions=True)
            await self.session.close()
            await self.runner.cleanup()

        try:
            self.call(down(), 30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


class Fuzzer:
    """Exchanges with the coordinator, one at a time; reuses a joined connection for a few frames."""

    def __init__(self, cluster):
        self.c = cluster
        self.conn = None

    def joined(self):
        if self.conn is None or self.conn.sent >= FRAMES_PER_CONNECTION or self.conn.ws.closed:
            if self.conn is not None:
                self.c.call(self.conn.close())
            self.conn = self.c.call(Conn(self.c.session, self.c.url).open())
        return self.conn

    def fresh(self, hello=True, **hello_fields):
        return self.c.call(Conn(self.c.session, self.c.url).open(hello, **hello_fields))

    def exchange(self, data, conn=None):
        """Send one message on a joined connection; the first REJECT / ERROR / close that answers it."""
        conn = conn or self.joined()
        self.c.call(conn.send(data))
        return self.c.call(conn.reply())

    def expected(self, data):
        """What the coordinator must answer a joined worker's message, computed here; None if it is valid."""
        if isinstance(data, str):
            return "a TEXT message where a binary frame belongs"
        try:
            f = P.decode_frame(data, max_bytes=self.c.server.max_frame)
        except P.ProtocolError as exc:
            return f"bad frame: {exc}"
        if f.kind not in P.TO_COORDINATOR or f.kind == P.HELLO:
            return f"{f.kind} is not a message a joined worker sends"
        return None


# ---------------------------------------------------------------- the malformed frames, named

MALFORMED = {
    "truncated": lambda: small_result()[:-5],
    "truncated_header": lambda: small_result()[:20],
    "empty": lambda: b"",
    "bad_header_length": lambda: struct.pack("<I", 1 << 30) + b"{}",
    "header_length_past_end": lambda: struct.pack("<I", 50) + json.dumps(result_header()).encode()[:40],
    "not_json": lambda: raw_frame(b"{'v': 1, kind: result}"),
    "not_utf8": lambda: raw_frame(V + b'"kind":"\xff"}'),
    "nested_40": lambda: raw_frame(result_header(x=json.loads("[" * 40 + "]" * 40))),
    "nested_100k": lambda: raw_frame(b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "nan": lambda: raw_frame(V + b'"kind":"pong","t":NaN}'),
    "infinity": lambda: raw_frame(V + b'"kind":"pong","t":Infinity}'),
    "overflowing_float": lambda: raw_frame(V + b'"kind":"pong","t":-1e400}'),
    "huge_integer": lambda: raw_frame(V + b'"kind":"pong","t":1.0,"n":' + b"7" * 6000 + b"}"),
    "header_is_a_list": lambda: raw_frame(b"[1,2,3]"),
    "unknown_kind": lambda: raw_frame(result_header(kind="gradient")),
    "wrong_version": lambda: raw_frame(result_header(v=0)),
    "version_true": lambda: raw_frame(result_header(v=True)),
    "no_version": lambda: raw_frame({k: v for k, v in result_header().items() if k != "v"}),
    "missing_field": lambda: raw_frame({k: v for k, v in result_header().items() if k != "samples"}),
    "string_loss": lambda: raw_frame(result_header(loss="0.5")),
    "float_task": lambda: raw_frame(result_header(task=1.5)),
    "bool_samples": lambda: raw_frame(result_header(samples=True)),
    "negative_seq": lambda: raw_frame(result_header(seq=-3)),
    "tensors_not_a_list": lambda: raw_frame(result_header(tensors="all")),
    "bytes_announced_lie": lambda: raw_frame(result_header(tensors=[
        {"name": "g", "shape": [4], "dtype": "float32", "codec": "raw", "nbytes": 4}]), b"\0" * 16),
    "bytes_missing": lambda: raw_frame(result_header(tensors=[
        {"name": "g", "shape": [4], "dtype": "float32", "codec": "raw", "nbytes": 16}]), b"\0" * 10),
    "bytes_extra": lambda: raw_frame(result_header(tensors=[
        {"name": "g", "shape": [4], "dtype": "float32", "codec": "raw", "nbytes": 16}]), b"\0" * 17),
    "negative_dim": lambda: raw_frame(result_header(tensors=[
        {"name": "g", "shape": [4, -4], "dtype": "float32", "codec": "raw", "nbytes": 0}])),
    "huge_dims": lambda: raw_frame(result_header(tensors=[
        {"name": "g", "shape": [1 << 31, 1 << 31, 1 << 31], "dtype": "float32", "codec": "raw", "nbytes": 0}])),
    "dtype_a_list": lambda: raw_frame(result_header(tensors=[
        {"name": "g", "shape": [1], "dtype": ["float32"], "codec": "raw", "nbytes": 4}]), b"\0" * 4),
    "unknown_codec": lambda: raw_frame(result_header(tensors=[
        {"name": "g", "shape": [1], "dtype": "float32", "codec": "gzip", "nbytes": 4}]), b"\0" * 4),
    "nan_8bit_scale": lambda: raw_frame(result_header(tensors=[
        {"name": "g", "shape": [2], "dtype": "float32", "codec": "dettmers8", "nbytes": 6}]),
        b"\x01\x02" + struct.pack("<f", float("nan"))),
    "text_frame": lambda: "result please",
    "hello_again": lambda: hello_frame(),
    "task_from_a_worker": lambda: P.encode_frame(P.TASK, {
        "iteration": 0, "task": 1, "loss_scale": 1.0, "deadline": 9.0, "sub_batch": 8, "params_version": 0}),
    "welcome_from_a_worker": lambda: P.encode_frame(P.WELCOME, {
        "worker": 1, "netdef": [], "settings": {}, "layout": [], "data": {}}),
}

JSON = hs.recursive(hs.none() | hs.booleans() | hs.integers() | hs.floats(allow_nan=False) | hs.text(max_size=6),
                    lambda inner: hs.lists(inner, max_size=3) | hs.dictionaries(hs.text(max_size=5), inner, max_size=3),
                    max_leaves=12)
HEADERS = hs.fixed_dictionaries({"v": hs.sampled_from([1, 1, 1, 0, 2, "1"]),
                                 "kind": hs.sampled_from(list(P.KINDS) + ["", "x"])},
                                optional={"seq": JSON, "iteration": JSON, "task": JSON, "samples": JSON, "loss": JSON,
                                          "seconds": JSON, "t": JSON, "reason": JSON, "tensors": JSON, "token": JSON})


def damaged(cut, flips):
    """A well-formed RESULT with some bytes flipped and the last cut bytes cut off."""
    b = bytearray(small_result())
    for pos, x in flips:
        b[pos % len(b)] ^= x
    return bytes(b[: max(0, len(b) - cut)])


JUNK = hs.one_of(
    hs.binary(max_size=64),
    hs.builds(raw_frame, HEADERS, hs.binary(max_size=32)),
    hs.builds(damaged, hs.integers(0, 400), hs.lists(hs.tuples(hs.integers(0, 400), hs.integers(1, 255)), max_size=3)),
)


def wait_for(predicate, what, timeout=30):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference():
    """The weights of the same run without the fuzzer (one honest worker, no gate)."""
    state = D.make_state(Settings(**RUN))
    asyncio.run(D.run_cluster(state, n_workers=1))
    assert state.iteration == RUN["iterations"]
    return D.weights(state)


@pytest.fixture
def cluster(monkeypatch):
    monkeypatch.setattr(A, "HELLO_TIMEOUT", 0.5)  # read when a connection opens: the silent case takes 0.5 s
    records = LogRecords()
    logger = logging.getLogger("sukiyaki.coordinator")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(records)
    gate = threading.Event()
    c = Cluster(D.make_state(Settings(**RUN)), gate)
    c.records = records
    try:
        yield c
    finally:
        gate.set()
        c.stop()
        logger.removeHandler(records)
        logger.setLevel(level)


def test_fuzzed_coordinator_answers_everything_and_trains_as_if_alone(cluster, reference):
    c, fz = cluster, Fuzzer(cluster)
    st = c.state
    seen = []

    def check(kind, reason, expected_kind, pattern, logged=True):
        assert kind == expected_kind and re.search(pattern, str(reason)), (kind, reason, pattern)
        if logged:  # the coordinator logged why (a warning naming the worker, or the refused peer)
            assert any(str(reason) in line for line in c.records.lines), (reason, c.records.lines[-5:])
        seen.append(reason)

    # the honest run is under way
    wait_for(lambda: st.iteration >= 1 and c.honest.results, "the honest worker's first results")

    # 1. malformed frames on a joined connection: REJECT, naming the fault as decode_frame does
    for name, build in MALFORMED.items():
        data = build()
        expected = fz.expected(data)
        assert expected, f"{name}: the fuzz frame is valid"
        kind, reason = fz.exchange(data)
        check(kind, reason, P.REJECT, "^" + re.escape(expected) + "$")

    # 2. hypothesis: random, structured and damaged frames; each answered exactly as decode_frame says
    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(data=JUNK)
    def fuzz(data):
        expected = fz.expected(data)
        assume(expected is not None)  # a well-formed PONG, BYE or RESULT is not junk
        kind, reason = fz.exchange(data)
        check(kind, reason, P.REJECT, "^" + re.escape(expected) + "$")

    fuzz()

    # 3. results that are not the sender's task: replayed, old, another worker's, before any task
    honest_id = c.read(lambda: next(w.id for w in st.workers.values() if w.info.name == "honest"))
    replay = c.honest.results[0]
    first = P.decode_frame(replay).fields
    kind, reason = fz.exchange(replay)
    check(kind, reason, P.REJECT, rf"^task {first['task']} of iteration {first['iteration']} is not one of yours now",
          logged=False)
    kind, reason = fz.exchange(small_result(task=1, iteration=0))
    check(kind, reason, P.REJECT, r"^task 1 of iteration 0 is not one of yours now", logged=False)

    async def others_task():  # in the loop, so the task is current when the frame goes out
        conn = await Conn(c.session, c.url).open()
        tasks = [t for t in st.tasks.values() if t.worker == honest_id]
        t = tasks[0] if tasks else max(st.tasks.values(), key=lambda t: t.id)
        await conn.send(small_result(task=t.id, iteration=t.iteration))
        out = (t.id, t.iteration, await conn.reply())
        await conn.close()
        return out

    tid, it, (kind, reason) = c.call(others_task())
    check(kind, reason, P.REJECT, rf"^task {tid} of iteration {it} is not one of yours now", logged=False)
    conn = fz.fresh()
    kind, reason = fz.exchange(small_result(task=10**9, iteration=st.iteration), conn)  # first thing after WELCOME
    check(kind, reason, P.REJECT, r"^task 1000000000 of iteration \d+ is not one of yours now", logged=False)
    c.call(conn.close())

    # 4. before joining: no HELLO first, a wrong token, a bad HELLO: ERROR, then the connection closes
    pre_hello = [
        (hello_frame(token="guess"), r"^wrong join token$"),
        (hello_frame(token="\ud800"), r"^wrong join token$"),
        (hello_frame(token=""), r"^wrong join token$"),
        (small_result(), r"^the first message must be HELLO, got result$"),
        (P.encode_frame(P.PONG, {"t": 1.0}), r"^the first message must be HELLO, got pong$"),
        ("hello", r"^the first message must be a binary HELLO frame$"),
        (b"\x00\x01", r"^bad hello: frame of 2 bytes is too short"),
        (hello_frame() + b"\0", r"^bad hello: hello: 1 bytes after the last tensor$"),
        (hello_frame(version=1), r"^protocol version 1 is not supported \(the coordinator speaks 2\)$"),
        (raw_frame(dict(json.loads(hello_frame()[4:]), v=1)), r"^bad hello: protocol version 1 is not supported"),
        (hello_frame(codecs=["fp16"]), r"uses codec\(s\) \['raw'\], which the worker does not support$"),
        (hello_frame(max_batch=0), r"^hello: codecs must be a list of names and max_batch positive$"),
        (hello_frame(codecs=[1, 2]), r"^hello: codecs must be a list of names"),
        (raw_frame({"v": P.VERSION, "kind": "hello", "token": D.TOKEN}),
         r"^bad hello: hello: missing field 'version'$"),
        (hello_frame(name="x" * 70_000), r"^bad hello: frame of \d+ bytes is over the limit of 65536$"),
    ]
    workers_before = c.read(lambda: set(st.workers))
    for data, pattern in pre_hello:
        conn = fz.fresh(hello=False)
        kind, reason = fz.exchange(data, conn)
        check(kind, reason, P.ERROR, pattern)
        assert c.call(conn.reply()) == ("closed", aiohttp.WSCloseCode.OK)
    silent = fz.fresh(hello=False)  # says nothing: refused after HELLO_TIMEOUT
    kind, reason = c.call(silent.reply())
    check(kind, reason, P.ERROR, r"^no hello within 0.5 s$")
    assert c.read(lambda: set(st.workers)) == workers_before  # none of them joined

    # 5. oversized frames: the connection is dropped (no room to answer), the reason logged
    conn = fz.fresh()
    kind, code = fz.exchange(b"\0" * (c.server.max_frame + 1), conn)
    assert kind == "closed" and conn.wid not in st.workers
    size = c.server.max_frame + 1
    assert f"worker {conn.wid}: connection error (Message size {size} exceeds limit" in c.records.text()
    conn = fz.fresh(hello=False)
    kind, code = fz.exchange(b"\0" * (c.server.max_frame + 1), conn)
    assert kind == "closed"
    assert "the connection failed before HELLO (Message size" in c.records.text()

    # 6. the bad-frame limit: 20 REJECTs, then ERROR and the connection closes
    conn = fz.fresh()
    for k in range(20):
        kind, reason = fz.exchange(b"junk", conn)
        check(kind, reason, P.REJECT, r"^bad frame: header length")
    assert c.call(conn.reply()) == (P.ERROR, "too many bad frames")
    assert c.call(conn.reply())[0] == "closed" and conn.wid not in st.workers

    # 7. a flood over the rate limit: dropped with a REJECT each, then the connection is closed
    conn = fz.fresh()

    async def flood():
        pong = P.encode_frame(P.PONG, {"t": 0.0})
        for _ in range(3 * int(A.RATE_LIMIT)):
            if conn.ws.closed:
                break
            await conn.send(pong)
        out = []
        while not out or out[-1][0] != "closed":
            out.append(await conn.reply())
        return out

    replies = c.call(flood())
    limited = [r for k, r in replies if k == P.REJECT]
    assert limited and all(r == f"over the rate limit of {A.RATE_LIMIT:.0f} messages/s: dropped" for r in limited)
    assert replies[-2] == (P.ERROR, "too many bad frames") and conn.wid not in st.workers
    assert f"worker {conn.wid}: over the rate limit" in c.records.text()

    # the coordinator is up, the honest worker still there, the run still in progress (held at the gate)
    m = D.http_json(c.url + "/api/metrics")
    assert m is not None and not m["stopped"] and m["iteration"] <= GATE
    assert "honest" in [w["name"] for w in m["workers"]]
    assert len(seen) > len(MALFORMED) + 40
    if fz.conn is not None:
        c.call(fz.conn.close())
    c.gate.set()
    c.call(asyncio.wait_for(c.server.done.wait(), 60), 70)
    assert st.iteration == RUN["iterations"] and c.honest.tasks_done >= RUN["iterations"] * 4
    D.assert_same_weights(D.weights(st), reference)
