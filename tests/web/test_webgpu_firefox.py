"""The WebGPU backend in headless Firefox ESR: the same runtime page, driven by npm's
``puppeteer-core`` over WebDriver BiDi (Playwright cannot drive stock Firefox), with WebGPU
enabled by preferences; its adapter here is Mesa's lavapipe (a CPU Vulkan driver).

One Firefox run boots the page (the runtime must pick WebGPU), runs the matrix and layer
cases of ``webgpu_cases.py`` in the Web Worker against numpy, computes a LeNet step's
gradients on WebGPU (compared with the native CPU's here), and trains a few iterations on
WebGPU and on numpy in the same tab. Skips name what is missing: Firefox ESR, Node, the
``puppeteer-core`` package (``npm install --prefix tests/.node_modules puppeteer-core@24``),
the offline Pyodide, aiohttp, or the prefs file of the shared folder.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import web_helpers as H

HERE = Path(__file__).resolve().parent
FIREFOX = os.environ.get("SUKIYAKI_FIREFOX", "/usr/bin/firefox-esr")
MODULES = HERE.parent / ".node_modules" / "node_modules"
PREFS = H.ROOT.parent / "shared" / "browser" / "firefox-prefs.json"
ITERATIONS = 3


def require_firefox():
    missing = []
    if not os.access(FIREFOX, os.X_OK):
        missing.append(f"Firefox ESR (no executable at {FIREFOX}; apt-get install firefox-esr)")
    if shutil.which("node") is None:
        missing.append("Node.js (apt-get install nodejs)")
    if not (MODULES / "puppeteer-core" / "package.json").is_file():
        missing.append(f"puppeteer-core in {MODULES} (npm install --prefix tests/.node_modules puppeteer-core@24)")
    if not PREFS.is_file():
        missing.append(f"the Firefox prefs file {PREFS} (the project's shared folder)")
    if missing:
        pytest.skip("Firefox test needs " + " and ".join(missing))


@pytest.fixture(scope="module")
def firefox_run(tmp_path_factory):
    pytest.importorskip("aiohttp", reason="sukiyaki web needs aiohttp (pip install 'sukiyaki[server]')")
    require_firefox()
    H.require_pyodide()
    from sukiyaki.web.server import make_web_app

    ids = np.random.default_rng(6).choice(8000, 64, replace=False).tolist()
    steps = {"python": [(HERE / "webgpu_cases.py").read_text() + "\nrun_cases()\n"],
             "gradients": {"ids": ids, "seed": 3, "backend": "webgpu"},
             "train": [{"iterations": ITERATIONS, "backend": "webgpu"}, {"iterations": ITERATIONS, "backend": "numpy"}],
             "firefox": FIREFOX, "timeout_ms": 240000}
    path = tmp_path_factory.mktemp("firefox") / "steps.json"
    path.write_text(json.dumps(steps))
    s = H.Served(lambda: make_web_app(str(H.PYODIDE_DIR)))
    try:
        r = subprocess.run(["node", str(HERE / "firefox_driver.cjs"), str(MODULES), str(PREFS), s.url + "/?autostart=0",
                            str(path)], capture_output=True, text=True, timeout=600)
    finally:
        s.stop()
    assert r.returncode == 0, f"the Firefox driver failed:\n{r.stderr[-3000:]}"
    out = json.loads(r.stdout)
    out["ids"] = ids
    return out


def test_firefox_runtime_picks_webgpu(firefox_run):
    st = firefox_run["state"]
    assert st["errors"] == [] and st["ready"], st["errors"]
    if st["backend"] != "webgpu":
        pytest.skip(f"{firefox_run['version']} gives the page no working WebGPU here: {st['why']}")
    assert st["why"].startswith("WebGPU (")
    assert firefox_run["page_errors"] == []
    print(f"\n{firefox_run['version']}: {st['why']}; boot {st['boot']}")


def test_firefox_cases_and_gradients(firefox_run):
    if firefox_run["state"]["backend"] != "webgpu":
        pytest.skip("no WebGPU in this Firefox (see the test above)")
    from sukiyaki.nn import Net
    from sukiyaki.web.runtime import decode_arrays

    case = firefox_run["python"][0]
    assert "error" not in case, case.get("error")
    results = json.loads(case["result"])
    failed = [f"{r['name']}: {r['error']}" for r in results if not r["ok"]]
    assert not failed, "\n".join(failed)
    g = firefox_run["gradients"]
    assert "error" not in g, g.get("error")
    assert g["backend"] == "webgpu"
    grads = decode_arrays(g["gradients"])
    net = Net("lenet", seed=3)
    net.zero_grads()
    net.train_batch({"batch": np.asarray(firefox_run["ids"])}, loss_scale=1.0, seed=3, iteration=0)
    native = net.store.slot_arrays(net.store.grad)
    worst = max(float(np.abs(grads[k] - native[k]).max()) / float(np.abs(native[k]).max()) for k in native)
    assert worst <= 1e-4, worst
    print(f"\nFirefox: {len(results)} cases equal numpy's; LeNet gradients vs native CPU: worst relative {worst:.2e}")


def test_firefox_trains_on_webgpu_and_numpy(firefox_run):
    if firefox_run["state"]["backend"] != "webgpu":
        pytest.skip("no WebGPU in this Firefox (see the first test)")
    rates = {}
    for run, backend in zip(firefox_run["train"], ("webgpu", "numpy")):
        assert run["errors"] == [], run["errors"]
        prog = run["progress"]
        assert [p["iteration"] for p in prog] == list(range(1, ITERATIONS + 1))
        assert all(p["backend"] == backend and np.isfinite(p["loss"]) for p in prog)
        rates[backend] = 64 * (len(prog) - 1) / (prog[-1]["seconds"] - prog[0]["seconds"])
    print(f"\nLeNet training in Firefox, batch 64: WebGPU (lavapipe) {rates['webgpu']:.1f} images/s, "
          f"numpy {rates['numpy']:.1f} images/s")
