"""Training loop: mini-batches from the network's data layers, validation, checkpoints, exact resume.

A :class:`Trainer` feeds the train phase's data layers with batches of sample indices
(``{"batch": idx}``) from a seeded :class:`sukiyaki.data.loader.BatchIterator`, accumulates
gradients over ``batch_div`` sub-batches (each loss scaled by its share of the batch, i.e.
``1 / batch_div`` for equal sub-batches), and applies the optimizer once per iteration to the
network's ParamStore. Dropout and augmentation draw from Philox keyed by (seed, layer) and
counted by (iteration, sample, element), so the whole training state is: the weights and
states, the optimizer's state arrays, the iteration and the iterator's position. A checkpoint
holds exactly that in ONE safetensors file (tensors ``layer/param``,
``optimizer/layer/param/slot``; metadata ``sukiyaki_checkpoint``: a JSON string), written
atomically; resuming from it gives bitwise the weights of an uninterrupted run.

A step stays on the device: the losses of each iteration are kept there and read back every
``read_every`` iterations (for the progress bar), in one transfer; the check for a diverged
run rides on that read and names the first iteration whose loss was not finite. Weights and
checkpoints are checked for NaN and infinity before they are written, so a diverged run never
replaces a good file.

Validation runs the test phase over its whole data layer in order and reports the
sample-weighted mean of each metric (outputs of ``accuracy`` layers, then the losses).

Example:
    >>> from sukiyaki.nn.train import Trainer, make_optimizer
    >>> trainer = Trainer("sukiyaki/nets/lenet.json", make_optimizer("momentum_sgd", lr=0.01),
    ...                   batch_size=64, epochs=1, val_cycle=500)   # doctest: +SKIP
    >>> trainer.train()["val"]["accuracy"] > 0.9                    # doctest: +SKIP
    True
"""

import contextlib
import copy
import inspect
import json
import math
import os
import sys
import time
from collections import deque

import numpy as np

from sukiyaki.data.loader import BatchIterator, ShardedBatches
from sukiyaki.nn.captured import CapturedStep
from sukiyaki.nn.net import Net
from sukiyaki.nn.netdef import loads_json
from sukiyaki.nn.optim import get_optimizer, make_schedule
from sukiyaki.nn.params import atomic_write, check_writable, load_safetensors, remove_stale_temp, save_safetensors
from sukiyaki.nn.progress import ProgressBar
from sukiyaki.nn.weights import (OPTIMIZER_PREFIX, apply_weights, netdef_hash, read_weights,
                                 save_weights, weight_arrays, weights_metadata)

CHECKPOINT_KEY = "sukiyaki_checkpoint"
CHECKPOINT_VERSION = 1
METRIC_TYPES = {"accuracy"}


# ------------------------------------------------------------------ optimizers


#: Default learning rates; others get DEFAULT_LR. 0.02 rather than the original's 0.01: on the
#: bundled 8,000 digits, 10 epochs of LeNet at batch 64 reached 97.65-98.0% test accuracy over
#: 12 seeds with 0.02, 97.4-97.9% with 0.01.
DEFAULT_LR = 0.02
DEFAULT_LRS = {"adam": 0.001}


def make_optimizer(name="momentum_sgd", lr=None, momentum=0.9, weight_decay=0.0005, schedule=None, **extra):
    """An optimizer by name that remembers its schedule string (so checkpoints can rebuild it).

    Args:
        name: registered optimizer name ('sgd', 'momentum_sgd', 'adam', ...).
        lr: learning rate; None: 0.001 for adam, else 0.02.
        momentum, weight_decay: hyper-parameters (momentum only where the optimizer takes it).
        schedule: None/'constant', 'step:N[:g]' or 'cosine:N[:min]'.
        extra: other hyper-parameters of the optimizer (e.g. beta1).
    Returns:
        The optimizer, with ``schedule_spec`` set.
    Example:
        >>> make_optimizer("sgd", lr=0.1).config()["lr"]
        0.1
    """
    sched = make_schedule(schedule)
    if lr is None:
        lr = DEFAULT_LRS.get(name, DEFAULT_LR)
    probe = get_optimizer(name, lr=lr)  # raises for an unknown name
    accepted = inspect.signature(type(probe).__init__).parameters
    hyper = {"lr": lr, "weight_decay": weight_decay, **extra}
    if "momentum" in accepted:
        hyper["momentum"] = momentum
    opt = get_optimizer(name, schedule=sched, **hyper)
    opt.schedule_spec = "constant" if sched is None else str(schedule)
    return opt


