"""The CPU backend, on numpy (the default; also the one used under Pyodide)."""

from sukiyaki.backends.numpy.backend import NumpyBackend


def create():
    """Return a new numpy backend instance."""
    return NumpyBackend()
