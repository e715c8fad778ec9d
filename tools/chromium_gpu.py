"""Headless Chromium on the lent GPU machine: which WebGPU adapter it gives, and LeNet in the tab (issue 8, 7).

Usage (the device tool; the machine has no network, no browser, no node): build the bundle here
with ``tools/fetch_chromium_bundle.sh`` (about 6 min; .chromium/a .. .chromium/d, git-ignored), then
make four calls in a row, each within about 30 s of the last so that the machine stays warm and
keeps what the earlier ones carried (a part carried once stays there; the tracked tree, ~5 MiB,
travels every time, so a call moves ~51 MiB at most):

1. carry [".chromium/a"] (46.0 MiB)   command ``python3 tools/chromium_gpu.py --check``   (~5 s:
   checks the parts there so far, prints the host's glibc, nvidia-smi -L, the Vulkan manifest;
   "missing parts" is expected until the last call)
2. carry [".chromium/b"] (46.0 MiB)   command ``python3 tools/chromium_gpu.py --check``
3. carry [".chromium/c"] (46.0 MiB)   command ``python3 tools/chromium_gpu.py --check``
4. carry [".chromium/d", ".gl"] (17.2 + 0.4 MiB)   command
   ``tools/gpu_run.sh python3 tools/chromium_gpu.py``   (about 2-4 min: ~15 s to unpack 560 MB,
   ~5 s a flag set when it works, at most ~2 min for one whose GPU process hangs (a watchdog ends
   it), no new set after 240 s; then, when an adapter is the real GPU, browser_speed.py with 3
   rounds of 3 s windows: ours (numpy; WebGPU) beside TF.js webgl and webgpu, ~1.5 min; all
   stopped by 570 s. ``--bench never`` probes only; ``--flag-sets vulkan`` probes one set)

If the machine went cold between calls, ``--check`` names the parts missing: carry them again.
It writes $OUT/chromium_gpu.json and $OUT/chromium_gpu.txt (per flag set: navigator.gpu,
requestAdapter(), adapter.info, features and limits, a compute check and a rough FMA rate, the
WebGL renderer, chrome://gpu's highlights, Chromium's stderr), and, after the benchmark,
$OUT/browser_speed_gpu.json and .txt. It unpacks the parts to /tmp/chromium (once: a stamp holds
the archive's checksum); Playwright comes from the bundle when the host lacks it. When the host's
glibc is older than the newest one the bundle's libraries need (GLIBC_NEEDED, 2.36 from Debian 12),
the bundled glibc is used: the binaries' program interpreter is pointed at its ld.so.

Locally (a test of the bundle, SwiftShader's adapter): ``python3 tools/chromium_gpu.py --dest
/tmp/cg --bench always --flag-sets swiftshader``.
"""

import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / ".chromium"
#: The program interpreter given to the binaries when the bundled glibc is used (it must fit in
#: the place of /lib64/ld-linux-x86-64.so.2); a link to the bundle's ld.so.
INTERP = "/tmp/.chromium-ld.so"
HOST_INTERP = "/lib64/ld-linux-x86-64.so.2"
ICDS = ["/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json", "/usr/share/vulkan/icd.d/nvidia_icd.json",
        "/etc/vulkan/icd.d/nvidia_icd.json"]

#: Flags of every probe (Playwright adds its own: --headless, --no-sandbox when asked, ...).
BASE_FLAGS = ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-dev-shm-usage", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: (name, flags, where they come from): tried in this order.
FLAG_SETS = [
    ("vulkan", ["--enable-features=Vulkan", "--use-angle=vulkan", "--disable-vulkan-surface"],
     "developer.chrome.com/blog/supercharge-web-ai-testing (headless Chrome on an NVIDIA T4; "
     "--disable-vulkan-surface: no VK_KHR_surface, blits instead of a swap chain)"),
    ("vulkan-angle", ["--enable-features=Vulkan,VulkanFromANGLE,DefaultANGLEVulkan", "--use-angle=vulkan",
                      "--use-vulkan=native", "--disable-vulkan-surface", "--ignore-gpu-blocklist"],
     "gpuweb/gpuweb#5022 (Chrome on Linux needed VulkanFromANGLE,DefaultANGLEVulkan) and the blocklist off"),
    ("vulkan-egl", ["--enable-features=Vulkan", "--use-gl=angle", "--use-angle=gl-egl", "--ignore-gpu-blocklist"],
     "WebGPU on Vulkan, ANGLE (compositing, WebGL) on the driver's EGL"),
    ("default", [], "Chromium's own choice (WebGPU ships on Linux since 144, for some GPUs)"),
    ("swiftshader", ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
     "the software adapter the tests use here: the reference"),
]
SOFTWARE = ("swiftshader", "llvmpipe", "lavapipe", "softpipe", "software", "microsoft basic")

