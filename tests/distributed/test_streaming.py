"""Layer-by-layer streaming (protocol version 2): weights down in PARAMS parts, gradients up in
GRADS parts, checked and summed piece by piece.

The state machine alone (pieces built by hand, the clock given): a partial upload whose worker
leaves, parts out of order or repeated, a piece of a tensor that is not a parameter, a gap, a
norm bound over the whole upload, a non-finite piece mid-stream; none leaves a trace in the
sums. Then on loopback with real workers and tiny parts (many pieces per tensor): the forward
pass starts before the last part of the weights has arrived, gradients go up while the
backward pass still runs, a worker that drops mid-upload has its split done again with the
final weights bit-equal to a fault-free run, handlers are dispatched through the instance,
declared speeds set the deadlines, and ``serve --log`` goes on in the same file after
``--resume``.
"""

import asyncio
import json
import math
import re
import threading
import time

import numpy as np
import pytest

from sukiyaki.distributed import codec as C
from sukiyaki.distributed import protocol as P
from sukiyaki.distributed.coordinator import app as A
from sukiyaki.distributed.coordinator.state import STATE_PREFIX, Log, Send, SendParams, Settings, WorkerInfo
from sukiyaki.distributed.worker import Worker

import dist_helpers as D  # noqa: E402


# ---------------------------------------------------------------- the state machine alone

def join(state, name, now=0.0, speed=None):
    return state.add_worker(WorkerInfo(name, "numpy", "cpu", speed=speed), now)


def started(settings, n=2):
    st = D.make_state(settings)
    st.pause()
    for k in range(n):
        join(st, f"w{k}")
    st.resume(0.0)
    return st


def grads_for(st, value=1e-3, seed=None):
    """Gradients of the right shapes: constant, or random (seeded) so that a sum's order would show."""
    if seed is None:
        return {n: np.full(st.shapes[n], value, np.float32) for n in st.names}
    rng = np.random.default_rng(seed)
    return {n: (rng.standard_normal(st.shapes[n]) * 1e-3).astype(np.float32) for n in st.names}


def pieces_of(grads, codec="raw", part_bytes=512):
    """Parts as a worker cuts them (last layers first): [[Piece, ...], ...], decoded as the coordinator's
    reader leaves them."""
    order = [(n, grads[n].shape, codec) for n in reversed(list(grads))]
    blobs = {n: C.encode(grads[n], codec) for n in grads}
    parts = []
    for part in P.plan_parts(order, part_bytes):
        frame = P.decode_frame(P.encode_frame(P.GRADS, {"iteration": 0, "task": 0, "part": 0},
                                              P.part_tensors(part, blobs)))
        parts.append(frame.pieces)
    return parts


def later_piece(parts):
    """A piece of a tensor cut in several that does not start it (the first parts carry the last layers)."""
    return next(p for part in parts for p in part if not p.whole and p.offset > 0)


def grads_frame(task, part, pieces):
    return P.Frame(P.GRADS, {"iteration": task.iteration, "task": task.id, "part": part}, pieces=pieces)


def result_frame(task, parts, pieces=(), **fields):
    f = {"iteration": task.iteration, "task": task.id, "samples": len(task.ids), "loss": 0.5, "seconds": 0.1,
         "parts": parts}
    f.update(fields)
    return P.Frame(P.RESULT, f, pieces=list(pieces))


def stream(st, wid, task, parts, upto=None):
    """Send parts[:upto] as GRADS; returns the actions of each."""
    return [st.on_grads(wid, grads_frame(task, k, p), 1.0) for k, p in enumerate(parts[:upto])]


def rejects(actions, wid):
    return [a for a in actions if isinstance(a, Send) and a.kind == P.REJECT and a.worker == wid]


def untouched(st):
    return all(v is None for v in st.round.sum.values())


def model_bytes(st):
    store = st.net.store
    opt = st.optimizer.state_arrays(store)
    return store.to_numpy().tobytes() + b"".join(opt[k].tobytes() for k in sorted(opt))


