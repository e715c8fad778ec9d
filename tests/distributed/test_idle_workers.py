"""200 idle workers beside 2 active ones: the run completes and the coordinator's memory stays small.

The coordinator (``python -m sukiyaki serve``) and the two active workers are subprocesses;
the 200 idle workers are raw WebSocket clients of one asyncio loop in the test process,
connected concurrently: each sends a valid HELLO, answers PING, and holds whatever TASK it is
given without ever answering (a worker that joins and then hangs). The coordinator does hand
them shards (to it they are workers of unknown speed): each such task misses its deadline
(0.5 s here) and is reassigned; their speed then counts as a quarter sample a second and the
speed-proportional split stops giving them work. The test counts those tasks and the
reassignments, and asserts they match.

Memory: the coordinator's resident set size (VmRSS of /proc/PID/status), sampled every 50 ms;
the baseline is taken with the run paused after two iterations (the two active workers joined,
the weights sent, gradients received), the peak over the time the 200 are connected (joining,
pings, the rest of the run). The peak must exceed the baseline by less than 200 MB.
"""

import asyncio
import re
import threading

import aiohttp
import pytest

from sukiyaki.distributed import protocol as P

import dist_helpers as D  # noqa: E402

IDLE = 200
ITERATIONS = 10
MEMORY_LIMIT = 200 << 20


class IdleClient:
    """A worker that joins, answers pings, and never answers a task."""

    def __init__(self, k):
        self.name = f"idle{k}"
        self.tasks = 0
        self.ws = None
        self.left = None

    async def join(self, session, url):
        self.ws = await session.ws_connect(url + "/ws", max_msg_size=0, heartbeat=None)
        await self.ws.send_bytes(P.encode_frame(P.HELLO, {
            "token": D.TOKEN, "version": P.VERSION, "name": self.name, "backend": "numpy", "device": "cpu",
            "codecs": ["raw"], "max_batch": 64}))
        msg = await asyncio.wait_for(self.ws.receive(), 30)
        assert P.decode_frame(msg.data).kind == P.WELCOME

    async def serve(self):
        async for msg in self.ws:
            f = P.decode_frame(msg.data)
            if f.kind == P.PING:
                await self.ws.send_bytes(P.encode_frame(P.PONG, {"t": f.fields["t"]}))
            elif f.kind == P.TASK:
                self.tasks += 1  # and never answered
            elif f.kind == P.BYE:
                self.left = f.fields["reason"]
                break
        await self.ws.close()


class RssSampler:
    """The peak RSS of a process between start() and stop(), sampled every 50 ms in a thread."""

    def __init__(self, pid):
        self.pid, self.peak, self.samples = pid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, D.rss_bytes(self.pid))
                self.samples += 1
            except (OSError, ValueError):  # the process has exited
                return
            self._stop.wait(0.05)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        return self.peak


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return D.digits_npz(tmp_path_factory.mktemp("data") / "digits.npz")


def test_200_idle_workers_beside_2_active(npz, tmp_path):
    port = D.free_port()
    url = f"http://127.0.0.1:{port}"
    ck = tmp_path / "ck.safetensors"

    def metrics():
        return D.http_json(url + "/api/metrics") or {}

    async def main(ps):
        wait = lambda pred, t, what: asyncio.to_thread(ps.wait_until, pred, t, what)  # noqa: E731
        serve = ps.start("serve", *D.serve_command(npz, port, ITERATIONS, "--deadline", "0.5", "--checkpoint", ck,
                                                   deterministic=False))
        await wait(lambda: D.http_json(url + "/api/metrics"), 30, "the coordinator to answer")
        for name in ("a0", "a1"):
            ps.start(name, "worker", url, "--token", D.TOKEN, "--name", name)
        await wait(lambda: metrics().get("iteration", 0) >= 2, 60, "two iterations with the active workers")
        D.admin(url, "pause")
        await wait(lambda: not any(w["busy"] for w in metrics()["workers"]), 30, "the tasks out to finish")
        await asyncio.sleep(0.3)
        baseline = max(D.rss_bytes(serve.pid) for _ in range(3))
        paused_at = metrics()["iteration"]
        assert paused_at < ITERATIONS

        sampler = RssSampler(serve.pid).start()
        clients = [IdleClient(k) for k in range(IDLE)]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await asyncio.wait_for(asyncio.gather(*(c.join(session, url) for c in clients)), 60)  # all at once
            readers = [asyncio.create_task(c.serve()) for c in clients]
            m = await asyncio.to_thread(metrics)
            assert len(m["workers"]) == IDLE + 2 and m["iteration"] == paused_at
            await asyncio.sleep(2.1)  # a ping round (every 2 s) with all of them connected and answering
            D.admin(url, "resume")
            rc = await asyncio.to_thread(ps.wait_exit, "serve", 90)
            peak = sampler.stop()
            await asyncio.wait_for(asyncio.gather(*readers), 30)  # the BYE of a completed run reached each
        return rc, baseline, peak, clients, sampler.samples

    with D.Processes(tmp_path) as ps:
        rc, baseline, peak, clients, samples = asyncio.run(main(ps))
        log = ps.log("serve")
        assert rc == 0 and f"done: {ITERATIONS} iterations" in log, ps.logs()
        assert all(ps.wait_exit(n, 20) == 0 for n in ("a0", "a1")), ps.logs()
    assert D.checkpoint_tensors(ck) and f"checkpoint written: {ck} (iteration {ITERATIONS})" in log
    assert all(c.left and "the run is complete" in c.left for c in clients)

    growth = peak - baseline
    assert samples > 20 and growth < MEMORY_LIMIT, \
        f"the coordinator grew by {growth / 2**20:.1f} MB with {IDLE} idle workers (baseline {baseline / 2**20:.1f} MB)"

    # the idle workers were handed shards, which missed their deadlines and went to the active workers
    ids = {int(i): name for i, name in re.findall(r"worker (\d+) '([^']+)' joined", log)}
    missed = [ids[int(w)] for w in re.findall(r"task \d+ of worker (\d+) \(\d+ samples\) handed back: missed its "
                                              r"deadline", log)]
    given = sum(c.tasks for c in clients)
    assert all(name.startswith("idle") for name in missed), missed
    assert len(missed) == given, (len(missed), given)
    assert given <= 3 * 4, f"{given} tasks went to idle workers: the split should stop trusting them after a miss"