def optimizer_config(opt):
    """JSON-able config of an optimizer: its config() plus the schedule string (None: custom)."""
    cfg = dict(opt.config())
    spec = getattr(opt, "schedule_spec", None)
    cfg["schedule"] = spec if spec is not None else ("constant" if opt.schedule is None else None)
    return cfg


def optimizer_from_config(cfg):
    """Rebuild an optimizer from :func:`optimizer_config` output (iteration included)."""
    if cfg.get("schedule", "constant") is None:
        raise ValueError("the optimizer has a custom learning-rate schedule that a checkpoint "
                         "cannot rebuild; give the Trainer the same optimizer")
    hyper = {k: v for k, v in cfg.items() if k not in ("type", "iteration", "schedule")}
    opt = get_optimizer(cfg["type"], schedule=make_schedule(cfg.get("schedule")), **hyper)
    opt.schedule_spec = cfg.get("schedule") or "constant"
    opt.iteration = int(cfg.get("iteration", 0))
    return opt


# ------------------------------------------------------------------ helpers


def _data_feed(net, phase):
    """(input blob names to feed with indices, sample count) of a phase's data layers."""
    sched = net.schedules.get(phase)
    if sched is None:
        raise ValueError(f"the network has no '{phase}' phase")
    layers = [(d, net.layers[d["name"]]) for d in sched.order if net.layers[d["name"]].is_data]
    if not layers:
        raise ValueError(f"phase '{phase}' has no data layer to read samples from")
    blobs = sorted({b for d, _ in layers for b in d["inputs"]})
    other = [b for b in sched.inputs if b not in blobs]
    if other:
        raise ValueError(f"phase '{phase}' needs input(s) {', '.join(other)} that no data layer takes; "
                         f"the Trainer feeds data layers only")
    counts = {d["name"]: len(layer) for d, layer in layers}
    if len(set(counts.values())) != 1:
        raise ValueError(f"phase '{phase}': data layers hold different sample counts: "
                         + ", ".join(f"'{k}' {v}" for k, v in counts.items()))
    return blobs, next(iter(counts.values()))


def _metric_blobs(net, phase):
    """Blobs reported by validation: accuracy-like outputs first, then the losses."""
    sched = net.schedules[phase]
    metrics = [b for d in sched.order
               if d["type"] in METRIC_TYPES or getattr(net.layers[d["name"]], "is_metric", False)
               for b in d["outputs"]]
    return metrics + [b for b in sched.losses if b not in metrics]


def evaluate(net, batch_size=500, phase="test", seed=0):
    """Mean metrics of a phase over its whole data layer, in order, in batches.

    Args:
        net: a :class:`sukiyaki.nn.Net` whose phase reads a data layer.
        batch_size: samples per forward pass.
        phase: usually 'test'.
        seed: seed of the layers' random draws (test-phase layers are deterministic).
    Returns:
        {metric blob: sample-weighted mean, ..., 'images': sample count}; metrics are the
        outputs of accuracy layers, then the losses.
    Example:
        >>> evaluate(net)                                          # doctest: +SKIP
        {'accuracy': 0.9885, 'loss': 0.0371, 'images': 2000}
    """
    blobs, n = _data_feed(net, phase)
    bs = _check_int("batch_size", batch_size, 1)
    names = _metric_blobs(net, phase)
    ops = net.ops
    parts, sizes = [], []
    for start in range(0, n, bs):
        idx = np.arange(start, min(n, start + bs), dtype=np.int64)
        out, _ = net.forward({b: idx for b in blobs}, phase, need_backward=False, keep=names, seed=seed)
        parts.append(ops.concat([ops.single(ops.native(out[k], (1, 1))) for k in names], 0))
        sizes.append(len(idx))
    values = np.asarray(ops.download(ops.concat(parts, 1)), dtype=np.float64).reshape(len(names), -1)
    totals = values @ np.asarray(sizes, dtype=np.float64)  # one read for the whole pass
    result = {k: float(v) / n for k, v in zip(names, totals)}
    result["images"] = n
    return result