PROBE_PAGE = b"<!doctype html><html><head><meta charset='utf-8'><title>probe</title></head><body>probe</body></html>"

#: Everything a flag set gives, found from a page on http://127.0.0.1 (a secure context).
PROBE_JS = r"""async (limitMs) => {
  const out = {secure: isSecureContext, user_agent: navigator.userAgent, gpu: !!navigator.gpu};
  const body = async () => {
    if (!navigator.gpu) return;
    const describe = (a) => {
      const i = a.info || {};
      const lim = {};
      for (const k of ["maxBufferSize", "maxStorageBufferBindingSize", "maxComputeWorkgroupStorageSize",
                       "maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupSizeX", "maxComputeWorkgroupsPerDimension",
                       "maxStorageBuffersPerShaderStage", "maxTextureDimension2D"]) lim[k] = a.limits[k];
      return {vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description,
              subgroup_min: i.subgroupMinSize, subgroup_max: i.subgroupMaxSize,
              is_fallback: i.isFallbackAdapter !== undefined ? i.isFallbackAdapter : a.isFallbackAdapter,
              features: [...a.features].sort(), limits: lim};
    };
    out.preferred_format = navigator.gpu.getPreferredCanvasFormat();
    const a = await navigator.gpu.requestAdapter({powerPreference: "high-performance"});
    out.adapter = a ? describe(a) : null;
    const fb = await navigator.gpu.requestAdapter({forceFallbackAdapter: true});
    out.fallback_adapter = fb ? describe(fb) : null;
    if (!a) return;
    const dev = await a.requestDevice();
    const errors = [];
    out.device_errors = errors;
    dev.addEventListener("uncapturederror", (e) => errors.push(String(e.error.message)));
    // correctness: y = 2 x + 1 on 1024 floats, read back
    const n = 1024, x = new Float32Array(n).map((_, i) => i);
    const buf = dev.createBuffer({size: n * 4,
                                  usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST});
    dev.queue.writeBuffer(buf, 0, x);
    const check = dev.createComputePipeline({layout: "auto", compute: {entryPoint: "main", module: dev.createShaderModule({code: `
      @group(0) @binding(0) var<storage, read_write> b: array<f32>;
      @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) { b[g.x] = 2.0 * b[g.x] + 1.0; }`})}});
    const read = dev.createBuffer({size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST});
    const enc = dev.createCommandEncoder(), pass = enc.beginComputePass();
    pass.setPipeline(check);
    pass.setBindGroup(0, dev.createBindGroup({layout: check.getBindGroupLayout(0),
                                             entries: [{binding: 0, resource: {buffer: buf}}]}));
    pass.dispatchWorkgroups(n / 64); pass.end();
    enc.copyBufferToBuffer(buf, 0, read, 0, n * 4);
    dev.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const y = new Float32Array(read.getMappedRange().slice(0));
    read.unmap();
    out.compute_ok = y.every((v, i) => v === 2 * i + 1);
    // a rough rate: threads x 256 vec4 FMAs (8 flops each) a dispatch; 16K threads first, and when that
    // takes < 20 ms (a GPU), 1M threads repeated for about 0.3 s
    const iters = 256, big = dev.createBuffer({size: (1 << 20) * 16, usage: GPUBufferUsage.STORAGE});
    const fma = dev.createComputePipeline({layout: "auto", compute: {entryPoint: "main", module: dev.createShaderModule({code: `
      @group(0) @binding(0) var<storage, read_write> b: array<vec4<f32>>;
      @compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
        var v = b[g.x] + vec4<f32>(f32(g.x) * 1e-7);
        for (var i = 0u; i < ${iters}u; i++) { v = fma(v, vec4<f32>(0.999), vec4<f32>(0.001)); }
        b[g.x] = v;
      }`})}});
    const bg = dev.createBindGroup({layout: fma.getBindGroupLayout(0), entries: [{binding: 0, resource: {buffer: big}}]});
    const timed = async (m, k) => {
      const e = dev.createCommandEncoder();
      for (let r = 0; r < k; r++) { const p = e.beginComputePass(); p.setPipeline(fma); p.setBindGroup(0, bg);
                                    p.dispatchWorkgroups(m / 256); p.end(); }
      const t0 = performance.now();
      dev.queue.submit([e.finish()]);
      await dev.queue.onSubmittedWorkDone();
      return (performance.now() - t0) / 1000;
    };
    await timed(1 << 14, 1);
    let m = 1 << 14, reps = 1, s = await timed(m, 1);
    if (s < 0.02) {
      m = 1 << 20;
      s = await timed(m, 1);
      reps = Math.max(1, Math.min(500, Math.round(0.3 / Math.max(s, 1e-4))));
      s = await timed(m, reps);
    }
    out.fma = {threads: m, dispatches: reps, seconds: s};
    out.fma_gflops = m * iters * 8 * reps / s / 1e9;
    dev.destroy();
  };
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(() => resolve("late"), limitMs); });
  const done = await Promise.race([body().then(() => "done", (e) => { out.error = String(e && e.message || e); return "done"; }),
                                   late]);
  clearTimeout(timer);
  if (done === "late") out.timed_out_ms = limitMs;
  return out;
}"""

