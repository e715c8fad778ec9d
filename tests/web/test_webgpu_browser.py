"""The WebGPU backend in the browser: ``sukiyaki web`` in headless Chromium with
``--enable-unsafe-webgpu`` (a SwiftShader adapter here), the offline Pyodide.

One page boots and picks WebGPU; inside its Web Worker, matrix and layer cases run on WebGPU
and on numpy and are compared there (``webgpu_cases.py``); a LeNet step's gradients on WebGPU
are compared with the native CPU's; LeNet trains a few iterations on WebGPU and on numpy in
the same tab (images/s printed); shader errors, buffers over the device's limit and a lost
device give clear errors (the runtime falls back to numpy and says so). Another page gets a
wheel whose matmul shader does not compile: it trains on numpy and shows the compiler's log.
"""

import io
import json
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import browser_helpers as B
import web_helpers as H

CASES = Path(__file__).with_name("webgpu_cases.py")
#: Iterations of LeNet (batch 64) trained on each backend in the tab.
TRAIN_ITERATIONS = 4


@pytest.fixture(scope="module")
def gpu_browser():
    pytest.importorskip("aiohttp", reason="sukiyaki web needs aiohttp (pip install 'sukiyaki[server]')")
    B.require_browser()
    H.require_pyodide()
    with B.chromium(extra_args=["--enable-unsafe-webgpu"], timeout_ms=120000) as context:
        yield context


@pytest.fixture(scope="module")
def server(gpu_browser):
    from sukiyaki.web.server import make_web_app

    s = H.Served(lambda: make_web_app(str(H.PYODIDE_DIR)))
    yield s
    s.stop()


def boot(context, url):
    """A page of the runtime at url, booted (or failed: its errors are in state)."""
    page = B.new_page(context)
    page.goto(url)
    page.wait_for_function("window.sukiyaki.state.ready || window.sukiyaki.state.errors.length",
                           timeout=120000, polling=250)
    return page


@pytest.fixture(scope="module")
def page(gpu_browser, server):
    p = boot(gpu_browser, server.url + "/?autostart=0")
    s = p.evaluate("window.sukiyaki.state")
    assert s["errors"] == [], s["errors"]
    if s["backend"] != "webgpu":
        pytest.skip(f"this Chromium gives no WebGPU adapter even with --enable-unsafe-webgpu: {s['why']}")
    yield p
    p.close()


def python(page, code):
    """Run code in the page's Web Worker (runPythonAsync); the value of its last expression."""
    return page.evaluate("(code) => window.sukiyaki.request('python', {code})", code)


def test_runtime_picks_webgpu_and_says_why(page):
    s = page.evaluate("window.sukiyaki.state")
    assert s["backend"] == "webgpu"
    assert s["why"].startswith("WebGPU (") and s["why"] == page.text_content("#backend")
    assert not page.is_visible("#backend-detail")
    assert 0 < s["boot"]["backend"] < 60  # opening the adapter and the check against numpy
    info = json.loads(python(page, "import json\nfrom sukiyaki.backends import get_backend\n"
                                   "d = get_backend('webgpu').device\njson.dumps([d.kind, d.info, d.limits])"))
    kind, adapter, limits = info
    assert kind == "browser"
    assert limits["max-storage-buffer-binding-size"] >= 128 << 20 and limits["max-buffer-size"] >= 256 << 20
    print(f"\nbrowser adapter: {s['why']}; {adapter}; backend check {s['boot']['backend']:.2f} s")


def test_matrix_and_layer_cases_equal_numpy_in_the_worker(page):
    t = time.perf_counter()
    results = json.loads(python(page, CASES.read_text() + "\nrun_cases()\n"))
    wall = time.perf_counter() - t
    failed = [f"{r['name']}: {r['error']}" for r in results if not r["ok"]]
    assert not failed, "\n".join(failed)
    names = {r["name"] for r in results}
    for needed in ("binary_ops_float32", "unary_ops_float32", "reductions", "matmul", "convolution_forward_backward",
                   "pooling_forward_backward", "softmax_and_cross_entropy", "philox_bits"):
        assert needed in names
    print(f"\n{len(results)} cases on WebGPU in the tab equal numpy's ({wall:.1f} s, shaders compiled on first use): "
          + ", ".join(f"{r['name']} {r['seconds']:.1f} s" for r in results))


