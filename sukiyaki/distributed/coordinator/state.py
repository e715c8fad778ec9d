"""The coordinator's state machine: workers, rounds, splits, aggregation. No I/O.

The coordinator holds the weights W_t (a :class:`sukiyaki.nn.Net` on the CPU, its
ParamStore and optimizer). Each iteration (a *round*) takes a batch of sample indices from
a seeded iterator and cuts it into fixed *shards* (``shard_size`` samples each); tasks are
sets of shards, handed to the workers in proportion to their measured speed. A worker
returns the gradient of its samples, already scaled by 1 / batch (its loss scale), so the
sum over the batch's shards is the batch's mean gradient whoever computed what; dropout
and augmentation draw from Philox keyed by sample, so the split changes nothing. When
every shard is in, the optimizer updates W and the next round starts.

Faults: a task past its deadline, or whose worker leaves, has its shards handed to others;
the round completes while one worker lives. A late or stale result is recognised by its
task id and iteration and dropped. Every upload is checked (names, shapes, finite values,
a norm bound) and a bad one is rejected with a reason, its shards reassigned, the model
untouched.

Every event method takes the time ``now`` and returns a list of actions (:class:`Send`,
:class:`Close`, :class:`Log`) for the I/O layer (``app.py``) to carry out.

Example:
    >>> st = CoordinatorState(Net("lenet"), Settings(batch_size=64))      # doctest: +SKIP
    >>> actions = st.add_worker(WorkerInfo("w1", "numpy", "cpu"), now=0.0)  # doctest: +SKIP
"""

import math
from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np

from sukiyaki.data.loader import BatchIterator
from sukiyaki.distributed import protocol as P

_F32 = np.float32
NONFINITE = " (non-finite)"
#: Names of running statistics (batch normalization) in PARAMS and RESULT frames.
STATE_PREFIX = "state:"


def _sum_of_squares(a, chunk=1 << 20):
    """sum(a**2) in float64, a piece at a time (no float64 copy of a whole tensor)."""
    flat = a.reshape(-1, order="A")  # a view of a C- or F-ordered array
    total = 0.0
    for lo in range(0, flat.size, chunk):
        piece = flat[lo:lo + chunk].astype(np.float64)
        total += float(np.dot(piece, piece))
    return total