#: WebGL's renderer (a separate step: getContext() waits on the GPU process synchronously, and a GPU
#: process stuck in its driver blocks the page; the watchdog then ends the browser).
WEBGL_JS = r"""() => {
  try {
    const c = document.createElement("canvas");
    const gl = c.getContext("webgl2") || c.getContext("webgl");
    if (!gl) return null;
    const e = gl.getExtension("WEBGL_debug_renderer_info");
    return {renderer: gl.getParameter(e ? e.UNMASKED_RENDERER_WEBGL : gl.RENDERER),
            vendor: gl.getParameter(e ? e.UNMASKED_VENDOR_WEBGL : gl.VENDOR), version: gl.getParameter(gl.VERSION)};
  } catch (e) { return {error: String(e)}; }
}"""

#: chrome://gpu keeps its text in shadow roots: walk them.
GPU_PAGE_TEXT_JS = r"""() => {
  const walk = (n) => {
    let t = "";
    if (n.shadowRoot) t += walk(n.shadowRoot);
    for (const c of n.childNodes) {
      if (c.nodeType === 3) t += c.textContent;
      else if (c.nodeType === 1 || c.nodeType === 11) {
        if (c.tagName === "STYLE" || c.tagName === "SCRIPT") continue;
        if (c.tagName === "TD") { t += walk(c).replace(/\s+/g, " ").trim() + " | "; continue; }
        t += walk(c);
        if (["DIV", "TR", "P", "LI", "H2", "H3", "H4", "TABLE", "UL"].includes(c.tagName)) t += "\n";
      }
    }
    return t;
  };
  return walk(document.body);
}"""
GPU_PAGE_KEYS = re.compile(r"WebGPU|Vulkan|Dawn|GL_RENDERER|GL_VENDOR|GL_VERSION|ANGLE|GPU0|GPU1|Driver vendor|"
                           r"Driver version|Hardware accel|Software only|Disabled|Display type|Ozone|backend", re.I)


# ------------------------------------------------------------------ the bundle


def parts():
    """The parts carried so far, in order, and what each folder says they should hash to."""
    found, sums, total = [], {}, set()
    for d in sorted(p for p in BUNDLE.glob("?") if p.is_dir()):
        for p in sorted(d.glob("bundle.tar.xz.part*")):
            found.append(p)
        if (d / "SHA256SUMS").is_file():
            for line in (d / "SHA256SUMS").read_text().split("\n"):
                if line.strip():
                    digest, name = line.split()
                    sums[name.lstrip("*")] = digest
        if (d / "BUNDLE_SHA256").is_file():
            text = (d / "BUNDLE_SHA256").read_text().split()
            total.add(text[0])
            for word in text:
                if word.startswith("parts="):
                    total.add(word)
    found.sort(key=lambda p: p.name)
    return found, sums, total


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def check(strict=False):
    """Prints the parts there so far (checked) and the host's facts; returns 1 on a damaged part (strict:
    or a missing one), else 0."""
    found, sums, total = parts()
    n_expected = next((int(w[6:]) for w in total if w.startswith("parts=")), None)
    print(f"parts here: {len(found)}" + (f" of {n_expected}" if n_expected else ""))
    bad = 0
    for p in found:
        ok = sums.get(p.name) == sha256(p)
        bad += not ok
        print(f"  {p.relative_to(ROOT)} {p.stat().st_size} bytes {'ok' if ok else 'BAD CHECKSUM'}")
    numbers = [int(p.name.rsplit("part", 1)[1]) for p in found]
    missing = sorted(set(range(n_expected if n_expected else (max(numbers) + 1 if numbers else 1))) - set(numbers))
    if missing:
        print(f"  missing parts: {', '.join(f'{i:02d}' for i in missing)} (carry their folders)")
    print(f"host: {platform.platform()}, {os.confstr('CS_GNU_LIBC_VERSION')}, Python {platform.python_version()}")
    for cmd in (["nvidia-smi", "-L"], ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]):
        try:
            print(f"  {' '.join(cmd)}: " + subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip())
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"  {cmd[0]}: {exc}")
    print(f"  Vulkan ICD manifests: {[p for p in ICDS if os.path.isfile(p)]}; "
          f"LD_LIBRARY_PATH={os.environ.get('LD_LIBRARY_PATH')}")
    try:
        import playwright  # noqa: F401
        print("  playwright: importable on the host")
    except ImportError:
        print("  playwright: not on the host (the bundle's is used)")
    return 1 if (bad or not found or (strict and missing)) else 0


