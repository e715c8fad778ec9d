"""Load and save a network's weights, in safetensors (the main format) or the Sukiyaki2 format.

The format is chosen by the file name when saving (``.bin``: the original Sukiyaki2 format;
anything else, ``.safetensors`` by convention: safetensors) and detected from the content when
loading. Tensors are named ``"<layer>/<param>"``. In a safetensors file each tensor must have
exactly the shape :meth:`sukiyaki.nn.Net.param_shapes` gives (a convolution weight is
``(kh, kw, in_size, out_size)``, a bias ``(out_size,)``): a tensor of the right size but another
shape (flat, or with its axes in another order) is an error naming the file, the tensor, the
shape found and the shape expected. A Sukiyaki2 (``.bin``) file stores flat arrays, as the
original did; each is reshaped to the network's shape in column-major order (its size must
match). Safetensors files hold the states as well (e.g. batch normalization's running
statistics) and metadata: ``format`` ("sukiyaki-weights"), ``netdef_sha256`` (see
:func:`netdef_hash`), ``names`` and ``states`` (JSON lists of the parameter and state names in
network order). Sukiyaki2 files written by the original hold the trainable parameters only;
ours add the states as extra entries.

Loading checks the whole file against the network first; nothing in the network changes unless
every tensor is valid. A training checkpoint (see :mod:`sukiyaki.nn.train`) loads as weights too:
its optimizer tensors are skipped.

Example:
    >>> from sukiyaki.nn import Net
    >>> net = Net("sukiyaki/nets/lenet.json")                 # doctest: +SKIP
    >>> save_weights(net, "lenet.safetensors")                 # doctest: +SKIP
    >>> load_weights(net, "lenet.safetensors")                 # doctest: +SKIP
    'safetensors'
"""

import hashlib
import json
import os

import numpy as np

from sukiyaki.nn.params import (check_against, load_safetensors, load_sukiyaki2, save_safetensors,
                                save_sukiyaki2)

FORMATS = ("safetensors", "sukiyaki2")
OPTIMIZER_PREFIX = "optimizer/"
WEIGHTS_FORMAT_TAG = "sukiyaki-weights"