@dataclass
class Settings:
    """A distributed run's settings (all JSON-able; they go to every worker).

    Attributes:
        batch_size: samples per iteration (the whole batch, over all workers).
        iterations: rounds to run (None: until stopped).
        seed: seed of the data order and of the random draws (dropout, augmentation).
        shard_size: samples per shard, the unit of work (0: batch_size // 32, at least 1).
        codec_down / codec_up: codec of the weights sent / of the gradients received.
        deterministic: one shard per task, gradients summed in shard order: the weights are
            bit-equal whatever the number of workers.
        deadline: seconds a task may take at least; its deadline is the larger of this and
            deadline_factor times the time the worker's measured speed predicts.
        max_grad_norm: uploads whose gradient norm exceeds this are rejected (None: 1000
            times the median of the accepted norms, once 5 are known).
        val_cycle: validate on the coordinator every this many iterations (0: never).
        local_steps: H > 1 is the low-communication mode (as DiLoCo): a round is H batches;
            each worker takes H optimizer steps of its own (momentum SGD, inner_lr,
            inner_momentum) on its share, and returns the change of its weights; the
            coordinator averages the changes (weighted by samples) and takes the outer step,
            Nesterov momentum with outer_lr and outer_momentum, on that average.
    """

    batch_size: int = 64
    iterations: int = None
    seed: int = 0
    shard_size: int = 0
    codec_down: str = "raw"
    codec_up: str = "raw"
    deterministic: bool = False
    deadline: float = 30.0
    deadline_factor: float = 5.0
    max_grad_norm: float = None
    val_cycle: int = 0
    max_rejections: int = 5
    local_steps: int = 1
    inner_lr: float = 0.02
    inner_momentum: float = 0.9
    outer_lr: float = 0.7
    outer_momentum: float = 0.5

    def __post_init__(self):
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"settings: batch_size must be a positive integer, got {self.batch_size!r}")
        if not self.shard_size:
            self.shard_size = max(1, self.batch_size // 32)
        if self.shard_size < 1 or self.shard_size > self.batch_size:
            raise ValueError(f"settings: shard_size must be in 1..{self.batch_size}, got {self.shard_size}")
        if isinstance(self.local_steps, bool) or not isinstance(self.local_steps, int) or self.local_steps < 1:
            raise ValueError(f"settings: local_steps must be a positive integer, got {self.local_steps!r}")
        if self.local_steps > 1 and self.deterministic:
            raise ValueError("settings: the deterministic mode is synchronous (local_steps 1)")
        from sukiyaki.distributed.codec import CODECS

        for key in ("codec_down", "codec_up"):
            if getattr(self, key) not in CODECS:
                raise ValueError(f"settings: {key} must be one of {', '.join(CODECS)}, got {getattr(self, key)!r}")


@dataclass
class WorkerInfo:
    """What a worker says of itself when it joins."""

    name: str
    backend: str
    device: str
    codecs: list = field(default_factory=lambda: ["raw"])
    max_batch: int = 1 << 30


@dataclass
class Worker:
    """A joined worker as the coordinator sees it."""

    id: int
    info: WorkerInfo
    joined: float
    last_seen: float
    speed: float = None  # samples per second, measured
    params_version: int = -1
    task: int = None
    samples_done: int = 0
    rejected: int = 0
    late: bool = False  # missed a deadline and has not answered since: no work while others can do it
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass
class Task:
    """Shards of a round given to one worker."""

    id: int
    iteration: int
    worker: int
    shards: list
    ids: np.ndarray
    sent: float
    deadline: float


@dataclass
class Send:
    """Send a message to a worker."""

    worker: int
    kind: str
    fields: dict
    tensors: list = field(default_factory=list)


@dataclass
class Close:
    """Close a worker's connection (after sending it an error)."""

    worker: int
    reason: str


@dataclass
class Log:
    """A line for the coordinator's log."""

    text: str


class Round:
    """One iteration's batch, cut into shards, and what has come back."""

    def __init__(self, iteration, ids, shard_size, names):
        self.iteration = iteration
        self.ids = ids
        self.shards = [ids[i:i + shard_size] for i in range(0, len(ids), shard_size)]
        self.pending = deque(range(len(self.shards)))
        self.done = set()
        self.sum = {n: None for n in names}  # float64 running sums (arrival order)
        self.per_shard = {}  # shard -> {name: float32} (deterministic mode)
        self.loss = 0.0
        self.started = None
        self.nonfinite = set()  # workers whose upload for this round held NaN or infinity
        self.state_sum = {}  # running statistics, weighted sums
        self.states = {}  # shard -> {name: weighted statistics} (deterministic mode)

    @property
    def complete(self):
        return len(self.done) == len(self.shards)


class CoordinatorState:
    """The coordinator's state and its event methods (see module docstring).

    Args:
        net: the network (CPU) whose store holds W and whose train phase reads data layers.
        settings: a :class:`Settings`.
        optimizer: the optimizer applied to the averaged gradients (default momentum SGD).
    """

    def __init__(self, net, settings, optimizer=None):
        from sukiyaki.nn.train import _data_feed, make_optimizer

        self.net = net
        self.settings = settings
        self.optimizer = optimizer or make_optimizer("momentum_sgd")
        self.inputs, self.n_train = _data_feed(net, "train")
        self.data_layers = [d["name"] for d in net.schedules["train"].order if net.layers[d["name"]].is_data]
        self.iterator = BatchIterator(np.arange(self.n_train).reshape(1, -1), None, settings.batch_size,
                                      shuffle=True, seed=settings.seed)
        self.names = net.store.names("trained")
        self.state_names = net.store.names("state")  # running statistics: sent down, averaged back
        self.shapes = {n: net.store.entries[n].shape for n in self.names + self.state_names}
        self.iteration = 0
        self.workers = {}
        self.tasks = {}
        self.round = None
        self.paused = False
        self.stopped = False
        self.history = []  # (iteration, mean loss)
        self.validations = []  # (iteration, {metric: value})
        self.accepted_norms = deque(maxlen=101)
        self.broadcast = None  # the PARAMS tensors of broadcast_version (see _params_tensors)
        self.outer_velocity = None  # the outer momentum of the local-steps mode
        self.diverged = None  # why the run stopped, when it diverged
        self.broadcast_version = -1
        self.iterator_before_round = self.iterator.state_dict()
        self._next_worker = 1
        self._next_task = 1
        self.samples_total = 0

    # ------------------------------------------------------------------ workers
    def add_worker(self, info, now):
        """A worker joined (its token already checked): welcome it and give it work."""
        wid = self._next_worker
        self._next_worker += 1
        self.workers[wid] = Worker(wid, info, now, now)
        layout = [{"name": n, "shape": list(self.shapes[n])} for n in self.names]
        data = {name: f"/data/{name}.npz" for name in self.data_layers}
        welcome = Send(wid, P.WELCOME, {"worker": wid, "netdef": self.net.defs, "settings": asdict(self.settings),
                                        "layout": layout, "data": data})
        return [welcome, Log(f"worker {wid} '{info.name}' joined ({info.backend}, {info.device})")] + self.schedule(now)

    def remove_worker(self, wid, now, reason="left"):
        """A worker left or was lost: its task's shards go back to the pool."""
        w = self.workers.pop(wid, None)
        if w is None:
            return []
        actions = [Log(f"worker {wid} '{w.info.name}' {reason}")]
        if w.task is not None:
            actions += self._cancel(w.task, f"its worker {reason}")
        return actions + self.schedule(now)

    def seen(self, wid, now):
        """Any message from a worker: it is alive."""
        w = self.workers.get(wid)
        if w is not None:
            w.last_seen = now

    # ------------------------------------------------------------------ scheduling
    def _start_round(self, now):
        if self.settings.iterations is not None and self.iteration >= self.settings.iterations:
            self.stopped = True
            return [Log(f"run complete at iteration {self.iteration}")]
        self.iterator_before_round = self.iterator.state_dict()  # what a checkpoint records mid-round
        batches = [self.iterator.next_batch()[0].reshape(-1) for _ in range(self.settings.local_steps)]
        ids = np.concatenate(batches).astype(np.int64)
        self.round = Round(self.iteration, ids, self.settings.shard_size, self.names)
        self.round.started = now
        return []

    def schedule(self, now):
        """Hand pending shards to idle workers, in proportion to their speed."""
        if self.paused or self.stopped:
            return []
        actions = []
        if self.round is None:
            actions += self._start_round(now)
            if self.round is None:
                return actions
        idle = [w for w in self.workers.values() if w.task is None]
        if any(not w.late for w in self.workers.values()):  # a late worker waits while a prompt one lives
            idle = [w for w in idle if not w.late]
        rnd = self.round
        if not idle or not rnd.pending:
            return actions
        known = [w.speed for w in self.workers.values() if w.speed]  # late ones included: unknowns are not trusted more
        default = float(np.median(known)) if known else 1.0
        idle.sort(key=lambda w: -(w.speed or default))  # fastest first (the deterministic mode's one shard each)
        speeds = np.array([w.speed or default for w in idle], dtype=np.float64)
        n_shards = len(rnd.pending)
        if self.settings.deterministic:
            counts = np.ones(len(idle), dtype=int)
        else:  # largest remainders of the speed-proportional shares; every idle worker gets work if there is enough
            share = speeds / speeds.sum() * n_shards
            counts = np.floor(share).astype(int)
            for i in np.argsort(-(share - counts))[: n_shards - counts.sum()]:
                counts[i] += 1
        for w, k in zip(idle, counts):
            k = min(int(k), len(rnd.pending))
            if k <= 0:
                continue
            shards = [rnd.pending.popleft() for _ in range(k)]
            actions += self._send_task(w, shards, now)
            if not rnd.pending:
                break
        return actions

    def _send_task(self, w, shards, now):
        rnd = self.round
        ids = np.concatenate([rnd.shards[s] for s in shards]).astype(np.int32)
        predicted = len(ids) / w.speed if w.speed else 0.0
        deadline = max(self.settings.deadline, self.settings.deadline_factor * predicted)
        task = Task(self._next_task, rnd.iteration, w.id, shards, ids, now, now + deadline)
        self._next_task += 1
        self.tasks[task.id] = task
        w.task = task.id
        actions = []
        if w.params_version != self.iteration:
            actions.append(self.params_message(w))
            w.params_version = self.iteration
        sub = max(1, min(w.info.max_batch, len(ids)))
        actions.append(Send(w.id, P.TASK, {"iteration": rnd.iteration, "task": task.id,
                                           "loss_scale": len(ids) / len(rnd.ids), "deadline": deadline,
                                           "sub_batch": sub, "params_version": self.iteration,
                                           "local_steps": self.settings.local_steps},
                            [("ids", ids, "raw")]))
        return actions

    def params_message(self, w):
        """The weights for a worker (see :meth:`_params_tensors`)."""
        return Send(w.id, P.PARAMS, {"version": self.iteration, "codec": self.settings.codec_down},
                    self._params_tensors())

    def _params_tensors(self):
        """The PARAMS tensors of this version, made once and shared by every worker's message.

        Raw: W_t itself. A lossy codec: its bytes of W_t, encoded once; every worker decodes the
        same bytes, so every worker holds the same copy B_t and no copy drifts.
        """
        if self.broadcast_version != self.iteration:
            from sukiyaki.distributed import codec

            c = self.settings.codec_down
            w = self.net.store.arrays(names=self.names + self.state_names)
            if c == "raw":
                tensors = [(n, w[n], c) for n in self.names]
            else:
                tensors = [(n, P.Encoded(codec.encode(w[n], c), self.shapes[n]), c) for n in self.names]
            self.broadcast = tensors + [(STATE_PREFIX + n, w[n], "raw") for n in self.state_names]
            self.broadcast_version = self.iteration
        return self.broadcast

    def weights_changed(self):
        """Say that W changed outside a round (a restored checkpoint): PARAMS are made afresh."""
        self.broadcast_version = -1

    def _cancel(self, task_id, why):
        task = self.tasks.pop(task_id, None)
        if task is None:
            return []
        w = self.workers.get(task.worker)
        if w is not None and w.task == task_id:
            w.task = None
        if self.round is not None and task.iteration == self.round.iteration:
            for s in task.shards:
                if s not in self.round.done:
                    self.round.pending.appendleft(s)
        return [Log(f"task {task_id} of worker {task.worker} ({len(task.ids)} samples) handed back: {why}")]

    def tick(self, now):
        """Deadlines: a task past its deadline is handed to others; its worker counts as slow."""
        actions = []
        for task in list(self.tasks.values()):
            if now > task.deadline:
                w = self.workers.get(task.worker)
                if w is not None:
                    w.speed = (w.speed or 1.0) / 4
                    w.late = True
                actions += self._cancel(task.id, f"missed its deadline ({task.deadline - task.sent:.1f} s)")
        return actions + (self.schedule(now) if actions else [])

    # ------------------------------------------------------------------ results
    def on_result(self, wid, frame, now):
        """A worker's RESULT: check it, add it, and finish the round when it is complete."""
        w = self.workers.get(wid)
        if w is None:
            return []
        f = frame.fields
        w.late = False  # it answers (late results included): it may have work again
        task = self.tasks.get(f["task"])
        if task is None or task.worker != wid or task.iteration != f["iteration"]:
            return [Send(wid, P.REJECT, {"reason": f"task {f['task']} of iteration {f['iteration']} is not one of "
                                                   f"yours now (late, reassigned or unknown): dropped",
                                         "refers_to": P.RESULT})]
        problem = self._check_upload(task, frame)
        if problem and (problem.endswith(NONFINITE) or f.get("nonfinite")):
            # a worker's word is not enough to stop the run: the coordinator checks the claim itself
            if not self._finite_here(task):
                return self._diverged(f"the loss or gradients of iteration {task.iteration} are not finite "
                                      f"(worker {wid} reported it; the coordinator's own step agrees)")
            if self.settings.local_steps > 1:  # H local steps cannot be re-run here: two workers must agree
                self.round.nonfinite.add(wid)
                if len(self.round.nonfinite) >= min(2, len(self.workers)):
                    return self._diverged(f"the local steps of iteration {task.iteration} are not finite on "
                                          f"{len(self.round.nonfinite)} worker(s)")
            else:
                problem += "; the coordinator's own step on these samples is finite"
        if problem:
            w.rejected += 1
            actions = [Send(wid, P.REJECT, {"reason": problem, "refers_to": P.RESULT}),
                       Log(f"worker {wid}: upload rejected: {problem}")]
            actions += self._cancel(task.id, "its upload was rejected")
            if w.rejected >= self.settings.max_rejections:
                actions += [Close(wid, f"{w.rejected} uploads rejected")]
                actions += self.remove_worker(wid, now, f"disconnected after {w.rejected} rejected uploads")
                return actions
            return actions + self.schedule(now)
        # accepted
        del self.tasks[task.id]
        w.task = None
        seconds = max(f["seconds"], 1e-6)
        rate = len(task.ids) / seconds
        w.speed = rate if w.speed is None else 0.7 * w.speed + 0.3 * rate
        w.samples_done += len(task.ids)
        rnd = self.round
        share = len(task.ids) / len(rnd.ids)
        for n in self.state_names:  # running statistics: averaged, weighted by samples
            v = frame.tensors[STATE_PREFIX + n].astype(np.float64) * share
            if self.settings.deterministic:
                rnd.states.setdefault(task.shards[0], {})[n] = v
            else:
                rnd.state_sum[n] = v if n not in rnd.state_sum else rnd.state_sum[n] + v
        if self.settings.deterministic:
            rnd.per_shard[task.shards[0]] = {n: frame.tensors[n] for n in self.names}
        else:  # a gradient already scaled by its share; a local-steps change weighted by its samples here
            weight = len(task.ids) / len(rnd.ids) if self.settings.local_steps > 1 else 1.0
            for n in self.names:  # float64 sums, added in place (no temporary the size of the network)
                g = frame.tensors[n]
                if rnd.sum[n] is None:
                    rnd.sum[n] = np.zeros(g.shape, np.float64, order="F")
                if weight == 1.0:
                    np.add(rnd.sum[n], g, out=rnd.sum[n])
                else:
                    rnd.sum[n] += np.multiply(g, weight, dtype=np.float64)
        rnd.loss += f["loss"]
        rnd.done.update(task.shards)
        actions = []
        if rnd.complete:
            actions += self._finish_round(now)
        return actions + self.schedule(now)

    def _finite_here(self, task, piece=64):
        """Whether the task's loss and gradient at the current weights are finite, computed here.

        The check of a worker's claim that they are not: it leaves the gradient slot dirty (each
        round overwrites it) and puts the running statistics back as they were.
        """
        net, store = self.net, self.net.store
        states = store.arrays(names=self.state_names)
        inputs = list(net.schedules["train"].inputs)
        ids = task.ids.reshape(-1).astype(np.int64)
        try:
            net.zero_grads()
            loss = 0.0
            with np.errstate(all="ignore"):
                for lo in range(0, len(ids), piece):
                    part = ids[lo:lo + piece]
                    out = net.train_batch({b: part for b in inputs}, loss_scale=len(part) / len(ids),
                                          seed=self.settings.seed, iteration=task.iteration)
                    loss += sum(float(v) for v in out.values())
                grads = store.slot_arrays(store.grad)
            return math.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())
        finally:
            if self.state_names:
                store.load_arrays(states)

    def _diverged(self, why):
        """Stop the run: it diverged (the model, not a worker, is at fault)."""
        self.stopped = True
        self.diverged = f"training diverged at iteration {self.iteration}: {why} (try a lower learning rate)"
        return [Log(self.diverged)]

    def _check_upload(self, task, frame):
        """Why an upload is refused, or None."""
        f = frame.fields
        if f.get("nonfinite"):
            return f"the worker's loss is not finite{NONFINITE}"
        if f["samples"] != len(task.ids):
            return f"{f['samples']} samples reported, the task had {len(task.ids)}"
        expected = set(self.names) | {STATE_PREFIX + n for n in self.state_names}
        if set(frame.tensors) != expected:
            missing = sorted(expected - set(frame.tensors))[:3]
            extra = sorted(set(frame.tensors) - expected)[:3]
            return f"gradient tensors do not match the parameters (missing {missing}, unexpected {extra})"
        for n in self.state_names:
            v = frame.tensors[STATE_PREFIX + n]
            if tuple(v.shape) != tuple(self.shapes[n]) or v.dtype != _F32 or not np.all(np.isfinite(v)):
                return f"running statistic {n!r} has shape {tuple(v.shape)} {v.dtype} or non-finite values"
        total = 0.0
        for n in self.names:
            g = frame.tensors[n]
            if tuple(g.shape) != tuple(self.shapes[n]) or g.dtype != _F32:
                return f"gradient {n!r} has shape {tuple(g.shape)} {g.dtype}, expected {self.shapes[n]} float32"
            if not np.all(np.isfinite(g)):
                return f"gradient {n!r} holds NaN or infinite values{NONFINITE}"
            total += _sum_of_squares(g)
        if not math.isfinite(f["loss"]):
            return f"loss {f['loss']!r} is not finite"
        # a gradient's norm per sample (tasks differ in size); a local-steps change as it is
        norm = math.sqrt(total) / (max(len(task.ids), 1) if self.settings.local_steps == 1 else 1)
        bound = self.settings.max_grad_norm
        if bound is None and len(self.accepted_norms) >= 5:
            bound = 1000.0 * float(np.median(self.accepted_norms))
        if bound is not None and norm > bound:
            return f"gradient norm per sample {norm:.3g} is over the bound {bound:.3g}"
        self.accepted_norms.append(norm)
        return None

    def _finish_round(self, now):
        rnd = self.round
        if self.settings.deterministic:
            grads = {}
            for n in self.names:
                acc = np.zeros(self.shapes[n], dtype=np.float32)
                for s in range(len(rnd.shards)):  # shard order: the same bits for any split
                    acc += rnd.per_shard[s][n]
                grads[n] = acc
        else:
            grads = {n: rnd.sum[n].astype(np.float32) for n in self.names}
        store = self.net.store
        flat = np.zeros(store.trained_size, dtype=np.float32)
        for n in self.names:
            e = store.entries[n]
            flat[e.offset:e.offset + e.size] = grads[n].reshape(-1, order="F")
        if self.state_names:
            if self.settings.deterministic:
                stats = {n: sum(rnd.states[sh][n] for sh in sorted(rnd.states)) for n in self.state_names}
            else:
                stats = rnd.state_sum
            store.load_arrays({n: stats[n].astype(np.float32) for n in self.state_names})
        if self.settings.local_steps > 1:
            self._outer_step(flat)
        else:
            store.ops.assign_(store.grad, store.ops.upload(flat))
            self.optimizer.apply(store)
        self.history.append((rnd.iteration, rnd.loss))
        self.samples_total += len(rnd.ids)
        self.iteration += self.settings.local_steps
        self.round = None
        self.iterator_before_round = self.iterator.state_dict()  # the next round starts here
        return [Log(f"iteration {self.iteration}: loss {rnd.loss:.4f} ({len(rnd.ids)} samples, "
                    f"{now - rnd.started:.2f} s)")]

    def _outer_step(self, change):
        """Local-steps mode: Nesterov momentum on the averaged change of the workers' weights
        (as DiLoCo): v = m v + change; W -= lr (change + m v)."""
        st, store = self.settings, self.net.store
        if self.outer_velocity is None:
            self.outer_velocity = np.zeros_like(change)
        v = self.outer_velocity
        v *= np.float32(st.outer_momentum)
        v += change
        step = (change + np.float32(st.outer_momentum) * v) * np.float32(st.outer_lr)
        w = np.asarray(store.ops.download(store.trained), dtype=np.float32).reshape(-1)
        store.ops.assign_(store.trained, store.ops.upload(w - step))

    # ------------------------------------------------------------------ admin
    def pause(self):
        """Stop handing out work (tasks out finish)."""
        self.paused = True
        return [Log("paused")]

    def resume(self, now):
        """Hand out work again."""
        self.paused = False
        return [Log("resumed")] + self.schedule(now)

    def metrics(self, now):
        """A JSON-able summary for the dashboard."""
        return {
            "iteration": self.iteration,
            "iterations": self.settings.iterations,
            "paused": self.paused, "stopped": self.stopped, "diverged": self.diverged,
            "samples": self.samples_total,
            "workers": [{"id": w.id, "name": w.info.name, "backend": w.info.backend, "device": w.info.device,
                         "speed": w.speed, "last_seen": round(now - w.last_seen, 3), "busy": w.task is not None,
                         "samples": w.samples_done, "rejected": w.rejected, "late": w.late, "bytes_in": w.bytes_in,
                         "bytes_out": w.bytes_out} for w in self.workers.values()],
            "loss": self.history[-500:],
            "validation": self.validations[-200:],
        }
