"""How a worker reaches the coordinator: the only part of the worker that differs between places.

A transport gives the worker loop (:class:`sukiyaki.distributed.worker.Worker`) four things:

- ``session()``: an async context manager around the worker's life (a connection pool);
- ``connect(session, ws_url)``: an async context manager that opens the WebSocket and yields
  a socket with ``send_bytes(data)``, ``close()`` and ``closed``;
- ``messages(socket)``: an async iterator of the bytes of each binary message received,
  ending when the socket closes;
- ``fetch(session, url)``: the body of a GET, as bytes.

Plus ``errors``, the exceptions that mean "the connection was lost" (the worker reconnects
after them), and ``threads``, whether computation may run in a thread while the loop answers
pings (native: yes; Pyodide has no threads).

:class:`AiohttpTransport` is the native one (aiohttp, imported only when used);
``sukiyaki.web.jstransport.JsTransport`` is the browser's (the page's WebSocket and fetch,
through ``pyodide.ffi``).

Example:
    >>> AiohttpTransport().threads
    True
"""

import contextlib


class AiohttpTransport:
    """The native transport: aiohttp's client session and WebSocket.

    Args:
        ssl: what aiohttp's ``ssl=`` takes (True: the system's authorities; an SSLContext).
    """

    threads = True

    def __init__(self, ssl=True):
        self.ssl = ssl

    @property
    def errors(self):
        import aiohttp

        return (aiohttp.ClientError,)

    @contextlib.asynccontextmanager
    async def session(self):
        import aiohttp

        async with aiohttp.ClientSession() as session:
            yield session

    def connect(self, session, ws_url):
        return session.ws_connect(ws_url, max_msg_size=0, heartbeat=None, ssl=self.ssl)

    async def messages(self, ws):
        import aiohttp

        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                yield msg.data

    async def fetch(self, session, url):
        async with session.get(url, ssl=self.ssl) as resp:
            resp.raise_for_status()
            return await resp.read()
