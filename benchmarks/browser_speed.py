"""LeNet training in the browser (the paper's Table 3 there): ours beside ConvNetJS and TensorFlow.js.

One headless Chromium (Debian's, driven by Playwright, as the tests do), one run, the same
machine: LeNet (sukiyaki/nets/lenet.json), batch 64, momentum SGD, the bundled MNIST digits.

- ours, numpy: the ``sukiyaki web`` page exactly as a user gets it: Pyodide, numpy and the
  package's wheel boot in the page's Web Worker (Pyodide from the local folder --pyodide) and
  train there; measured on the page (the wall-clock times at which the page shows each new
  iteration). This browser gives the page no WebGPU, so the runtime computes on numpy.
- ours, WebGPU: the same page in a second Chromium started with ``--enable-unsafe-webgpu``
  (here a software SwiftShader adapter). Measured when the runtime chooses its webgpu backend;
  otherwise the row says why not (the runtime's own words, and what the adapter is).
- ConvNetJS 0.3.0 (the paper's peer) and TensorFlow.js 4.22 (backends cpu, webgl, wasm): the
  same LeNet on the same digits on a page's main thread (benchmarks/_browser_peers.js). Their
  npm packages are read from benchmarks/.node_modules (see NPM_INSTALL); a missing one makes its
  rows 'not available' and says how to get it. Nothing is downloaded at run time: the
  benchmark's server serves only local files, and Chromium runs with its network features off.
- TF.js webgpu (only when named in --peers; @tensorflow/tfjs-backend-webgpu 4.22): in the second
  Chromium, the one with WebGPU, its windows taken in turn with ours (WebGPU)'s.

On a machine with a real GPU (tools/chromium_gpu.py runs it so on the lent H200):
--chromium-args gives every Chromium of the run further flags (e.g. Vulkan's) and drops the
default --disable-gpu, so that WebGL and WebGPU may use the GPU; ours (numpy) is then asked
for numpy explicitly (&backend=numpy), since that browser may give WebGPU too.

Method: every system trains in timed windows of at least --seconds each, in rounds (each round
gives every system one window, in turn, so that the machine's noise hits all alike); a
system's figure is the median of its windows' images/s. Our windows restart training (Stop,
Start: a new session) and time iterations after its first two. Boot: the first page load, in
a fresh profile, from navigation to the page showing the first gradient's iteration. Stalls:
on our page, while our windows train, a PerformanceObserver of long tasks and a 10 ms
setInterval probe (the longest gap between its ticks, less 10 ms): the main thread must never
be blocked for more than 50 ms. Goals (issue 8): ours >= 200 images/s, >= 6x TF.js's best
backend and >= 8x ConvNetJS, boot to the first gradient <= 10 s, no stall over 50 ms.

Usage:
    python benchmarks/browser_speed.py                       # 5 rounds of 4 s windows
    python benchmarks/browser_speed.py --quick               # smoke run (2 rounds of 1 s)
    python benchmarks/browser_speed.py --json benchmarks/results/browser_speed.json
    python benchmarks/browser_speed.py --quick --peers "TF.js webgl,TF.js webgpu" \
        --chromium-args "--enable-features=Vulkan --use-angle=vulkan --disable-vulkan-surface"
"""

import argparse
import asyncio
import datetime
import io
import json
import os
import platform
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if __package__ in (None, ""):  # run as a script from a checkout: import the package beside it
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))

from _measure import machine_line  # noqa: E402

NODE_MODULES = HERE / ".node_modules" / "node_modules"
NPM_INSTALL = ("npm install --prefix benchmarks/.node_modules convnetjs@0.3.0 @tensorflow/tfjs@4.22.0 "
               "@tensorflow/tfjs-backend-wasm@4.22.0 @tensorflow/tfjs-backend-webgpu@4.22.0")
