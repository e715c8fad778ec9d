"""Static networks: a JSON definition checked once, then run as a fixed schedule.

The definition is a DAG of layers joined by named blobs. For each phase ('train',
'test') the layers of that phase are sorted topologically (file order breaks ties),
every blob's per-sample shape is inferred and checked, and what backward needs is
worked out: which blobs to keep, which inputs need gradients. Gradients of a blob used
by several layers are summed. Blobs that no layer of the phase produces are network
inputs: ``batch`` (sample indices) for data layers, others declared with
``input_specs``.

Example:
    >>> from sukiyaki.nn import Net
    >>> net = Net("sukiyaki/nets/lenet.json")                 # doctest: +SKIP
    >>> loss = net.train_batch({"batch": range(64)})          # doctest: +SKIP
"""

import numpy as np

import sukiyaki.nn.layers  # noqa: F401  (registers the built-in layers)
from sukiyaki.backends import get_backend
from sukiyaki.matrix import Matrix
from sukiyaki.nn.context import Context
from sukiyaki.nn.layer import BlobSpec, get_layer_class
from sukiyaki.nn.netdef import PHASES, read_netdef

LOSS_TYPES = {"softmax_cross_entropy", "loss"}


class Schedule:
    """The fixed plan of one phase: layer order, blob specs, inputs, what backward keeps."""

    def __init__(self, phase, order, specs, inputs, losses, keep, grad_layers):
        self.phase = phase
        self.order = order
        self.specs = specs
        self.inputs = inputs
        self.losses = losses
        self.keep = keep
        self.grad_layers = grad_layers