class Joined:
    """The parts read one after another as one file (for tarfile's stream mode), hashed on the way."""

    def __init__(self, paths):
        self.paths, self.f, self.hash = list(paths), None, hashlib.sha256()

    def read(self, n=-1):
        out = b""
        while n < 0 or len(out) < n:
            if self.f is None:
                if not self.paths:
                    break
                self.f = open(self.paths.pop(0), "rb")
            block = self.f.read(-1 if n < 0 else n - len(out))
            if not block:
                self.f.close()
                self.f = None
                continue
            out += block
        self.hash.update(out)
        return out


def unpack(dest):
    """Unpacks the joined parts into dest (skipped when its stamp holds this archive's checksum)."""
    found, sums, total = parts()
    digests = [w for w in total if not w.startswith("parts=")]
    if len(digests) != 1:
        raise SystemExit(f"chromium_gpu: no bundle, or parts of different bundles, in {BUNDLE} ({digests}); "
                         "run tools/fetch_chromium_bundle.sh here and carry every .chromium/<letter>")
    stamp = dest / ".bundle_sha256"
    if stamp.is_file() and stamp.read_text().strip() == digests[0] and (dest / "chromium" / "chromium").is_file():
        return False
    if check(strict=True) != 0:
        raise SystemExit("chromium_gpu: the bundle's parts are not all here, or one is damaged (see above)")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    t0 = time.perf_counter()
    joined = Joined(found)
    with tarfile.open(fileobj=joined, mode="r|xz") as tar:
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(dest, filter="tar")
        else:
            tar.extractall(dest)
    while joined.read(1 << 20):  # any padding left after the archive's end still counts in the checksum
        pass
    if joined.hash.hexdigest() != digests[0]:
        raise SystemExit("chromium_gpu: the joined parts do not hash to the bundle's checksum")
    stamp.write_text(digests[0] + "\n")
    print(f"unpacked the bundle to {dest} in {time.perf_counter() - t0:.1f} s")
    return True


