"""The browser runtime: sukiyaki in a tab, through Pyodide in a Web Worker.

``server.py`` serves the page, its scripts (``static/``), this package's wheel (``wheel.py``,
built in memory) and, optionally, a local Pyodide; ``runtime.py`` is the Python the Web Worker
runs (training in the tab, the distributed worker); ``jstransport.py`` carries the worker's
protocol over the browser's WebSocket. Only ``server.py`` imports aiohttp; everything the tab
runs imports under Pyodide.
"""
