"""A headless Chromium for tests: Debian's ``chromium`` driven by Python Playwright.

Playwright's own browsers are never downloaded (``playwright install`` is not run anywhere):
the browser is the system's (``apt-get install chromium``), given to Playwright by path. The
flags keep it from reaching the network on its own (no QUIC, no background networking, no
component updates, no sync) and from needing a GPU or a sandbox. Each launch gets a fresh
user-data folder, removed afterwards; Playwright refuses ``--user-data-dir`` among the
arguments, so the folder goes through ``launch_persistent_context``.

Where Chromium or the ``playwright`` package is absent, :func:`require_browser` skips the
test and names what is missing (never a silent skip).

Example:
    >>> with chromium() as browser:                                 # doctest: +SKIP
    ...     page = new_page(browser)
    ...     page.goto("http://127.0.0.1:8765/")
    ...     assert not page.errors                                   # no uncaught script error
"""

import contextlib
import os
import shutil
import tempfile

import pytest

#: Where Debian puts Chromium; ``SUKIYAKI_CHROMIUM`` overrides it.
CHROMIUM = os.environ.get("SUKIYAKI_CHROMIUM", "/usr/bin/chromium")

#: The flags seen to work on these machines (DESIGN.md, "What was seen on these machines").
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_browser():
    """The Chromium executable's path, or skip naming what is missing (Chromium, playwright, both)."""
    missing = []
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path is None:
        missing.append(f"Chromium (no executable at {CHROMIUM} nor 'chromium' on PATH; "
                       f"apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (pip install -e '.[test]'; never 'playwright install')")
    if missing:
        pytest.skip("browser test needs " + " and ".join(missing))
    return path


@contextlib.contextmanager
def chromium(extra_args=(), timeout_ms=15000):
    """A headless Chromium (a Playwright BrowserContext) with a fresh profile; closed on exit.

    Args:
        extra_args: more command-line flags (e.g. ``--enable-unsafe-webgpu``).
        timeout_ms: default timeout of the context's waits and navigations.
    Yields:
        The ``playwright.sync_api.BrowserContext``.
    """
    path = require_browser()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="sukiyaki-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=path, headless=True, args=FLAGS + list(extra_args),
                viewport={"width": 1280, "height": 900})
            context.set_default_timeout(timeout_ms)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def new_page(context):
    """A new page that gathers its uncaught script errors in ``page.errors`` and its console
    errors in ``page.console_errors`` (these include the browser's own "Failed to load
    resource" lines for refused requests and HTTP errors)."""
    page = context.new_page()
    page.errors, page.console_errors = [], []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("console", lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None)
    return page
