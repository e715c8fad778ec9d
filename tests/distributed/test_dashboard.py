"""The coordinator's dashboard in a real headless Chromium, against a live run on loopback.

A coordinator trains a small LeNet with two in-process workers and validates every 10
iterations; its event loop runs in a background thread (the asyncio coordinator and
Playwright's synchronous API each keep a thread). The page must show the iteration
advancing, both workers with their backend, a loss plot with drawn pixels and the
validation metrics; it must send nothing but GETs until a button is clicked, refuse to act
without the admin token, pause and resume with it, and say "coordinator unreachable" while
the coordinator is down, recovering when it is back.
"""

import json
import urllib.error
import urllib.request

import pytest

pytest.importorskip("aiohttp", reason="the coordinator needs aiohttp (pip install 'sukiyaki[server]')")

import browser_helpers as B  # noqa: E402  (tests/ is on sys.path under pytest)
import dist_helpers as D  # noqa: E402
from sukiyaki.distributed.coordinator.state import Settings  # noqa: E402

#: A worker name that would run script if the page put names into HTML.
ODD_NAME = 'w1 <img src=x onerror="window.pwned=1">'
#: Pixels of the plots' first and second series colours (#d62728 loss, #1f77b4 first metric).
REDDISH = "(r, g, b) => r > 150 && g < 110 && b < 110"
BLUISH = "(r, g, b) => b > 130 && r < 110 && g > 70 && g < 170"


class Cluster(D.ThreadedCluster):
    """A coordinator and n native workers on 127.0.0.1, its event loop in a background thread."""

    def __init__(self, n_workers=2, port=0, iterations=100000):
        self.names = (["w0", ODD_NAME][:n_workers] + [f"w{i}" for i in range(2, n_workers)])
        super().__init__(D.make_state(Settings(batch_size=32, iterations=iterations, seed=0, shard_size=8,
                                               val_cycle=10)), port)


def metrics(url):
    with urllib.request.urlopen(f"{url}/api/metrics", timeout=5) as r:
        return json.load(r)