def netdef_hash(net):
    """SHA-256 (hex) of a network's structure: its layer list as canonical JSON.

    The parameters of data layers (file names, splits) are left out, so that pointing a
    network at other data does not make it "another network".

    Args:
        net: a :class:`sukiyaki.nn.Net`.
    Returns:
        64 hex digits.
    Example:
        >>> len(netdef_hash(net))                                 # doctest: +SKIP
        64
    """
    defs = []
    for d in net.defs:
        d = dict(d)
        if net.layers[d["name"]].is_data:
            d["params"] = {}
        defs.append(d)
    text = json.dumps(defs, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def format_of(path, format=None):
    """The file format to write: 'sukiyaki2' for a .bin name, else 'safetensors'.

    Args:
        path: file name.
        format: None (from the extension), 'safetensors' or 'sukiyaki2'.
    Returns:
        'safetensors' or 'sukiyaki2'.
    Example:
        >>> format_of("w.bin"), format_of("w.safetensors")
        ('sukiyaki2', 'safetensors')
    """
    if format is None:
        return "sukiyaki2" if os.fspath(path).lower().endswith(".bin") else "safetensors"
    if format not in FORMATS:
        raise ValueError(f"weights format must be one of {', '.join(FORMATS)}, got {format!r}")
    return format


def _param_names(net):
    """(parameter names, state names) in network order."""
    params, states = [], []
    for n, layer in net.layers.items():
        if layer.in_specs is None:
            continue
        params += [f"{n}/{k}" for k in layer.param_shapes()]
        states += [f"{n}/{k}" for k in layer.state_shapes()]
    return params, states


def weight_arrays(net, states=True):
    """{name: float32 numpy array of the shape param_shapes() gives} of a network, in order.

    Args:
        net: a :class:`sukiyaki.nn.Net`.
        states: include non-trainable states (running statistics).
    Returns:
        dict of numpy arrays (copies).
    """
    params, state_names = _param_names(net)
    return net.store.arrays(names=params + (state_names if states else []))  # one read of the whole store


def weights_metadata(net):
    """The metadata strings a weights file carries (format tag, netdef hash, names)."""
    params, states = _param_names(net)
    return {"format": WEIGHTS_FORMAT_TAG, "netdef_sha256": netdef_hash(net),
            "names": json.dumps(params), "states": json.dumps(states)}


def save_weights(net, path, format=None):
    """Write a network's weights to a file (atomically).

    Args:
        net: a :class:`sukiyaki.nn.Net`.
        path: destination; ``.bin`` selects the Sukiyaki2 format unless ``format`` says.
        format: None, 'safetensors' or 'sukiyaki2'.
    Returns:
        The format written.
    Example:
        >>> save_weights(net, "lenet.bin")                         # doctest: +SKIP
        'sukiyaki2'
    """
    fmt = format_of(path, format)
    if fmt == "sukiyaki2":
        # states (batch-norm running statistics) too, as extra named entries: without them a
        # reloaded network would test with fresh statistics (the original had no such state)
        save_sukiyaki2(path, weight_arrays(net))
    else:
        save_safetensors(path, weight_arrays(net), metadata=weights_metadata(net))
    return fmt


def sniff_format(data, path=None):
    """Detect the format of a weights file's bytes: 'safetensors' or 'sukiyaki2' (or None).

    A safetensors file starts with an 8-byte little-endian header length and then '{'; a
    Sukiyaki2 file starts with its JSON header directly. If the content says neither, the
    extension decides; None if that does not either.
    """
    if len(data) >= 9 and data[8:9] == b"{" and 8 + int.from_bytes(data[:8], "little") <= len(data):
        return "safetensors"
    if data[:1] == b"{":
        return "sukiyaki2"
    if path is not None:
        p = os.fspath(path).lower()
        if p.endswith(".bin"):
            return "sukiyaki2"
        if p.endswith(".safetensors"):
            return "safetensors"
    return None


def _unflatten(tensors, shapes):
    """Reshape the flat arrays of a Sukiyaki2 file to the network's shapes (column-major).

    Arrays of another size are left flat for :func:`check_against` to report.
    """
    out = dict(tensors)
    for name, shape in shapes.items():
        a = out.get(name)
        if a is not None and a.ndim == 1 and a.size == int(np.prod(shape)):
            out[name] = a.reshape(shape, order="F")
    return out


def read_weights(net, path, data=None, what="weights file"):
    """Read and check a weights file against a network without changing the network.

    Args:
        net: the network the weights are for.
        path: the file (also the name used in messages).
        data: the file's bytes if already read.
        what: how messages call the file ("weights file", "checkpoint").
    Returns:
        (format, {name: float32 array}, metadata): every array valid for ``net``.
    Raises:
        ValueError naming the file and the first wrong parameter (or why it cannot be read).
    """
    where = f"{what} {os.fspath(path)!r}"
    if data is None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ValueError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    fmt = sniff_format(data, path)
    if fmt is None:
        raise ValueError(f"{where}: neither a safetensors nor a Sukiyaki2 weights file "
                         f"(starts with {bytes(data[:8])!r})")
    params, states = _param_names(net)
    shapes = net.param_shapes()
    try:
        if fmt == "safetensors":
            tensors, metadata = load_safetensors(data)
            tensors = {k: v for k, v in tensors.items() if not k.startswith(OPTIMIZER_PREFIX)}
            expected_names = params + states
        else:
            tensors, metadata = _unflatten(load_sukiyaki2(data), shapes), {}
            expected_names = params + [s for s in states if s in tensors]  # the original had none
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    expected = {n: (shapes[n], np.float32) for n in expected_names}
    try:
        check_against(tensors, expected, os.fspath(path))
    except ValueError as exc:
        raise ValueError(f"{what} {str(exc)[len('file '):]}") from None
    out = {}
    for name in expected_names:
        a = np.asarray(tensors[name], dtype=np.float32)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{where}: parameter {name!r} holds NaN or infinite values")
        out[name] = a
    return fmt, out, metadata


def apply_weights(net, arrays):
    """Set every parameter/state of net from {name: array} (already checked), in one write of the store."""
    net.store.load_arrays(arrays)


def load_weights(net, path):
    """Load a weights file (safetensors or Sukiyaki2, detected) into a network.

    The whole file is read and checked against ``net.param_shapes()`` first: a file of another
    network, a truncated or corrupt file raises ValueError naming the file and the first wrong
    parameter, and leaves the network unchanged.

    Args:
        net: a :class:`sukiyaki.nn.Net`.
        path: the weights file.
    Returns:
        The format read: 'safetensors' or 'sukiyaki2'.
    Example:
        >>> load_weights(net, "lenet_final.safetensors")           # doctest: +SKIP
        'safetensors'
    """
    fmt, arrays, _ = read_weights(net, path)
    apply_weights(net, arrays)
    return fmt
