"""The coordinator's state machine: workers, rounds, splits, aggregation. No I/O.

The coordinator holds the weights W_t (a :class:`sukiyaki.nn.Net` on the CPU, its
ParamStore and optimizer). Each iteration (a *round*) takes a batch of sample indices from
a seeded iterator and cuts it into fixed *shards* (``shard_size`` samples each); tasks are
sets of shards, handed to the workers in proportion to their measured speed. A worker
returns the gradient of its samples, already scaled by 1 / batch (its loss scale), so the
sum over the batch's shards is the batch's mean gradient whoever computed what; dropout
and augmentation draw from Philox keyed by sample, so the split changes nothing. When
every shard is in, the optimizer updates W and the next round starts.

Uploads stream in (GRADS parts, then RESULT; :mod:`.uploads`): each piece is checked when it
arrives and, outside the deterministic mode, added to the round's sums at once; the weights
go out the same way, a TASK first and then the PARAMS parts in forward order
(:class:`SendParams`, streamed by the I/O layer).

Faults: a task past its deadline, or whose worker leaves, has its shards handed to others,
and what its upload had added so far is taken out again; the round completes while one
worker lives. A late or stale result is recognised by its task id and iteration and
dropped. Every upload is checked (names, shapes, order of its pieces, finite values, a norm
bound over the whole upload) and a bad one is rejected with a reason, its shards
reassigned, the model untouched.

Every event method takes the time ``now`` and returns a list of actions (:class:`Send`,
:class:`SendParams`, :class:`Close`, :class:`Log`) for the I/O layer (``app.py``) to carry out.

Example:
    >>> st = CoordinatorState(Net("lenet"), Settings(batch_size=64))      # doctest: +SKIP
    >>> actions = st.add_worker(WorkerInfo("w1", "numpy", "cpu"), now=0.0)  # doctest: +SKIP
"""

import math
import threading
from collections import deque
from dataclasses import asdict

import numpy as np

from sukiyaki.data.loader import BatchIterator
from sukiyaki.distributed import protocol as P
from sukiyaki.distributed.codec_threads import parallel
from sukiyaki.distributed.coordinator.records import (  # noqa: F401  (the state's vocabulary, imported from here)
    STATE_PREFIX, Close, Log, Send, SendParams, Settings, Task, Worker, WorkerInfo)
from sukiyaki.distributed.coordinator.uploads import Sums, Upload, piece_stats

_F32 = np.float32
NONFINITE = " (non-finite)"


class Round:
    """One iteration's batch, cut into shards, and what has come back."""

    def __init__(self, iteration, ids, shard_size, sums):
        self.iteration = iteration
        self.ids = ids
        self.shards = [ids[i:i + shard_size] for i in range(0, len(ids), shard_size)]
        self.pending = deque(range(len(self.shards)))
        self.done = set()
        self.sums = sums  # the gradient sums (uploads.Sums)
        self.uploads = {}  # task id -> Upload still arriving
        self.accepted = []  # Uploads accepted this round (what a rebuild sums)
        self.per_shard = {}  # shard -> accepted Upload not yet added (deterministic mode: shard order)
        self.next_shard = 0  # deterministic mode: shards before this one are in the sums
        self.loss = 0.0
        self.started = None
        self.nonfinite = set()  # workers whose upload for this round held NaN or infinity
        self.state_sum = {}  # running statistics, weighted sums
        self.states = {}  # shard -> {name: weighted statistics} (deterministic mode)
        self.uploads_made = 0

    @property
    def sum(self):
        """name -> the tensor's sum so far, or None when nothing was added to it."""
        self.sums.wait()
        return self.sums.views

    @property
    def complete(self):
        return len(self.done) == len(self.shards)


def step_bounds(store, names):
    """The ranges of the trained buffer, one per trained name in buffer (forward) order, covering it
    all (the padding after a tensor goes with it)."""
    offsets = [store.entries[n].offset for n in names]
    return list(zip([0] + offsets[1:], offsets[1:] + [store.trained_size]))


