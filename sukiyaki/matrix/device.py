"""Devices: gpuArray / gather between backends, destruct and autodestruct of device memory.

An operation with any GPU operand runs on that GPU (CPU operands are uploaded); see
matrix.arith. ``destruct(A)`` frees A's memory at once; ``autodestruct(fn)`` (or
``with autodestruct():``) frees every matrix made inside except what is returned (or
what ``keep()`` names in a with block).

Example:
    >>> import sukiyaki.matrix as M
    >>> def layer():
    ...     tmp = M.ones(2, 2)
    ...     return tmp + 1
    >>> M.autodestruct(layer).get(1, 1).item()
    2.0
"""

import contextlib

from sukiyaki.backends import BackendUnavailable, get_backend
from sukiyaki.matrix.matrix import SCOPES, Matrix, as_matrix, to_backend


def default_gpu():
    """Name of the first GPU backend that runs here, or raise BackendUnavailable."""
    errors = []
    for name in ("cuda", "webgpu"):
        try:
            be = get_backend(name)
        except (BackendUnavailable, RuntimeError) as exc:
            errors.append(str(exc))
            continue
        if be.is_gpu:
            return name
    raise BackendUnavailable("no GPU backend is available here: " + "; ".join(errors))


def gpuArray(A, device=None):  # noqa: N802 (MATLAB name)
    """A copy of A on a GPU backend ('cuda' or 'webgpu'; the first available if None)."""
    A = as_matrix(A)
    name = device or default_gpu()
    be = get_backend(name)
    if A._backend is be:
        return A
    return to_backend(A, be)


def gather(A):
    """A copy of A on the CPU (numpy backend); A itself if already there."""
    A = as_matrix(A)
    if not A._backend.is_gpu:
        return A
    return to_backend(A, get_backend("numpy"))


def destruct(A):
    """Free A's memory now; using A afterwards raises an error."""
    if isinstance(A, Matrix) and A._data is not None:
        A._backend.free(A._data)
        A._data = _Destructed()


class _Destructed:
    """Stands in for the data of a destructed matrix; any use raises."""

    def __getattr__(self, name):
        raise RuntimeError("this matrix was destructed (its memory was freed); it cannot be used")


def _returned(value, acc):
    if isinstance(value, Matrix):
        acc.add(id(value))
    elif isinstance(value, (list, tuple)):
        for v in value:
            _returned(v, acc)
    elif isinstance(value, dict):
        for v in value.values():
            _returned(v, acc)
    return acc


class _Scope:
    def __init__(self):
        self.made = []
        self.kept = []

    def keep(self, *values):
        """Mark values (matrices or containers of them) to survive the with block."""
        self.kept.extend(values)
        return values[0] if len(values) == 1 else values


def _close(scope, result):
    keep = _returned(result, set())
    for v in scope.kept:
        _returned(v, keep)
    for m in scope.made:
        if id(m) not in keep:
            destruct(m)
        elif SCOPES:
            SCOPES[-1].append(m)  # a survivor now belongs to the enclosing scope


def autodestruct(fn=None):
    """Run fn() and free every matrix it made except those it returns.

    Without fn, returns a context manager: ``with autodestruct() as scope: ...;
    scope.keep(result)``.
    """
    if fn is None:
        return _autodestruct_block()
    made = []
    SCOPES.append(made)
    try:
        result = fn()
    finally:
        SCOPES.pop()
    scope = _Scope()
    scope.made = made
    _close(scope, result)
    return result


@contextlib.contextmanager
def _autodestruct_block():
    scope = _Scope()
    SCOPES.append(scope.made)
    try:
        yield scope
    finally:
        SCOPES.pop()
    _close(scope, None)
