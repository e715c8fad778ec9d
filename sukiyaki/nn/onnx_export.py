"""Export a network's inference graph to ONNX (needs the ``onnx`` package: ``sukiyaki[onnx]``).

The exported graph runs from the first layer after the data and augmentation layers up to
the score blob that feeds the loss / accuracy layers; data, augmentation, loss and accuracy
layers are left out, dropout is the identity and batch normalization uses its running
statistics. The graph has one input, ``data``: float32 images in the standard NCHW layout
(for one of our (h, w, c, n) blobs ``x``, feed ``np.transpose(x, (3, 2, 0, 1))``) with a
dynamic batch dimension unless ``batch_size`` is given, and one output, ``scores``:
(N, classes) logits (probabilities with ``softmax=True``).

Inside the graph, image blobs are NCHW tensors and vector blobs (d,) are (N, d) tensors.
Layer mapping:

- ``convolution_2d`` -> Conv (weights (kh, kw, in/group, out) transposed to (out, in/group,
  kh, kw)).
- ``pooling_2d`` -> MaxPool / AveragePool (``count_include_pad=1``: the original divides by
  the kernel size) / GlobalAveragePool; ``cover_all`` is ``ceil_mode=1``, except where ONNX's
  ceil mode would keep a last window that starts in the padding (ours drops it, as Caffe and
  PyTorch do): max pooling then gets explicit end padding, average pooling is refused.
- ``linear`` -> Flatten + Gemm, the weight rows permuted from our column-major (h, w, c)
  order to ONNX's row-major (c, h, w).
- ``relu``/``sigmoid``/``tanh``/``softmax`` -> Relu/Sigmoid/Tanh/Softmax.
- ``batch_normalization`` -> BatchNormalization with the running statistics.
- ``dropout`` and ``branch`` -> nothing (the tensor is reused); ``plus`` -> Add (chained);
  ``concat`` -> Concat (per-sample dim 3 (c) -> axis 1, 1 (h) -> 2, 2 (w) -> 3).
- ``flatten``/``reshape`` -> Transpose + Reshape, so that the column-major order is kept.

Any other layer type raises ValueError naming the layer.

Example:
    >>> from sukiyaki.nn import Net
    >>> from sukiyaki.nn.onnx_export import export_onnx
    >>> net = Net("sukiyaki/nets/lenet.json")                        # doctest: +SKIP
    >>> model = export_onnx(net, "lenet.onnx")                       # doctest: +SKIP
    >>> import onnxruntime as ort                                     # doctest: +SKIP
    >>> ort.InferenceSession("lenet.onnx").run(None, {"data": x_nchw})  # doctest: +SKIP
"""

import numpy as np

from sukiyaki.nn.shapes import pool_out_size

LOSS_LIKE = {"softmax_cross_entropy", "loss", "accuracy"}
SUPPORTED = ("convolution_2d", "pooling_2d", "linear", "relu", "sigmoid", "tanh", "softmax",
             "batch_normalization", "dropout", "branch", "plus", "concat", "flatten", "reshape")
_ELEMENTWISE = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("export_onnx needs the 'onnx' package: pip install 'sukiyaki[onnx]'") from None
    return onnx, helper, numpy_helper


def _canon(shape):
    """ONNX per-sample shape of one of our per-sample shapes: (C, H, W) or (D,)."""
    shape = tuple(shape)
    if len(shape) == 1:
        return shape
    if len(shape) == 2:
        return (1, shape[0], shape[1])
    if len(shape) == 3:
        return (shape[2], shape[0], shape[1])
    return None


def _is_image(shape):
    return len(tuple(shape)) in (2, 3)