#: What each peer's page loads, relative to NODE_MODULES.
PEER_FILES = {
    "convnetjs": ["convnetjs/build/convnet.js"],
    "tfjs": ["@tensorflow/tfjs/dist/tf.min.js"],
    "tfjs-wasm": ["@tensorflow/tfjs/dist/tf.min.js", "@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js"],
    "tfjs-webgpu": ["@tensorflow/tfjs/dist/tf.min.js", "@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js"],
}
WASM_FILES = ["tfjs-backend-wasm.wasm", "tfjs-backend-wasm-simd.wasm", "tfjs-backend-wasm-threaded-simd.wasm"]
#: (row label, lib, backend): the peers, in the order they are printed. Those on "webgpu" run in the
#: WebGPU browser, beside ours (WebGPU).
PEERS = [("ConvNetJS", "convnetjs", None), ("TF.js cpu", "tfjs", "cpu"), ("TF.js webgl", "tfjs", "webgl"),
         ("TF.js wasm", "tfjs", "wasm"), ("TF.js webgpu", "tfjs", "webgpu")]
#: The peers run when --peers is not given.
DEFAULT_PEERS = ["ConvNetJS", "TF.js cpu", "TF.js webgl", "TF.js wasm"]
CHROMIUM = os.environ.get("SUKIYAKI_CHROMIUM", "/usr/bin/chromium")
#: As tests/browser_helpers.py (DESIGN.md: what was seen to work here), WebGL allowed on SwiftShader.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-unsafe-swiftshader", "--disable-renderer-backgrounding",
         "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows"]
BATCH = 64
MNIST_SAMPLES = 1024
GOALS = {"images_per_s": 200.0, "vs_tfjs_best": 6.0, "vs_convnetjs": 8.0, "boot_s": 10.0, "stall_ms": 50.0}

#: Probes on our page, installed before its own script: long tasks, the 10 ms interval probe's
#: gaps, and the time at which the page shows each iteration.
PROBES = """
window.__bench = {longtasks: [], gaps: [], iters: []};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__bench.longtasks.push([e.startTime, e.duration]);
}).observe({type: "longtask", buffered: true});
(() => {
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    if (now - last > 20) window.__bench.gaps.push([last, now - last - 10]);
    last = now;
  }, 10);
})();
document.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("iteration");
  new MutationObserver(() => window.__bench.iters.push([performance.now(), Number(el.textContent)]))
    .observe(el, {childList: true, characterData: true, subtree: true});
});
"""

PEER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>browser_speed peer</title></head>
<body><p>benchmarks/browser_speed.py: a peer's page</p>
{scripts}
<script src="/bench/peers.js"></script>
</body></html>
"""


class Unavailable(Exception):
    """A row that cannot be measured here; the message says why."""


# ------------------------------------------------------------------ what is needed


def missing_basics(pyodide):
    """What the benchmark cannot run without (a list of sentences; empty when all is there)."""
    missing = []
    for mod, how in (("aiohttp", "pip install 'sukiyaki[server]'"), ("playwright", "pip install -e '.[test]'")):
        try:
            __import__(mod)
        except ImportError:
            missing.append(f"the Python package {mod} ({how})")
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")):
        missing.append(f"Chromium (no executable at {CHROMIUM}; apt-get install chromium)")
    if not (Path(pyodide) / "pyodide.js").is_file():
        missing.append(f"the offline Pyodide 0.27.7 at {pyodide} (the project's shared folder)")
    return missing


def files_key(lib, backend):
    """The PEER_FILES entry of a peer."""
    return f"tfjs-{backend}" if lib == "tfjs" and backend in ("wasm", "webgpu") else lib


def missing_npm(lib, backend):
    """None when a peer's files are in NODE_MODULES, else what is missing and how to get it."""
    files = PEER_FILES[files_key(lib, backend)]
    if backend == "wasm":
        files = files + [f"@tensorflow/tfjs-backend-wasm/dist/{w}" for w in WASM_FILES]
    gone = [f for f in files if not (NODE_MODULES / f).is_file()]
    if gone:
        return f"npm package file {gone[0]} missing (run: {NPM_INSTALL})"
    return None


# ------------------------------------------------------------------ the server


