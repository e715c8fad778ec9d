"""sukiyaki.matrix: a MATLAB-like n-d matrix library (the role of the original Sushi2).

Example:
    >>> import sukiyaki.matrix as M
    >>> A = M.rand(3, 4)
    >>> M.size(M.sum(A, 2))
    (3, 1)
"""

from sukiyaki.matrix.api import *  # noqa: F401,F403
from sukiyaki.matrix.api import __dict__ as _api_namespace
from sukiyaki.matrix.matrix import Matrix  # noqa: F401

__all__ = ["Matrix"] + [n for n in _api_namespace if not n.startswith("_") and n not in ("annotations",)]
