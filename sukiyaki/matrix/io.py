"""Reading and writing matrices as numpy ``.npy`` / ``.npz`` files.

numpy shapes are MATLAB sizes (a 1-d array of n reads as n x 1); float64 and float16
read as single unless ``klass`` says otherwise, other integer types as int32, bool as
logical. Files are parsed by :mod:`sukiyaki.matrix.npyformat` (no pickle).

Example:
    >>> import io, sukiyaki.matrix as M
    >>> buf = io.BytesIO(); M.save(buf, M.eye(2)); _ = buf.seek(0)
    >>> M.load(buf).shape
    (2, 2)
"""

import os

from sukiyaki.matrix import npyformat
from sukiyaki.matrix.creation import array
from sukiyaki.matrix.matrix import Matrix, as_matrix


def load(source, klass=None):
    """Read a .npy file (path, bytes or binary file) into a Matrix.

    Args:
        source: path, bytes or binary file object.
        klass: convert to this klass; by default the file's dtype decides.
    """
    return array(npyformat.read_npy(source), klass=klass)


def save(dest, A, version=None, fortran_order=True):
    """Write A to a .npy file in column-major (Fortran) order unless fortran_order=False."""
    a = as_matrix(A).to_numpy()
    npyformat.write_npy(dest, a, version=version, fortran_order=fortran_order)


def loadz(source, klass=None):
    """Read a .npz file into a dict of name -> Matrix."""
    return {name: array(a, klass=klass) for name, a in npyformat.read_npz(source).items()}


def savez(dest, compressed=False, **mats):
    """Write matrices by name to a .npz file (deflate-compressed when compressed=True)."""
    if not mats:
        raise ValueError("savez: give at least one matrix by name, e.g. savez(path, W=W)")
    arrays = {}
    for name, m in mats.items():
        if not isinstance(m, Matrix):
            m = as_matrix(m)
        arrays[name] = m.to_numpy()
    npyformat.write_npz(dest, arrays, compressed=compressed)


def _fspath(p):
    return os.fspath(p) if isinstance(p, (str, os.PathLike)) else p
