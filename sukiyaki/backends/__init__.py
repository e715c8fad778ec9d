"""Backend registry: a backend is a folder ``sukiyaki/backends/<name>/`` found by name.

Each backend module exposes ``create()`` returning an object that implements the
primitives listed in :mod:`sukiyaki.backends.base`. Registering a new backend means
adding its folder and one line to ``BACKEND_MODULES``.

Example:
    >>> get_backend('numpy').name
    'numpy'
"""

import importlib

BACKEND_MODULES = {
    "numpy": "sukiyaki.backends.numpy",
    "cuda": "sukiyaki.backends.cuda",
    "webgpu": "sukiyaki.backends.webgpu",
}
GPU_EXTRAS = {"cuda": "sukiyaki[cuda]", "webgpu": "sukiyaki[webgpu]"}
_instances = {}


class BackendUnavailable(RuntimeError):
    """A backend exists but cannot run here (missing package or device)."""


def get_backend(name="numpy"):
    """Return the (memoized) backend instance called ``name``."""
    be = _instances.get(name)
    if be is not None:
        return be
    if name not in BACKEND_MODULES:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKEND_MODULES)}")
    try:
        module = importlib.import_module(BACKEND_MODULES[name])
    except ImportError as exc:
        extra = GPU_EXTRAS.get(name, "sukiyaki")
        if getattr(exc, "name", None) == BACKEND_MODULES[name]:
            raise BackendUnavailable(
                f"backend {name!r} is not part of this version of sukiyaki yet (the release that has it "
                f"installs it with: pip install '{extra}')"
            ) from None
        raise BackendUnavailable(
            f"backend {name!r} is not available ({exc}); install it with: pip install '{extra}'"
        ) from None
    be = module.create()
    _instances[name] = be
    return be


def available_backends():
    """Names of the backends that can run on this machine."""
    names = []
    for name in BACKEND_MODULES:
        try:
            get_backend(name)
        except (BackendUnavailable, RuntimeError):
            continue
        names.append(name)
    return names