class PendingStep:
    """A step of W taken a tensor at a time, in forward order: the weights of the first layers
    are new (and can be encoded and sent) while the last are still being updated.

    ``steps`` is a generator that updates one range of :func:`step_bounds` a ``next`` (and does
    what remains when exhausted): ``optimizer.apply_in_pieces``, or the local-steps mode's outer
    step. ``through(name)`` updates the tensors up to ``name`` (from any thread); ``finish()``
    the rest. The updates are elementwise: the result is the same, bit for bit, as one step.
    """

    def __init__(self, steps, names):
        self._index = {n: k for k, n in enumerate(names)}
        self._steps = steps
        self._next = 0
        self._lock = threading.Lock()
        self.done = False

    def through(self, name):
        """The tensors up to ``name`` (in forward order) are updated."""
        with self._lock:
            while not self.done and self._next <= self._index[name]:
                next(self._steps)
                self._next += 1

    def finish(self):
        """Every tensor is updated (and the optimizer's iteration counted)."""
        with self._lock:
            if not self.done:
                for _ in self._steps:
                    pass
                self.done = True


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
        self.outer_velocity = None  # the outer momentum of the local-steps mode
        self.diverged = None  # why the run stopped, when it diverged
        self.weights_generation = 0  # changes when W changes outside a round (a restored checkpoint)
        self.iterator_before_round = self.iterator.state_dict()
        self._next_worker = 1
        self._next_task = 1
        self.samples_total = 0
        store = net.store
        self._sum_layout = {n: (store.entries[n].offset, store.entries[n].size, store.entries[n].shape)
                            for n in self.names}
        self._sum_buffer = None  # the rounds' gradient sums (one float32 buffer, reused)
        #: Take each round's optimizer step a tensor at a time, as the next weights are encoded
        #: (:class:`PendingStep`; the I/O layer turns it on): ``settle()`` before reading W.
        self.deferred_step = False
        self.pending_step = None
        self._upload_names = set(self.names) | {STATE_PREFIX + n for n in self.state_names}
        self._dropped = deque(maxlen=1024)  # tasks whose upload was refused or given up: later parts dropped quietly

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
        if self._sum_buffer is None:
            store = self.net.store
            if store.ops.name == "numpy":  # the sums go straight into the gradient buffer (its padding is 0)
                self._sum_buffer = np.asarray(store.ops.download(store.grad)).reshape(-1)
            else:
                self._sum_buffer = np.zeros(store.trained_size, dtype=_F32)
        self.round = Round(self.iteration, ids, self.settings.shard_size, Sums(self._sum_layout, self._sum_buffer))
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

    def predicted_seconds(self, w, samples):
        """Seconds the worker should take for ``samples`` (its measured speed, else the speed it
        declared, else the median measured speed of the others), or None when nothing says."""
        speed = w.speed or w.info.speed
        if not speed:
            known = [x.speed for x in self.workers.values() if x.speed]
            speed = float(np.median(known)) if known else None
        return samples / speed if speed else None

    def _send_task(self, w, shards, now):
        rnd = self.round
        ids = np.concatenate([rnd.shards[s] for s in shards]).astype(np.int32)
        predicted = self.predicted_seconds(w, len(ids))
        st = self.settings
        if predicted:
            deadline = max(st.deadline, st.deadline_factor * predicted)
        else:
            deadline = st.deadline if st.first_deadline is None else max(st.deadline, st.first_deadline)
        task = Task(self._next_task, rnd.iteration, w.id, shards, ids, now, now + deadline)
        self._next_task += 1
        self.tasks[task.id] = task
        w.task = task.id
        sub = max(1, min(w.info.max_batch, len(ids)))
        # the TASK first, then the weights it needs, part after part: the worker starts as they arrive
        actions = [Send(w.id, P.TASK, {"iteration": rnd.iteration, "task": task.id,
                                       "loss_scale": len(ids) / len(rnd.ids), "deadline": deadline,
                                       "sub_batch": sub, "params_version": self.iteration,
                                       "local_steps": st.local_steps},
                        [("ids", ids, "raw")])]
        if w.params_version != self.iteration:
            actions.append(SendParams(w.id, self.iteration))
            w.params_version = self.iteration
        return actions

    def params_order(self):
        """Names of what PARAMS carry, in forward (network) order: the trained parameters, and the
        running statistics (``state:`` + name) where their layers are."""
        entries = self.net.store.entries
        return [n if entries[n].kind == "trained" else STATE_PREFIX + n for n in self.net.store.order
                if entries[n].kind in ("trained", "state")]

    def weights_changed(self):
        """Say that W changed outside a round (a restored checkpoint): PARAMS are made afresh."""
        self.weights_generation += 1
        for w in self.workers.values():
            w.params_version = -1

    def _cancel(self, task_id, why):
        task = self.tasks.pop(task_id, None)
        if task is None:
            return []
        w = self.workers.get(task.worker)
        if w is not None and w.task == task_id:
            w.task = None
        self._dropped.append(task_id)
        if self.round is not None and task.iteration == self.round.iteration:
            self._discard_upload(task_id)
            for s in task.shards:
                if s not in self.round.done:
                    self.round.pending.appendleft(s)
        return [Log(f"task {task_id} of worker {task.worker} ({len(task.ids)} samples) handed back: {why}")]

    def _discard_upload(self, task_id):
        """Take a task's partial upload out of the round: the tensors it touched are summed again
        from the uploads still standing."""
        rnd = self.round
        up = rnd.uploads.pop(task_id, None)
        if up is None:
            return
        standing = rnd.accepted + list(rnd.uploads.values())
        for name in up.added:
            rnd.sums.rebuild(name, [u for u in standing if name in u.added])

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
    def _own_task(self, wid, f, kind):
        """(the task a GRADS or RESULT frame belongs to, None), or (None, the actions refusing it)."""
        task = self.tasks.get(f["task"])
        if task is not None and task.worker == wid and task.iteration == f["iteration"]:
            return task, None
        if kind == P.GRADS and f["task"] in self._dropped:
            return None, []  # more of an upload already refused or given up: dropped quietly
        return None, [Send(wid, P.REJECT, {"reason": f"task {f['task']} of iteration {f['iteration']} is not one of "
                                                     f"yours now (late, reassigned or unknown): dropped",
                                           "refers_to": kind})]

    def _upload(self, task):
        rnd = self.round
        up = rnd.uploads.get(task.id)
        if up is None:
            weight = len(task.ids) / len(rnd.ids) if self.settings.local_steps > 1 else 1.0
            up = rnd.uploads[task.id] = Upload(task, rnd.uploads_made, weight)
            rnd.uploads_made += 1
        return up

    def on_grads(self, wid, frame, now):
        """A part of a worker's upload (GRADS): check its pieces and add them to the round's sums."""
        w = self.workers.get(wid)
        if w is None:
            return []
        task, refused = self._own_task(wid, frame.fields, P.GRADS)
        if task is None:
            return refused
        up = self._upload(task)
        part = frame.fields["part"]
        if part != up.parts:
            return self._refuse(w, task, f"part {part} of the upload arrived where part {up.parts} was due "
                                         f"(out of order or repeated)", now, P.GRADS)
        up.parts += 1
        problem = self._take(up, frame.pieces, final=False)
        return self._refuse(w, task, problem, now, P.GRADS) if problem else []

    def _take(self, up, pieces, final):
        """Check pieces of an upload and keep them (added to the sums outside the deterministic
        mode); why they are refused, or None. A non-finite gradient is noted, not refused here."""
        expected = self.shapes
        extra = [p.name for p in pieces if p.name not in self._upload_names]
        if extra:
            missing = []
            if final:
                missing = sorted(self._upload_names - set(up.received) - {p.name for p in pieces})
            return (f"gradient tensors do not match the parameters (missing {missing[:3]}, "
                    f"unexpected {sorted(extra)[:3]})")
        for p in pieces:
            state = p.name.startswith(STATE_PREFIX)
            name = p.name[len(STATE_PREFIX):] if state else p.name
            shape = tuple(expected[name])
            size = math.prod(shape)
            if getattr(p, "stats", None) is None:  # not taken where the frame was read: decoded here
                try:
                    a = p.decode()
                except P.ProtocolError as exc:
                    return str(exc)
                dtype, count = a.dtype, a.size
            else:  # its bytes were decoded for the stats (their size checked when the frame was read)
                dtype, count = np.dtype(P.DTYPES.get(p.dtype, p.dtype)), p.count
            if tuple(p.shape) != shape or dtype != _F32 or count != p.count:
                what = "running statistic" if state else "gradient"
                return f"{what} {name!r} has shape {tuple(p.shape)} {dtype}, expected {shape} float32"
            got = up.received.get(p.name, 0)
            if p.offset != got or got >= size:
                return (f"{p.name!r}: elements {p.offset}..{p.offset + p.count - 1} arrived where "
                        f"{'nothing more' if got >= size else f'element {got}'} was due (out of order or repeated)")
            up.received[p.name] = got + p.count
            if getattr(p, "stats", None) is None:
                p.stats = piece_stats(a)
            finite, sumsq = p.stats
            if sumsq is None and (self.settings.deterministic or up.nonfinite is not None):
                p.stats = piece_stats(p.decode())  # not added now: taken here (an 8-bit piece is finite)
                p.array = None
            if state:
                if not finite:
                    return f"running statistic {name!r} has shape {shape} float32 or non-finite values"
                up.pieces.append(p)
                continue
            if not finite:
                if up.nonfinite is None:
                    up.nonfinite = f"gradient {name!r} holds NaN or infinite values{NONFINITE}"
                    self._take_out(up)
                continue
            up.counted.append(p)
            up.pieces.append(p)
            if not self.settings.deterministic and up.nonfinite is None:
                self.round.sums.add(name, p.offset, p, up.weight)  # decoded as it is added, off this thread
                up.added.add(name)
                if p.data is not None:
                    p.array = None  # kept encoded (a rebuild decodes it again)
        return None

    def _take_out(self, up):
        """What an upload added so far leaves the sums (it stays on the round's list until refused)."""
        rnd = self.round
        others = [u for u in rnd.accepted + list(rnd.uploads.values()) if u is not up]
        for name in up.added:
            rnd.sums.rebuild(name, [u for u in others if name in u.added])
        up.added = set()

    def _refuse(self, w, task, problem, now, kind):
        """Refuse an upload: nothing of it stays, its shards go to others, its worker is told."""
        w.rejected += 1
        actions = [Send(w.id, P.REJECT, {"reason": problem, "refers_to": kind}),
                   Log(f"worker {w.id}: upload rejected: {problem}")]
        actions += self._cancel(task.id, "its upload was rejected")
        if w.rejected >= self.settings.max_rejections:
            actions += [Close(w.id, f"{w.rejected} uploads rejected")]
            actions += self.remove_worker(w.id, now, f"disconnected after {w.rejected} rejected uploads")
            return actions
        return actions + self.schedule(now)

    def on_result(self, wid, frame, now):
        """A worker's RESULT (the end of its upload): check the whole upload, accept it, and
        finish the round when it is complete."""
        w = self.workers.get(wid)
        if w is None:
            return []
        f = frame.fields
        w.late = False  # it answers (late results included): it may have work again
        task, refused = self._own_task(wid, f, P.RESULT)
        if task is None:
            return refused
        up = self._upload(task)
        problem = self._check_upload(task, up, frame)
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
            return self._refuse(w, task, problem, now, P.RESULT)
        # accepted
        del self.tasks[task.id]
        w.task = None
        seconds = max(f["seconds"], 1e-6)
        rate = len(task.ids) / seconds
        w.speed = rate if w.speed is None else 0.7 * w.speed + 0.3 * rate
        w.samples_done += len(task.ids)
        rnd = self.round
        del rnd.uploads[task.id]
        rnd.accepted.append(up)
        share = len(task.ids) / len(rnd.ids)
        states = {n: np.empty(math.prod(self.shapes[n]), np.float64) for n in self.state_names}
        for p in up.pieces:
            if p.name.startswith(STATE_PREFIX):
                states[p.name[len(STATE_PREFIX):]][p.offset:p.offset + p.count] = up.values(p).reshape(-1, order="F")
        for n in self.state_names:  # running statistics: averaged, weighted by samples
            v = states[n].reshape(self.shapes[n], order="F") * share
            if self.settings.deterministic:
                rnd.states.setdefault(task.shards[0], {})[n] = v
            else:
                rnd.state_sum[n] = v if n not in rnd.state_sum else rnd.state_sum[n] + v
        if self.settings.deterministic:  # one shard a task: added in shard order, whatever the arrival order
            rnd.per_shard[task.shards[0]] = up
            while rnd.next_shard in rnd.per_shard:
                done = rnd.per_shard.pop(rnd.next_shard)
                for p in done.pieces:
                    if not p.name.startswith(STATE_PREFIX):
                        rnd.sums.add(p.name, p.offset, p)
                        done.added.add(p.name)
                        if p.data is not None:
                            p.array = None  # kept encoded until the round ends
                rnd.next_shard += 1
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
        self.settle()
        net, store = self.net, self.net.store
        states = store.arrays(names=self.state_names)
        inputs = list(net.schedules["train"].inputs)
        ids = task.ids.reshape(-1).astype(np.int64)
        if self.round is not None:
            self.round.sums.wait()
        sums = None if self._sum_buffer is None else self._sum_buffer.copy()  # the round's sums may live in it
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
            if sums is not None:
                self._sum_buffer[:] = sums

    def _diverged(self, why):
        """Stop the run: it diverged (the model, not a worker, is at fault)."""
        self.stopped = True
        self.diverged = f"training diverged at iteration {self.iteration}: {why} (try a lower learning rate)"
        return [Log(self.diverged)]

    def _check_upload(self, task, up, frame):
        """Why an upload is refused once its RESULT has come (its last pieces taken), or None."""
        f = frame.fields
        if f.get("nonfinite"):
            return f"the worker's loss is not finite{NONFINITE}"
        if f["samples"] != len(task.ids):
            return f"{f['samples']} samples reported, the task had {len(task.ids)}"
        if f.get("parts", 0) != up.parts:
            return f"RESULT counts {f.get('parts', 0)} parts before it, {up.parts} arrived"
        problem = self._take(up, frame.pieces, final=True)
        if problem:
            return problem
        expected = {n: math.prod(self.shapes[n]) for n in self.names}
        expected.update({STATE_PREFIX + n: math.prod(self.shapes[n]) for n in self.state_names})
        short = sorted(n for n, size in expected.items() if up.received.get(n, 0) != size)
        if short and up.nonfinite is None:
            return f"gradient tensors do not match the parameters (missing {short[:3]}, unexpected [])"
        if up.nonfinite is not None:
            return up.nonfinite
        if not math.isfinite(f["loss"]):
            return f"loss {f['loss']!r} is not finite"
        # a gradient's norm per sample (tasks differ in size); a local-steps change as it is
        if self.round is not None:
            self.round.sums.wait()  # the stats of 8-bit pieces are taken as they are added
        norm = math.sqrt(up.sumsq()) / (max(len(task.ids), 1) if self.settings.local_steps == 1 else 1)
        bound = self.settings.max_grad_norm
        if bound is None and len(self.accepted_norms) >= 5:
            bound = 1000.0 * float(np.median(self.accepted_norms))
        if bound is not None and norm > bound:
            return f"gradient norm per sample {norm:.3g} is over the bound {bound:.3g}"
        self.accepted_norms.append(norm)
        return None

    def settle(self):
        """Finish an optimizer step still being taken (:class:`PendingStep`): W is then whole."""
        if self.pending_step is not None:
            self.pending_step.finish()
            self.pending_step = None

    def _finish_round(self, now):
        self.settle()
        rnd = self.round
        store = self.net.store
        flat = rnd.sums.finish()  # the sums, laid out as the store's trained prefix
        if self.state_names:
            if self.settings.deterministic:
                stats = {n: sum(rnd.states[sh][n] for sh in sorted(rnd.states)) for n in self.state_names}
            else:
                stats = rnd.state_sum
            store.load_arrays({n: stats[n].astype(np.float32) for n in self.state_names})
        if self.settings.local_steps > 1:
            steps = self._outer_step(flat, step_bounds(store, self.names))
            if self.deferred_step:
                self.pending_step = PendingStep(steps, self.names)
            else:
                for _ in steps:
                    pass
        else:
            if flat is not self._sum_buffer or store.ops.name != "numpy":
                store.ops.assign_(store.grad, store.ops.upload(flat))
            if self.deferred_step:  # taken as the next weights are encoded (a tensor at a time)
                steps = self.optimizer.apply_in_pieces(store, step_bounds(store, self.names), split=parallel)
                self.pending_step = PendingStep(steps, self.names)
            else:
                self.optimizer.apply(store)
        self.history.append((rnd.iteration, rnd.loss))
        self.samples_total += len(rnd.ids)
        self.iteration += self.settings.local_steps
        self.round = None
        self.iterator_before_round = self.iterator.state_dict()  # the next round starts here
        return [Log(f"iteration {self.iteration}: loss {rnd.loss:.4f} ({len(rnd.ids)} samples, "
                    f"{now - rnd.started:.2f} s)")]

    def _outer_step(self, change, bounds, chunk=1 << 16):
        """Local-steps mode: Nesterov momentum on the averaged change of the workers' weights
        (as DiLoCo): v = m v + change; W -= lr (change + m v). A generator: one range of the
        trained buffer a ``next``, worked in chunks in place (elementwise: the same bits as on
        the whole buffer at once)."""
        st, store = self.settings, self.net.store
        ops = store.ops
        if self.outer_velocity is None:
            self.outer_velocity = np.zeros_like(change)
        m, lr = np.float32(st.outer_momentum), np.float32(st.outer_lr)
        tmp = np.empty(chunk, np.float32)
        for lo, hi in bounds:
            view = ops.view(store.trained, lo, (hi - lo,))
            w = np.asarray(ops.download(view)).reshape(-1)
            in_place = ops.name == "numpy" and w.dtype == np.float32  # W's own memory
            if not in_place:
                w = np.array(w, dtype=np.float32)
            for a in range(lo, hi, chunk):
                b = min(a + chunk, hi)
                v, c, t = self.outer_velocity[a:b], change[a:b], tmp[:b - a]
                v *= m
                v += c
                np.multiply(v, m, out=t)
                t += c  # change + m v
                t *= lr
                np.subtract(w[a - lo:b - lo], t, out=w[a - lo:b - lo])
            if not in_place:
                ops.assign_(view, ops.upload(w))
            yield lo, hi

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
