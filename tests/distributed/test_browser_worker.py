"""The browser worker (/worker on the coordinator) in headless Chromium, next to a native worker.

A coordinator on loopback (its event loop in a background thread, as test_dashboard.py) serves
the offline Pyodide; a tab opens ``/worker#token=...``, boots Pyodide, numpy and the wheel in
its Web Worker and runs the native worker's loop (sukiyaki.distributed.worker.Worker) over the
browser's WebSocket. The run starts paused, so that both workers have joined before any work
is handed out, and runs in deterministic mode (one shard per task, gradients summed in shard
order): its final weights are compared with a run of native workers only.

The tab's numpy is Pyodide's (2.0.2, no BLAS: products by numpy's own loops) while the native
one multiplies through OpenBLAS, whose blocked kernels sum in another order: the gradient of a
shard the tab computed differs from the native one in the last bits (about 1e-6 relative, see
tests/web/test_runtime.py), so weights after a run the tab took part in equal the native-only
run's within 1e-6 relative, not bit for bit. Where every accepted gradient was computed
natively (the tab closed before its result came), the weights are bit-equal.
"""

import asyncio
import logging
import threading
import time

import numpy as np
import pytest

pytest.importorskip("aiohttp", reason="the coordinator needs aiohttp (pip install 'sukiyaki[server]')")

import browser_helpers as B  # noqa: E402  (tests/ is on sys.path under pytest)
import dist_helpers as D  # noqa: E402
from sukiyaki.distributed.coordinator.app import CoordinatorServer  # noqa: E402
from sukiyaki.distributed.coordinator.state import Settings  # noqa: E402

PYODIDE_DIR = D.ROOT.parent / "shared" / "pyodide" / "0.27.7"
RUN = dict(batch_size=32, iterations=4, seed=0, shard_size=8, deterministic=True, deadline=120.0, val_cycle=0)
BROWSER = "browser-tab"
RTOL = 1e-6


def require_pyodide():
    if not (PYODIDE_DIR / "pyodide.js").is_file():
        pytest.skip(f"browser worker test needs the offline Pyodide 0.27.7 at {PYODIDE_DIR} "
                    f"(the project's shared folder beside the checkout)")


