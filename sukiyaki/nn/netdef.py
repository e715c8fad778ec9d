"""Network definition files: the original's JSON format, read and checked.

A definition is a JSON list of layers ``{name, type, params, inputs, outputs, phase}``;
``params`` defaults to {}, ``phase`` (a string or list of 'train'/'test') to both
phases. This module checks the structure of each entry; the graph and shapes are
checked when a :class:`sukiyaki.nn.net.Net` is built.

Example:
    >>> defs = parse_netdef('[{"name": "r", "type": "relu", "inputs": ["x"], "outputs": ["y"]}]')
    >>> defs[0]["phase"]
    ['train', 'test']
"""

import json
import os

PHASES = ("train", "test")
_KEYS = {"name", "type", "params", "inputs", "outputs", "phase"}


def loads_json(text, where, **kwargs):
    """``json.loads`` whose failures, too-deep nesting included, are ValueErrors naming ``where``.

    Args:
        text: the JSON text (str or bytes).
        where: what the text is, for messages, e.g. ``"network definition 'a.json'"``.
        **kwargs: passed to ``json.loads`` (``object_pairs_hook``, ``parse_constant``).
    Returns:
        The parsed value.
    Example:
        >>> loads_json("[" * 100000, "network definition 'deep.json'")
        Traceback (most recent call last):
        ValueError: network definition 'deep.json': the JSON nests too deeply to be read (deeper than Python's recursion limit)
    """
    try:
        return json.loads(text, **kwargs)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ValueError(f"{where}: the JSON nests too deeply to be read (deeper than Python's "
                         f"recursion limit)") from None


def read_netdef(source):
    """The layer list of a definition given as a path, a JSON string, or a list.

    Raises:
        ValueError: the file is not JSON or not a list of layer objects (names the file).
    """
    where = "network definition"
    if isinstance(source, (list, tuple)):
        data = list(source)
    elif not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"{where}: must be a JSON list of layers, a path or JSON text, got {type(source).__name__}")
    else:
        text = source
        if isinstance(source, os.PathLike) or not source.lstrip().startswith(("[", "{")):
            where = f"network definition {os.fspath(source)!r}"
            try:
                with open(source, encoding="utf-8") as f:
                    text = f.read()
            except OSError as exc:
                raise ValueError(f"{where}: cannot read it ({exc.strerror or exc})") from None
        data = loads_json(text, where)
    return parse_netdef(data, where)


def parse_netdef(data, where="network definition"):
    """Check and normalise a layer list (or its JSON text); returns a list of dicts."""
    if isinstance(data, str):
        data = loads_json(data, where)
    if not isinstance(data, list):
        raise ValueError(f"{where}: must be a JSON list of layers, got {type(data).__name__}")
    if not data:
        raise ValueError(f"{where}: has no layers")
    out, names = [], set()
    for i, entry in enumerate(data):
        label = f"{where}: layer #{i + 1}"
        if not isinstance(entry, dict):
            raise ValueError(f"{label} must be an object, got {type(entry).__name__}")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{label}: 'name' must be a non-empty string, got {name!r}")
        label = f"{where}: layer '{name}'"
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise ValueError(f"{label}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}")
        if name in names:
            raise ValueError(f"{label}: duplicate layer name")
        names.add(name)
        if not isinstance(entry.get("type"), str):
            raise ValueError(f"{label}: 'type' must be a string, got {entry.get('type')!r}")
        params = entry.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ValueError(f"{label}: 'params' must be an object, got {type(params).__name__}")
        blobs = {}
        for key in ("inputs", "outputs"):
            v = entry.get(key, [])
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list) or any(not isinstance(b, str) or not b for b in v):
                raise ValueError(f"{label}: '{key}' must be a list of blob names, got {entry.get(key)!r}")
            blobs[key] = list(v)
        if not blobs["outputs"]:
            raise ValueError(f"{label}: has no outputs")
        if len(set(blobs["outputs"])) != len(blobs["outputs"]):
            raise ValueError(f"{label}: an output blob is named twice in {blobs['outputs']}")
        phase = entry.get("phase", list(PHASES))
        if isinstance(phase, str):
            phase = [phase]
        if not isinstance(phase, list) or not phase or any(p not in PHASES for p in phase):
            raise ValueError(f"{label}: 'phase' must be 'train', 'test' or a list of them, got {entry.get('phase')!r}")
        out.append({"name": name, "type": entry["type"], "params": params,
                    "inputs": blobs["inputs"], "outputs": blobs["outputs"], "phase": list(phase)})
    return out


def write_netdef(layers, path):
    """Write a layer list as pretty JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(layers, f, indent=2)
        f.write("\n")
