"""Primitives written once for backends whose native arrays follow numpy's array API.

The numpy and CUDA (CuPy) backends share these: shape and indexing moves, which behave
alike in both libraries. Each backend sets ``xp`` (its array module) and keeps what
differs (arithmetic, reductions, random numbers, transfers) in its own folder.
"""


class ArrayModulePrimitives:
    """Mixin: shape and indexing primitives on column-major arrays of module ``xp``."""

    xp = None

    def fortran(self, x):
        """x itself when column-major, else a column-major copy."""
        return x if x.flags.f_contiguous else self.xp.asfortranarray(x)

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype, order="F")

    def eye(self, n, m, dtype):
        return self.xp.asfortranarray(self.xp.eye(n, m, dtype=dtype))

    def copy(self, x):
        return x.copy(order="F")

    def where(self, cond, x, y):
        return self.fortran(self.xp.where(cond, x, y))

    def reshape(self, x, shape):
        return self.xp.reshape(x, shape, order="F")

    def view(self, buffer, offset, shape):
        n = 1
        for s in shape:
            n *= s
        return buffer[offset:offset + n].reshape(shape, order="F")

    def transpose(self, x, axes):
        return self.xp.transpose(x, axes).copy(order="F")

    def tile(self, x, reps):
        return self.xp.asfortranarray(self.xp.tile(x, reps))

    def _ix(self, x, keys):
        xp = self.xp
        return xp.ix_(*[xp.arange(n)[k] if isinstance(k, slice) else k for k, n in zip(keys, x.shape)])

    def gather(self, x, keys):
        if all(isinstance(k, slice) for k in keys):
            return x[tuple(keys)].copy(order="F")
        return self.fortran(x[self._ix(x, keys)])

    def scatter(self, x, keys, values):
        if all(isinstance(k, slice) for k in keys):
            x[tuple(keys)] = values
        else:
            x[self._ix(x, keys)] = values

    def take_linear(self, x, idx):
        return self.fortran(x.reshape(-1, order="F")[idx])

    def put_linear(self, x, idx, values):
        x.reshape(-1, order="F")[idx] = values  # a view: x is column-major

    def nonzero_linear(self, x):
        return self.xp.flatnonzero(x.reshape(-1, order="F")).astype(self.xp.int64)
