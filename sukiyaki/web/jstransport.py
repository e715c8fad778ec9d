"""The worker's transport in a browser tab: the JavaScript WebSocket and fetch, through pyodide.ffi.

It runs only under Pyodide (it imports ``js`` and ``pyodide`` when a connection is made);
see :mod:`sukiyaki.distributed.transport` for what a transport provides. Messages arrive
through the socket's ``onmessage`` callback into an asyncio queue; a close, whoever made
it, ends the message stream and the worker loop reconnects (or stops) as a native one does.
Computation runs inline (``threads = False``): a shard of LeNet takes a fraction of a
second in the tab, well inside the coordinator's silence limit, and pings are answered
between tasks.

Example (in Pyodide):
    >>> await run_worker(post, "http://127.0.0.1:8765", "token", transport=JsTransport())  # doctest: +SKIP
"""

import asyncio
import contextlib


class JsConnectionError(ConnectionError):
    """The browser could not open, or lost, the WebSocket (the worker reconnects)."""


class JsSocket:
    """One browser WebSocket as the worker loop sees it (async context manager)."""

    def __init__(self, url):
        self.url = url
        self.closed = False
        self._queue = asyncio.Queue()
        self._proxies = []
        self._ws = None

    async def __aenter__(self):
        from js import WebSocket
        from pyodide.ffi import create_proxy

        loop = asyncio.get_running_loop()
        opened = loop.create_future()

        def on_open(event):
            if not opened.done():
                opened.set_result(True)

        def on_message(event):
            data = event.data
            if isinstance(data, str):  # the protocol is binary: a text message is ignored
                return
            self._queue.put_nowait(data.to_bytes())

        def on_close(event):
            self.closed = True
            self._queue.put_nowait(None)
            if not opened.done():
                opened.set_exception(JsConnectionError(f"cannot open {self.url} (WebSocket closed, code {event.code})"))
            loop.call_soon(self._release)  # the last event: the callbacks may go

        try:
            self._ws = WebSocket.new(self.url)
        except Exception as exc:  # a malformed URL: a SyntaxError on the JavaScript side
            raise JsConnectionError(f"cannot open {self.url}: {exc}") from None
        self._ws.binaryType = "arraybuffer"
        for name, fn in (("onopen", on_open), ("onmessage", on_message), ("onclose", on_close)):
            proxy = create_proxy(fn)
            self._proxies.append(proxy)
            setattr(self._ws, name, proxy)
        await opened
        return self

    async def __aexit__(self, *exc):
        await self.close()  # the callbacks are released by the close event (an event may still be queued)
        return False

    def _release(self):
        """Detach and free the callbacks (after the socket's close event)."""
        for name in ("onopen", "onmessage", "onclose"):
            setattr(self._ws, name, None)
        proxies, self._proxies = self._proxies, []
        for proxy in proxies:
            proxy.destroy()

    async def send_bytes(self, data):
        from js import Uint8Array

        if self.closed or self._ws.readyState != 1:
            raise JsConnectionError(f"the WebSocket to {self.url} is closed")
        buf = Uint8Array.new(len(data))
        buf.assign(data)
        self._ws.send(buf)

    async def close(self):
        if self._ws is not None and self._ws.readyState < 2:  # CONNECTING or OPEN
            self._ws.close()
        self.closed = True

    async def receive(self):
        """The next binary message's bytes, or None once the socket has closed."""
        return await self._queue.get()


class JsTransport:
    """The browser transport (see the module docstring)."""

    threads = False
    errors = (JsConnectionError,)

    @contextlib.asynccontextmanager
    async def session(self):
        yield None

    def connect(self, session, ws_url):
        return JsSocket(ws_url)

    async def messages(self, sock):
        while True:
            data = await sock.receive()
            if data is None:
                return
            yield data

    async def fetch(self, session, url):
        from pyodide.http import pyfetch

        try:
            resp = await pyfetch(url)
        except Exception as exc:  # a network error: the JavaScript TypeError "Failed to fetch"
            raise JsConnectionError(f"GET {url} failed: {exc}") from None
        if not resp.ok:
            raise JsConnectionError(f"GET {url}: HTTP {resp.status}")
        return await resp.bytes()