class Records(logging.Handler):
    """The coordinator's log lines."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


class Cluster(D.ThreadedCluster):
    """A paused coordinator serving /worker with the offline Pyodide, and native in-process workers.

    Args:
        n_native: native workers started with it.
        port: 0 for any free port.
        settings: the run's Settings.
    """

    def __init__(self, n_native=1, port=0, settings=None):
        state = D.make_state(Settings(**(settings or RUN)))
        state.paused = True  # nothing is handed out before resume()
        self.names = [f"native{i}" for i in range(n_native)]
        self.accepted = {}  # worker name -> samples of its accepted results
        self.hold = None  # a worker name whose results are dropped (a tab that dies before they arrive)
        self.dropped = 0
        super().__init__(state, port)

    def make_server(self):
        server = CoordinatorServer(self.state, D.TOKEN, D.ADMIN, pyodide=str(PYODIDE_DIR))
        original = server.on_result

        async def on_result(wid, frame, now):  # what was accepted, by name; drop what is held
            w = self.state.workers.get(wid)
            name = w.info.name if w is not None else None
            if name is not None and name == self.hold:
                self.dropped += 1
                return
            before = w.samples_done if w is not None else 0
            await original(wid, frame, now)
            if w is not None and w.samples_done > before:
                self.accepted[name] = self.accepted.get(name, 0) + w.samples_done - before

        server.on_result = on_result  # dispatch goes through the instance
        return server

    def call(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def resume(self):
        async def go():
            await self.server.run_actions(self.state.resume(time.monotonic()))

        self.call(go())

    def worker_names(self):
        return sorted(w.info.name for w in list(self.state.workers.values()))

    def wait(self, predicate, timeout, what):
        end = time.monotonic() + timeout
        while not predicate():
            if self.error or time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout} s waiting for {what} (error: {self.error!r})")
            time.sleep(0.005)


@pytest.fixture(scope="module")
def browser():
    B.require_browser()
    require_pyodide()
    with B.chromium(timeout_ms=60000) as context:
        yield context


@pytest.fixture(scope="module")
def reference():
    """The final weights of the same run with native workers only (deterministic: any split)."""
    state = D.make_state(Settings(**RUN))
    # in a thread of its own: Playwright's synchronous API keeps an event loop in this one
    t = threading.Thread(target=lambda: asyncio.run(D.run_cluster(state, n_workers=1)))
    t.start()
    t.join(120)
    assert state.iteration == RUN["iterations"]
    return D.weights(state)


def open_worker(browser, cluster, token=D.TOKEN, name=BROWSER):
    page = B.new_page(browser)
    page.goto(f"{cluster.url}/worker?name={name}#token={token}")
    return page


def text(page, selector):
    return page.text_content(selector).strip()


def relative_difference(a, b):
    """The largest per-tensor max |a - b| / max |b|."""
    return max(float(np.abs(a[k] - b[k]).max()) / max(float(np.abs(b[k]).max()), 1e-30) for k in b)


def test_browser_and_native_workers_train_together(browser, reference):
    cluster = Cluster(n_native=1)
    try:
        t0 = time.perf_counter()
        page = open_worker(browser, cluster)
        cluster.wait(lambda: cluster.worker_names() == sorted(["native0", BROWSER]), 90, "the tab to join")
        boot = time.perf_counter() - t0
        page.wait_for_function("window.sukiyaki.state.worker.id !== undefined", polling=100)
        wid = int(text(page, "#worker-id"))
        w = cluster.state.workers[wid]
        assert w.info.name == BROWSER and w.info.backend == "numpy" and w.info.device == "browser (Pyodide, numpy)"
        cluster.resume()
        cluster.wait(lambda: cluster.server.done.is_set(), 120, "the run to complete")
        assert cluster.state.iteration == RUN["iterations"] and not cluster.state.diverged
        # both took part, and the coordinator accepted the tab's gradients
        assert cluster.accepted.get(BROWSER, 0) > 0 and cluster.accepted.get("native0", 0) > 0, cluster.accepted
        assert sum(cluster.accepted.values()) == RUN["batch_size"] * RUN["iterations"]
        # the page shows its id, its tasks and speed, and that the run is over (the coordinator's BYE)
        page.wait_for_function("document.getElementById('status').textContent === 'left'", polling=100)
        assert int(text(page, "#tasks")) * RUN["shard_size"] == cluster.accepted[BROWSER]
        assert float(text(page, "#samples-per-s").replace(",", "")) > 0
        assert not page.is_visible("#error") and not page.errors
        final = D.weights(cluster.state)
        diff = relative_difference(final, reference)
        print(f"\ntab joined {boot:.1f} s after the page opened; samples: {cluster.accepted}; "
              f"tab {float(text(page, '#samples-per-s')):.0f} samples/s; final weights vs native-only: "
              f"{'bit-equal' if diff == 0 else f'max relative difference {diff:.1e}'}")
        assert diff <= RTOL  # see the module docstring: Pyodide's numpy sums products in another order
        page.close()
    finally:
        cluster.stop()


def test_tab_closed_mid_iteration_has_its_shards_reassigned(browser, reference):
    records = Records()
    logger = logging.getLogger("sukiyaki.coordinator")
    logger.addHandler(records)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    cluster = Cluster(n_native=1)
    try:
        page = open_worker(browser, cluster)
        cluster.wait(lambda: BROWSER in cluster.worker_names(), 90, "the tab to join")
        wid = next(w.id for w in cluster.state.workers.values() if w.info.name == BROWSER)
        # the tab's result will never count (it dies before it arrives): hold it, then close the tab
        cluster.hold = BROWSER
        cluster.resume()
        cluster.wait(lambda: wid in cluster.state.workers and cluster.state.workers[wid].task is not None, 30,
                     "a task for the tab")
        task = cluster.state.workers[wid].task
        page.close()
        cluster.wait(lambda: cluster.server.done.is_set(), 120, "the run to complete")
        assert cluster.state.iteration == RUN["iterations"] and not cluster.state.diverged
        log = "\n".join(records.lines)
        assert f"task {task} of worker {wid} (8 samples) handed back: its worker disconnected" in log, log
        assert cluster.accepted == {"native0": RUN["batch_size"] * RUN["iterations"]}
        # every accepted gradient was computed natively: the weights are the native-only run's, bit for bit
        D.assert_same_weights(D.weights(cluster.state), reference)
    finally:
        cluster.stop()
        logger.removeHandler(records)
        logger.setLevel(old_level)


def test_wrong_token_shows_the_refusal(browser):
    cluster = Cluster(n_native=0)
    try:
        page = open_worker(browser, cluster, token="not-the-token")
        page.wait_for_selector("#error", state="visible", timeout=90000)
        assert "Error (coordinator): the coordinator refused this worker: wrong join token" in text(page, "#error")
        assert text(page, "#status") == "refused by the coordinator"
        connects = page.evaluate("window.sukiyaki.state.events.filter((e) => e.event === 'connecting').length")
        page.wait_for_timeout(1500)
        assert page.evaluate("window.sukiyaki.state.events.filter((e) => e.event === 'connecting').length") == connects
        assert cluster.worker_names() == [] and page.is_enabled("#join")
        assert not page.errors
        page.close()
    finally:
        cluster.stop()


def test_coordinator_gone_is_shown_the_tab_rejoins_and_leaves(browser):
    first = Cluster(n_native=0)
    second = None
    try:
        page = open_worker(browser, first)
        first.wait(lambda: first.worker_names() == [BROWSER], 90, "the tab to join")
        page.wait_for_function("window.sukiyaki.state.worker.id !== undefined", polling=100)
        first.stop()
        page.wait_for_function("document.getElementById('status').textContent.startsWith('reconnecting in')",
                               polling=100, timeout=30000)
        assert page.is_visible("#error") and "reconnecting in" in text(page, "#error")
        page.wait_for_function("window.sukiyaki.state.events.filter((e) => e.event === 'lost').length >= 2",
                               polling=100, timeout=30000)  # it keeps trying
        second = Cluster(n_native=0, port=first.port)  # back on the same port: the tab joins again
        second.wait(lambda: second.worker_names() == [BROWSER], 60, "the tab to rejoin")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('joined')", polling=100)
        assert not page.is_visible("#error")
        retries = [e["retry_s"] for e in page.evaluate("window.sukiyaki.state.events") if e["event"] == "lost"]
        assert retries[:2] == [0.5, 1.0], retries  # a growing delay
        # Leave: the tab's worker stops and its connection closes
        page.click("#leave")
        page.wait_for_function("document.getElementById('status').textContent === 'left'", polling=100)
        second.wait(lambda: second.worker_names() == [], 10, "the coordinator to see the tab leave")
        assert page.is_enabled("#join") and not page.is_visible("#error")
        assert not page.errors
        page.close()
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_serve_refuses_a_folder_that_is_not_pyodide(tmp_path, capsys):
    from sukiyaki.cli import main

    assert main(["serve", "lenet", "--pyodide", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--pyodide" in err and "not a Pyodide distribution (missing pyodide.js" in err, err