def test_lenet_gradients_on_webgpu_equal_native_cpu(page):
    from sukiyaki.nn import Net
    from sukiyaki.web.runtime import decode_arrays

    ids = np.random.default_rng(6).choice(8000, 64, replace=False).tolist()
    out = page.evaluate("(ids) => window.sukiyaki.request('gradients', {ids, seed: 3, backend: 'webgpu'})", ids)
    assert out["backend"] == "webgpu"
    weights, grads = decode_arrays(out["weights"]), decode_arrays(out["gradients"])
    net = Net("lenet", seed=3)
    init = net.store.arrays(names=net.store.names("trained"))
    for k in init:  # the same initial weights on the tab's GPU (counter-based draws)
        np.testing.assert_allclose(weights[k], init[k], rtol=1e-6, atol=0, err_msg=k)
    net.zero_grads()
    loss = float(net.train_batch({"batch": np.asarray(ids)}, loss_scale=1.0, seed=3, iteration=0)["loss"])
    native = net.store.slot_arrays(net.store.grad)
    assert list(grads) == list(native)
    assert abs(out["loss"] - loss) <= 1e-5 * abs(loss)
    worst = 0.0
    for k in native:
        scale = float(np.abs(native[k]).max())
        rel = float(np.abs(grads[k] - native[k]).max()) / scale
        worst = max(worst, rel)
        assert rel <= 1e-4, (k, rel)  # float32 sums in another order
    print(f"\nLeNet gradients, tab WebGPU vs native CPU: worst relative difference {worst:.2e}; "
          f"{out['seconds'] * 1000:.0f} ms in the tab (shaders compiled before)")


def _train(page, backend):
    """Train TRAIN_ITERATIONS of LeNet (batch 64) on backend in the tab; the progress messages."""
    page.evaluate("window.sukiyaki.state.progress = []")
    page.evaluate("(b) => window.sukiyaki.send('train', {options: {iterations: %d, val_every: 0, batch_size: 64, "
                  "backend: b}})" % TRAIN_ITERATIONS, backend)
    page.wait_for_function("document.getElementById('status').textContent.startsWith('stopped at iteration')"
                           " || window.sukiyaki.state.errors.length", timeout=300000, polling=250)
    s = page.evaluate("window.sukiyaki.state")
    assert s["errors"] == [], s["errors"]
    page.evaluate("document.getElementById('status').textContent = 'ready'")
    return s["progress"]


def test_lenet_trains_on_webgpu_and_numpy_in_the_same_tab(page):
    rows = {}
    for backend in ("webgpu", "numpy"):
        prog = _train(page, backend)
        assert [p["iteration"] for p in prog] == list(range(1, TRAIN_ITERATIONS + 1))
        assert all(np.isfinite(p["loss"]) and p["images_per_s"] > 0 for p in prog)
        # the first iteration compiles the shaders: the speed of the others
        steps = [p["seconds"] for p in prog]
        rows[backend] = (64 * (len(steps) - 1) / (steps[-1] - steps[0]), prog)
    first_losses = [rows[b][1][0]["loss"] for b in rows]
    assert abs(first_losses[0] - first_losses[1]) <= 1e-4 * first_losses[1]  # the same first step
    gpu, cpu = rows["webgpu"][0], rows["numpy"][0]
    print(f"\nLeNet training in the tab, batch 64: WebGPU {gpu:.1f} images/s, numpy {cpu:.1f} images/s "
          f"(ratio {gpu / cpu:.2f}; first WebGPU iteration with shader compiles "
          f"{rows['webgpu'][1][0]['seconds']:.1f} s)")