def mnist_blob(n=MNIST_SAMPLES):
    """The first n bundled training digits for the peers: uint32 n, n labels, n row-major 28x28 images."""
    import numpy as np

    from sukiyaki.data import load_mnist

    x, t = load_mnist(split="train")
    images = np.ascontiguousarray(x[:, :, 0, :n].transpose(2, 0, 1))  # (n, row, column)
    return struct.pack("<I", n) + t[0, :n].astype(np.uint8).tobytes() + images.tobytes()


def make_app(pyodide):
    """The ``sukiyaki web`` application plus the peers' page, their libraries (local files) and data."""
    from aiohttp import web

    from sukiyaki.web.server import make_web_app

    app = make_web_app(str(pyodide))
    blob = mnist_blob()

    async def peer_page(request):
        lib = request.query.get("lib", "convnetjs")
        key = files_key(lib, request.query.get("backend"))
        scripts = "\n".join(f'<script src="/bench/lib/{Path(f).name}"></script>' for f in PEER_FILES[key])
        return web.Response(text=PEER_PAGE.format(scripts=scripts), content_type="text/html")

    async def peer_script(request):
        return web.FileResponse(HERE / "_browser_peers.js", headers={"Content-Type": "text/javascript"})

    served = {Path(f).name: NODE_MODULES / f for fs in PEER_FILES.values() for f in fs}
    served.update({w: NODE_MODULES / "@tensorflow/tfjs-backend-wasm/dist" / w for w in WASM_FILES})

    async def lib_file(request):
        path = served.get(request.match_info["name"])
        if path is None or not path.is_file():
            raise web.HTTPNotFound(text=f"not installed: {request.match_info['name']} ({NPM_INSTALL})")
        kind = "application/wasm" if path.suffix == ".wasm" else "text/javascript"
        return web.FileResponse(path, headers={"Content-Type": kind})

    async def mnist(request):
        return web.Response(body=blob, content_type="application/octet-stream")

    async def blank(request):
        return web.Response(text="<!doctype html><title>blank</title>", content_type="text/html")

    app.router.add_get("/bench/blank.html", blank)
    app.router.add_get("/bench/peer.html", peer_page)
    app.router.add_get("/bench/peers.js", peer_script)
    app.router.add_get("/bench/lib/{name}", lib_file)
    app.router.add_get("/bench/mnist.bin", mnist)
    return app


class Server:
    """An aiohttp application on 127.0.0.1 (an ephemeral port), its event loop in a thread."""

    def __init__(self, app):
        self.app, self.ready, self.error = app, threading.Event(), None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        if not self.ready.wait(30) or self.error:
            raise RuntimeError(f"the benchmark's server did not start: {self.error!r}")

    async def _main(self):
        from aiohttp import web

        try:
            self.loop = asyncio.get_running_loop()
            self.stop_event = asyncio.Event()
            runner = web.AppRunner(self.app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        try:
            await self.stop_event.wait()
        finally:
            await runner.cleanup()

    def stop(self):
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)


class Browser:
    """A headless Chromium (a Playwright persistent context in a fresh profile)."""

    def __init__(self, pw, extra=(), gpu_args=()):
        """extra: flags for this browser; gpu_args (--chromium-args): flags for a real GPU, which drop --disable-gpu."""
        self.profile = tempfile.mkdtemp(prefix="sukiyaki-bench-chromium-")
        path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
        flags = [f for f in FLAGS if not (gpu_args and f == "--disable-gpu")] + list(extra) + list(gpu_args)
        self.flags = flags
        self.context = pw.chromium.launch_persistent_context(
            self.profile, executable_path=path, headless=True, args=flags,
            viewport={"width": 1000, "height": 800})
        self.context.set_default_timeout(120000)
        self.version = self.context.browser.version if self.context.browser else None

    def close(self):
        try:
            self.context.close()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


# ------------------------------------------------------------------ ours


