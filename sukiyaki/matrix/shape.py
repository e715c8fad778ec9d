"""Size queries, predicates and shape manipulation with MATLAB semantics.

Results never share memory with their input (MATLAB value semantics), so an in-place
``set`` on one matrix never shows through another.

Example:
    >>> import sukiyaki.matrix as M
    >>> M.size(M.permute(M.zeros(2, 3, 4), [3, 1, 2]))
    (4, 2, 3)
"""

import operator

import numpy as np

from sukiyaki.matrix import klass as K
from sukiyaki.matrix.creation import parse_size, zeros
from sukiyaki.matrix.matrix import Matrix, as_matrix, normalize_shape, same_device, size_str


def size(A, dim=None):
    """size(A) -> tuple; size(A, dim) -> int (1 beyond ndims)."""
    A = as_matrix(A)
    if dim is None:
        return tuple(A.shape)
    dim = operator.index(dim)
    if dim < 1:
        raise ValueError(f"size: dim must be a positive integer, got {dim}")
    return A.shape[dim - 1] if dim <= A.ndim else 1


def numel(A):
    """Number of elements."""
    return as_matrix(A).numel


def ndims(A):
    """Number of dimensions (at least 2)."""
    return as_matrix(A).ndim


def length(A):
    """Largest dimension, or 0 for an empty matrix."""
    A = as_matrix(A)
    return 0 if A.numel == 0 else builtin_max(A.shape)


builtin_max = max


def isempty(A):
    """True when A has no elements."""
    return as_matrix(A).numel == 0


def isscalar(A):
    """True for a 1x1 matrix."""
    return as_matrix(A).shape == (1, 1)


def isrow(A):
    """True for a 1xN matrix."""
    s = as_matrix(A).shape
    return len(s) == 2 and s[0] == 1


def iscolumn(A):
    """True for an Nx1 matrix."""
    s = as_matrix(A).shape
    return len(s) == 2 and s[1] == 1


def isvector(A):
    """True for a 1xN or Nx1 matrix."""
    s = as_matrix(A).shape
    return len(s) == 2 and (s[0] == 1 or s[1] == 1)


def ismatrix(A):
    """True for a 2-d matrix."""
    return as_matrix(A).ndim == 2


def reshape(A, *sz):
    """reshape(A, m, n, ...) or reshape(A, [m, n, ...]); one size may be -1 (or None).

    Elements keep their column-major order.
    """
    A = as_matrix(A)
    vals = list(sz[0]) if len(sz) == 1 and isinstance(sz[0], (list, tuple)) else list(sz)
    if len(vals) < 2:
        raise ValueError(f"reshape: give at least two sizes, got {vals!r}")
    unknown = [i for i, v in enumerate(vals) if v is None or (not isinstance(v, Matrix) and v == -1)]
    if len(unknown) > 1:
        raise ValueError(f"reshape: only one size may be -1, got {vals!r}")
    known = [1 if i in unknown else v for i, v in enumerate(vals)]
    shape = list(parse_size(known, "reshape")) if len(known) > 1 else [known[0]]
    prod = int(np.prod(shape))
    if unknown:
        if prod == 0 or A.numel % prod:
            raise ValueError(
                f"reshape: {A.numel} elements cannot be reshaped to "
                f"{'x'.join('[]' if v is None or v == -1 else str(v) for v in vals)}"
            )
        shape[unknown[0]] = A.numel // prod
    elif prod != A.numel:
        raise ValueError(f"reshape: {A.numel} elements cannot be reshaped to {size_str(shape)}")
    be = A._backend
    return Matrix(be.copy(be.reshape(A._data, normalize_shape(shape))), A.klass, be)


def squeeze(A):
    """A without singleton dimensions (2-d matrices are unchanged)."""
    A = as_matrix(A)
    if A.ndim == 2:
        return A.copy()
    shape = [s for s in A.shape if s != 1]
    shape = normalize_shape(shape + [1] * (2 - len(shape)))
    be = A._backend
    return Matrix(be.copy(be.reshape(A._data, shape)), A.klass, be)


