"""Network definition files: the original's JSON format, read and checked.

A definition is a JSON list of layers ``{name, type, params, inputs, outputs, phase}``;
``params`` defaults to {}, ``phase`` (a string or list of 'train'/'test') to both
phases. This module finds a definition (a file, or the name of one shipped in
``sukiyaki/nets/``) and checks the structure of each entry; the graph and shapes are
checked when a :class:`sukiyaki.nn.net.Net` is built.

Example:
    >>> defs = parse_netdef('[{"name": "r", "type": "relu", "inputs": ["x"], "outputs": ["y"]}]')
    >>> defs[0]["phase"]
    ['train', 'test']
    >>> len(read_netdef("lenet"))  # a shipped definition, by name, from any folder
    13
"""

import json
import os

PHASES = ("train", "test")
_KEYS = {"name", "type", "params", "inputs", "outputs", "phase"}
NETS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "nets")


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


def shipped_nets():
    """Names of the network definitions shipped with the package (``sukiyaki/nets/*.json``).

    Returns:
        Sorted names without the extension; [] if the folder is missing.
    Example:
        >>> "lenet" in shipped_nets()
        True
    """
    try:
        return sorted(f[:-5] for f in os.listdir(NETS_DIR) if f.endswith(".json"))
    except OSError:
        return []


def resolve_netdef(name):
    """Path of a definition: an existing file, else the name of a shipped one ('lenet', 'lenet.json').

    The shipped definitions are found next to the installed package, whatever the current
    folder is.

    Args:
        name: a path (str or path-like) or the bare name of a shipped definition.
    Returns:
        The path of the file to read (str).
    Raises:
        ValueError: no such file and no shipped definition of that name (lists the shipped
            names), or the path is a folder.
    Example:
        >>> os.path.basename(resolve_netdef("lenet"))
        'lenet.json'
    """
    name = os.fspath(name)
    if os.path.isfile(name):
        return name
    base = name[:-5] if name.endswith(".json") else name
    bare = os.sep not in name and "/" not in name and (os.altsep is None or os.altsep not in name)
    if bare and base in shipped_nets():
        return os.path.join(NETS_DIR, base + ".json")
    if os.path.isdir(name):
        raise ValueError(f"network definition {name!r} is a folder, not a JSON file")
    shipped = ", ".join(shipped_nets()) or "none"
    if bare:
        raise ValueError(f"network definition {name!r} not found (no such file, and no shipped "
                         f"definition of that name; shipped: {shipped})")
    raise ValueError(f"network definition {name!r} not found (no such file; shipped definitions, "
                     f"given by name alone: {shipped})")


def read_netdef(source):
    """The layer list of a definition given as a path, a shipped name, JSON text, or a list.

    A string that does not start with ``[`` or ``{`` is a path or a shipped name (see
    :func:`resolve_netdef`: an existing file wins, then a shipped definition such as
    ``"lenet"``).

    Args:
        source: a path, a shipped definition's name, JSON text, or a list of layer dicts.
    Returns:
        The checked layer list (see :func:`parse_netdef`).
    Raises:
        ValueError: not found, not JSON (or nested too deeply), or not a list of layer objects
            (names the file).
    Example:
        >>> [d["name"] for d in read_netdef("lenet")][:3]
        ['d_train', 'd_test', 'aug_train']
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
            path = resolve_netdef(source)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise ValueError(f"{where}: cannot read it ({reason})") from None
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