BAD_SHADER = """
import json
from sukiyaki.backends import get_backend
from sukiyaki.backends.webgpu import kernels as K
from sukiyaki.backends.webgpu.device import ShaderError
be = get_backend("webgpu")
body = "@compute @workgroup_size(1)\\nfn main() {\\n    let x: f32 = 1u;\\n}\\n"
try:
    be.launcher.pipeline(("test_broken",), lambda: K.assemble("test_broken", ["OUT"], [], body=body), 1, 0)
    shader = "compiled"
except ShaderError as exc:
    shader = str(exc)
try:
    be.empty((2 ** 29,), "float32")
    big = "allocated"
except MemoryError as exc:
    big = str(exc)
x = be.from_numpy(__import__("numpy").arange(8, dtype="float32"))
after = be.to_numpy(be.binary["add"](x, x)).tolist()  # the device still works
json.dumps([shader, big, after])
"""


def test_shader_error_and_buffer_limit_are_clear(page):
    shader, big, after = json.loads(python(page, BAD_SHADER))
    assert "WGSL shader 'test_broken' failed to compile" in shader, shader
    assert "test_broken:" in shader and "let x: f32 = 1u;" in shader  # line:column, message and the line
    assert "max-buffer-size" in big and str(2 ** 31) in big, big
    assert after == [2.0 * i for i in range(8)]


LOSE_DEVICE = """
from sukiyaki.backends import get_backend
get_backend("webgpu").device._device.destroy()
"lost"
"""


def test_lost_device_is_reported_and_numpy_takes_over(page):
    """Last in this module: it destroys the tab's device."""
    assert python(page, LOSE_DEVICE) == "lost"
    page.evaluate("window.sukiyaki.send('train', {options: {iterations: 2, val_every: 0}})")
    page.wait_for_selector("#error", state="visible", timeout=60000)
    text = page.text_content("#error")
    assert "Error (training)" in text and "GPU device was lost" in text, text
    page.wait_for_function("window.sukiyaki.state.backend === 'numpy'", timeout=10000)
    assert "the WebGPU device failed while training" in page.text_content("#backend")
    page.evaluate("window.sukiyaki.state.errors = []")
    prog = _train(page, None)  # the tab's backend is now numpy
    assert prog and prog[-1]["backend"] == "numpy"
    assert not page.errors


