"""Backend registry: a backend is a folder ``sukiyaki/backends/<name>/`` found by name.

Each backend module exposes ``create()`` returning an object that implements the
primitives listed in :mod:`sukiyaki.backends.base`; it is checked against that list
when first created, and refused with the list of what it lacks. Registering a new
backend means adding its folder and one line to ``BACKEND_MODULES`` (or calling
:func:`register_backend` for one that lives elsewhere).

``strict`` is a test backend: opaque handles around numpy arrays that count host
transfers and check the contract (see ``sukiyaki/backends/strict``).

Example:
    >>> get_backend('numpy').name
    'numpy'
"""

import importlib

from sukiyaki.backends.base import missing_primitives

BACKEND_MODULES = {
    "numpy": "sukiyaki.backends.numpy",
    "strict": "sukiyaki.backends.strict",
    "cuda": "sukiyaki.backends.cuda",
    "webgpu": "sukiyaki.backends.webgpu",
}
GPU_EXTRAS = {"cuda": "sukiyaki[cuda]", "webgpu": "sukiyaki[webgpu]"}
#: Backends a user picks for real work (strict is for tests).
USER_BACKENDS = ("numpy", "cuda", "webgpu")
_instances = {}


class BackendUnavailable(RuntimeError):
    """A backend exists but cannot run here (missing package or device)."""


def register_backend(name, module):
    """Make the backend of ``module`` (its import path; it has ``create()``) available as ``name``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"backend name must be an identifier, got {name!r}")
    BACKEND_MODULES[name] = module
    _instances.pop(name, None)


#: Backends with several devices, named '<backend>:<index>' beyond the first.
INDEXED_BACKENDS = ("cuda",)


def get_backend(name="numpy"):
    """Return the (memoized) backend instance called ``name``, checked against the primitive list."""
    be = _instances.get(name)
    if be is not None:
        return be
    base, colon, index = name.partition(":") if isinstance(name, str) else (name, "", "")
    if colon:  # a device index: 'cuda:1'
        if base not in INDEXED_BACKENDS or not index.isdigit():
            raise ValueError(f"unknown backend {name!r}: a device index is written '<backend>:<n>' for "
                             f"{', '.join(INDEXED_BACKENDS)} (e.g. 'cuda:1')")
        if int(index) == 0:
            return get_backend(base)
    if base not in BACKEND_MODULES:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKEND_MODULES)}")
    try:
        module = importlib.import_module(BACKEND_MODULES[base])
    except ImportError as exc:
        extra = GPU_EXTRAS.get(base, "sukiyaki")
        if getattr(exc, "name", None) == BACKEND_MODULES[base]:
            raise BackendUnavailable(
                f"backend {name!r} is not part of this version of sukiyaki yet (the release that has it "
                f"installs it with: pip install '{extra}')"
            ) from None
        raise BackendUnavailable(
            f"backend {name!r} is not available ({exc}); install it with: pip install '{extra}'"
        ) from None
    be = module.create(int(index)) if colon else module.create()
    missing = missing_primitives(be)
    if missing:
        raise TypeError(f"backend {name!r} cannot be registered: it lacks {', '.join(missing)}")
    _instances[name] = be
    return be


def available_backends(include_test=True):
    """Names of the backends that can run on this machine (with ``strict`` unless include_test is False)."""
    names = []
    for name in BACKEND_MODULES:
        if not include_test and name not in USER_BACKENDS:
            continue
        try:
            get_backend(name)
        except (BackendUnavailable, RuntimeError):
            continue
        names.append(name)
    return names
