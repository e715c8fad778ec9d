"""Text display of matrices, like MATLAB's: columns of numbers, n-d pages as (:,:,k).

Example:
    >>> import sukiyaki.matrix as M
    >>> print(M.array([[1, 2], [3, 4]], klass='int32'))
    2x2 int32
         1     2
         3     4
"""

import itertools

import numpy as np

from sukiyaki.matrix.matrix import size_str

MAX_ELEMENTS = 1000


def _format_page(page, klass):
    if klass == "logical":
        cells = [["1" if v else "0" for v in row] for row in page]
    elif klass in ("int32", "uint8"):
        cells = [[str(int(v)) for v in row] for row in page]
    else:
        finite = page[np.isfinite(page)]
        integral = finite.size == 0 or np.all(finite == np.round(finite))
        big = finite.size and np.max(np.abs(finite)) >= 1e5
        fmt = "{:.0f}" if integral and not big else ("{:.4e}" if big else "{:.4f}")
        cells = [[fmt.format(v) if np.isfinite(v) else ("NaN" if np.isnan(v) else ("Inf" if v > 0 else "-Inf")) for v in row] for row in page]
    width = max((len(c) for row in cells for c in row), default=1) + 3
    width = max(width, 6)
    return "\n".join("".join(c.rjust(width) for c in row) for row in cells)


def format_matrix(A):
    """MATLAB-like text of a Matrix: a header line with size and klass, then the values."""
    try:
        a = A.to_numpy()
        shape = A.shape
    except RuntimeError as exc:
        return f"<{A.klass} matrix: {exc}>"
    head = f"{size_str(shape)} {A.klass}" + ("" if A.device == "numpy" else f" on {A.device}")
    if a.size == 0:
        return head + " (empty)"
    if a.size > MAX_ELEMENTS:
        return head + f" ({a.size} elements; use to_numpy() to see them)"
    if a.ndim == 2:
        return head + "\n" + _format_page(a, A.klass)
    parts = [head]
    for rest in itertools.product(*[range(s) for s in a.shape[2:]][::-1]):
        rest = rest[::-1]
        label = "(:,:," + ",".join(str(r + 1) for r in rest) + ") ="
        parts.append("\n" + label + "\n" + _format_page(a[(slice(None), slice(None)) + rest], A.klass))
    return "\n".join(parts)