def format_metrics(result, prefix="val"):
    """'val accuracy 0.9812, val loss 0.0593 (2000 images)' from an :func:`evaluate` result."""
    parts = [f"{prefix} {k} {v:.4f}" for k, v in result.items() if k not in ("iteration", "images")]
    return f"{', '.join(parts)} ({result['images']} images)"


def _check_int(name, value, minimum, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Trainer: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def fill_template(template, iteration):
    """A file name from a template with ``{iteration}`` (or the original's ``%d``)."""
    return os.fspath(template).replace("{iteration}", str(iteration)).replace("%d", str(iteration))


def _json_number(v):
    """A float for JSON: None where it is not finite (JSON has no NaN)."""
    v = float(v)
    return v if math.isfinite(v) else None


def check_appendable(path, what):
    """Refuse, before training, a log file that cannot be appended to (ValueError naming ``what``)."""
    check_writable(path, what)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{what} {os.fspath(path)!r}: the file exists and is not writable")


def _ensure_parent(path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)


# ------------------------------------------------------------------ the trainer


class Trainer:
    """Train a network on its data layers, with validation, weight snapshots and checkpoints.

    Args:
        net: a :class:`sukiyaki.nn.Net`, or a definition (path, JSON text, list) to build one.
        optimizer: an optimizer (see :func:`make_optimizer`); default momentum SGD, lr 0.02,
            momentum 0.9, weight decay 0.0005.
        batch_size: samples per iteration.
        batch_div: sub-batches per iteration (gradient accumulation); must divide batch_size.
        iterations, epochs: length of training (one of them; default one epoch).
        val_cycle: validate every this many iterations and at the end; 0: at the end only;
            None: never.
        val_batch_size: batch size of validation (default: batch_size).
        seed: seed of the shuffle and of the per-iteration random generators (and of the
            initialisation when ``net`` is a definition).
        save_template: weights file written at each validation and at the end, with
            ``{iteration}`` (or ``%d``) replaced; ``.bin`` gives the Sukiyaki2 format.
        save_final: weights file written at the end.
        checkpoint: checkpoint file (``{iteration}`` allowed), written every
            ``checkpoint_every`` iterations (default: at each validation) and at the end.
        device: backend when building the net (must match a given net's).
        log: function taking a line of text (validation lines, notes); default print.
        progress: draw a progress bar on this stream (default sys.stderr); False for none.
        progress_every: iterations between bar lines off a terminal (default total/10, <= 100).
        read_every: iterations between reads of the losses from the device (default 10); the
            progress bar and the divergence check are updated then.
        metrics_log: a path or a text file object to which training appends JSON lines, so a
            local run can be plotted like a distributed one: one per iteration whose loss is
            read (``{"iteration", "loss", "images_per_s", "time"}``: the total loss, the images/s
            of this train() call so far, validation time excluded, and Unix time) and one per
            validation (``{"iteration", "validation": {metric: value}, "time"}``). A path is
            opened in append mode when training starts and closed when it ends; every line is
            flushed. None: no log.
        shard: (rank, world_size) of a data-parallel run: this process trains on its slice of
            each global batch (:class:`sukiyaki.data.loader.ShardedBatches`); ``grad_hook`` then
            averages the gradients over the ranks (sukiyaki.distributed.cluster). None: alone.
        graph: on a backend with graph capture (CUDA), record the step once as a graph and
            replay it (sukiyaki.nn.captured; the same numbers, fewer launches); False: eager.
    """

    def __init__(self, net, optimizer=None, batch_size=64, batch_div=1, iterations=None, epochs=None,
                 val_cycle=500, val_batch_size=None, seed=0, save_template=None, save_final=None,
                 checkpoint=None, checkpoint_every=None, device=None, log=print, progress=None,
                 progress_every=None, read_every=10, metrics_log=None, shard=None, graph=True):
        self.seed = _check_int("seed", seed, 0)
        if not isinstance(net, Net):
            net = Net(net, device=device or "numpy", seed=self.seed)
        elif device is not None and device != net.device:
            raise ValueError(f"Trainer: device {device!r} differs from the network's {net.device!r}")
        self.net = net
        self.optimizer = optimizer if optimizer is not None else make_optimizer()
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.batch_div = _check_int("batch_div", batch_div, 1)
        if self.batch_size % self.batch_div:
            raise ValueError(f"Trainer: batch_div {self.batch_div} does not divide batch_size {self.batch_size}")
        if iterations is not None and epochs is not None:
            raise ValueError("Trainer: give iterations or epochs, not both")
        self.iterations = _check_int("iterations", iterations, 1, allow_none=True)
        self.epochs = _check_int("epochs", epochs, 1, allow_none=True)
        if self.iterations is None and self.epochs is None:
            self.epochs = 1
        self.val_cycle = _check_int("val_cycle", val_cycle, 0, allow_none=True)
        self.val_batch_size = _check_int("val_batch_size", val_batch_size or self.batch_size, 1)
        self.checkpoint_every = _check_int("checkpoint_every", checkpoint_every, 1, allow_none=True)
        if self.checkpoint_every is not None and checkpoint is None:
            raise ValueError("Trainer: checkpoint_every needs a checkpoint path")
        self.read_every = _check_int("read_every", read_every, 1)
        self.save_template, self.save_final, self.checkpoint = save_template, save_final, checkpoint
        if not (metrics_log is None or hasattr(metrics_log, "write") or isinstance(metrics_log, (str, os.PathLike))):
            raise ValueError(f"Trainer: metrics_log must be a path or a file object, got {type(metrics_log).__name__}")
        self.metrics_log = metrics_log
        self._check_outputs()
        self.log = log if log is not None else (lambda line: None)
        self.progress_stream = None if progress is False else (progress if progress not in (None, True) else sys.stderr)
        self.progress_every = progress_every
        if shard is not None:
            rank, world = (_check_int("shard rank", shard[0], 0), _check_int("shard world_size", shard[1], 1))
            if rank >= world:
                raise ValueError(f"Trainer: shard rank {rank} is out of range for world size {world}")
            shard = (rank, world)
        self.shard = shard
        #: Called with the ParamStore between the backward pass and the update (a distributed
        #: run's gradient averaging); its optional ``after_layer`` attribute is the Net's
        #: backward hook of the last sub-batch (overlap). None: nothing.
        self.grad_hook = None
        self._reduced_at = None  # the iteration whose gradients grad_hook last saw
        self.train_inputs, self.n_train = _data_feed(net, "train")
        self.iterator = self._new_iterator(self.batch_size, self.seed)
        self.iteration = 0
        self.history = []  # validation results
        self.saved = []  # weight files written
        self.loss_names = list(net.schedules["train"].losses)
        self.losses = []  # (iteration, {loss blob: value}) of the iterations read so far (the last 1000)
        self._pending = []  # (iteration, batch size, native (k, 1) losses) not yet read
        self._bar = None
        self._metrics_out = None  # the open metrics log while train() runs
        self.captured = None  # the step as a replayed device graph (CUDA), when graph=True
        if graph and callable(getattr(net.ops.backend, "capture", None)):
            if self.batch_div != 1:
                self.log("note: CUDA graph off, training eagerly: batch_div > 1 (sub-batches are not captured)")
            else:
                self.captured = CapturedStep(net, log=self._say)

    def _check_outputs(self):
        """Refuse, before any training, output files that cannot be written (exit status 2 in the CLI)."""
        for what, path in (("save_template", self.save_template), ("save_final", self.save_final),
                           ("checkpoint", self.checkpoint)):
            if path:
                target = fill_template(path, 0)
                check_writable(target, what)
                remove_stale_temp(target)
        if isinstance(self.metrics_log, (str, os.PathLike)):
            check_appendable(self.metrics_log, "metrics_log")

    def _new_iterator(self, batch_size, seed):
        it = BatchIterator(np.arange(self.n_train, dtype=np.int64).reshape(1, -1), None, batch_size,
                           shuffle=True, seed=seed)
        return it if self.shard is None else ShardedBatches(it, *self.shard)

    @property
    def total_iterations(self):
        """The iteration training stops at."""
        if self.iterations is not None:
            return self.iterations
        return self.epochs * len(self.iterator)

    @property
    def epoch(self):
        """Epochs done so far (fractional)."""
        return self.iterator.epoch + self.iterator.position / self.n_train

    def _say(self, line):
        if self._bar is not None:
            with self._bar.paused():
                self.log(line)
        else:
            self.log(line)

    def _reduce_gradients(self):
        """Between the backward pass(es) and ``optimizer.apply``: hand the store to ``grad_hook``
        (once per iteration; nothing without a hook)."""
        if self.grad_hook is not None and self._reduced_at != self.iteration:
            self._reduced_at = self.iteration
            self.grad_hook(self.net.store)

    def _after_layer_hook(self):
        """The ``after_layer`` to give the last sub-batch's backward pass (None: none)."""
        return getattr(self.grad_hook, "after_layer", None)

    # --- one iteration ---
    def step(self):
        """Train one iteration on the device; returns {loss blob: 1x1 Matrix} (the batch's mean
        loss, still on the device: ``float()`` reads it)."""
        idx = self.iterator.next_batch()[0].reshape(-1)
        net, ops = self.net, self.net.ops
        if self.captured is not None and self.batch_div == 1:
            losses = self.captured.run(idx, self.seed, self.iteration, self.train_inputs, self.optimizer)
            if losses is not None:
                self.iteration += 1
                self._last_batch = len(idx)
                if losses:
                    self._pending.append((self.iteration, len(idx), ops.concat([losses[k] for k in self.loss_names], 0)))
                return {k: ops.wrap(ops.copy(v)) for k, v in losses.items()}
        net.zero_grads()
        sums = {}
        subs = [sub for sub in np.array_split(idx, self.batch_div) if len(sub)]
        for i, sub in enumerate(subs):
            scale = len(sub) / len(idx)
            out = net.train_batch({b: sub for b in self.train_inputs}, loss_scale=scale, seed=self.seed,
                                  iteration=self.iteration,
                                  after_layer=self._after_layer_hook() if i == len(subs) - 1 else None)
            for k, v in out.items():
                part = ops.mul(ops.native(v, (1, 1)), np.float32(scale))
                sums[k] = part if k not in sums else ops.add(sums[k], part)
        self._reduce_gradients()
        self.optimizer.apply(net.store)
        self.iteration += 1
        self._last_batch = len(idx)
        if sums:
            self._pending.append((self.iteration, len(idx), ops.concat([sums[k] for k in self.loss_names], 0)))
        return {k: ops.wrap(v) for k, v in sums.items()}

    def read_losses(self):
        """Read the losses of the iterations not read yet (one transfer) and check them.

        Returns:
            [(iteration, batch size, total loss)] of those iterations.
        Raises:
            FloatingPointError naming the first iteration whose loss is NaN or infinite.
        """
        if not self._pending:
            return []
        ops = self.net.ops
        pending, self._pending = self._pending, []
        values = np.asarray(ops.download(ops.concat([v for _, _, v in pending], 1)), dtype=np.float64)
        values = values.reshape(len(self.loss_names), len(pending))
        out = []
        for j, (it, n, _) in enumerate(pending):
            total = float(values[:, j].sum())
            if not math.isfinite(total):
                raise FloatingPointError(f"iteration {it}: the loss is {total} (training diverged; try a lower "
                                         f"learning rate)")
            self.losses.append((it, {k: float(values[i, j]) for i, k in enumerate(self.loss_names)}))
            out.append((it, n, total))
        del self.losses[:-1000]
        return out

    def _check_finite_weights(self, path):
        """Refuse to write non-finite weights over anything (a diverged run)."""
        self.read_losses()
        flat = self.net.store.to_numpy()
        if flat.size and not np.all(np.isfinite(flat)):
            bad = next(n for n, a in self.net.store.arrays(flat).items() if not np.all(np.isfinite(a)))
            raise FloatingPointError(f"iteration {self.iteration}: parameter {bad!r} holds NaN or infinite values "
                                     f"(training diverged; try a lower learning rate); {os.fspath(path)!r} "
                                     f"was not written")
        return flat

    # --- validation ---
    def validate(self, batch_size=None):
        """Run the test phase over its whole data layer (see :func:`evaluate`); None without one."""
        if "test" not in self.net.schedules:
            return None
        return evaluate(self.net, batch_size or self.val_batch_size, seed=self.seed)

    def _validate_and_log(self):
        res = self.validate()
        if res is None:
            return None
        res = {"iteration": self.iteration, **res}
        self.history.append(res)
        metrics = {k: _json_number(v) for k, v in res.items() if k not in ("iteration", "images")}
        self._write_metrics({"iteration": self.iteration, "validation": metrics, "time": round(time.time(), 3)})
        self._say(f"iter {self.iteration}: {format_metrics(res)}")
        return res

    # --- the metrics log ---
    def _write_metrics(self, record):
        """One JSON line to the metrics log (when one is open), flushed."""
        out = self._metrics_out
        if out is not None:
            out.write(json.dumps(record) + "\n")
            out.flush()

    def _open_metrics_log(self):
        """Open the metrics log for train(): a path in append mode (its folder created), a file
        object as given. Returns whether train() must close it."""
        log = self.metrics_log
        if log is None or hasattr(log, "write"):
            self._metrics_out = log
            return False
        _ensure_parent(log)
        self._metrics_out = open(log, "a", encoding="utf-8")
        return True

    def _close_metrics_log(self, own):
        out, self._metrics_out = self._metrics_out, None
        if own and out is not None:
            out.close()

    # --- files ---
    def save_weights(self, path):
        """Write the current weights (format from the extension); returns the path. Non-finite
        weights are refused (FloatingPointError) and nothing is written."""
        self._check_finite_weights(path)
        _ensure_parent(path)
        save_weights(self.net, path)
        self.saved.append(os.fspath(path))
        return os.fspath(path)

    def checkpoint_state(self):
        """The JSON-able training state stored in a checkpoint's metadata."""
        return {
            "version": CHECKPOINT_VERSION,
            "iteration": self.iteration,
            "epoch": self.iterator.epoch,
            "iterator": self.iterator.state_dict(),
            "optimizer": optimizer_config(self.optimizer),
            "trainer": {"batch_size": self.batch_size, "batch_div": self.batch_div, "seed": self.seed,
                        "val_cycle": self.val_cycle, "iterations": self.iterations, "epochs": self.epochs,
                        "total_iterations": self.total_iterations,
                        "save_template": self.save_template, "save_final": self.save_final,
                        "checkpoint": self.checkpoint, "checkpoint_every": self.checkpoint_every},
            "netdef_sha256": netdef_hash(self.net),
        }

    def save_checkpoint(self, path=None):
        """Write weights, states, optimizer state and training state to ONE safetensors file.

        The file is written through a temporary file and renamed: a failure leaves any existing
        checkpoint untouched. Returns the path.
        """
        path = fill_template(path or self.checkpoint, self.iteration)
        self._check_finite_weights(path)
        tensors = weight_arrays(self.net)
        tensors.update({OPTIMIZER_PREFIX + k: v for k, v in self.optimizer.state_arrays(self.net.store).items()})
        meta = weights_metadata(self.net)
        meta["format"] = "sukiyaki-checkpoint"
        meta[CHECKPOINT_KEY] = json.dumps(self.checkpoint_state(), sort_keys=True)
        blob = save_safetensors(None, tensors, metadata=meta)
        _ensure_parent(path)
        atomic_write(path, lambda f: f.write(blob))
        return path

    @staticmethod
    def checkpoint_options(path):
        """The trainer options recorded in a checkpoint ({} if it has none or cannot be read;
        resume() reports what is wrong with it)."""
        try:
            with open(path, "rb") as f:
                _, meta = load_safetensors(f.read())
            return dict(loads_json(meta[CHECKPOINT_KEY], "checkpoint metadata")["trainer"])
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def resume(self, path):
        """Restore the whole training state from a checkpoint of :meth:`save_checkpoint`.

        Weights, states, optimizer (hyper-parameters, state, iteration), iterator position,
        batch size, batch_div and seed come from the checkpoint (a differing value of this
        Trainer's is replaced, with a note in the log); the length of training stays this
        Trainer's. Everything is checked before anything changes: a checkpoint of another
        network, or a corrupt one, raises ValueError and leaves the Trainer as it was.

        Returns:
            The iteration resumed at.
        """
        where = f"checkpoint {os.fspath(path)!r}"
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ValueError(f"{where}: cannot read it ({exc.strerror or exc})") from None
        try:
            tensors, meta = load_safetensors(data)
        except ValueError as exc:
            raise ValueError(f"{where}: not a valid checkpoint: {exc}") from None
        raw = meta.get(CHECKPOINT_KEY)
        if raw is None:
            raise ValueError(f"{where}: not a training checkpoint (no '{CHECKPOINT_KEY}' metadata); "
                             f"a weights file loads as initial weights instead")
        try:
            state = loads_json(raw, "its metadata")
            version = state["version"]
            it = _check_int("iteration", state["iteration"], 0)
            tr = state["trainer"]
            batch_size = _check_int("batch_size", tr["batch_size"], 1)
            batch_div = _check_int("batch_div", tr["batch_div"], 1)
            seed = _check_int("seed", tr["seed"], 0)
            cfg, it_state, digest = state["optimizer"], state["iterator"], state["netdef_sha256"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{where}: its training state is damaged ({exc})") from None
        if version != CHECKPOINT_VERSION:
            raise ValueError(f"{where}: checkpoint version {version!r} is not supported (expected {CHECKPOINT_VERSION})")
        mine = netdef_hash(self.net)
        if digest != mine:
            raise ValueError(f"{where} is of another network (definition hash {str(digest)[:12]}..., "
                             f"this network's is {mine[:12]}...)")
        _, arrays, _ = read_weights(self.net, path, data=data, what="checkpoint")
        opt_arrays = {k[len(OPTIMIZER_PREFIX):]: v for k, v in tensors.items() if k.startswith(OPTIMIZER_PREFIX)}
        store = self.net.store
        for name, a in opt_arrays.items():
            pname = name.rpartition("/")[0]
            entry = store.entries.get(pname)
            if entry is None or entry.kind != "trained":
                raise ValueError(f"{where}: optimizer state {name!r} is for no trained parameter of this network")
            if a.size != entry.size or a.dtype.kind != "f":
                raise ValueError(f"{where}: optimizer state {name!r} has shape {a.shape} ({a.dtype}), "
                                 f"the parameter {pname!r} has {entry.size} values")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{where}: optimizer state {name!r} holds NaN or infinite values")
        try:
            iterator = self._new_iterator(batch_size, seed)
            iterator.load_state_dict(it_state)
            current = optimizer_config(self.optimizer)
            if {k: v for k, v in current.items() if k != "iteration"} == {k: v for k, v in cfg.items() if k != "iteration"}:
                opt = copy.copy(self.optimizer)
                opt.iteration = _check_int("optimizer iteration", cfg["iteration"], 0)
            else:
                opt = optimizer_from_config(cfg)
            opt.load_state_arrays(opt_arrays, store)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{where}: cannot restore the training state ({exc})") from None
        consumed = iterator.epoch * len(iterator) + iterator.position // iterator.batch_size
        if opt.iteration != it or consumed != it:
            raise ValueError(f"{where}: its training state is inconsistent: iteration {it}, but the optimizer "
                             f"counts {opt.iteration} and the data position (epoch {iterator.epoch}, sample "
                             f"{iterator.position}) is that of iteration {consumed}")
        if it > self.total_iterations:
            raise ValueError(f"{where} is at iteration {it}, past the end of this run ({self.total_iterations} "
                             f"iterations): nothing to train (ask for more iterations or epochs)")
        # everything checked: commit
        for key, old, new in (("batch_size", self.batch_size, batch_size), ("batch_div", self.batch_div, batch_div),
                              ("seed", self.seed, seed)):
            if old != new:
                self._say(f"resume: {key} {new} from the checkpoint (this run asked for {old})")
        for key in sorted(set(cfg) | set(current)):
            if key != "iteration" and cfg.get(key) != current.get(key):
                self._say(f"resume: optimizer {key} {cfg.get(key)!r} from the checkpoint (this run asked for {current.get(key)!r})")
        apply_weights(self.net, arrays)
        self.optimizer, self.iterator = opt, iterator
        self.batch_size, self.batch_div, self.seed, self.iteration = batch_size, batch_div, seed, it
        return it

    # --- the loop ---
    def train(self):
        """Train up to the total iteration count, validating, saving and checkpointing.

        Returns:
            {'iteration', 'epoch', 'val' (last validation or None), 'train_loss' (recent mean),
            'saved' (weight files), 'checkpoint' (last written or None), 'seconds',
            'images_per_s'}.
        """
        total = self.total_iterations
        every = self.progress_every or max(1, min(100, total // 10))
        bar = ProgressBar(total, start=self.iteration, stream=self.progress_stream, every=every) \
            if self.progress_stream is not None else None
        self._bar = bar
        t0 = time.perf_counter()
        start_it, images, recent = self.iteration, 0, deque(maxlen=50)
        last_ckpt, val = None, None
        log_metrics = self.metrics_log is not None
        stamps, excluded = {}, 0.0  # iteration -> (training seconds, Unix time) at its end; validation time

        def read():  # one transfer for the losses since the last read; feeds the bar and the log
            nonlocal images
            for it, n, loss in self.read_losses():
                recent.append(loss)
                images += n
                if bar is not None:
                    bar.update(it, n, loss)
                if log_metrics:
                    seconds, wall = stamps.pop(it, None) or (time.perf_counter() - t0 - excluded, time.time())
                    self._write_metrics({"iteration": it, "loss": loss,
                                         "images_per_s": round(images / max(seconds, 1e-9), 3), "time": round(wall, 3)})

        own_log = self._open_metrics_log()
        try:
            while self.iteration < total:
                self.step()
                if log_metrics:
                    stamps[self.iteration] = (time.perf_counter() - t0 - excluded, time.time())
                if self.iteration % self.read_every == 0:
                    read()
                if self.iteration >= total:
                    break
                validate = bool(self.val_cycle) and self.iteration % self.val_cycle == 0
                ckpt = self.checkpoint and (self.iteration % self.checkpoint_every == 0 if self.checkpoint_every
                                            else validate)
                if validate or ckpt:
                    read()
                    t_val = time.perf_counter()
                    with bar.paused() if bar is not None else contextlib.nullcontext():
                        if validate:
                            val = self._validate_and_log()
                            if self.save_template:
                                self.save_weights(fill_template(self.save_template, self.iteration))
                        if ckpt:
                            last_ckpt = self.save_checkpoint()
                    excluded += time.perf_counter() - t_val
            read()
            if bar is not None:
                bar.close()
            self._bar = None
            seconds = time.perf_counter() - t0 - (bar.excluded if bar is not None else 0.0)
            if self.val_cycle is not None:
                val = self._validate_and_log()
            if self.save_template:
                self.save_weights(fill_template(self.save_template, self.iteration))
            if self.save_final:
                self.save_weights(self.save_final)
            if self.checkpoint:
                last_ckpt = self.save_checkpoint()
        finally:
            if self._bar is not None:
                self._bar.close()
            self._bar = None
            self._close_metrics_log(own_log)
        done = self.iteration - start_it
        return {"iteration": self.iteration, "epoch": self.epoch, "val": val,
                "train_loss": sum(recent) / len(recent) if recent else None, "saved": list(self.saved),
                "checkpoint": last_ckpt, "seconds": seconds, "iterations_run": done,
                "images_per_s": images / seconds if seconds > 0 else float("nan")}