def glibc_tuple(text):
    m = re.search(r"(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def set_interpreter(path, interp):
    """Points an ELF64 executable's PT_INTERP at interp, in place (it must fit in the old one's room)."""
    with open(path, "r+b") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            raise ValueError(f"{path}: not an ELF64 file")
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            ph = f.read(phentsize)
            p_type, = struct.unpack_from("<I", ph, 0)
            if p_type == 3:  # PT_INTERP
                offset, = struct.unpack_from("<Q", ph, 8)
                size, = struct.unpack_from("<Q", ph, 32)
                data = interp.encode() + b"\0"
                if len(data) > size:
                    raise ValueError(f"{path}: {interp} does not fit in PT_INTERP ({size} bytes)")
                f.seek(offset)
                f.write(data + b"\0" * (size - len(data)))
                return
    raise ValueError(f"{path}: no PT_INTERP")


def prepare(dest, glibc="auto"):
    """The wrapper script that runs the bundle's Chromium (libraries, fonts, glibc), and facts about it."""
    here = dest / "chromium"
    needed = (here / "GLIBC_NEEDED").read_text().strip() if (here / "GLIBC_NEEDED").is_file() else "GLIBC_2.35"
    host = os.confstr("CS_GNU_LIBC_VERSION") or "unknown"
    own = glibc == "bundled" or (glibc == "auto" and glibc_tuple(host) < glibc_tuple(needed))
    if own and not (here / "glibc" / "ld-linux-x86-64.so.2").is_file():
        raise SystemExit(f"chromium_gpu: the host's {host} is older than {needed} and the bundle has no glibc/")
    if own:
        if os.path.lexists(INTERP):
            os.remove(INTERP)
        os.symlink(here / "glibc" / "ld-linux-x86-64.so.2", INTERP)
    for exe in ("chromium", "chrome_crashpad_handler"):
        if (here / exe).is_file():
            set_interpreter(here / exe, INTERP if own else HOST_INTERP)
    (here / "fonts.conf").write_text((here / "fonts.conf.in").read_text().replace("@ROOT@", str(here)))
    libs = ([str(here / "glibc")] if own else []) + [str(here / "lib"), str(here)]
    wrapper = here / "run.sh"
    wrapper.write_text(f"""#!/bin/sh
# written by tools/chromium_gpu.py: the bundle's Chromium with its libraries and fonts
export LD_LIBRARY_PATH="{':'.join(libs)}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"
export FONTCONFIG_FILE="{here / 'fonts.conf'}"
if [ -n "$CHROMIUM_PIDFILE" ]; then echo $$ > "$CHROMIUM_PIDFILE"; fi
if [ -n "$CHROMIUM_LOG" ]; then exec "{here / 'chromium'}" "$@" 2>>"$CHROMIUM_LOG"; fi
exec "{here / 'chromium'}" "$@"
""")
    wrapper.chmod(0o755)
    if not os.environ.get("VK_DRIVER_FILES") and not os.environ.get("VK_ICD_FILENAMES"):
        icd = next((p for p in ICDS if os.path.isfile(p)), None)
        if icd:
            os.environ["VK_DRIVER_FILES"] = icd
    if os.environ.get("VK_DRIVER_FILES") and not os.environ.get("VK_ICD_FILENAMES"):
        os.environ["VK_ICD_FILENAMES"] = os.environ["VK_DRIVER_FILES"]  # for an older loader
    version = subprocess.run([str(wrapper), "--version"], capture_output=True, text=True, timeout=60)
    facts = {"wrapper": str(wrapper), "host_glibc": host, "glibc_needed": needed, "bundled_glibc": own,
             "version": (version.stdout + version.stderr).strip()[-500:], "version_rc": version.returncode,
             "vk_driver_files": os.environ.get("VK_DRIVER_FILES")}
    if version.returncode != 0:
        ldd = subprocess.run(["ldd", str(here / "chromium")], capture_output=True, text=True,
                             env=dict(os.environ, LD_LIBRARY_PATH=":".join(libs)))
        facts["ldd_not_found"] = [ln.strip() for ln in ldd.stdout.split("\n") if "not found" in ln]
    return facts


def use_playwright(dest):
    """Makes Playwright importable (the bundle's site/ when the host has none); returns that folder or None."""
    try:
        import playwright  # noqa: F401
        return None
    except ImportError:
        site = dest / "site"
        sys.path.insert(0, str(site))
        import playwright  # noqa: F401
        return site


# ------------------------------------------------------------------ the probes


class PageServer:
    """A one-page server on 127.0.0.1 (a secure context for navigator.gpu)."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(PROBE_PAGE)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


def is_real_gpu(adapter):
    """Whether requestAdapter() gave a hardware adapter (not SwiftShader, llvmpipe, a fallback)."""
    if not adapter or adapter.get("is_fallback"):
        return False
    text = " ".join(str(adapter.get(k) or "") for k in ("vendor", "architecture", "device", "description")).lower()
    return bool(text.strip()) and not any(s in text for s in SOFTWARE)


class Watchdog:
    """Ends the browser (its process group: Playwright starts it as a group leader) when a step outlasts
    its time: a page blocked on a stuck GPU process never answers Playwright otherwise."""

    def __init__(self, pidfile):
        self.pidfile, self.timer, self.fired = pidfile, None, None

    def arm(self, seconds, step):
        self.disarm()
        self.timer = threading.Timer(seconds, self._fire, (seconds, step))
        self.timer.daemon = True
        self.timer.start()

    def disarm(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _fire(self, seconds, step):
        self.fired = f"{step} did not finish in {seconds:.0f} s: the browser was ended"
        try:
            pid = int(Path(self.pidfile).read_text().strip())
        except (OSError, ValueError):
            return
        for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
                return
            except OSError:
                continue


def probe(pw, wrapper, name, flags, url, out, step_s=60):
    """One flag set: launch, probe a page, read chrome://gpu, close. Returns a dict."""
    log = out / f"chromium_{name}.log"
    log.write_text("")
    os.environ["CHROMIUM_LOG"] = str(log)
    profile = tempfile.mkdtemp(prefix="chromium-gpu-probe-")
    os.environ["CHROMIUM_PIDFILE"] = os.path.join(profile, "browser.pid")
    dog = Watchdog(os.environ["CHROMIUM_PIDFILE"])
    res = {"name": name, "flags": BASE_FLAGS + flags}
    t0 = time.perf_counter()
    ctx = None
    try:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=wrapper, headless=True,
                                                    args=BASE_FLAGS + flags, timeout=step_s * 1000,
                                                    env=dict(os.environ))  # the driver's own env is older
        ctx.set_default_timeout(step_s * 1000)
        res["browser_version"] = ctx.browser.version if ctx.browser else None
        page = ctx.new_page()
        page.goto(url)
        dog.arm(step_s, "the WebGPU probe")
        res.update(page.evaluate(PROBE_JS, (step_s - 10) * 1000))
        dog.arm(step_s / 2, "WebGL's getContext()")
        res["webgl"] = page.evaluate(WEBGL_JS)
        dog.disarm()
        try:
            page.goto("chrome://gpu")
            page.wait_for_timeout(2000)
            dog.arm(step_s / 2, "reading chrome://gpu")
            text = page.evaluate(GPU_PAGE_TEXT_JS)
            dog.disarm()
            (out / f"chrome_gpu_{name}.txt").write_text(text)
            head, _, tail = text.partition("ANGLE Features")  # then hundreds of feature switches
            lines = [ln.strip()[:300] for ln in head.split("\n") if ln.strip() and GPU_PAGE_KEYS.search(ln)]
            lines += [ln.strip()[:300] for ln in tail.split("\n") if re.search(r"Dawn|adapter|backend", ln, re.I)][:20]
            res["chrome_gpu"] = list(dict.fromkeys(lines))[:60]
        except Exception as exc:  # noqa: BLE001 -- only a report's extra
            res["chrome_gpu_error"] = str(exc).split("\n")[0]
        page.close()
    except Exception as exc:  # noqa: BLE001 -- the report says what failed, the next set is tried
        res["launch_error" if ctx is None else "browser_error"] = dog.fired or str(exc).split("\n")[0][:2000]
    finally:
        dog.disarm()
        if ctx is not None:
            try:
                ctx.close()
            except Exception:  # noqa: BLE001
                pass
        shutil.rmtree(profile, ignore_errors=True)
        os.environ.pop("CHROMIUM_LOG", None)
        os.environ.pop("CHROMIUM_PIDFILE", None)
    res["seconds"] = time.perf_counter() - t0
    res["real_gpu"] = is_real_gpu(res.get("adapter")) and res.get("compute_ok") is True
    text = log.read_text(errors="replace")
    if len(text) > 1 << 20:  # a GPU process that fails in a loop writes megabytes: keep both ends
        log.write_text(text[:100000] + f"\n[... {len(text) - 300000} characters left out ...]\n" + text[-200000:])
    res["stderr_tail"] = [ln for ln in text.split("\n") if ln.strip() and "dbus" not in ln.lower()][-25:]
    return res