class _Builder:
    """Collects nodes and initializers while walking the schedule."""

    def __init__(self, helper, numpy_helper):
        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes = []
        self.inits = []
        self.names = set()

    def const(self, name, array):
        arr = np.ascontiguousarray(array)
        self.inits.append(self.numpy_helper.from_array(arr, name))
        return name

    def node(self, op, inputs, output, name, **attrs):
        self.nodes.append(self.helper.make_node(op, list(inputs), [output], name=name, **attrs))
        return output

    def colmajor_flat(self, tensor, shape, prefix):
        """(N, size) with the per-sample values in our column-major order."""
        if not _is_image(shape):
            return tensor
        t = self.node("Transpose", [tensor], f"{prefix}/chw_to_cwh", f"{prefix}/transpose", perm=[0, 1, 3, 2])
        shp = self.const(f"{prefix}/flat_shape", np.array([0, -1], np.int64))
        return self.node("Reshape", [t, shp], f"{prefix}/flat", f"{prefix}/reshape")

    def from_colmajor_flat(self, tensor, shape, output, prefix):
        """The canonical tensor of per-sample shape ``shape`` from a column-major (N, size)."""
        c = _canon(shape)
        if len(c) == 1:
            return self.node("Reshape", [tensor, self.const(f"{prefix}/out_shape", np.array([0, c[0]], np.int64))],
                             output, f"{prefix}/reshape_out")
        C, H, W = c
        shp = self.const(f"{prefix}/cwh_shape", np.array([0, C, W, H], np.int64))
        t = self.node("Reshape", [tensor, shp], f"{prefix}/cwh", f"{prefix}/reshape_out")
        return self.node("Transpose", [t], output, f"{prefix}/transpose_out", perm=[0, 1, 3, 2])


def _weights(layer, key):
    return np.asarray(layer.weights[key].to_numpy(), dtype=np.float32)


def _states(layer, key):
    return np.asarray(layer.states[key].to_numpy(), dtype=np.float32)


def _select_layers(net, phase, output_blob):
    """(layers to export in schedule order, input blob, score blob)."""
    sched = net.schedules.get(phase)
    if sched is None:
        raise ValueError(f"export_onnx: the network has no layers in phase '{phase}'")
    order = sched.order

    def skipped(d):
        layer = net.layers[d["name"]]
        return layer.is_data or d["type"] == "data_augmentation"

    def is_head(d):
        return d["type"] in LOSS_LIKE or getattr(net.layers[d["name"]], "is_loss", False)

    if output_blob is None:
        heads = [d for d in order if is_head(d)]
        if heads:
            output_blob = heads[0]["inputs"][0]
        else:
            body = [d for d in order if not skipped(d)]
            used = {b for d in body for b in d["inputs"]}
            sinks = [b for d in body for b in d["outputs"] if b not in used]
            if len(sinks) != 1:
                raise ValueError(f"export_onnx: cannot tell the score blob among {sinks}; pass output_blob=")
            output_blob = sinks[0]
    producer = {b: d for d in order for b in d["outputs"]}
    if output_blob not in producer and output_blob not in sched.inputs:
        raise ValueError(f"export_onnx: blob '{output_blob}' is not in phase '{phase}'")
    needed, stack, inputs = set(), [output_blob], set()
    while stack:
        b = stack.pop()
        d = producer.get(b)
        if d is None or skipped(d):
            inputs.add(b)
            continue
        if d["name"] in needed:
            continue
        if is_head(d):
            raise ValueError(f"export_onnx: the score blob '{output_blob}' depends on {d['type']} layer '{d['name']}'")
        needed.add(d["name"])
        stack.extend(d["inputs"])
    if len(inputs) != 1:
        raise ValueError(f"export_onnx: the graph up to '{output_blob}' needs one input blob, got {sorted(inputs)}")
    return [d for d in order if d["name"] in needed], inputs.pop(), output_blob