class Net:
    """A network built from a definition (path, JSON text or layer list).

    Args:
        netdef: the definition.
        device: backend name for blobs and parameters ('numpy', 'cuda', 'webgpu').
        seed: seed of parameter initialisation.
        data_sources: {data layer name: (images, labels)} replacing the sources named in
            the definition.
        input_specs: {blob: (per-sample shape, klass)} for network inputs other than batch.
    """

    def __init__(self, netdef, device="numpy", seed=0, data_sources=None, input_specs=None):
        self.defs = read_netdef(netdef)
        self.device = device
        self.backend = get_backend(device)
        self.layers = {}
        for d in self.defs:
            cls = get_layer_class(d["type"], d["name"])
            self.layers[d["name"]] = cls(d["name"], d["params"])
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
        self.init_params(seed)

    # --- building ---
    def _plan(self, phase, active):
        producer = {}
        for d in active:
            for b in d["outputs"]:
                if b in producer:
                    raise ValueError(f"phase '{phase}': blob '{b}' is produced by both '{producer[b]}' and '{d['name']}'")
                producer[b] = d["name"]
        inputs = {}
        for d in active:
            layer = self.layers[d["name"]]
            for b in d["inputs"]:
                if b in producer or b in inputs:
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
        order = _toposort(phase, active, producer)
        specs = dict(inputs)
        for d in order:
            layer = self.layers[d["name"]]
            in_specs = [specs[b] for b in d["inputs"]]
            out_specs = layer.infer(in_specs)
            if len(out_specs) != len(d["outputs"]):
                raise layer.error(f"produces {len(out_specs)} output(s) but the definition names {len(d['outputs'])}: {d['outputs']}")
            if layer.in_specs is not None and (list(layer.in_specs) != in_specs):
                raise layer.error(f"gets inputs {layer.in_specs} in one phase but {in_specs} in '{phase}'")
            layer.in_specs, layer.out_specs = in_specs, list(out_specs)
            specs.update(zip(d["outputs"], out_specs))
        losses = [b for d in order if d["type"] in LOSS_TYPES or getattr(self.layers[d["name"]], "is_loss", False)
                  for b in d["outputs"]]
        needs_grad, grad_layers = set(), set()
        for d in order:
            layer = self.layers[d["name"]]
            flags = [b in needs_grad for b in d["inputs"]]
            layer.input_needs_grad = flags
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
        return Schedule(phase, order, specs, inputs, losses, keep, grad_layers)

    def init_params(self, seed=0):
        """(Re)initialise every parameter and state from a seeded generator."""
        rng = np.random.default_rng(seed)
        for layer in self.layers.values():
            if layer.in_specs is None:
                continue
            layer.weights = {k: self._matrix(v) for k, v in layer.init_params(rng).items()}
            layer.states = {k: self._matrix(v) for k, v in layer.init_states().items()}
            layer.grads = {}

    def _matrix(self, a):
        a = np.asarray(a, dtype=np.float32)
        if a.ndim == 1:
            a = a.reshape(-1, 1)
        return Matrix(self.backend.from_numpy(np.asfortranarray(a)), "single", self.backend)

    # --- parameters ---
    def parameters(self):
        """{'layer/param': Matrix} of trainable parameters, in definition order."""
        return {f"{n}/{k}": v for n, layer in self.layers.items() for k, v in layer.weights.items()}

    def gradients(self):
        """{'layer/param': Matrix} of accumulated gradients."""
        return {f"{n}/{k}": v for n, layer in self.layers.items() for k, v in layer.grads.items()}

    def states(self):
        """{'layer/state': Matrix} of non-trainable state (running statistics)."""
        return {f"{n}/{k}": v for n, layer in self.layers.items() for k, v in layer.states.items()}

    def param_shapes(self):
        """{'layer/param': shape} the network expects (parameters and states)."""
        out = {}
        for n, layer in self.layers.items():
            if layer.in_specs is None:
                continue
            out.update({f"{n}/{k}": tuple(s) for k, s in layer.param_shapes().items()})
            out.update({f"{n}/{k}": tuple(s) for k, s in layer.state_shapes().items()})
        return out

    def set_parameter(self, full_name, value):
        """Replace a parameter or state by name with a Matrix or array of its shape."""
        layer_name, _, key = full_name.rpartition("/")
        layer = self.layers.get(layer_name)
        store = None
        if layer is not None:
            store = layer.weights if key in layer.weights else layer.states if key in layer.states else None
        if store is None:
            raise KeyError(f"the network has no parameter '{full_name}'")
        if isinstance(value, Matrix):
            value = value.to_numpy()
        arr = np.array(value, dtype=np.float32, copy=True)  # weights are updated in place: never share
        expected = tuple(store[key].shape)
        want = (layer.param_shapes() | layer.state_shapes())[key]
        if arr.size != int(np.prod(want)):
            raise ValueError(f"parameter '{full_name}' has shape {arr.shape}, the network expects {tuple(want)}")
        value = self._matrix(arr.reshape(expected, order="F") if arr.shape != expected else arr)
        store[key] = value

    def zero_grads(self):
        """Forget accumulated gradients."""
        for layer in self.layers.values():
            layer.grads = {}

    # --- running ---
    def forward(self, inputs, phase="test", need_backward=False, rng=None, keep=()):
        """Run the phase's schedule.

        Args:
            inputs: {blob: Matrix or array} for the phase's network inputs.
            need_backward: keep what backward() needs.
            rng: numpy Generator for dropout and augmentation.
            keep: extra blob names to return besides the losses and final outputs.
        Returns:
            (blobs, ctx): the kept blobs by name, and the context backward() takes.
        """
        sched = self.schedules.get(phase)
        if sched is None:
            raise ValueError(f"the network has no layers in phase '{phase}'")
        if not isinstance(inputs, dict):
            raise ValueError(f"inputs must be a dict of blob name -> values, got {type(inputs).__name__}")
        ctx = Context(phase, rng, need_backward, self.device)
        blobs = {}
        for b, spec in sched.inputs.items():
            if b not in inputs:
                raise ValueError(f"missing network input '{b}' ({spec}) for phase '{phase}'")
            blobs[b] = self._input_matrix(b, spec, inputs[b])
        remaining = {}
        for d in sched.order:
            for b in d["inputs"]:
                remaining[b] = remaining.get(b, 0) + 1
        wanted = set(keep) | set(sched.losses)
        if need_backward:
            wanted |= sched.keep
        for d in sched.order:
            layer = self.layers[d["name"]]
            outs = layer.forward([blobs[b] for b in d["inputs"]], ctx)
            blobs.update(zip(d["outputs"], outs))
            for b in d["inputs"]:
                remaining[b] -= 1
                if remaining[b] == 0 and b not in wanted:
                    del blobs[b]
        return blobs, ctx

    def _input_matrix(self, name, spec, value):
        """A network input checked against its per-sample spec, as a Matrix on our device."""
        from sukiyaki.matrix import array

        arr = value.to_numpy() if isinstance(value, Matrix) else np.asarray(list(value) if isinstance(value, range) else value)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"network input '{name}': expected numbers, got {arr.dtype}")
        if spec.klass in ("int32", "uint8"):
            if arr.dtype.kind == "f" and arr.size and not np.all(np.isfinite(arr) & (arr == np.trunc(arr))):
                raise ValueError(f"network input '{name}': values must be integers")
            info = np.iinfo(spec.klass)
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise ValueError(f"network input '{name}': values must fit {spec.klass} ({info.min}..{info.max})")
        if spec.shape == (1,):  # one value per sample (indices, labels): any vector
            arr = arr.reshape(1, -1)
        else:
            lead = tuple(arr.shape[:len(spec.shape)])
            padded = lead + (1,) * (len(spec.shape) - len(lead))
            if arr.ndim > len(spec.shape) + 1 or padded != tuple(spec.shape):
                raise ValueError(f"network input '{name}': expected per-sample shape {spec} (then the batch), "
                                 f"got an array of shape {arr.shape}")
        n = arr.size // max(spec.size, 1)
        if n == 0:
            raise ValueError(f"network input '{name}': the batch is empty")
        if isinstance(value, Matrix) and value.device == self.device and value.klass == spec.klass and arr.shape == value.shape:
            return value
        return array(arr, klass=spec.klass, device=self.device)

    def backward(self, blobs, ctx, loss_scale=1.0):
        """Accumulate parameter gradients from a forward(need_backward=True) pass."""
        sched = self.schedules[ctx.phase]
        deltas = {}
        for b in sched.losses:
            deltas[b] = Matrix(self.backend.full((1, 1), loss_scale, np.dtype(np.float32)), "single", self.backend)
        for d in reversed(sched.order):
            if d["name"] not in sched.grad_layers:
                continue
            tops = [deltas.pop(b, None) for b in d["outputs"]]
            if all(t is None for t in tops):
                continue
            layer = self.layers[d["name"]]
            tops = [t if t is not None else _zeros_like_spec(self.backend, s, blobs, b)
                    for t, s, b in zip(tops, layer.out_specs, d["outputs"])]
            ins = [blobs.get(b) for b in d["inputs"]]
            outs = [blobs.get(b) for b in d["outputs"]]
            bottoms = layer.backward(ins, outs, tops, ctx)
            for b, flag, delta in zip(d["inputs"], layer.input_needs_grad, bottoms):
                if flag and delta is not None:
                    deltas[b] = delta if b not in deltas else deltas[b] + delta

    def train_batch(self, inputs, rng=None, loss_scale=1.0):
        """Forward and backward on one (sub-)batch in the train phase; returns {loss blob: float}."""
        blobs, ctx = self.forward(inputs, "train", need_backward=True, rng=rng)
        self.backward(blobs, ctx, loss_scale)
        return {b: float(blobs[b].to_numpy().reshape(-1)[0]) for b in self.schedules["train"].losses}


def _zeros_like_spec(be, spec, blobs, name):
    ref = blobs.get(name)
    n = ref.numel // max(spec.size, 1) if ref is not None else 1
    return Matrix(be.full(tuple(spec.shape) + (n,), 0, np.dtype(np.float32)), "single", be)


def _toposort(phase, active, producer):
    """Kahn's algorithm with file order for ties; a cycle is a ValueError naming its layers."""
    index = {d["name"]: i for i, d in enumerate(active)}
    deps = {d["name"]: {producer[b] for b in d["inputs"] if b in producer} for d in active}
    users = {d["name"]: [] for d in active}
    for name, ds in deps.items():
        for p in ds:
            users[p].append(name)
    ready = sorted((n for n, ds in deps.items() if not ds), key=index.get)
    pending = {n: len(ds) for n, ds in deps.items()}
    order = []
    import heapq

    heap = [(index[n], n) for n in ready]
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