class Ours:
    """The ``sukiyaki web`` page: boot once, then timed windows (Start, two iterations, time, Stop)."""

    def __init__(self, browser, url, query=""):
        self.page = browser.context.new_page()
        self.page.add_init_script(PROBES)
        self.errors = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.url, self.query = url, query
        self.windows, self.stalls = [], []

    def state(self, expr):
        return self.page.evaluate(expr)

    def boot(self):
        """Open the page (training starts by itself); returns the boot figures."""
        self.page.goto(self.url + "/?val_every=0" + self.query)
        self.page.wait_for_function("window.__bench.iters.length >= 1 || window.sukiyaki.state.errors.length",
                                    timeout=180000, polling=100)
        errors = self.state("window.sukiyaki.state.errors")
        if errors:
            raise Unavailable(f"the page reported {errors[0]['stage']}: {errors[0]['message']}")
        first = self.state("window.__bench.iters[0][0]") / 1000
        self.page.wait_for_function("window.sukiyaki.state.progress.length >= 2", timeout=60000, polling=100)
        s = self.state("window.sukiyaki.state")
        self.stop()
        return {"boot_s": first, "stages_s": s["boot"], "backend": s["backend"], "why": s["why"]}

    def stop(self):
        self.page.evaluate("window.sukiyaki.send('stop')")
        self.page.wait_for_function("document.getElementById('status').textContent.startsWith('stopped')",
                                    timeout=60000, polling=100)

    def window(self, seconds):
        """One timed window: images/s between the page's showing the 2nd iteration and the last one."""
        self.page.bring_to_front()
        n0 = self.state("window.__bench.iters.length")
        self.page.evaluate("document.getElementById('start').click()")
        self.page.wait_for_function(f"window.__bench.iters.length >= {n0 + 2} || window.sukiyaki.state.errors.length",
                                    timeout=120000, polling=50)
        t_start = self.state(f"window.__bench.iters[{n0 + 1}][0]")
        self.page.wait_for_function(
            f"(performance.now() - {t_start} >= {seconds * 1000} && window.__bench.iters.length >= {n0 + 4})"
            " || window.sukiyaki.state.errors.length", timeout=600000, polling=50)
        errors = self.state("window.sukiyaki.state.errors")
        if errors:
            raise Unavailable(f"the page reported {errors[0]['stage']}: {errors[0]['message']}")
        self.stop()
        iters = self.state(f"window.__bench.iters.slice({n0 + 1})")
        (t0, i0), (t1, i1) = iters[0], iters[-1]
        rate = BATCH * (i1 - i0) / ((t1 - t0) / 1000)
        tasks = self.state(f"window.__bench.longtasks.filter(([s, d]) => s >= {t0} && s < {t1})")
        gaps = self.state(f"window.__bench.gaps.filter(([s, d]) => s >= {t0} && s < {t1})")
        stall = {"longest_task_ms": max([d for _, d in tasks], default=0.0), "long_tasks": len(tasks),
                 "longest_gap_ms": max([d for _, d in gaps], default=0.0), "window_s": (t1 - t0) / 1000}
        self.windows.append(rate)
        self.stalls.append(stall)
        return rate


ADAPTER_JS = """async () => {
    if (!navigator.gpu) return {error: 'navigator.gpu is missing'};
    const a = await navigator.gpu.requestAdapter();
    if (!a) return {error: 'navigator.gpu.requestAdapter() gave no adapter'};
    const i = a.info || {};
    return {vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description};
}"""


