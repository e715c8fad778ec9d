"""Helpers of the browser-runtime tests: the offline Pyodide folder, and aiohttp apps served from a thread.

The Pyodide folder is ``<repo>/../shared/pyodide/0.27.7`` (the project's shared folder, beside
every checkout, CI's included); :func:`require_pyodide` skips naming it when it is absent.
"""

import asyncio
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYODIDE_DIR = ROOT.parent / "shared" / "pyodide" / "0.27.7"


def require_pyodide():
    """The offline Pyodide folder, or skip naming where it was looked for."""
    if not (PYODIDE_DIR / "pyodide.js").is_file():
        pytest.skip(f"browser runtime test needs the offline Pyodide 0.27.7 at {PYODIDE_DIR} "
                    f"(the project's shared folder beside the checkout)")
    return PYODIDE_DIR


class Served:
    """An aiohttp application on 127.0.0.1 (an ephemeral port), its event loop in a background thread.

    Args:
        make_app: a function returning the application (called in the thread's loop).
        port: 0 for any free port.
    """

    def __init__(self, make_app, port=0):
        self.make_app, self.port = make_app, port
        self.ready = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._thread, daemon=True)
        self.thread.start()
        if not self.ready.wait(30) or self.error:
            raise RuntimeError(f"the server did not start: {self.error!r}")

    def _thread(self):
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by __init__
            self.error = exc
            self.ready.set()

    async def _main(self):
        from aiohttp import web

        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.make_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def stop(self):
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
            self.thread.join(30)