def task_of(st, wid):
    (t,) = [t for t in st.tasks.values() if t.worker == wid]
    return t


def test_tasks_go_before_their_weights_and_weights_are_streamed():
    st = D.make_state(Settings(batch_size=32, iterations=2, seed=0, shard_size=8))
    acts = join(st, "a")
    kinds = [(type(a).__name__, getattr(a, "kind", None)) for a in acts if isinstance(a, (Send, SendParams))]
    assert kinds == [("Send", P.WELCOME), ("Send", P.TASK), ("SendParams", None)]
    order = st.params_order()
    assert order == [n for n in st.net.store.order if st.net.store.entries[n].kind == "trained"]  # forward order


def test_streamed_upload_is_summed_as_it_arrives_and_accepted_at_the_end():
    st = started(Settings(batch_size=32, iterations=1, seed=0, shard_size=16))
    t1, t2 = task_of(st, 1), task_of(st, 2)
    g1, g2 = grads_for(st, seed=1), grads_for(st, seed=2)
    parts = pieces_of(g1)
    assert len(parts) > 3 and any(not p.whole for part in parts for p in part)  # pieces indeed
    stream(st, 1, t1, parts, upto=2)
    assert not untouched(st)  # added as they came
    for k, p in list(enumerate(parts))[2:]:
        assert not rejects(st.on_grads(1, grads_frame(t1, k, p), 1.0), 1)
    st.on_result(1, result_frame(t1, len(parts)), 1.5)
    parts2 = pieces_of(g2, part_bytes=1 << 20)
    stream(st, 2, t2, parts2)
    st.on_result(2, result_frame(t2, len(parts2)), 2.0)
    assert st.iteration == 1
    # the same as one whole upload of each (the gradients summed then applied)
    ref = started(Settings(batch_size=32, iterations=1, seed=0, shard_size=16))
    for wid, g in ((1, g1), (2, g2)):
        t = task_of(ref, wid)
        ref.on_result(wid, P.Frame(P.RESULT, {"iteration": 0, "task": t.id, "samples": 16, "loss": 0.5,
                                              "seconds": 0.1}, g), 1.0)
    assert model_bytes(st) == model_bytes(ref)


def test_partial_upload_then_disconnect_leaves_nothing_and_the_split_is_redone():
    st = started(Settings(batch_size=32, iterations=1, seed=0, shard_size=16))
    t1, t2 = task_of(st, 1), task_of(st, 2)
    g2, g1b = grads_for(st, seed=2), grads_for(st, seed=3)
    stream(st, 2, t2, pieces_of(g2))  # worker 2's upload arrives, not closed yet
    stream(st, 1, t1, pieces_of(grads_for(st, value=7.0)), upto=3)  # worker 1: half an upload of bogus values
    acts = st.remove_worker(1, 2.0, "disconnected")
    assert any(isinstance(a, Log) and "handed back" in a.text for a in acts)
    assert 1 not in st.round.uploads and t1.id not in st.tasks
    st.on_result(2, result_frame(t2, len(pieces_of(g2))), 2.5)
    (again,) = [t for t in st.tasks.values() if t.worker == 2]  # the split of worker 1, to worker 2
    assert sorted(again.ids.tolist()) == sorted(t1.ids.tolist())
    parts = pieces_of(g1b)
    stream(st, 2, again, parts)
    st.on_result(2, result_frame(again, len(parts)), 3.0)
    assert st.iteration == 1
    # bit-equal to a run where worker 1 never sent a thing: its half upload was taken out exactly
    ref = started(Settings(batch_size=32, iterations=1, seed=0, shard_size=16))
    r2 = task_of(ref, 2)
    stream(ref, 2, r2, pieces_of(g2))
    ref.remove_worker(1, 2.0, "disconnected")
    ref.on_result(2, result_frame(r2, len(pieces_of(g2))), 2.5)
    (ragain,) = ref.tasks.values()
    stream(ref, 2, ragain, parts)
    ref.on_result(2, result_frame(ragain, len(parts)), 3.0)
    assert model_bytes(st) == model_bytes(ref)