def webgpu_rows(pw, url, rounds, seconds, peers=(), gpu_args=()):
    """Ours on WebGPU, and the peers given (on "webgpu"), in a Chromium with --enable-unsafe-webgpu.

    Returns (rows, unavailable): dicts by row label, as run()'s; each window of ours is followed by
    one of each peer.
    """
    rows, unavailable = {}, {}
    browser = Browser(pw, ["--enable-unsafe-webgpu"], gpu_args)
    try:
        page = browser.context.new_page()
        page.goto(url + "/bench/blank.html")  # is there an adapter at all?
        adapter = page.evaluate(ADAPTER_JS)
        page.close()
        if "error" in adapter:
            for label in ["ours (WebGPU)"] + [p[0] for p in peers]:
                unavailable[label] = adapter["error"]
            return rows, unavailable
        where = ", ".join(adapter[k] for k in ("vendor", "architecture", "device", "description") if adapter.get(k))
        ours, booted = None, None
        try:
            ours = Ours(browser, url)
            booted = ours.boot()
            if booted["backend"] != "webgpu":
                from sukiyaki.web.wheel import sukiyaki_wheel

                names = zipfile.ZipFile(io.BytesIO(sukiyaki_wheel()[1])).namelist()
                has = "sukiyaki/backends/webgpu/browser.py" in names
                raise Unavailable(f"the runtime trains on {booted['backend']} there: '{booted['why']}' "
                                  f"(sukiyaki/backends/webgpu/browser.py {'is' if has else 'is not'} in the wheel; "
                                  f"adapter: {where or 'no details'})")
        except Unavailable as exc:
            unavailable["ours (WebGPU)"] = str(exc)
            ours = None
        others = []
        for label, lib, backend in peers:
            print(f"setting up {label} (in the WebGPU browser) ...", flush=True)
            try:
                others.append(Peer(browser, url, label, lib, backend))
            except Unavailable as exc:
                unavailable[label] = str(exc)
        for r in range(rounds):
            if ours is None and not others:
                break
            line = [f"ours (WebGPU) {ours.window(seconds):.1f}"] if ours is not None else []
            line += [f"{p.label} {p.window(seconds):.1f}" for p in others]
            print(f"  WebGPU browser, round {r + 1}/{rounds}: " + ", ".join(line) + " images/s", flush=True)
        if ours is not None:
            rows["ours (WebGPU)"] = {"images_per_s": statistics.median(ours.windows), "windows": ours.windows,
                                     "adapter": where, "boot": booted}
        for p in others:
            rows[p.label] = {"images_per_s": statistics.median(p.windows), "windows": p.windows, "info": p.info,
                             "adapter": where}
            p.close()
        return rows, unavailable
    finally:
        browser.close()


# ------------------------------------------------------------------ peers


class Peer:
    """A peer's page: set up once (library, data, model, one batch), then timed windows."""

    def __init__(self, browser, url, label, lib, backend):
        self.label, self.lib, self.backend = label, lib, backend
        self.windows, self.page, self.info = [], None, None
        why = missing_npm(lib, backend)
        if why:
            raise Unavailable(why)
        self.page = browser.context.new_page()
        self.errors = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(f"{url}/bench/peer.html?lib={lib}&backend={backend or ''}")
        try:
            self.info = self.page.evaluate("([l, b]) => window.peer.setup(l, b)", [lib, backend])
        except Exception as exc:  # the library's own error, e.g. a kernel the backend lacks
            text = str(exc).split("\n")[0].replace("Page.evaluate: ", "")
            self.close()
            raise Unavailable(text) from None

    def window(self, seconds):
        self.page.bring_to_front()
        r = self.page.evaluate("(s) => window.peer.window(s)", seconds)
        rate = r["images"] / r["seconds"]
        self.windows.append(rate)
        return rate

    def close(self):
        if self.page is not None:
            self.page.close()
            self.page = None


# ------------------------------------------------------------------ the run


def run(args):
    from playwright.sync_api import sync_playwright

    server = Server(make_app(args.pyodide))
    result = {"rows": {}, "unavailable": {}}
    t_run = time.perf_counter()
    try:
        with sync_playwright() as pw:
            browser = Browser(pw, gpu_args=args.chromium_args)
            result["chromium"] = browser.version
            result["flags"] = browser.flags
            try:
                ours = Ours(browser, server.url, "&backend=numpy" if args.chromium_args else "")
                print("booting ours (Pyodide, numpy, the wheel, the first gradient) ...", flush=True)
                result["boot"] = ours.boot()
                peers = []
                for label, lib, backend in PEERS:
                    if label not in args.peers or backend == "webgpu":
                        continue
                    print(f"setting up {label} ...", flush=True)
                    try:
                        peers.append(Peer(browser, server.url, label, lib, backend))
                    except Unavailable as exc:
                        result["unavailable"][label] = str(exc)
                for r in range(args.rounds):
                    line = [f"round {r + 1}/{args.rounds}: ours {ours.window(args.seconds):.1f}"]
                    for p in peers:
                        line.append(f"{p.label} {p.window(args.seconds):.1f}")
                    print("  " + ", ".join(line) + " images/s", flush=True)
                result["rows"]["ours (numpy, Web Worker)"] = {"images_per_s": statistics.median(ours.windows),
                                                              "windows": ours.windows}
                result["stalls"] = ours.stalls
                for p in peers:
                    result["rows"][p.label] = {"images_per_s": statistics.median(p.windows), "windows": p.windows,
                                               "info": p.info}
                    p.close()
                if ours.errors:
                    result["page_errors"] = ours.errors
            finally:
                browser.close()
            on_webgpu = [p for p in PEERS if p[0] in args.peers and p[2] == "webgpu"]
            if args.webgpu:
                print("ours on WebGPU (a second Chromium, --enable-unsafe-webgpu) ...", flush=True)
                rows, unavailable = webgpu_rows(pw, server.url, args.rounds, args.seconds, on_webgpu,
                                                args.chromium_args)
                result["rows"].update(rows)
                result["unavailable"].update(unavailable)
            else:
                for p in on_webgpu:
                    result["unavailable"][p[0]] = "runs in the WebGPU browser, which --no-webgpu leaves out"
    finally:
        server.stop()
    result["run_s"] = time.perf_counter() - t_run
    return result