def summary(res):
    """One flag set's result in a few lines."""
    lines = [f"[{res['name']}] {' '.join(res['flags'][len(BASE_FLAGS):]) or '(no GPU flags)'}  ({res['seconds']:.1f} s)"]
    if "launch_error" in res:
        return lines + [f"  launch failed: {res['launch_error'][:400]}"]
    if "browser_error" in res:
        lines.append(f"  stopped: {res['browser_error'][:400]}")
    a = res.get("adapter")
    lines.append(f"  navigator.gpu: {'yes' if res.get('gpu') else 'no'}; secure context: {res.get('secure')}")
    if a:
        lines.append(f"  adapter: vendor={a.get('vendor')!r} architecture={a.get('architecture')!r} device={a.get('device')!r} "
                     f"description={a.get('description')!r} fallback={a.get('is_fallback')}")
        lim = a.get("limits", {})
        lines.append(f"  limits: maxBufferSize {lim.get('maxBufferSize')}, maxStorageBufferBindingSize "
                     f"{lim.get('maxStorageBufferBindingSize')}, workgroup storage {lim.get('maxComputeWorkgroupStorageSize')}, "
                     f"invocations {lim.get('maxComputeInvocationsPerWorkgroup')}; subgroups {a.get('subgroup_min')}-"
                     f"{a.get('subgroup_max')}")
        lines.append(f"  features ({len(a.get('features', []))}): {', '.join(a.get('features', []))}")
        lines.append(f"  compute check: {res.get('compute_ok')}; FMA rate ~{res.get('fma_gflops', 0):.0f} GFLOP/s"
                     + (f"; errors {res['device_errors']}" if res.get("device_errors") else ""))
    elif res.get("gpu"):
        lines.append("  requestAdapter(): null" + (f" ({res['error']})" if res.get("error") else ""))
    fb = res.get("fallback_adapter")
    if fb:
        lines.append(f"  fallback adapter: {fb.get('vendor')} {fb.get('architecture')} {fb.get('description') or ''}".rstrip())
    if res.get("error") and a:
        lines.append(f"  error: {res['error']}")
    if res.get("timed_out_ms"):
        lines.append(f"  the probe stopped waiting after {res['timed_out_ms'] / 1000:.0f} s (what it had is above)")
    w = res.get("webgl")
    lines.append(f"  WebGL: {w.get('renderer') if isinstance(w, dict) else w}")
    lines.append(f"  real GPU: {'YES' if res['real_gpu'] else 'no'}")
    return lines


