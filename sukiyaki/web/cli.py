"""The ``sukiyaki web`` command: the in-browser training page.

Example:
    $ sukiyaki web --port 8000                                   # Pyodide from the official CDN
    $ sukiyaki web --pyodide ../shared/pyodide/0.27.7            # offline: a local Pyodide folder
    $ sukiyaki web --backend numpy                               # never WebGPU (the page's ?backend= overrides)
"""

import asyncio
import sys


def _web(args):
    from sukiyaki.cli import UsageError

    try:
        from sukiyaki.web.server import make_web_app, pyodide_source, serve_web
    except ImportError as exc:
        raise UsageError(f"sukiyaki web needs aiohttp ({exc}); pip install 'sukiyaki[server]'") from None
    try:
        source = pyodide_source(args.pyodide)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    app = make_web_app(source, backend=args.backend)

    def ready(url):
        where = f"the local folder {source.folder}" if source.folder else source.url
        print(f"sukiyaki in the browser: open {url} (Pyodide from {where}); Ctrl-C stops", flush=True)

    try:
        asyncio.run(serve_web(app, args.host, args.port, ready))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"sukiyaki web: error: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})",
              file=sys.stderr)
        return 2
    return 0


def add_commands(sub):
    """Add ``web`` to the sukiyaki command's subparsers."""
    from sukiyaki.cli import _number

    p = sub.add_parser("web", help="serve the in-browser training page (LeNet in a tab, through Pyodide)",
                       description="Serve a page that trains LeNet in the browser: Pyodide, numpy and this "
                                   "package's wheel run in a Web Worker.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_number(int, 0), default=8000, help="port (default 8000; 0: any free one)")
    p.add_argument("--pyodide", metavar="URL|PATH",
                   help="where the tab loads Pyodide 0.27.7: an http(s) URL, or a local folder served under "
                        "/pyodide/ (default: the official CDN)")
    p.add_argument("--backend", choices=("auto", "webgpu", "numpy"), default="auto",
                   help="what the tab computes on: auto (WebGPU when the browser gives a working adapter, else "
                        "numpy; the default), webgpu, numpy; a page's ?backend= overrides it")
    p.set_defaults(func=_web)
