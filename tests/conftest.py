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
