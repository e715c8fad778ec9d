"""Shared test fixtures: every test that takes ``device`` runs on each backend present here."""

from pathlib import Path

import pytest

from sukiyaki.backends import BACKEND_MODULES, available_backends

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
_AVAILABLE = available_backends()


def _device_params():
    params = []
    for name in BACKEND_MODULES:
        marks = []
        if name not in _AVAILABLE:
            marks.append(pytest.mark.skip(reason=f"backend {name!r} not available here (needs its extra and a device)"))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=_device_params())
def device(request):
    """Name of a backend to run on."""
    return request.param


@pytest.fixture
def shared():
    """Path of ../shared (the project's shared data); skips if absent."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED}")
    return SHARED