def transpose(A):
    """Transpose of a 2-d matrix."""
    A = as_matrix(A)
    if A.ndim != 2:
        raise ValueError(f"transpose: defined for 2-d matrices, got {size_str(A.shape)}; use permute")
    be = A._backend
    return Matrix(be.transpose(A._data, (1, 0)), A.klass, be)


t = transpose


def _check_order(order, nd, fname):
    order = [operator.index(o) for o in (order.to_numpy().reshape(-1).tolist() if isinstance(order, Matrix) else order)]
    if sorted(order) != list(range(1, len(order) + 1)) or len(order) < nd:
        raise ValueError(
            f"{fname}: order must be a permutation of 1..n with n >= ndims ({nd}), got {order}"
        )
    return order


def permute(A, order):
    """Rearrange dimensions: result dim k is A's dim order[k] (1-based)."""
    A = as_matrix(A)
    order = _check_order(order, A.ndim, "permute")
    be = A._backend
    x = A._data
    if len(order) > A.ndim:
        x = be.reshape(x, A.shape + (1,) * (len(order) - A.ndim))
    return Matrix(be.transpose(x, [o - 1 for o in order]), A.klass, be)


def ipermute(A, order):
    """Inverse of permute: ipermute(permute(A, order), order) is A."""
    A = as_matrix(A)
    order = _check_order(order, A.ndim, "ipermute")
    inverse = [0] * len(order)
    for i, o in enumerate(order):
        inverse[o - 1] = i + 1
    return permute(A, inverse)


def repmat(A, *reps):
    """Tile A: repmat(A, n) -> n x n copies, repmat(A, m, n, ...), repmat(A, [m, n])."""
    A = as_matrix(A)
    r = parse_size(reps, "repmat")
    nd = builtin_max(len(r), A.ndim)
    be = A._backend
    x = be.reshape(A._data, A.shape + (1,) * (nd - A.ndim)) if nd > A.ndim else A._data
    return Matrix(be.tile(x, tuple(r) + (1,) * (nd - len(r))), A.klass, be)


def cat(dim, *mats):
    """Concatenate along dim (1-based); 0x0 matrices are skipped, as MATLAB's []."""
    dim = operator.index(dim)
    if dim < 1:
        raise ValueError(f"cat: dim must be a positive integer, got {dim}")
    if len(mats) == 1 and isinstance(mats[0], (list, tuple)):
        mats = tuple(mats[0])
    raw = mats
    mats = [as_matrix(m) for m in mats]
    if not mats:
        return zeros(0, 0)
    # plain Python numbers do not vote for the klass (as in arithmetic), except against
    # logical: [int32(1), 5] is int32, [true, 5] single (MATLAB: int32 and double)
    klass = K.result_klass([m.klass for m, r in zip(mats, raw) if not isinstance(r, (int, float))]
                           or [m.klass for m in mats])
    if klass == "logical" and any(isinstance(r, (int, float)) and not isinstance(r, bool) for r in raw):
        klass = "single"
    parts = [m for m in mats if m.shape != (0, 0)] or mats[:1]
    nd = builtin_max(dim, *(m.ndim for m in parts))
    ref = parts[0].shape + (1,) * (nd - parts[0].ndim)
    be = parts[0]._backend
    datas = []
    for m in parts:
        s = m.shape + (1,) * (nd - m.ndim)
        if any(a != b for i, (a, b) in enumerate(zip(s, ref)) if i != dim - 1):
            raise ValueError(
                f"cat: dimensions of {size_str(parts[0].shape)} and {size_str(m.shape)} "
                f"do not agree except along dim {dim}"
            )
        if m._backend is not be:
            _, m = same_device(parts[0], m)
        x = m._data if m.klass == klass else be.cast_wrap(m._data, K.dtype_of(klass))
        datas.append(be.reshape(x, s) if s != m.shape else x)
    return Matrix(be.concat(datas, dim - 1), klass, be)


def horzcat(*mats):
    """[A, B, ...]: concatenation along dim 2."""
    return cat(2, *mats)


def vertcat(*mats):
    """[A; B; ...]: concatenation along dim 1."""
    return cat(1, *mats)
