"""The browser runtime's server side: the page, its Web Worker script, the wheel, and Pyodide.

``sukiyaki web`` serves the training page at ``/``; the coordinator (``sukiyaki serve``)
serves the same page in worker mode at ``/worker``. Both add the routes of
:func:`add_runtime_routes`:

    GET <page>                              the page (static/index.html with its config)
    GET /web/page.js, /web/worker.js        the page's script and the Web Worker's
    GET /sukiyaki-<version>-py3-none-any.whl    this package's wheel (built in memory, once)
    GET /pyodide/...                        a local Pyodide folder, when one is given

Pyodide comes from the official CDN by default (:data:`PYODIDE_CDN`), or from a URL, or
from a local folder served under the same origin (offline use and tests:
``--pyodide ../shared/pyodide/0.27.7``). This module imports aiohttp: Pyodide never runs it.

Example:
    >>> app = web.Application()                                         # doctest: +SKIP
    >>> add_runtime_routes(app, mode="train", pyodide=pyodide_source(None))  # doctest: +SKIP
"""

import asyncio
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aiohttp import web

from sukiyaki.web.wheel import sukiyaki_wheel

PYODIDE_VERSION = "0.27.7"
#: Where real users' tabs get Pyodide by default.
PYODIDE_CDN = f"https://cdn.jsdelivr.net/pyodide/v{PYODIDE_VERSION}/full/"
#: Files a local Pyodide folder must hold (its core, and the lock file naming numpy's wheel).
PYODIDE_FILES = ("pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")
NO_CACHE = {"Cache-Control": "no-cache"}


@dataclass
class PyodideSource:
    """Where the tab loads Pyodide from: ``url`` (what the page uses) and, for a local folder, ``folder``."""

    url: str
    folder: Path = None


def pyodide_source(value):
    """The PyodideSource of a ``--pyodide`` value: None (the CDN), an http(s) URL, or a folder.

    Raises:
        ValueError naming what is missing when a folder is not a Pyodide distribution.
    """
    if value is None or value == "":
        return PyodideSource(PYODIDE_CDN)
    text = str(value)
    if text.startswith(("http://", "https://")):
        return PyodideSource(text if text.endswith("/") else text + "/")
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise ValueError(f"--pyodide {text}: no such folder (give a Pyodide folder, e.g. ../shared/pyodide/"
                         f"{PYODIDE_VERSION}, or an http(s) URL)")
    missing = [f for f in PYODIDE_FILES if not (folder / f).is_file()]
    if missing:
        raise ValueError(f"--pyodide {text}: not a Pyodide distribution (missing {', '.join(missing)})")
    return PyodideSource("/pyodide/", folder.resolve())


def wheel_path():
    """The URL path of the wheel (its file name, as micropip requires)."""
    return "/" + sukiyaki_wheel()[0]


def page_html(mode, pyodide, boot_timeout=180, backend="auto"):
    """The runtime page of a mode ('train' or 'worker') with its config inlined.

    Args:
        mode: 'train' (LeNet in the tab) or 'worker' (a coordinator's browser worker).
        pyodide: a :class:`PyodideSource`.
        boot_timeout: seconds a boot stage may make no progress before the page says so.
        backend: 'auto' (WebGPU when the tab gets a working adapter, else numpy), 'webgpu' or
            'numpy'; the page's ``?backend=`` overrides it.
    """
    if mode not in ("train", "worker"):
        raise ValueError(f"page_html: mode must be 'train' or 'worker', got {mode!r}")
    if backend not in ("auto", "webgpu", "numpy"):
        raise ValueError(f"page_html: backend must be 'auto', 'webgpu' or 'numpy', got {backend!r}")
    name, data = sukiyaki_wheel()
    config = {"mode": mode, "pyodide": pyodide.url, "worker_script": "/web/worker.js",
              "wheel": f"/{name}?sha256={hashlib.sha256(data).hexdigest()[:16]}", "wheel_name": name,
              "boot_timeout": boot_timeout, "backend": backend}
    # inside <script type="application/json">: no "</script>" can close it early
    text = json.dumps(config).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    html = resources.files("sukiyaki.web").joinpath("static/index.html").read_text("utf-8")
    return html.replace("{{CONFIG}}", text).replace("{{PAGE_SCRIPT}}", "/web/page.js")


def _static(name, content_type):
    async def handler(request):
        text = resources.files("sukiyaki.web").joinpath("static", name).read_text("utf-8")
        return web.Response(text=text, content_type=content_type, headers=NO_CACHE)

    return handler


def add_runtime_routes(app, mode, pyodide, page="/", backend="auto"):
    """Add the runtime's routes to an aiohttp application.

    Args:
        app: the ``aiohttp.web.Application``.
        mode: 'train' or 'worker' (see :func:`page_html`).
        pyodide: a :class:`PyodideSource` (a folder is served under /pyodide/).
        page: the page's path.
        backend: the page's default backend choice (see :func:`page_html`).
    """
    page_text = page_html(mode, pyodide, backend=backend)  # built now: a broken package fails at start, not in a tab

    async def page_handler(request):
        return web.Response(text=page_text, content_type="text/html", headers=NO_CACHE)

    async def wheel_handler(request):
        name, data = await asyncio.to_thread(sukiyaki_wheel)
        return web.Response(body=data, content_type="application/octet-stream", headers=NO_CACHE)

    app.router.add_get(page, page_handler)
    app.router.add_get("/web/page.js", _static("page.js", "text/javascript"))
    app.router.add_get("/web/worker.js", _static("worker.js", "text/javascript"))
    app.router.add_get(wheel_path(), wheel_handler)
    if pyodide.folder is not None:
        app.router.add_static("/pyodide/", pyodide.folder)


def make_web_app(pyodide=None, backend="auto"):
    """The application of ``sukiyaki web``: the training page at / (Pyodide from ``pyodide``;
    ``backend``: the page's default choice, 'auto', 'webgpu' or 'numpy')."""
    app = web.Application()
    add_runtime_routes(app, "train", pyodide if isinstance(pyodide, PyodideSource) else pyodide_source(pyodide),
                       backend=backend)
    return app


async def serve_web(app, host, port, ready=None):
    """Serve app on host:port until cancelled; ``ready(url)`` is called once it listens."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]
        if ready is not None:
            ready(f"http://{host}:{bound}/")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
