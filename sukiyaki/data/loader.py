"""Mini-batches over an (h, w, c, n) blob and (1, n) labels, shuffled per epoch, resumable.

The shuffle order of epoch ``e`` is a pure function of ``(seed, e)`` (numpy's PCG64 seeded with
the sequence ``[seed, e]``), so the whole iteration state is a few small integers:
``state_dict()`` is plain JSON (no 128-bit generator state, which a JavaScript peer could not hold
exactly) and ``load_state_dict()`` continues with the very same batches.

Example:
    >>> import numpy as np
    >>> x = np.zeros((28, 28, 1, 10), dtype=np.uint8); t = np.arange(10).reshape(1, 10)
    >>> it = BatchIterator(x, t, batch_size=4, seed=1)
    >>> [b[1].shape for b in it]                 # one epoch: 4 + 4 + 2
    [(1, 4), (1, 4), (1, 2)]
    >>> it.epoch, it.position
    (1, 0)
"""

import numpy as np

_STATE_VERSION = 1


class BatchIterator:
    """Iterate over mini-batches of a blob and its labels, one epoch per ``for`` loop.

    Args:
        images: array (..., n): the last axis indexes samples, e.g. (h, w, c, n).
        labels: array (1, n) or (n,) (returned as (1, b) batches), or None.
        batch_size: samples per batch (positive).
        shuffle: visit samples in a new random order each epoch (else in index order).
        seed: non-negative int; with ``shuffle``, epoch ``e``'s order depends only on (seed, e).
        drop_last: skip the last batch of an epoch when it is smaller than ``batch_size``.

    Iterating (``for x, t in it``) yields (images batch, labels batch) pairs, the images batch of
    shape (..., b) in the input's memory order (Fortran for a Fortran blob), up to the end of the
    current epoch, then moves to the next epoch; loop again for the next epoch. ``next_batch()``
    rolls over epochs without stopping (iteration-count training). Batches are copies.

    Example:
        >>> x = np.zeros((2, 2, 1, 6), dtype=np.float32); t = np.arange(6)
        >>> it = BatchIterator(x, t, batch_size=3, shuffle=False)
        >>> it.next_batch()[1].tolist()
        [[0, 1, 2]]
    """

    def __init__(self, images, labels, batch_size, shuffle=True, seed=0, drop_last=False):
        images = np.asarray(images)
        if images.ndim < 1:
            raise ValueError("BatchIterator: images must have a sample axis (last), got a scalar")
        n = images.shape[-1]
        if labels is not None:
            labels = np.asarray(labels)
            if labels.ndim == 1:
                labels = labels.reshape(1, -1)
            if labels.ndim != 2 or labels.shape[1] != n:
                raise ValueError(f"BatchIterator: labels must have shape (1, {n}) to match "
                                 f"images {images.shape}, got {labels.shape}")
        self.images = images
        self.labels = labels
        self.n = n
        self.batch_size = self._check_int("batch_size", batch_size, 1)
        self.seed = self._check_int("seed", seed, 0)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        if self.n == 0 or (self.drop_last and self.n < self.batch_size):
            raise ValueError(f"BatchIterator: {self.n} samples give no batch of "
                             f"{self.batch_size} (drop_last={self.drop_last})")
        self.epoch = 0
        self.position = 0
        self._order_epoch = None
        self._order = None

    @staticmethod
    def _check_int(name, value, minimum):
        if isinstance(value, (bool, np.bool_)) or int(value) != value or value < minimum:
            raise ValueError(f"BatchIterator: {name} must be an integer >= {minimum}, "
                             f"got {value!r}")
        return int(value)

    def __len__(self):
        """Number of batches in one epoch."""
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    @property
    def _epoch_end(self):
        """Sample count consumed by one epoch (less than n when drop_last cuts the tail)."""
        return len(self) * self.batch_size if self.drop_last else self.n

    def order(self, epoch=None):
        """Return the sample order of an epoch (default: the current one).

        Args:
            epoch: epoch number (non-negative int) or None.

        Returns:
            int64 array, a permutation of range(n) (or range(n) itself without shuffle).

        Example:
            >>> it = BatchIterator(np.zeros((1, 5)), None, 2, seed=3)
            >>> sorted(it.order(0).tolist())
            [0, 1, 2, 3, 4]
        """
        epoch = self.epoch if epoch is None else epoch
        if not self.shuffle:
            return np.arange(self.n)
        if self._order_epoch != (self.seed, epoch):
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._order_epoch = (self.seed, epoch)
        return self._order

    def _take(self):
        """Return the batch at the current position and advance (to the next epoch at its end)."""
        idx = self.order()[self.position:self.position + self.batch_size]
        self.position += len(idx)
        if self.position >= self._epoch_end:
            self.epoch += 1
            self.position = 0
        if self.images.flags.f_contiguous and not self.images.flags.c_contiguous:
            x = np.asfortranarray(np.take(self.images, idx, axis=-1))
        else:
            x = np.take(self.images, idx, axis=-1)
        t = None if self.labels is None else self.labels[:, idx]
        return x, t

    def next_batch(self):
        """Return the next (images, labels) batch, moving into the next epoch when needed.

        Returns:
            (x, t): images (..., b) and labels (1, b) (None without labels).

        Example:
            >>> it = BatchIterator(np.zeros((1, 3)), np.arange(3), 2, shuffle=False)
            >>> [it.next_batch()[1].tolist() for _ in range(3)]
            [[[0, 1]], [[2]], [[0, 1]]]
        """
        return self._take()

    def __iter__(self):
        """Yield the remaining batches of the current epoch."""
        start = self.epoch
        while self.epoch == start:
            yield self._take()

    def state_dict(self):
        """Return the iteration state as plain JSON-able values.

        Returns:
            dict with ``version``, ``n``, ``batch_size``, ``shuffle``, ``drop_last``, ``seed``,
            ``epoch``, ``position`` (index of the next sample in the epoch's order) and ``rng``
            (the seed sequence [seed, epoch] of the current epoch's shuffle), all ints/bools.

        Example:
            >>> import json
            >>> it = BatchIterator(np.zeros((1, 8)), None, 3)
            >>> _ = it.next_batch(); json.dumps(it.state_dict()["position"])
            '3'
        """
        return {
            "version": _STATE_VERSION,
            "n": self.n,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "rng": [self.seed, self.epoch] if self.shuffle else None,
        }

    def load_state_dict(self, state):
        """Restore a state from :meth:`state_dict`; the following batches are then identical.

        The settings saved (batch size, shuffle, drop_last, seed) replace the current ones; the
        number of samples must match.

        Args:
            state: dict as returned by :meth:`state_dict` (e.g. after a JSON round trip).

        Raises:
            ValueError: the state is for another sample count, or a value is out of range.

        Example:
            >>> a = BatchIterator(np.zeros((1, 8)), None, 3, seed=5); _ = a.next_batch()
            >>> b = BatchIterator(np.zeros((1, 8)), None, 3); b.load_state_dict(a.state_dict())
            >>> b.order().tolist() == a.order().tolist()
            True
        """
        if state.get("version", _STATE_VERSION) != _STATE_VERSION:
            raise ValueError(f"BatchIterator: state version {state.get('version')!r} is not "
                             f"supported (expected {_STATE_VERSION})")
        if int(state["n"]) != self.n:
            raise ValueError(f"BatchIterator: state is for {state['n']} samples, this iterator "
                             f"has {self.n}")
        self.batch_size = self._check_int("batch_size", state["batch_size"], 1)
        self.seed = self._check_int("seed", state["seed"], 0)
        self.shuffle = bool(state["shuffle"])
        self.drop_last = bool(state["drop_last"])
        epoch = self._check_int("epoch", state["epoch"], 0)
        position = self._check_int("position", state["position"], 0)
        if position >= self._epoch_end:
            raise ValueError(f"BatchIterator: state position {position} is past the epoch's "
                             f"end ({self._epoch_end} samples)")
        self.epoch, self.position = epoch, position


