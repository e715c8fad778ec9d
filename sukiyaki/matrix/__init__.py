"""sukiyaki.matrix: a MATLAB-like n-d matrix library (the role of the original Sushi2).

Modules, bottom up (each imports only those before it): ``klass`` (element types),
``matrix`` (the Matrix type and elementwise arithmetic), ``creation``, ``elementwise``,
``shape``, ``reduction``, ``indexing``, ``device``, ``display``, ``io``, ``api`` (the
MATLAB-named namespace). The Matrix methods implemented above ``matrix`` are bound here.

Example:
    >>> import sukiyaki.matrix as M
    >>> A = M.rand(3, 4)
    >>> M.size(M.sum(A, 2))
    (3, 1)
"""

from sukiyaki.matrix import creation, display, elementwise, indexing, matrix, shape
from sukiyaki.matrix.api import *  # noqa: F401,F403
from sukiyaki.matrix.api import __dict__ as _api_namespace
from sukiyaki.matrix.matrix import Matrix  # noqa: F401

matrix.METHODS.array = creation.array
matrix.METHODS.cast = creation.cast
matrix.METHODS.get = indexing.get
matrix.METHODS.set = indexing.set
matrix.METHODS.mtimes = elementwise.mtimes
matrix.METHODS.abs = elementwise.abs
matrix.METHODS.uplus = elementwise.uplus
matrix.METHODS.transpose = shape.transpose
matrix.METHODS.format = display.format_matrix

__all__ = ["Matrix"] + [n for n in _api_namespace if not n.startswith("_") and n not in ("annotations",)]