# ------------------------------------------------------------------ the benchmark


def bench(args, dest, flags, site, out):
    """benchmarks/browser_speed.py with the bundle's Chromium and the flags of the set that gave the GPU."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "browser_speed.py"), "--rounds", str(args.rounds),
           "--seconds", str(args.seconds), "--peers", args.peers,
           "--chromium-args", " ".join(["--disable-dev-shm-usage"] + flags),
           "--pyodide", str(dest / "web" / "pyodide" / "0.27.7"), "--node-modules", str(dest / "web" / "node_modules"),
           "--json", str(out / "browser_speed_gpu.json")]
    env = dict(os.environ, SUKIYAKI_CHROMIUM=str(dest / "chromium" / "run.sh"), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(([str(site)] if site else []) + [str(ROOT)]
                                        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    t0 = time.perf_counter()
    lines = []
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        timer = threading.Timer(max(30.0, args.deadline - (time.perf_counter() - args.t0)), proc.kill)
        timer.start()
        for line in proc.stdout:
            print("  | " + line.rstrip(), flush=True)
            lines.append(line)
        rc = proc.wait()
        timer.cancel()
    except OSError as exc:
        rc, lines = -1, [str(exc)]
    (out / "browser_speed_gpu.txt").write_text("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n" + "".join(lines))
    result = {"rc": rc, "seconds": time.perf_counter() - t0, "command": cmd}
    if (out / "browser_speed_gpu.json").is_file():
        data = json.loads((out / "browser_speed_gpu.json").read_text())
        result["rows"] = {k: {"images_per_s": v["images_per_s"], "windows": v["windows"],
                              "adapter": v.get("adapter"), "info": v.get("info")} for k, v in data["rows"].items()}
        result["unavailable"] = data.get("unavailable", {})
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only check the parts carried so far and print the host's facts")
    p.add_argument("--dest", default="/tmp/chromium", help="where the bundle is unpacked (default /tmp/chromium)")
    p.add_argument("--glibc", choices=["auto", "host", "bundled"], default="auto",
                   help="whose glibc Chromium runs on (auto: the bundle's when the host's is older than it needs)")
    p.add_argument("--flag-sets", default=",".join(s[0] for s in FLAG_SETS),
                   help="flag sets to probe, in order (default: " + ", ".join(s[0] for s in FLAG_SETS) + ")")
    p.add_argument("--bench", choices=["auto", "always", "never"], default="auto",
                   help="run browser_speed.py: auto when a set gave the real GPU (the first such set), always "
                        "(with the first set that gave any adapter), never")
    p.add_argument("--peers", default="TF.js webgl,TF.js webgpu", help="browser_speed.py's --peers")
    p.add_argument("--rounds", type=int, default=3, help="browser_speed.py's --rounds (default 3)")
    p.add_argument("--seconds", type=float, default=3.0, help="browser_speed.py's --seconds (default 3)")
    p.add_argument("--step-seconds", type=float, default=45,
                   help="a probe step's limit (WebGPU probe; WebGL and chrome://gpu get half), after which the browser is ended")
    p.add_argument("--probe-budget", type=float, default=240, help="seconds after which no further flag set is probed")
    p.add_argument("--deadline", type=float, default=570,
                   help="seconds from the start by which browser_speed.py is stopped (the device call's limit is 600)")
    args = p.parse_args(argv)
    if args.check:
        return check()
    out = Path(os.environ.get("OUT") or (ROOT / "chromium_gpu_out"))
    out.mkdir(parents=True, exist_ok=True)
    dest = Path(args.dest).resolve()
    t0 = args.t0 = time.perf_counter()
    unpack(dest)
    facts = prepare(dest, args.glibc)
    report = {"host": {"platform": platform.platform(), "python": platform.python_version(),
                       "glibc": facts["host_glibc"]}, "chromium": facts, "sets": []}
    print(f"Chromium: {facts['version']!r} (rc {facts['version_rc']}); host {facts['host_glibc']}, bundle needs "
          f"{facts['glibc_needed']}: {'bundled' if facts['bundled_glibc'] else 'host'} glibc; "
          f"VK_DRIVER_FILES={facts['vk_driver_files']}", flush=True)
    if facts["version_rc"] != 0:
        print(f"  Chromium does not start: {facts.get('ldd_not_found')}", flush=True)
    site = use_playwright(dest)
    from playwright.sync_api import sync_playwright

    wanted = [s.strip() for s in args.flag_sets.split(",") if s.strip()]
    sets = [s for name in wanted for s in FLAG_SETS if s[0] == name]
    server = PageServer()
    text = []
    try:
        with sync_playwright() as pw:
            for name, flags, source in sets:
                if time.perf_counter() - t0 > args.probe_budget:
                    text.append(f"[{name}] not probed: the probes' {args.probe_budget:.0f} s were spent")
                    print(text[-1], flush=True)
                    continue
                res = probe(pw, facts["wrapper"], name, flags, server.url, out, args.step_seconds)
                res["source"] = source
                report["sets"].append(res)
                text += summary(res)
                print("\n".join(summary(res)), flush=True)
    finally:
        server.stop()
    real = [r for r in report["sets"] if r["real_gpu"]]
    any_adapter = [r for r in report["sets"] if r.get("adapter") and r.get("compute_ok")]
    chosen = real[0] if real else (any_adapter[0] if args.bench == "always" and any_adapter else None)
    report["real_gpu_sets"] = [r["name"] for r in real]
    if args.bench != "never" and chosen is not None:
        print(f"\nLeNet in the tab with the flag set '{chosen['name']}' ...", flush=True)
        flags = next(s[1] for s in FLAG_SETS if s[0] == chosen["name"])
        report["bench"] = dict(bench(args, dest, flags, site, out), flag_set=chosen["name"])
        rows = report["bench"].get("rows", {})
        text += ["", f"browser_speed.py (flag set {chosen['name']}, rc {report['bench']['rc']}):"]
        text += [f"  {k}: {v['images_per_s']:.1f} images/s" + (f" [{v['adapter']}]" if v.get("adapter") else "")
                 + (f" [{v['info'].get('backend')}]" if v.get("info") else "") for k, v in rows.items()]
        text += [f"  {k}: not available: {v}" for k, v in report["bench"].get("unavailable", {}).items()]
    elif args.bench != "never":
        text += ["", "no flag set gave the real GPU: LeNet not run (--bench always runs it on any adapter)"]
    report["seconds"] = time.perf_counter() - t0
    (out / "chromium_gpu.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    head = [f"headless Chromium {facts['version']} on {report['host']['platform']} ({facts['host_glibc']}; "
            f"{'bundled' if facts['bundled_glibc'] else 'host'} glibc)", ""]
    (out / "chromium_gpu.txt").write_text("\n".join(head + text) + "\n")
    print("\nsummary: " + ("; ".join(f"{r['name']}: " + (
        f"{(r.get('adapter') or {}).get('vendor')}/{(r.get('adapter') or {}).get('architecture')}"
        f"{' REAL GPU' if r['real_gpu'] else ''}" if r.get("adapter") else (r.get("launch_error", "no adapter")[:80]))
        for r in report["sets"])))
    if "bench" in report:
        print("LeNet images/s: " + ", ".join(f"{k} {v['images_per_s']:.1f}" for k, v in report["bench"].get("rows", {}).items()))
    print(f"wrote {out / 'chromium_gpu.json'} and {out / 'chromium_gpu.txt'} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
