"""Shared test fixtures: every test that takes ``device`` runs on each backend present here."""

from pathlib import Path

import pytest

from sukiyaki.backends import available_backends

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
_AVAILABLE = available_backends()


@pytest.fixture(params=_AVAILABLE)
def device(request):
    """Name of a backend to run on: every backend available here (tests/test_backends.py
    reports, as skips naming the missing extra or device, the backends that are not)."""
    return request.param


@pytest.fixture
def shared():
    """Path of ../shared (the project's shared data); skips if absent."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED}")
    return SHARED


def digits_npz(folder, n):
    """The first n bundled test digits as an .npz (images, labels) in folder, for
    ``--data d_test=PATH`` (quick validation); its path as a string."""
    import numpy as np

    from sukiyaki.data import load_mnist

    x, t = load_mnist(split="test")
    path = Path(folder) / f"test{n}.npz"
    np.savez(path, images=x[..., :n], labels=t[0, :n])
    return str(path)


@pytest.fixture(autouse=True, scope="module")
def _numpy_threads_restored():
    """Each test module leaves the numpy backend's thread count as it found it (module scope: set
    up before a module's own module-scoped fixtures, which may start workers). A distributed worker in
    the deterministic mode computes with one thread (``set_workers(1)``, for the rest of its own
    process's life); the distributed tests run workers in this process, where that setting would
    reach later tests (a training run here would then sum in another order than one in a fresh
    process: tests/test_cli.py's resume test)."""
    from sukiyaki.backends.numpy import threads as numpy_threads

    before = numpy_threads.workers()
    yield
    numpy_threads.set_workers(before)
