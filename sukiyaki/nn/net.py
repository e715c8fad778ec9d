"""Static networks: a JSON definition checked once, then run as a fixed schedule.

The definition is a DAG of layers joined by named blobs. For each phase ('train',
'test') the layers of that phase are sorted topologically (file order breaks ties),
every blob's per-sample shape is inferred and checked, and what backward needs is
worked out: which blobs to keep, which inputs need gradients (per phase). Gradients of a
blob used by several layers are summed. Blobs that no layer of the phase produces are
network inputs: ``batch`` (host sample indices) for data layers, others declared with
``input_specs``.

Parameters and states live in one :class:`sukiyaki.nn.store.ParamStore`; each layer's
``weights``, ``states`` and ``grads`` are views into it. A training step (forward,
backward, update) makes no device-to-host transfer: losses come back as 1x1 matrices
on the device, read when the caller needs them.

Example:
    >>> from sukiyaki.nn import Net
    >>> net = Net("lenet")                                      # the shipped LeNet
    >>> losses = net.train_batch({"batch": range(64)})          # doctest: +SKIP
    >>> float(losses["loss"])                                   # doctest: +SKIP
    2.31...
"""

import heapq
import math

import numpy as np

import sukiyaki.nn.layers  # noqa: F401  (registers the built-in layers)
from sukiyaki.backends import get_backend
from sukiyaki.matrix import Matrix, array
from sukiyaki.nn.context import Context
from sukiyaki.nn.layer import BlobSpec, get_layer_class
from sukiyaki.nn.netdef import PHASES, read_netdef
from sukiyaki.nn.ops import Ops
from sukiyaki.nn.shapes import check_layout
from sukiyaki.nn.store import ParamStore

LOSS_TYPES = {"softmax_cross_entropy", "loss"}


def format_bytes(n):
    """'3.2 GiB' for a byte count."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024


class Schedule:
    """The fixed plan of one phase: layer order, blob specs, inputs, what backward keeps,
    and each layer's input-gradient flags."""

    def __init__(self, phase, order, specs, inputs, losses, keep, grad_layers, input_grad, host_inputs):
        self.phase = phase
        self.order = order
        self.specs = specs
        self.inputs = inputs
        self.losses = losses
        self.keep = keep
        self.grad_layers = grad_layers
        self.input_grad = input_grad
        self.host_inputs = host_inputs


