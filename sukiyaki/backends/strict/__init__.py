"""The ``strict`` test backend: opaque handles around numpy arrays that count host transfers.

It runs every primitive on the numpy backend, but hands out arrays that expose only the
metadata protocol (``shape``, ``dtype``, ``nbytes``): no ``__array__``, no indexing, no
arithmetic, no other attribute. Code above the backend that reaches into a native array,
or passes a host numpy array where a native one belongs, fails at once; every result is
checked to be column-major; every device-to-host read is counted and located. The whole
test suite runs on it through the ``device`` fixture.
"""

from sukiyaki.backends.strict.backend import StrictBackend


def create():
    """Return a new strict backend instance."""
    return StrictBackend()