def export_onnx(net, path=None, phase="test", batch_size=None, opset=17, softmax=False, output_blob=None):
    """Write the inference graph of ``net`` to an ONNX file.

    Args:
        net: a :class:`sukiyaki.nn.Net`.
        path: file to write (None: only return the model).
        phase: whose layers to take ('test' normally; inference semantics either way).
        batch_size: fixed batch dimension, or None for a dynamic one ('N').
        opset: ONNX opset (13 or later).
        softmax: append a Softmax, so that 'scores' holds probabilities.
        output_blob: the score blob (default: the first input of the first loss/accuracy layer).

    Returns:
        the onnx ModelProto (checked with onnx.checker).

    Raises:
        ValueError: a layer type or configuration that has no mapping (names the layer).
    """
    onnx, helper, numpy_helper = _import_onnx()
    if not isinstance(opset, int) or opset < 13:
        raise ValueError(f"export_onnx: opset must be an integer >= 13, got {opset!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"export_onnx: batch_size must be a positive integer or None, got {batch_size!r}")
    layers, in_blob, score_blob = _select_layers(net, phase, output_blob)
    specs = net.schedules[phase].specs
    in_shape = _canon(specs[in_blob].shape)
    if in_shape is None:
        raise ValueError(f"export_onnx: input blob '{in_blob}' has per-sample shape {specs[in_blob]}, not an image or vector")

    B = _Builder(helper, numpy_helper)
    tensor = {in_blob: "data"}
    for d in layers:
        layer = net.layers[d["name"]]
        _emit(B, d, layer, tensor)

    out_shape = specs[score_blob].shape
    scores = B.colmajor_flat(tensor[score_blob], out_shape, "scores")
    n_classes = int(np.prod(out_shape))
    if softmax:
        scores = B.node("Softmax", [scores], "scores/softmax", "scores/softmax", axis=1)
    if any(scores in n.output for n in B.nodes):
        _rename(B.nodes, scores, "scores")
    else:
        B.node("Identity", [scores], "scores", "scores/identity")

    batch = batch_size if batch_size is not None else "N"
    graph = helper.make_graph(
        B.nodes, "sukiyaki",
        [helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT, [batch, *in_shape])],
        [helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, [batch, n_classes])],
        B.inits,
    )
    model = helper.make_model(graph, producer_name="sukiyaki", opset_imports=[helper.make_opsetid("", opset)])
    try:
        model.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    except (AttributeError, ValueError):  # older onnx without the helper
        model.ir_version = 8
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, path)
    return model


def _rename(nodes, old, new):
    for n in nodes:
        for seq in (n.input, n.output):
            for i, x in enumerate(seq):
                if x == old:
                    seq[i] = new