BAD_STREAMS = {
    # name: (parts (from the good ones) -> frames to send as (part number, pieces), reason pattern)
    "out_of_order_part": (lambda parts: [(1, parts[1])], r"part 1 of the upload arrived where part 0 was due"),
    "repeated_part": (lambda parts: [(0, parts[0]), (0, parts[0])],
                      r"part 0 of the upload arrived where part 1 was due"),
    "duplicate_chunk": (lambda parts: [(0, parts[0]), (1, parts[0])],
                        r"elements 0\.\.\d+ arrived where (element \d+|nothing more) was due "
                        r"\(out of order or repeated\)"),
    "chunk_out_of_order": (lambda parts: [(0, [later_piece(parts)])],
                           r"elements \d+\.\.\d+ arrived where element 0 was due"),
    "unknown_tensor": (lambda parts: [(0, [P.Piece("bogus", (4,), 0, 4, array=np.zeros(4, np.float32))])],
                       r"do not match the parameters \(missing \[\], unexpected \['bogus'\]\)"),
    "statistic_as_gradient": (lambda parts: [(0, [P.Piece(STATE_PREFIX + "conv1/weight", (4,), 0, 4,
                                                          array=np.zeros(4, np.float32))])], r"unexpected"),
    "wrong_shape": (lambda parts: [(0, [P.Piece(parts[0][0].name, (3, 3), 0, 9, array=np.zeros(9, np.float32))])],
                    r"gradient '.+' has shape \(3, 3\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_STREAMS))
def test_bad_stream_is_refused_at_once_and_leaves_no_trace(case):
    st = started(Settings(batch_size=32, iterations=1, seed=0, shard_size=16))
    t1 = task_of(st, 1)
    parts = pieces_of(grads_for(st, seed=4))
    assert any(len(part) == 1 and not part[0].whole for part in parts)
    build, pattern = BAD_STREAMS[case]
    before = model_bytes(st)
    actions = []
    for k, pieces in build(parts):
        actions += st.on_grads(1, grads_frame(t1, k, pieces), 1.0)
    (rej,) = rejects(actions, 1)
    assert re.search(pattern, rej.fields["reason"]), rej.fields["reason"]
    assert rej.fields["refers_to"] == P.GRADS and st.workers[1].rejected == 1
    assert untouched(st) and model_bytes(st) == before and t1.id not in st.tasks
    assert any(t.worker == 1 and sorted(t.ids.tolist()) == sorted(t1.ids.tolist()) for t in st.tasks.values())
    # what the worker still sends of that upload is dropped quietly; its RESULT is refused as not its task
    assert st.on_grads(1, grads_frame(t1, 5, parts[-1]), 1.1) == []
    (late,) = rejects(st.on_result(1, result_frame(t1, len(parts)), 1.2), 1)
    assert "is not one of yours now" in late.fields["reason"]
    assert untouched(st)


def test_gap_in_a_tensor_is_refused_when_the_upload_closes():
    st = started(Settings(batch_size=32, iterations=1, seed=0, shard_size=16))
    t1 = task_of(st, 1)
    parts = pieces_of(grads_for(st, seed=5))
    cut = next(k for k, part in enumerate(parts) if len(part) == 1 and not part[0].whole)
    keep = parts[:cut] + parts[cut + 1:]
    acts = []
    for k, p in enumerate(keep):
        acts += st.on_grads(1, grads_frame(t1, k, p), 1.0)
    if not rejects(acts, 1):  # the piece after the gap was refused already, or the tensor ends short
        acts = st.on_result(1, result_frame(t1, len(keep)), 1.5)
    (rej,) = rejects(acts, 1)
    assert re.search(r"was due|missing \[", rej.fields["reason"]), rej.fields["reason"]
    assert untouched(st)


def test_norm_bound_is_over_the_whole_upload():
    st = started(Settings(batch_size=32, iterations=1, seed=0, shard_size=16, max_grad_norm=5.0))
    t1 = task_of(st, 1)
    g = grads_for(st, value=0.2)  # each piece small, the whole over the bound
    parts = pieces_of(g)
    total = math.sqrt(sum(float((a.astype(np.float64) ** 2).sum()) for a in g.values())) / len(t1.ids)
    norms = [math.sqrt(float((p.array.astype(np.float64) ** 2).sum())) / 16 for part in parts for p in part]
    assert total > 5.0 and max(norms) < 5.0
    assert not any(rejects(a, 1) for a in stream(st, 1, t1, parts))
    assert not untouched(st)
    (rej,) = rejects(st.on_result(1, result_frame(t1, len(parts)), 1.5), 1)
    assert re.search(r"gradient norm per sample [\d.]+ is over the bound 5", rej.fields["reason"])
    assert untouched(st) and st.round.done == set()


def test_result_must_count_the_parts():
    st = started(Settings(batch_size=32, iterations=1, seed=0, shard_size=16))
    t1 = task_of(st, 1)
    parts = pieces_of(grads_for(st))
    stream(st, 1, t1, parts)
    (rej,) = rejects(st.on_result(1, result_frame(t1, len(parts) + 2), 1.5), 1)
    assert f"RESULT counts {len(parts) + 2} parts before it, {len(parts)} arrived" in rej.fields["reason"]
    assert untouched(st)


def test_non_finite_piece_mid_stream_is_checked_by_the_coordinator():
    st = started(Settings(batch_size=32, iterations=1, seed=0, shard_size=16))
    t1 = task_of(st, 1)
    g = grads_for(st, seed=6)
    g[st.names[-1]][0] = np.nan
    parts = pieces_of(g)
    stream(st, 1, t1, parts)
    assert untouched(st)  # a NaN piece: what the upload had added is out again
    (rej,) = rejects(st.on_result(1, result_frame(t1, len(parts)), 1.5), 1)
    assert "holds NaN or infinite values" in rej.fields["reason"]
    assert "the coordinator's own step on these samples is finite" in rej.fields["reason"]
    assert not st.stopped and untouched(st)


def test_deterministic_mode_is_bit_equal_whatever_the_interleaving_of_pieces():
    finals = []
    for order in (1, -1):
        st = D.make_state(Settings(batch_size=32, iterations=1, seed=0, shard_size=8, deterministic=True))
        st.pause()
        for k in range(4):
            join(st, f"w{k}")
        st.resume(0.0)
        ts = sorted(st.tasks.values(), key=lambda t: t.shards[0])[::order]
        streams = {t.id: pieces_of(grads_for(st, seed=10 + t.shards[0])) for t in ts}
        for k in range(max(len(p) for p in streams.values())):  # pieces of the four uploads interleaved
            for t in ts:
                if k < len(streams[t.id]):
                    st.on_grads(t.worker, grads_frame(t, k, streams[t.id][k]), 1.0)
        for t in ts:
            st.on_result(t.worker, result_frame(t, len(streams[t.id])), 1.0)
        assert st.iteration == 1
        finals.append(model_bytes(st))
    assert finals[0] == finals[1]


def test_declared_and_measured_speeds_set_the_deadlines():
    st = D.make_state(Settings(batch_size=32, iterations=3, seed=0, shard_size=32, deadline=30.0,
                               first_deadline=600.0))
    st.pause()
    join(st, "slow", 0.0, speed=0.5)  # declares 0.5 samples/s: 32 samples are 64 s, so 5 x 64 s
    st.resume(0.0)
    (t,) = st.tasks.values()
    assert t.deadline == pytest.approx(5 * 64.0)
    st.remove_worker(1, 1.0)
    join(st, "unknown", 1.0)  # nothing predicts it: the first deadline
    (t,) = st.tasks.values()
    assert t.deadline - t.sent == pytest.approx(600.0)
    st.on_result(2, P.Frame(P.RESULT, {"iteration": 0, "task": t.id, "samples": 32, "loss": 0.5, "seconds": 0.32},
                            grads_for(st)), 2.0)  # measured: 100 samples/s
    (t,) = st.tasks.values()
    assert t.deadline - t.sent == pytest.approx(30.0)  # 5 x 0.32 s is less than the minimum


# ---------------------------------------------------------------- on loopback, real workers, tiny parts

@pytest.fixture
def tiny_parts(monkeypatch):
    """Parts of 16 KiB: LeNet's weights and gradients go in dozens of parts, its large tensors in pieces
    (hundreds of frames a second from a worker of tiny tasks: the message rate limit is lifted)."""
    monkeypatch.setattr(P, "PART_BYTES", 16384)
    monkeypatch.setattr(A, "RATE_LIMIT", 1e6)
    monkeypatch.setattr(A, "Broadcast", _tiny_broadcast(A.Broadcast))


def _tiny_broadcast(cls):
    class Tiny(cls):
        def __init__(self, state, loop, part_bytes=None):
            super().__init__(state, loop, 16384)

    return Tiny


def run(state, **kw):
    return asyncio.run(D.run_cluster(state, **kw))


def test_streamed_runs_are_bit_equal_for_any_number_of_workers(tiny_parts):
    finals = []
    for n in (1, 3):
        state = D.make_state(Settings(batch_size=32, iterations=3, seed=1, shard_size=8, deterministic=True))
        server = run(state, n_workers=n)
        assert state.iteration == 3
        assert server.broadcast.parts > 10
        finals.append(D.weights(state))
    D.assert_same_weights(finals[0], finals[1])


class SlowStreamServer(A.CoordinatorServer):
    """Sends the last part of each version's weights 0.3 s late (a slow link for the fc layers)."""

    async def _send_bytes(self, wid, conn, data):
        (hlen,) = np.frombuffer(data[:4], "<u4")
        header = json.loads(bytes(data[4:4 + int(hlen)]))
        if header["kind"] == P.PARAMS and header["part"] == header["parts"] - 1:
            await asyncio.sleep(0.3)
        await super()._send_bytes(wid, conn, data)


class WatchingWorker(Worker):
    """Records what it saw: whether its forward pass began before the last part of the weights, and
    whether gradients went up while the backward pass still ran (it lingers in the first layers)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.forward_before_last_part = []
        self.grads_while_computing = []
        self.in_backward = threading.Event()
        self.first_layer = None

    def _before_layer(self, layer):
        ts = self._task_state
        if ts is not None and ts["incoming"] is not None and self._layer_names.get(layer):
            if self.first_layer is None:
                self.first_layer = layer
            if layer == self.first_layer:
                self.forward_before_last_part.append(not ts["incoming"].done)
        super()._before_layer(layer)

    def _after_layer(self, layer):
        super()._after_layer(layer)
        if layer == self.first_layer:
            self.in_backward.set()
            time.sleep(0.2)  # the first layer's backward, slow: the others' gradients are on their way
            self.in_backward.clear()

    async def send(self, kind, fields, tensors=()):
        if kind == P.GRADS:
            self.grads_while_computing.append(self._task_state is not None)
        await super().send(kind, fields, tensors)


def test_forward_starts_before_the_weights_are_in_and_gradients_go_up_during_backward(tiny_parts):
    async def go():
        state = D.make_state(Settings(batch_size=32, iterations=2, seed=2))
        server = SlowStreamServer(state, D.TOKEN, D.ADMIN)
        from aiohttp import web

        runner = web.AppRunner(A.make_app(server), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        w = WatchingWorker(url, D.TOKEN, name="watch")
        task = asyncio.create_task(w.run())
        try:
            await asyncio.wait_for(server.done.wait(), 60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await runner.cleanup()
        return state, w

    state, w = asyncio.run(go())
    assert state.iteration == 2
    assert w.forward_before_last_part and all(w.forward_before_last_part)
    assert sum(w.grads_while_computing) >= 2  # parts up while the backward pass still ran


class DropsMidUpload(Worker):
    """Closes its connection after its first GRADS part of one task (then reconnects, as workers do)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.dropped = 0

    async def send(self, kind, fields, tensors=()):
        await super().send(kind, fields, tensors)
        if kind == P.GRADS and fields["part"] == 1 and self.dropped < 2:
            self.dropped += 1
            await self._ws.close()
            raise ConnectionError("dropped mid-upload (test)")


def test_worker_lost_mid_upload_has_its_split_redone_and_the_weights_are_exact(tiny_parts):
    settings = dict(batch_size=32, iterations=4, seed=3, shard_size=8, deterministic=True)
    reference = D.make_state(Settings(**settings))
    run(reference, n_workers=1)

    async def go():
        state = D.make_state(Settings(**settings))
        server, runner, url = await D.serve(state)
        ws = [Worker(url, D.TOKEN, name="steady"), DropsMidUpload(url, D.TOKEN, name="drops")]
        tasks = [asyncio.create_task(w.run()) for w in ws]
        try:
            await asyncio.wait_for(server.done.wait(), 60)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()
        return state, ws[1]

    state, dropper = asyncio.run(go())
    assert dropper.dropped >= 1 and state.iteration == 4
    D.assert_same_weights(D.weights(state), D.weights(reference))


class CountingWorker(Worker):
    pings = 0

    async def on_ping(self, frame):
        CountingWorker.pings += 1
        await super().on_ping(frame)


class CountingServer(A.CoordinatorServer):
    pongs = 0

    async def on_pong(self, wid, frame, now):
        CountingServer.pongs += 1
        await super().on_pong(wid, frame, now)


def test_handlers_are_dispatched_through_the_instance(monkeypatch):
    monkeypatch.setattr(A, "PING_EVERY", 0.05)

    async def go():
        state = D.make_state(Settings(batch_size=32, iterations=None, seed=4))  # until stopped
        server = CountingServer(state, D.TOKEN, D.ADMIN)
        from aiohttp import web

        runner = web.AppRunner(A.make_app(server), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        w = CountingWorker(url, D.TOKEN, name="counting")
        task = asyncio.create_task(w.run())
        try:
            for _ in range(200):  # the housekeeping pings (it wakes every 0.5 s)
                if CountingServer.pongs and CountingWorker.pings:
                    break
                await asyncio.sleep(0.05)
            state.stopped = True
            await server._after_round()
            await asyncio.wait_for(server.done.wait(), 10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await runner.cleanup()

    asyncio.run(go())
    assert CountingWorker.pings >= 1 and CountingServer.pongs >= 1


# ---------------------------------------------------------------- serve --log, and --resume keeps it

def test_serve_log_goes_on_in_the_same_file_after_resume(tmp_path):
    npz = D.digits_npz(tmp_path / "digits.npz")
    ck, log = tmp_path / "ck.safetensors", tmp_path / "metrics.jsonl"
    with D.Processes(tmp_path) as ps:
        port = D.free_port()
        url = f"http://127.0.0.1:{port}"
        ps.start("serve", *D.serve_command(npz, port, 4, "--checkpoint", ck, "--checkpoint-every", 1,
                                           "--log", log))
        ps.wait_until(lambda: D.http_json(url + "/api/metrics"), 30, "the coordinator")
        ps.start("w", "worker", url, "--token", D.TOKEN, "--name", "w", "--speed", "100")
        assert ps.wait_exit("serve", 60) == 0, ps.logs()
        ps.wait_exit("w", 20)
        first = [json.loads(line) for line in log.read_text().splitlines()]
        assert [r["iteration"] for r in first] == [1, 2, 3, 4]
        assert all({"loss", "images_per_s", "time"} <= set(r) for r in first)
        port = D.free_port()
        url = f"http://127.0.0.1:{port}"
        args = D.serve_command(npz, port, 6, "--resume", ck)  # no --log: the checkpoint's is kept
        ps.start("serve2", *args)
        ps.wait_until(lambda: D.http_json(url + "/api/metrics"), 30, "the resumed coordinator")
        ps.start("w2", "worker", url, "--token", D.TOKEN, "--name", "w2")
        assert ps.wait_exit("serve2", 60) == 0, ps.logs()
        assert "resumed from" in ps.log("serve2")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[:4] == first and [r["iteration"] for r in lines] == [1, 2, 3, 4, 5, 6]