def report(result, args):
    """Print the table and the goals; returns the goals' dict."""
    rows, boot = result["rows"], result["boot"]
    ours = rows["ours (numpy, Web Worker)"]["images_per_s"]
    print(f"\nLeNet training, batch {BATCH}, images/s (median of {args.rounds} windows of >= {args.seconds:g} s); "
          f"Chromium {result.get('chromium')}, headless")
    print(f"{'system':<28} {'images/s':>9} {'ours/this':>10}   windows")
    for label in ["ours (numpy, Web Worker)", "ours (WebGPU)"] + [p[0] for p in PEERS]:
        if label in rows:
            r = rows[label]
            ratio = "" if label.startswith("ours (numpy") else f"{ours / r['images_per_s']:.2f}"
            wins = ", ".join(f"{w:.1f}" for w in r["windows"])
            info = r.get("info")
            extra = f"  [{info['version']}; {info['backend']}]" if info else ""
            print(f"{label:<28} {r['images_per_s']:>9.1f} {ratio:>10}   {wins}{extra}")
        elif label in result["unavailable"]:
            print(f"{label:<28} not available: {result['unavailable'][label]}")
    if "ours (WebGPU)" in rows:
        gpu = rows["ours (WebGPU)"]["images_per_s"]
        beside = [f"{gpu / rows[k]['images_per_s']:.2f}x {k}" for k in ("TF.js webgpu", "TF.js webgl") if k in rows]
        print(f"ours (WebGPU) [{rows['ours (WebGPU)']['adapter']}]: {gpu:.1f} images/s"
              + (f" = {', '.join(beside)}" if beside else ""))
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in boot["stages_s"].items())
    print(f"\nboot to the first gradient (page opened to its first iteration shown): {boot['boot_s']:.2f} s "
          f"(stages: {stages}); backend: {boot['why']}")
    stalls = result["stalls"]
    per_window = [max(s["longest_task_ms"], s["longest_gap_ms"]) for s in stalls]
    print("main thread while training, per window: longest long task / longest 10 ms-probe gap (ms): "
          + "; ".join(f"{s['longest_task_ms']:.0f} / {s['longest_gap_ms']:.0f}" for s in stalls))
    tfjs = [rows[k]["images_per_s"] for k in rows if k.startswith("TF.js")]
    goals = {
        "images_per_s": (ours, ours >= GOALS["images_per_s"], f">= {GOALS['images_per_s']:.0f}"),
        "vs_tfjs_best": ((ours / max(tfjs)) if tfjs else None, bool(tfjs) and ours / max(tfjs) >= GOALS["vs_tfjs_best"],
                         f">= {GOALS['vs_tfjs_best']:.0f}x TF.js's best backend"),
        "vs_convnetjs": ((ours / rows["ConvNetJS"]["images_per_s"]) if "ConvNetJS" in rows else None,
                         "ConvNetJS" in rows and ours / rows["ConvNetJS"]["images_per_s"] >= GOALS["vs_convnetjs"],
                         f">= {GOALS['vs_convnetjs']:.0f}x ConvNetJS"),
        "boot_s": (boot["boot_s"], boot["boot_s"] <= GOALS["boot_s"], f"<= {GOALS['boot_s']:.0f} s"),
        "stall_ms": (statistics.median(per_window), statistics.median(per_window) <= GOALS["stall_ms"],
                     f"<= {GOALS['stall_ms']:.0f} ms (median window's longest; worst window {max(per_window):.0f} ms)"),
    }
    print("\ngoals (issue 8):")
    for name, (value, ok, want) in goals.items():
        shown = "n/a" if value is None else f"{value:.2f}"
        print(f"  {'PASS' if ok else ('n/a ' if value is None else 'FAIL')}  {name:<13} {shown:>8}  {want}")
    return {k: {"value": v, "pass": ok, "goal": w} for k, (v, ok, w) in goals.items()}