def post(url, action, token=None):
    """Status code of POST /api/admin/<action> (with ``Authorization: Bearer token`` if given)."""
    req = urllib.request.Request(f"{url}/api/admin/{action}", method="POST", data=b"",
                                 headers={"Authorization": f"Bearer {token}"} if token is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def count_pixels(page, canvas, test):
    """Pixels of a canvas's plot area for which test(r, g, b) holds, read with getImageData."""
    return page.evaluate(f"""(id) => {{
        const c = document.getElementById(id), ctx = c.getContext("2d");
        const d = ctx.getImageData(0, 0, c.width, c.height).data, test = {test};
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && test(d[i], d[i + 1], d[i + 2])) n++;
        return n;
    }}""", canvas)


def text(page, selector):
    return page.text_content(selector).strip()


@pytest.fixture(scope="module")
def browser():
    with B.chromium() as context:
        yield context


@pytest.fixture
def cluster():
    c = Cluster()
    yield c
    c.stop()


def open_dashboard(browser, url):
    page = B.new_page(browser)
    page.requests = []
    page.on("request", lambda r: page.requests.append((r.method, r.url)))
    page.goto(url + "/")
    return page


def test_dashboard_shows_the_run(browser, cluster):
    page = open_dashboard(browser, cluster.url)
    # both workers joined and training has started
    page.wait_for_function("document.querySelectorAll('#workers tbody tr').length === 2"
                           " && Number(document.getElementById('iteration').textContent) >= 1")
    first = int(text(page, "#iteration"))
    page.wait_for_function(f"Number(document.getElementById('iteration').textContent) > {first}")
    assert text(page, "#iterations") == "of 100,000"
    rows = page.eval_on_selector_all("#workers tbody tr", """rows => rows.map(r => Object.fromEntries(
        [...r.cells].map(c => [c.className.split(' ')[0], c.textContent])))""")
    assert sorted(r["name"] for r in rows) == sorted(["w0", ODD_NAME])  # shown as text, never as HTML
    assert {r["backend"] for r in rows} == {"numpy"}
    assert all(r["device"] and r["busy"] in ("busy", "idle") for r in rows)
    assert page.locator("#workers img").count() == 0 and page.evaluate("window.pwned") is None
    assert int(text(page, "#worker-count")) == 2

    # the loss plot: at least two points, drawn in the loss colour
    page.wait_for_function("Number(document.getElementById('loss-plot').dataset.points) >= 2")
    assert count_pixels(page, "loss-plot", REDDISH) > 100
    assert page.evaluate("document.getElementById('loss-plot').toDataURL()") != page.evaluate(
        "(() => { const c = document.getElementById('loss-plot'), b = document.createElement('canvas');"
        " b.width = c.width; b.height = c.height; return b.toDataURL(); })()")
    # figures in human units
    assert text(page, "#bytes-in").endswith(("KiB", "MiB", "GiB")), text(page, "#bytes-in")
    assert text(page, "#bytes-out").endswith(("KiB", "MiB", "GiB")), text(page, "#bytes-out")
    assert float(text(page, "#images-per-s").replace(",", "")) > 0
    assert text(page, "#status") == "running"

    # the coordinator's validations (every 10 iterations) appear on the second plot as they arrive
    page.wait_for_function("Number(document.getElementById('val-plot').dataset.points) >= 4", timeout=60000)  # 2 x (acc, loss)
    assert count_pixels(page, "val-plot", BLUISH) > 50

    # read-only: nothing but GETs of the page and its metrics (and perhaps a favicon)
    assert {m for m, _ in page.requests} == {"GET"}
    assert {u.split(cluster.url, 1)[1] for _, u in page.requests} <= {"/", "/api/metrics", "/favicon.ico"}
    assert not page.errors
    page.close()


def test_admin_actions_need_the_token(browser, cluster):
    url = cluster.url
    assert post(url, "pause") == 403 and post(url, "pause", "wrong") == 403
    assert metrics(url)["paused"] is False
    page = open_dashboard(browser, url)
    page.wait_for_function("document.getElementById('status').textContent === 'running'")
    page.click("#admin-pause")  # no token typed: nothing is sent
    assert "token" in text(page, "#admin-result")
    page.fill("#admin-token", "not-the-token")
    page.click("#admin-pause")
    page.wait_for_function("document.getElementById('admin-result').textContent.includes('refused (403)')")
    assert metrics(url)["paused"] is False

    page.fill("#admin-token", D.ADMIN)
    page.click("#admin-pause")
    page.wait_for_function("document.getElementById('status').textContent === 'paused'")
    assert metrics(url)["paused"] is True
    page.click("#admin-resume")
    page.wait_for_function("document.getElementById('status').textContent === 'running'")
    m = metrics(url)
    assert m["paused"] is False
    page.wait_for_function(f"Number(document.getElementById('iteration').textContent) > {m['iteration']}")

    page.once("dialog", lambda dialog: dialog.accept())  # stop asks for confirmation
    page.click("#admin-stop")
    page.wait_for_function("document.getElementById('status').textContent === 'stopped'")
    assert metrics(url)["stopped"] is True
    posts = [u.split(url, 1)[1] for m, u in page.requests if m == "POST"]
    assert posts == ["/api/admin/pause", "/api/admin/pause", "/api/admin/resume", "/api/admin/stop"]
    # the token was kept nowhere
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    assert not page.errors
    page.close()


def test_unreachable_coordinator_is_shown_and_retried(browser):
    first = Cluster(n_workers=0)
    page = open_dashboard(browser, first.url)
    page.wait_for_function("document.getElementById('status').textContent === 'running'")
    assert not page.is_visible("#error")
    first.stop()
    page.wait_for_function("document.getElementById('error').textContent.includes('coordinator unreachable')")
    assert page.is_visible("#error") and text(page, "#status") == "unreachable"
    polls = sum(u.endswith("/api/metrics") for _, u in page.requests)
    page.wait_for_timeout(1500)
    assert sum(u.endswith("/api/metrics") for _, u in page.requests) > polls  # still retrying
    second = Cluster(n_workers=2, port=first.port)  # back on the same port: the page recovers
    try:
        page.wait_for_function("document.getElementById('status').textContent === 'running'"
                               " && document.querySelectorAll('#workers tbody tr').length === 2")
        assert not page.is_visible("#error")
    finally:
        second.stop()
    assert not page.errors
    page.close()