class Net:
    """A network built from a definition (path, shipped name, JSON text or layer list).

    Args:
        netdef: the definition ('lenet' names a shipped one).
        device: backend name for blobs and parameters ('numpy', 'cuda', 'webgpu').
        seed: seed of parameter initialisation.
        data_sources: {data layer name: (images, labels)} replacing the sources named in
            the definition.
        input_specs: {blob: (per-sample shape, klass)} for network inputs other than batch.
        layout: blob layout of image layers ('hwcn', the original's (h, w, c, n)).
    """

    def __init__(self, netdef, device="numpy", seed=0, data_sources=None, input_specs=None, layout="hwcn"):
        self.defs = read_netdef(netdef)
        self.device = device
        self.backend = get_backend(device)
        self.ops = Ops.of(self.backend)
        self.layout = check_layout(layout)
        self.layers = {}
        for d in self.defs:
            cls = get_layer_class(d["type"], d["name"])
            layer = cls(d["name"], d["params"])
            layer.layout = self.layout
            self.layers[d["name"]] = layer
        for name, src in (data_sources or {}).items():
            layer = self.layers.get(name)
            if layer is None or not layer.is_data:
                raise ValueError(f"data_sources: '{name}' is not a data layer of this network")
            layer.set_source(*src)
        self.input_specs = {k: BlobSpec(*v) for k, v in (input_specs or {}).items()}
        self.schedules = {}
        for phase in PHASES:
            active = [d for d in self.defs if phase in d["phase"]]
            if active:
                self.schedules[phase] = self._plan(phase, active)
        self._use_flags(self.schedules.get("train") or next(iter(self.schedules.values())))
        self._check_parameter_memory()
        self.store = self._make_store()
        self._checked_batches = set()
        self.init_params(seed)

    # --- building ---
    def _plan(self, phase, active):
        producer = {}
        for d in active:
            for b in d["outputs"]:
                if b in producer:
                    raise ValueError(f"phase '{phase}': blob '{b}' is produced by both '{producer[b][0]}' and '{d['name']}'")
                producer[b] = (d["name"], d["outputs"].index(b))
        inputs, host_inputs = {}, set()
        for d in active:
            layer = self.layers[d["name"]]
            for b in d["inputs"]:
                if b in producer:
                    if layer.is_data:
                        raise layer.error(f"reads sample indices from blob '{b}', which layer '{producer[b][0]}' "
                                          f"produces; a data layer's input must be a network input (host indices)")
                    continue
                if layer.is_data:
                    host_inputs.add(b)
                if b in inputs:
                    continue
                if b in self.input_specs:
                    inputs[b] = self.input_specs[b]
                elif layer.is_data:
                    inputs[b] = BlobSpec((1,), "int32")
                else:
                    raise ValueError(
                        f"phase '{phase}': blob '{b}' (input of layer '{d['name']}') is produced by no layer; "
                        f"declare it with input_specs if it is a network input"
                    )
        order = _toposort(phase, active, {b: p for b, (p, _) in producer.items()})
        specs = dict(inputs)
        for d in order:
            layer = self.layers[d["name"]]
            layer.check_arity(len(d["inputs"]), len(d["outputs"]))
            in_specs = [specs[b] for b in d["inputs"]]
            out_specs = layer.infer(in_specs)
            if len(out_specs) != len(d["outputs"]):
                raise layer.error(f"produces {len(out_specs)} output(s) but the definition names {len(d['outputs'])}: {d['outputs']}")
            if layer.in_specs is not None and (list(layer.in_specs) != in_specs):
                raise layer.error(f"gets inputs {layer.in_specs} in one phase but {in_specs} in '{phase}'")
            layer.in_specs, layer.out_specs = in_specs, list(out_specs)
            specs.update(zip(d["outputs"], out_specs))
            self._check_labels_of(layer, d, producer)
        losses = [b for d in order if d["type"] in LOSS_TYPES or getattr(self.layers[d["name"]], "is_loss", False)
                  for b in d["outputs"]]
        needs_grad, grad_layers, input_grad = set(), set(), {}
        for d in order:
            layer = self.layers[d["name"]]
            flags = [b in needs_grad for b in d["inputs"]]
            input_grad[d["name"]] = flags
            if layer.param_shapes() or any(flags):
                grad_layers.add(d["name"])
                if not layer.is_data:
                    needs_grad.update(d["outputs"])
        keep = set()
        for d in order:
            layer = self.layers[d["name"]]
            if d["name"] in grad_layers:
                if layer.keeps_inputs:
                    keep.update(d["inputs"])
                if layer.keeps_outputs:
                    keep.update(d["outputs"])
        return Schedule(phase, order, specs, inputs, losses, keep, grad_layers, input_grad, host_inputs)

    def _check_labels_of(self, layer, d, producer):
        """A layer reading labels from a data layer: tell the data layer its class count."""
        i = getattr(layer, "label_input", None)
        if i is None or i >= len(d["inputs"]):
            return
        src = producer.get(d["inputs"][i])
        if src is None:
            return
        data = self.layers[src[0]]
        if data.is_data and src[1] == 1:
            data.expect_labels_below(layer.classes, layer.name)

    def _use_flags(self, sched):
        for name, flags in sched.input_grad.items():
            self.layers[name].input_needs_grad = flags

    def _planned_layers(self):
        return [(n, layer) for n, layer in self.layers.items() if layer.in_specs is not None]

    def _check_parameter_memory(self):
        """Refuse, before allocating, parameters larger than the device can hold (naming the layer)."""
        limit = self.ops.available_memory()
        sizes = []
        for name, layer in self._planned_layers():
            shapes = layer.param_shapes() | layer.state_shapes()
            sizes.append((4 * sum(math.prod(s) for s in shapes.values()), name, shapes))
        total = 2 * sum(s for s, _, _ in sizes)  # parameters and gradients
        if limit is not None and total > limit and sizes:
            nbytes, name, shapes = max(sizes)
            layer = self.layers[name]
            detail = ", ".join(f"{k} {'x'.join(map(str, s))}" for k, s in shapes.items())
            raise MemoryError(f"{layer.type_name} '{name}': its parameters ({detail}) need {format_bytes(nbytes)}; "
                              f"the network's parameters and gradients need {format_bytes(total)}, more than the "
                              f"{format_bytes(limit)} the {self.device} backend can allocate")

    def _make_store(self):
        trained = set()
        if "train" in self.schedules:
            trained = {d["name"] for d in self.schedules["train"].order}
        entries = []
        for name, layer in self._planned_layers():
            for k, s in layer.param_shapes().items():
                entries.append((f"{name}/{k}", s, "trained" if name in trained else "param"))
            for k, s in layer.state_shapes().items():
                entries.append((f"{name}/{k}", s, "state"))
        store = ParamStore(self.ops, entries)
        for name, layer in self._planned_layers():
            layer.weights = {k: store.view(f"{name}/{k}") for k in layer.param_shapes()}
            layer.states = {k: store.view(f"{name}/{k}") for k in layer.state_shapes()}
            layer.grads = {k: store.grad_view(f"{name}/{k}") for k in layer.param_shapes() if name in trained}
        return store

    def init_params(self, seed=0):
        """(Re)initialise every parameter and state from a seeded generator (on the host, then
        one upload of the whole store)."""
        rng = np.random.default_rng(seed)
        arrays = {}
        for name, layer in self._planned_layers():
            arrays.update({f"{name}/{k}": v for k, v in layer.init_params(rng).items()})
            arrays.update({f"{name}/{k}": v for k, v in layer.init_states().items()})
        self.store.load_arrays(arrays)
        self.store.zero_grad()

    # --- parameters ---
    def parameters(self):
        """{'layer/param': Matrix} of trainable parameters (views into the store), in definition order."""
        return {f"{n}/{k}": v for n, layer in self.layers.items() for k, v in layer.weights.items()}

    def gradients(self):
        """{'layer/param': Matrix} of the accumulated gradients of the trained parameters."""
        return {f"{n}/{k}": v for n, layer in self.layers.items() for k, v in layer.grads.items()}

    def states(self):
        """{'layer/state': Matrix} of non-trainable state (running statistics)."""
        return {f"{n}/{k}": v for n, layer in self.layers.items() for k, v in layer.states.items()}

    def param_shapes(self):
        """{'layer/param': shape} the network expects (parameters and states)."""
        out = {}
        for n, layer in self._planned_layers():
            out.update({f"{n}/{k}": tuple(s) for k, s in layer.param_shapes().items()})
            out.update({f"{n}/{k}": tuple(s) for k, s in layer.state_shapes().items()})
        return out

    def set_parameter(self, full_name, value):
        """Overwrite a parameter or state by name, in place, with a Matrix or array of its shape."""
        entry = self.store.entries.get(full_name)
        if entry is None:
            raise KeyError(f"the network has no parameter '{full_name}'")
        if isinstance(value, Matrix):
            value = value.to_numpy()
        arr = np.asarray(value, dtype=np.float32)
        if arr.size != entry.size:
            raise ValueError(f"parameter '{full_name}' has shape {arr.shape}, the network expects {entry.shape}")
        if arr.shape != entry.shape:
            arr = arr.reshape(entry.shape, order="F")
        self.store.load_arrays({full_name: arr})

    def zero_grads(self):
        """Set the accumulated gradients to zero."""
        self.store.zero_grad()

    # --- running ---
    def forward(self, inputs, phase="test", need_backward=False, keep=(), seed=0, iteration=0, before_layer=None,
                given=None, ctx=None):
        """Run the phase's schedule.

        Args:
            inputs: {blob: Matrix or array} for the phase's network inputs (host integer
                indices for data layers' ``batch``).
            need_backward: keep what backward() needs.
            keep: extra blob names to return besides the losses and final outputs.
            seed, iteration: key and counter of the random draws (dropout, augmentation).
            before_layer: a function called with each layer's name just before it runs (e.g.
                to wait until its weights have arrived), or None.
            given: {blob: Matrix} computed already (the data layers' outputs, see
                :meth:`run_data_layers`): the layers that produce them are skipped.
            ctx: the pass's Context when the caller made it (seed and iteration are then its own).
        Returns:
            (blobs, ctx): the kept blobs by name (matrices on the device), and the context
            backward() takes.
        """
        sched = self.schedules.get(phase)
        if sched is None:
            raise ValueError(f"the network has no layers in phase '{phase}'")
        if not isinstance(inputs, dict):
            raise ValueError(f"inputs must be a dict of blob name -> values, got {type(inputs).__name__}")
        if ctx is None:
            ctx = Context(phase, need_backward, self.device, seed=seed, iteration=iteration)
        given = dict(given or {})
        order = [d for d in sched.order if not (d["outputs"] and all(b in given for b in d["outputs"]))]
        needed = {b for d in order for b in d["inputs"]}
        blobs = given
        for b, spec in sched.inputs.items():
            if b not in needed:
                continue
            if b not in inputs:
                raise ValueError(f"missing network input '{b}' ({spec}) for phase '{phase}'")
            blobs[b] = self._host_indices(b, inputs[b]) if b in sched.host_inputs else self._input_matrix(b, spec, inputs[b])
        self._use_flags(sched)
        remaining = {}
        for d in order:
            for b in d["inputs"]:
                remaining[b] = remaining.get(b, 0) + 1
        wanted = set(keep) | set(sched.losses)
        if need_backward:
            wanted |= sched.keep
        first = True
        for d in order:
            layer = self.layers[d["name"]]
            if before_layer is not None:
                before_layer(d["name"])
            outs = layer.forward([blobs[b] for b in d["inputs"]], ctx)
            if first and not layer.is_data:
                first = False
                self._check_batch_memory(sched, blobs, d)
            blobs.update(zip(d["outputs"], outs))
            for b in d["inputs"]:
                remaining[b] -= 1
                if remaining[b] == 0 and b not in wanted:
                    del blobs[b]
        return blobs, ctx

    def run_data_layers(self, inputs, ctx):
        """The outputs of the phase's data layers (host sample indices in, device blobs out), as
        :meth:`forward`'s ``given``: a captured step runs them eagerly, the rest on the device."""
        sched = self.schedules[ctx.phase]
        out = {}
        for d in sched.order:
            layer = self.layers[d["name"]]
            if layer.is_data:
                ins = [self._host_indices(b, inputs[b]) if b in sched.host_inputs else out[b] for b in d["inputs"]]
                out.update(zip(d["outputs"], layer.forward(ins, ctx)))
        return out

    def _check_batch_memory(self, sched, blobs, first):
        """Before the first computing layer of a batch size: refuse a blob larger than the device can hold."""
        ref = next((b for b in first["inputs"] if isinstance(blobs.get(b), Matrix)), None)
        if ref is None:
            return
        spec = sched.specs[ref]
        n = blobs[ref].numel // max(spec.size, 1)
        if (sched.phase, n) in self._checked_batches:
            return
        limit = self.ops.available_memory()
        if limit is not None:
            for d in sched.order:
                for b in d["outputs"]:
                    nbytes = 4 * sched.specs[b].size * n
                    if nbytes > limit:
                        layer = self.layers[d["name"]]
                        raise MemoryError(f"{layer.type_name} '{d['name']}': output '{b}' ({sched.specs[b]}) for a "
                                          f"batch of {n} needs {format_bytes(nbytes)}, more than the "
                                          f"{format_bytes(limit)} the {self.device} backend can allocate")
        self._checked_batches.add((sched.phase, n))

    @staticmethod
    def _host_indices(name, value):
        """Sample indices for data layers, kept on the host as int64 (checked there)."""
        arr = value.to_numpy() if isinstance(value, Matrix) else np.asarray(list(value) if isinstance(value, range) else value)
        if arr.dtype.kind not in "biuf" or arr.dtype.kind == "b":
            raise ValueError(f"network input '{name}': expected integer sample indices, got {arr.dtype}")
        arr = arr.reshape(-1)
        if arr.dtype.kind == "f" and arr.size and not np.all(np.isfinite(arr) & (arr == np.trunc(arr))):
            raise ValueError(f"network input '{name}': values must be integers")
        if arr.size == 0:
            raise ValueError(f"network input '{name}': the batch is empty")
        if arr.min() < -2 ** 31 or arr.max() >= 2 ** 31:
            raise ValueError(f"network input '{name}': values must fit int32")
        return arr.astype(np.int64)

    def _input_matrix(self, name, spec, value):
        """A network input checked against its per-sample spec, as a Matrix on our device.

        Host values are checked (integer klasses: integers in range); a Matrix already on
        the device is checked by shape only, without reading it back.
        """
        if isinstance(value, Matrix) and value.device == self.device:
            shape, n_values = value.shape, value.numel
            arr = None
        else:
            arr = value.to_numpy() if isinstance(value, Matrix) else np.asarray(list(value) if isinstance(value, range) else value)
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"network input '{name}': expected numbers, got {arr.dtype}")
            if spec.klass in ("int32", "uint8"):
                if arr.dtype.kind == "f" and arr.size and not np.all(np.isfinite(arr) & (arr == np.trunc(arr))):
                    raise ValueError(f"network input '{name}': values must be integers")
                info = np.iinfo(spec.klass)
                if arr.size and (arr.min() < info.min or arr.max() > info.max):
                    raise ValueError(f"network input '{name}': values must fit {spec.klass} ({info.min}..{info.max})")
            shape, n_values = arr.shape, arr.size
        if spec.shape != (1,):
            lead = tuple(shape[:len(spec.shape)])
            padded = lead + (1,) * (len(spec.shape) - len(lead))
            if len(shape) > len(spec.shape) + 1 or padded != tuple(spec.shape):
                raise ValueError(f"network input '{name}': expected per-sample shape {spec} (then the batch), "
                                 f"got an array of shape {tuple(shape)}")
        n = n_values // max(spec.size, 1)
        if n == 0:
            raise ValueError(f"network input '{name}': the batch is empty")
        if n * max(spec.size, 1) != n_values:
            raise ValueError(f"network input '{name}': {n_values} values are not a whole number of samples of {spec}")
        if arr is None:
            return value if value.klass == spec.klass else value.astype(spec.klass)
        if spec.shape == (1,):  # one value per sample (indices, labels): any vector
            arr = arr.reshape(1, -1)
        return array(arr, klass=spec.klass, device=self.device)

    def backward(self, blobs, ctx, loss_scale=1.0, after_layer=None):
        """Accumulate parameter gradients (into the store) from a forward(need_backward=True) pass.

        ``after_layer``, when given, is called with each layer's name once its backward has
        run (its parameters' gradients of this pass are then in the store: the last layers
        come first), and with the names of the layers backward skips, at the end.
        """
        sched = self.schedules[ctx.phase]
        ops = self.ops
        self._use_flags(sched)
        deltas, done = {}, set()
        for b in sched.losses:
            deltas[b] = ops.wrap(ops.full((1, 1), np.float32(loss_scale)))
        for d in reversed(sched.order):
            if d["name"] not in sched.grad_layers:
                continue
            tops = [deltas.pop(b, None) for b in d["outputs"]]
            if all(t is None for t in tops):
                continue
            layer = self.layers[d["name"]]
            if any(t is None for t in tops):  # an output no loss reads: a zero gradient of the batch's size
                n = next(t.numel // max(s.size, 1) for t, s in zip(tops, layer.out_specs) if t is not None)
                tops = [t if t is not None else self.ops.wrap(self.ops.zeros(tuple(s.shape) + (n,)))
                        for t, s in zip(tops, layer.out_specs)]
            ins = [blobs.get(b) for b in d["inputs"]]
            outs = [blobs.get(b) for b in d["outputs"]]
            bottoms = layer.backward(ins, outs, tops, ctx)
            for b, flag, delta in zip(d["inputs"], sched.input_grad[d["name"]], bottoms):
                if flag and delta is not None:
                    deltas[b] = delta if b not in deltas else self._sum(deltas[b], delta)
            if after_layer is not None:
                after_layer(d["name"])
                done.add(d["name"])
        if after_layer is not None:
            for d in reversed(sched.order):
                if d["name"] not in done:
                    after_layer(d["name"])

    def _sum(self, a, b):
        ops = self.ops
        x = ops.native(a)
        return ops.wrap(ops.add(x, ops.native(b, x.shape)))

    def train_batch(self, inputs, loss_scale=1.0, seed=0, iteration=0, before_layer=None, after_layer=None,
                    given=None, ctx=None):
        """Forward and backward on one (sub-)batch in the train phase, gradients added to the store.

        ``before_layer`` and ``after_layer``: see :meth:`forward` and :meth:`backward`.

        Returns:
            {loss blob: 1x1 Matrix on the device} (``float(m)`` reads one back).
        """
        blobs, ctx = self.forward(inputs, "train", need_backward=True, seed=seed, iteration=iteration,
                                  before_layer=before_layer, given=given, ctx=ctx)
        self.backward(blobs, ctx, loss_scale, after_layer=after_layer)
        return {b: blobs[b] for b in self.schedules["train"].losses}


def _toposort(phase, active, producer):
    """Kahn's algorithm with file order for ties; a cycle is a ValueError naming its layers."""
    index = {d["name"]: i for i, d in enumerate(active)}
    deps = {d["name"]: {producer[b] for b in d["inputs"] if b in producer} for d in active}
    users = {d["name"]: [] for d in active}
    for name, ds in deps.items():
        for p in ds:
            users[p].append(name)
    pending = {n: len(ds) for n, ds in deps.items()}
    order = []
    heap = [(index[n], n) for n, ds in deps.items() if not ds]
    heapq.heapify(heap)
    while heap:
        _, n = heapq.heappop(heap)
        order.append(active[index[n]])
        for u in users[n]:
            pending[u] -= 1
            if pending[u] == 0:
                heapq.heappush(heap, (index[u], u))
    if len(order) != len(active):
        stuck = sorted((n for n, c in pending.items() if c > 0), key=index.get)
        raise ValueError(f"phase '{phase}': the network has a cycle through layers {', '.join(stuck)}")
    return order