def _broken_wheel(tmp_root):
    """This package's wheel with a matmul shader that does not compile (a type error)."""
    import sukiyaki
    from sukiyaki.web.wheel import build_wheel

    root = Path(tmp_root) / "sukiyaki"
    shutil.copytree(Path(sukiyaki.__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    kernel = root / "backends" / "webgpu" / "kernels" / "matmul.wgsl"
    kernel.write_text(kernel.read_text() + "\nfn sukiyaki_broken() -> f32 { return 1u; }\n")
    name, data = build_wheel(root)
    assert zipfile.ZipFile(io.BytesIO(data)).read("sukiyaki/backends/webgpu/kernels/matmul.wgsl").endswith(
        b"return 1u; }\n")
    return data


def test_a_shader_that_fails_to_compile_falls_back_to_numpy_with_its_log(gpu_browser, tmp_path):
    from aiohttp import web

    from sukiyaki.web.server import add_runtime_routes, pyodide_source

    data = _broken_wheel(tmp_path)

    @web.middleware
    async def broken(request, handler):
        if request.path.startswith("/sukiyaki-") and request.path.endswith(".whl"):
            return web.Response(body=data, content_type="application/octet-stream")
        return await handler(request)

    def make_app():
        app = web.Application(middlewares=[broken])
        add_runtime_routes(app, "train", pyodide_source(str(H.PYODIDE_DIR)))
        return app

    s = H.Served(make_app)
    try:
        p = boot(gpu_browser, s.url + "/?autostart=0")
        st = p.evaluate("window.sukiyaki.state")
        assert st["errors"] == [] and st["backend"] == "numpy", st
        why = p.text_content("#backend")
        assert why.startswith("numpy (WebGPU cannot run here: WGSL shader 'matmul_f32' failed to compile"), why
        detail = p.text_content("#backend-detail")
        assert p.is_visible("#backend-detail") and "sukiyaki_broken" in detail and "return 1u;" in detail, detail
        # asked for explicitly, the same failure is an error and nothing trains
        p.close()
        p = boot(gpu_browser, s.url + "/?autostart=0&backend=webgpu")
        p.wait_for_selector("#error", state="visible")
        text = p.text_content("#error")
        assert "Error (backend)" in text and "backend=webgpu was asked for" in text and "matmul_f32" in text, text
        assert not p.is_enabled("#start")
        p.close()
    finally:
        s.stop()


# ------------------------------------------------------------------ the choice alone (no browser)


def test_choose_backend_says_why_in_every_case():
    from sukiyaki.backends.webgpu.device import ShaderError
    from sukiyaki.web.runtime import BackendChoiceError, choose_backend

    class Adapter:
        class device:
            info = {"vendor": "acme", "architecture": "rdna9", "adapter_type": "discrete"}

    def broken():
        raise ShaderError("WGSL shader 'map' failed to compile:\nmap:3:5: error: bad\n    let x = ;")

    assert choose_backend(True, "auto", probe=lambda: Adapter) == {
        "backend": "webgpu", "why": "WebGPU (acme rdna9)", "detail": ""}
    assert choose_backend(True, "numpy", probe=None)["why"] == "numpy (asked for: backend=numpy)"
    assert choose_backend(False, "auto", probe=None)["why"] == \
        "numpy (this browser gives the page no WebGPU: navigator.gpu is missing)"
    fell = choose_backend(True, "auto", probe=broken)
    assert fell["backend"] == "numpy" and fell["why"] == "numpy (WebGPU cannot run here: WGSL shader 'map' failed " \
                                                         "to compile; details below)"
    assert "map:3:5: error: bad" in fell["detail"]
    with pytest.raises(BackendChoiceError, match="backend=webgpu was asked for, but WebGPU cannot run here: WGSL"):
        choose_backend(True, "webgpu", probe=broken)
    with pytest.raises(BackendChoiceError, match="navigator.gpu is missing"):
        choose_backend(False, "webgpu", probe=None)
    with pytest.raises(ValueError, match="backend must be one of auto, webgpu, numpy, got 'cuda'"):
        choose_backend(True, "cuda")


def test_device_helpers():
    from sukiyaki.backends.webgpu.device import camel, padded_size, read_window

    assert camel("max-storage-buffer-binding-size") == "maxStorageBufferBindingSize"
    assert [padded_size(n) for n in (0, 1, 4, 5)] == [4, 4, 4, 8]
    assert read_window(6, 3) == (4, 12, 2) and read_window(8, 4) == (8, 12, 0)


NO_ADAPTER = "if (self.navigator.gpu) self.navigator.gpu.requestAdapter = async () => null;\n"


def test_no_adapter_falls_back_or_is_an_error_when_forced(gpu_browser, server):
    """The worker's requestAdapter() gives null (as in a browser without a usable GPU): the
    page trains on numpy and says why; with ?backend=webgpu it stops at the backend stage."""
    def no_adapter(route):
        response = route.fetch()
        route.fulfill(response=response, body=NO_ADAPTER + response.text())

    gpu_browser.route("**/web/worker.js", no_adapter)
    try:
        p = boot(gpu_browser, server.url + "/?autostart=0")
        st = p.evaluate("window.sukiyaki.state")
        assert st["errors"] == [] and st["backend"] == "numpy", st
        assert p.text_content("#backend") == (
            "numpy (WebGPU cannot run here: navigator.gpu.requestAdapter() found no WebGPU adapter (the browser "
            "has WebGPU but no usable GPU for it; Chromium gives a software one with --enable-unsafe-webgpu))")
        p.close()
        p = boot(gpu_browser, server.url + "/?backend=webgpu")
        p.wait_for_selector("#error", state="visible")
        text = p.text_content("#error")
        assert "Error (backend): " in text and "backend=webgpu was asked for, but" in text, text
        assert "found no WebGPU adapter" in text, text
        assert p.text_content("#status") == "error: backend"
        assert not p.is_enabled("#start") and p.evaluate("window.sukiyaki.state.progress.length") == 0
        assert not p.errors
        p.close()
    finally:
        gpu_browser.unroute("**/web/worker.js")


def test_double_programs_in_math_wgsl_are_the_generators():
    """kernels/math.wgsl's log and exp programs (what keeps pow compilable on SwiftShader) are
    tools/gen_f64_programs.py's output."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(root / "tools" / "gen_f64_programs.py"), "--check"], timeout=60)
    assert out.returncode == 0, "run: python tools/gen_f64_programs.py --write"