class ShardedBatches:
    """One rank's contiguous slice of each batch of a :class:`BatchIterator` (data parallelism).

    Every rank walks the same global batches (same seed); rank r of W takes slice r of
    ``np.array_split(batch, W)``: sizes differ by at most one, the first ranks take the larger.
    Everything else (epoch, position, state_dict, ...) is the global iterator's, so a
    checkpoint of one rank resumes any.

    Args:
        iterator: the global :class:`BatchIterator`.
        rank, world_size: this rank's place.

    Example:
        >>> it = ShardedBatches(BatchIterator(np.arange(10).reshape(1, -1), None, 5, shuffle=False), 1, 2)
        >>> it.next_batch()[0].tolist(), it.last_share
        ([[3, 4]], (2, 5))
    """

    def __init__(self, iterator, rank, world_size):
        if not 0 <= rank < world_size:
            raise ValueError(f"ShardedBatches: rank {rank} is out of range for world size {world_size}")
        self.iterator, self.rank, self.world_size = iterator, int(rank), int(world_size)
        self.last_share = None  # (this rank's samples, the global batch's) of the last batch

    def __getattr__(self, name):
        return getattr(self.iterator, name)

    def __len__(self):
        return len(self.iterator)

    def next_batch(self):
        """This rank's slice of the next global batch: (images, labels)."""
        x, t = self.iterator.next_batch()
        n = x.shape[-1]
        lo = self.rank * (n // self.world_size) + min(self.rank, n % self.world_size)
        hi = lo + n // self.world_size + (1 if self.rank < n % self.world_size else 0)
        self.last_share = (hi - lo, n)
        return x[..., lo:hi], None if t is None else t[:, lo:hi]
