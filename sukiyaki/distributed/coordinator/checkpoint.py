"""The coordinator's checkpoint: weights, optimizer state, iteration, data position, settings.

One safetensors file, as the trainer's (tensors ``layer/param``, ``optimizer/layer/param/slot``;
metadata ``sukiyaki_coordinator``: JSON), written atomically. A round in progress is not
saved: the checkpoint records the data position before it, so a restarted coordinator runs
that iteration again from its start, with the same samples and the same random draws.

Example:
    >>> blob = checkpoint_bytes(state)                     # doctest: +SKIP
    >>> restore_checkpoint(state, "coordinator.safetensors")  # doctest: +SKIP
"""

import json
import os

import numpy as np
from dataclasses import asdict

from sukiyaki.nn.params import load_safetensors, save_safetensors
from sukiyaki.nn.weights import OPTIMIZER_PREFIX, apply_weights, netdef_hash, read_weights, weight_arrays, weights_metadata

KEY = "sukiyaki_coordinator"
#: The local-steps mode's outer momentum (under the optimizer prefix: weight readers skip it).
OUTER_VELOCITY = OPTIMIZER_PREFIX + "outer_velocity"
VERSION = 1


def checkpoint_bytes(state, log=None):
    """The checkpoint of a CoordinatorState, as safetensors bytes (``log``: the path of the run's
    metrics log, recorded so that a resumed run appends to the same file)."""
    from sukiyaki.nn.train import optimizer_config

    state.settle()  # an optimizer step still being taken is finished first
    net = state.net
    tensors = weight_arrays(net)
    tensors.update({OPTIMIZER_PREFIX + k: v for k, v in state.optimizer.state_arrays(net.store).items()})
    if state.outer_velocity is not None:  # the local-steps mode's outer momentum
        tensors[OUTER_VELOCITY] = state.outer_velocity
    meta = weights_metadata(net)
    meta["format"] = "sukiyaki-coordinator-checkpoint"
    meta[KEY] = json.dumps({"version": VERSION, "iteration": state.iteration, "iterator": state.iterator_before_round,
                            "settings": asdict(state.settings), "optimizer": optimizer_config(state.optimizer),
                            "loss": state.history[-500:], "samples": state.samples_total,
                            "log": None if log is None else os.fspath(log)}, sort_keys=True)
    return save_safetensors(None, tensors, metadata=meta)


def recorded_log(path):
    """The metrics log path a coordinator checkpoint recorded (None: none, or not readable)."""
    try:
        with open(path, "rb") as f:
            _, meta = load_safetensors(f.read())
        info = json.loads(meta.get(KEY, "{}"))
    except (OSError, ValueError):
        return None
    log = info.get("log") if isinstance(info, dict) else None
    return log if isinstance(log, str) else None


def restore_checkpoint(state, path):
    """Restore a CoordinatorState from its checkpoint (everything checked before anything changes).

    Returns:
        the iteration resumed at.
    """
    from sukiyaki.nn.netdef import loads_json
    from sukiyaki.nn.train import optimizer_from_config

    where = f"coordinator checkpoint {os.fspath(path)!r}"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    tensors, meta = load_safetensors(data)
    velocity = tensors.pop(OUTER_VELOCITY, None)
    if velocity is not None and (velocity.size != state.net.store.trained_size or not np.all(np.isfinite(velocity))):
        raise ValueError(f"{where}: its outer velocity has {velocity.size} values (or non-finite ones); "
                         f"the network has {state.net.store.trained_size}")
    if KEY not in meta:
        raise ValueError(f"{where}: not a coordinator checkpoint (no '{KEY}' metadata)")
    info = loads_json(meta[KEY], where)
    if not isinstance(info, dict) or info.get("version") != VERSION:
        raise ValueError(f"{where}: unsupported checkpoint version {info.get('version') if isinstance(info, dict) else info!r}")
    if meta.get("netdef_sha256") != netdef_hash(state.net):
        raise ValueError(f"{where} is of another network")
    _, arrays, _ = read_weights(state.net, path, data=data, what="coordinator checkpoint")
    opt = optimizer_from_config(info["optimizer"])
    opt.load_state_arrays({k[len(OPTIMIZER_PREFIX):]: v for k, v in tensors.items() if k.startswith(OPTIMIZER_PREFIX)},
                          state.net.store)
    iterator_state = info["iterator"]
    state.iterator.load_state_dict(iterator_state)  # checked by the iterator
    apply_weights(state.net, arrays)
    state.optimizer = opt
    state.iteration = int(info["iteration"])
    state.iterator_before_round = iterator_state
    state.history = [tuple(x) for x in info.get("loss", [])]
    state.samples_total = int(info.get("samples", 0))
    state.round = None
    state.weights_changed()
    state.outer_velocity = None if velocity is None else np.array(velocity, dtype=np.float32).reshape(-1)
    return state.iteration