def _emit(B, d, layer, tensor):
    """Add the nodes of one layer; ``tensor`` maps our blob names to ONNX tensor names."""
    name, typ = d["name"], d["type"]
    ins = [tensor[b] for b in d["inputs"]]
    out = d["outputs"][0]
    in_specs = layer.in_specs
    prefix = name

    def unsupported(why):
        return ValueError(f"export_onnx: {typ} layer '{name}': {why}")

    for s in in_specs:
        if _canon(s.shape) is None:
            raise unsupported(f"input of per-sample shape {s} has no ONNX layout here")

    if typ == "convolution_2d":
        if not _is_image(in_specs[0].shape):
            raise unsupported(f"expects an image input, got {in_specs[0]}")
        w = np.transpose(_weights(layer, "weight"), (3, 2, 0, 1))
        args = [ins[0], B.const(f"{prefix}/weight", w)]
        if "bias" in layer.weights:
            args.append(B.const(f"{prefix}/bias", _weights(layer, "bias").reshape(-1)))
        (kh, kw), (sh, sw), (ph, pw) = layer.ksize, layer.stride, layer.pad
        tensor[out] = B.node("Conv", args, out, name, kernel_shape=[kh, kw], strides=[sh, sw],
                             pads=[ph, pw, ph, pw], group=layer.group, dilations=[1, 1])
    elif typ == "pooling_2d":
        if not _is_image(in_specs[0].shape):
            raise unsupported(f"expects an image input, got {in_specs[0]}")
        h, w = in_specs[0].shape[:2]
        if layer.global_pool and layer.mode == "average":
            tensor[out] = B.node("GlobalAveragePool", ins, out, name)
            return
        (kh, kw), (sh, sw), (ph, pw) = layer.ksize, layer.stride, layer.pad
        oh, ow = layer.out_specs[0].shape[:2]
        pads, ceil = [ph, pw, ph, pw], int(layer.cover_all)
        onnx_ceil = [pool_out_size(n, k, s, p, True, keep_padding_window=True)
                     for n, p, k, s in ((h, ph, kh, sh), (w, pw, kw, sw))]
        if layer.cover_all and onnx_ceil != [oh, ow]:
            # ONNX's ceil mode keeps a last window that starts in the padding; ours drops it
            if layer.mode != "max":
                raise unsupported("average pooling in ceil mode whose last window would start in the "
                                  "padding has no exact ONNX form (ONNX keeps that window)")
            pads = [ph, pw, (oh - 1) * sh + kh - h - ph, (ow - 1) * sw + kw - w - pw]
            ceil = 0
        attrs = {"kernel_shape": [kh, kw], "strides": [sh, sw], "pads": pads, "ceil_mode": ceil}
        if layer.mode == "max":
            tensor[out] = B.node("MaxPool", ins, out, name, **attrs)
        else:
            tensor[out] = B.node("AveragePool", ins, out, name, count_include_pad=1, **attrs)
    elif typ == "linear":
        shape = in_specs[0].shape
        W = _weights(layer, "weight")
        x = ins[0]
        if _is_image(shape):
            C, H, Wd = _canon(shape)
            W = W.reshape((H, Wd, C, W.shape[1]), order="F").transpose(2, 0, 1, 3).reshape(C * H * Wd, -1)
            x = B.node("Flatten", [x], f"{prefix}/flat", f"{prefix}/flatten", axis=1)
        args = [x, B.const(f"{prefix}/weight", W)]
        if "bias" in layer.weights:
            args.append(B.const(f"{prefix}/bias", _weights(layer, "bias").reshape(-1)))
        tensor[out] = B.node("Gemm", args, out, name)
    elif typ in _ELEMENTWISE:
        tensor[out] = B.node(_ELEMENTWISE[typ], ins, out, name)
    elif typ == "softmax":
        shape = in_specs[0].shape
        if _is_image(shape):
            flat = B.node("Flatten", ins, f"{prefix}/flat", f"{prefix}/flatten", axis=1)
            sm = B.node("Softmax", [flat], f"{prefix}/softmax", name, axis=1)
            shp = B.node("Shape", ins, f"{prefix}/shape", f"{prefix}/shape")
            tensor[out] = B.node("Reshape", [sm, shp], out, f"{prefix}/reshape")
        else:
            tensor[out] = B.node("Softmax", ins, out, name, axis=1)
    elif typ == "batch_normalization":
        shape = in_specs[0].shape
        channel_axis = 2 if _is_image(shape) and len(shape) == 3 else 0 if len(shape) == 1 else None
        if layer.axis != channel_axis:
            raise unsupported(f"only the channel dim can be normalised (target_dim {channel_axis + 1 if channel_axis is not None else '?'}), "
                              f"got target_dim {layer.axis + 1} on {in_specs[0]}")
        args = [ins[0]] + [B.const(f"{prefix}/{k}", v.reshape(-1)) for k, v in (
            ("gamma", _weights(layer, "gamma")), ("beta", _weights(layer, "beta")),
            ("running_mean", _states(layer, "running_mean")), ("running_var", _states(layer, "running_var")))]
        tensor[out] = B.node("BatchNormalization", args, out, name, epsilon=float(layer.params["eps"]))
    elif typ == "dropout":
        tensor[out] = ins[0]
    elif typ == "branch":
        for b in d["outputs"]:
            tensor[b] = ins[0]
    elif typ == "plus":
        if len(ins) == 1:
            tensor[out] = ins[0]
            return
        acc = ins[0]
        for i, x in enumerate(ins[1:], start=1):
            last = i == len(ins) - 1
            acc = B.node("Add", [acc, x], out if last else f"{prefix}/sum{i}", name if last else f"{prefix}/add{i}")
        tensor[out] = acc
    elif typ == "concat":
        shapes = [s.shape for s in in_specs]
        if all(_is_image(s) for s in shapes):
            axis = {0: 2, 1: 3, 2: 1}[layer.axis]
        elif all(len(s) == 1 for s in shapes):
            axis = 1
        else:
            raise unsupported(f"inputs mix images and vectors: {in_specs}")
        tensor[out] = B.node("Concat", ins, out, name, axis=axis)
    elif typ in ("flatten", "reshape"):
        src, dst = in_specs[0].shape, layer.out_specs[0].shape
        if _canon(dst) is None:
            raise unsupported(f"output per-sample shape {layer.out_specs[0]} has no ONNX layout here")
        if _canon(src) == _canon(dst) or (len(src) == 1 and len(dst) == 1):
            tensor[out] = ins[0]
            return
        flat = B.colmajor_flat(ins[0], src, prefix)
        if len(dst) == 1:
            if flat == ins[0]:
                tensor[out] = ins[0]
            else:
                _rename(B.nodes, flat, out)
                tensor[out] = out
        else:
            tensor[out] = B.from_colmajor_flat(flat, dst, out, prefix)
    else:
        raise ValueError(f"export_onnx: layer '{name}' of type '{typ}' has no ONNX mapping "
                         f"(supported: {', '.join(SUPPORTED)})")