def versions():
    import numpy as np

    import sukiyaki

    out = {"python": platform.python_version(), "numpy": np.__version__, "sukiyaki": sukiyaki.__version__}
    try:
        out["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                       text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def main(argv=None):
    global NODE_MODULES
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="timed windows per system (default 5)")
    p.add_argument("--seconds", type=float, default=4.0, help="least length of a window (default 4 s)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 1 s windows")
    p.add_argument("--peers", default=",".join(DEFAULT_PEERS),
                   help="peers to run, comma-separated (default: " + ", ".join(DEFAULT_PEERS) + "; also: "
                   + ", ".join(x[0] for x in PEERS if x[0] not in DEFAULT_PEERS) + ")")
    p.add_argument("--no-webgpu", dest="webgpu", action="store_false", help="skip the WebGPU row")
    p.add_argument("--pyodide", default=str(ROOT.parent / "shared" / "pyodide" / "0.27.7"),
                   help="the local Pyodide 0.27.7 folder (default: ../shared/pyodide/0.27.7)")
    p.add_argument("--chromium-args", default="", metavar="FLAGS",
                   help="further Chromium flags for a real GPU, one string (e.g. '--enable-features=Vulkan "
                   "--use-angle=vulkan'); given, the default --disable-gpu is dropped")
    p.add_argument("--node-modules", default=str(NODE_MODULES), metavar="DIR",
                   help="where the peers' npm packages are (default: benchmarks/.node_modules/node_modules)")
    p.add_argument("--json", metavar="PATH", help="write the results there as JSON")
    args = p.parse_args(argv)
    NODE_MODULES = Path(args.node_modules)
    args.chromium_args = shlex.split(args.chromium_args)
    if args.quick:
        args.rounds, args.seconds = 2, 1.0
    if args.rounds < 1 or args.seconds <= 0:
        p.error("--rounds must be at least 1 and --seconds positive")
    args.peers = [s.strip() for s in args.peers.split(",") if s.strip()]
    unknown = [s for s in args.peers if s not in [x[0] for x in PEERS]]
    if unknown:
        p.error(f"--peers: unknown {unknown}; choose among {[x[0] for x in PEERS]}")
    missing = missing_basics(args.pyodide)
    if missing:
        print("browser_speed.py needs " + "; ".join(missing), file=sys.stderr)
        return 2
    print(f"machine: {machine_line()}")
    try:
        result = run(args)
    except Unavailable as exc:  # our own page failed: nothing to compare
        print(f"browser_speed.py: ours could not run: {exc}", file=sys.stderr)
        return 1
    goals = report(result, args)
    if args.json:
        out = dict(result, date=datetime.datetime.now().isoformat(timespec="seconds"), machine=machine_line(),
                   cores=os.cpu_count(), versions=versions(), goals=goals,
                   args={"rounds": args.rounds, "seconds": args.seconds, "quick": args.quick, "peers": args.peers,
                         "webgpu": args.webgpu, "chromium_args": args.chromium_args,
                         "node_modules": str(NODE_MODULES)},
                   command="python benchmarks/browser_speed.py " + " ".join(sys.argv[1:] if argv is None else argv))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
