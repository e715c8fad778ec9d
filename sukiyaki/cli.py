"""The ``sukiyaki`` command line.

Bad input (a missing file, bad JSON, an out-of-range option) gives one line on stderr,
``sukiyaki <command>: error: ...``, and exit status 2; a failure while training, exit status 1.

Example:
    $ sukiyaki info
    $ sukiyaki train lenet --epochs 10
    $ sukiyaki test lenet lenet_final.safetensors
"""

import argparse
import math
import os
import sys

from sukiyaki.nn.netdef import resolve_netdef, shipped_nets  # noqa: F401  (shipped_nets: re-exported)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class UsageError(Exception):
    """Bad input found after parsing (exit status 2)."""


def _number(kind, minimum=None, below=None, strict=False):
    """An argparse type: a number of ``kind`` within bounds."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum}, got {text}")
        if below is not None and value >= below:
            raise argparse.ArgumentTypeError(f"must be < {below}, got {text}")
        return value

    return parse


def _schedule(text):
    from sukiyaki.nn.optim import make_schedule

    try:
        make_schedule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _cmd_info(args):
    import numpy as np

    import sukiyaki
    from sukiyaki.backends import available_backends

    print(f"sukiyaki {sukiyaki.__version__} (numpy {np.__version__})")
    print("backends available here: " + ", ".join(available_backends()))
    return 0


# ------------------------------------------------------------------ shared helpers


def _load_npz_source(layer, path):
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z or "labels" not in z:
                raise UsageError(f"--data {layer}={path}: the .npz file needs arrays 'images' "
                                 f"(h, w, c, n) and 'labels' (n,); it has {', '.join(z.files) or 'none'}")
            return z["images"], z["labels"]
    except (OSError, ValueError) as exc:
        raise UsageError(f"--data {layer}={path}: cannot read it ({exc})") from None


def build_net(args, seed=0):
    """The network of ``args.net`` with the ``--data LAYER=PATH`` replacements applied."""
    from sukiyaki.nn import Net
    from sukiyaki.nn.layer import get_layer_class
    from sukiyaki.nn.netdef import read_netdef

    defs = read_netdef(resolve_netdef(args.net))
    data_names = []
    for d in defs:
        try:
            if get_layer_class(d["type"], d["name"]).is_data:
                data_names.append(d["name"])
        except ValueError:
            pass  # an unknown type is reported when the network is built
    sources = {}
    for spec in args.data or []:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--data expects LAYER=PATH, got {spec!r}")
        entry = next((d for d in defs if d["name"] == name), None)
        known = ", ".join(data_names) or "none"
        if entry is None:
            raise UsageError(f"--data: the network has no layer {name!r} (data layers: {known})")
        if name not in data_names:
            raise UsageError(f"--data: layer {name!r} ({entry['type']}) is not a data layer (data layers: {known})")
        if not os.path.exists(path):
            raise UsageError(f"--data {name}={path}: no such file or folder")
        if path.endswith(".npz"):
            sources[name] = _load_npz_source(name, path)
            continue
        cls = get_layer_class(entry["type"], name)
        key = next((k for k in ("path", "file_prefix", "root") if k in cls.defaults), None)
        if key is None:
            raise UsageError(f"--data: layer {name!r} ({entry['type']}) takes no path; give an .npz file "
                             f"with 'images' and 'labels'")
        entry["params"] = dict(entry["params"], **{key: path})
    _set_precision(args)
    return Net(defs, device=args.device, seed=seed, data_sources=sources)


def _set_precision(args):
    """--precision and --channels-last: the cuda backend's products, chosen before it starts."""
    precision = getattr(args, "precision", None)
    if getattr(args, "channels_last", None) is not None:
        if not str(args.device).startswith("cuda"):
            raise UsageError(f"--channels-last is a cuda backend setting; this run uses --device {args.device}")
        os.environ["SUKIYAKI_CUDA_CHANNELS_LAST"] = "1" if args.channels_last else "0"
        started = sys.modules.get("sukiyaki.backends.cuda.backend")
        if started is not None:
            from sukiyaki.backends import get_backend

            get_backend(args.device).set_channels_last(args.channels_last)
    if precision is None:
        return
    if not str(args.device).startswith("cuda"):
        raise UsageError(f"--precision {precision} is a cuda backend setting; this run uses --device {args.device}")
    started = sys.modules.get("sukiyaki.backends.cuda.backend")
    if started is not None and started.PRECISION != precision:
        if "tf32" in (precision, started.PRECISION):  # the libraries read it when they load
            raise UsageError(f"--precision {precision}: the cuda backend already runs in {started.PRECISION}")
        from sukiyaki.backends import get_backend

        get_backend(args.device).set_precision(precision)
        return
    os.environ["SUKIYAKI_CUDA_PRECISION"] = precision


def _net_stem(args):
    base = os.path.basename(args.net)
    return base[:-5] if base.endswith(".json") else base


def _add_common(p):
    from sukiyaki.backends import BACKEND_MODULES

    p.add_argument("net", help="network definition (JSON file, or the name of a shipped one, e.g. lenet)")
    p.add_argument("--device", default="numpy", choices=list(BACKEND_MODULES), help="backend (default numpy)")
    p.add_argument("--data", action="append", default=[], metavar="LAYER=PATH",
                   help="replace a data layer's source: its path/folder, or an .npz with images and labels")
    p.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default=None,
                   help="cuda: products in IEEE float32 (fp32, the default), on TF32 tensor cores (tf32), or on "
                        "bfloat16 operands with float32 sums and float32 master weights (bf16); the same as "
                        "SUKIYAKI_CUDA_PRECISION")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="cuda: convolutions run on channels-last (NHWC) copies of their operands, the layout "
                        "tensor cores want (default: on in bf16, off otherwise; SUKIYAKI_CUDA_CHANNELS_LAST)")


# ------------------------------------------------------------------ train


def _recorded_int(value):
    """A count recorded in a checkpoint: a non-negative int, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(value)
    return value


def _apply_resume_options(args):
    """Fill the options not given on the command line: from the checkpoint when resuming, else defaults."""
    recorded = {}
    if args.resume:
        from sukiyaki.nn.train import Trainer

        recorded = Trainer.checkpoint_options(args.resume)
    try:
        if args.iterations is None and args.epochs is None:
            if recorded.get("total_iterations"):
                args.iterations = _recorded_int(recorded["total_iterations"])
            else:
                args.epochs = 10
        if args.val_cycle is None:
            v = recorded.get("val_cycle", 500)
            args.val_cycle = None if v is None else _recorded_int(v)  # None: the run never validated
        for key in ("save_template", "checkpoint", "checkpoint_every"):
            if getattr(args, key) is None and recorded.get(key) is not None:
                value = recorded[key]
                setattr(args, key, _recorded_int(value) if key == "checkpoint_every" else str(value))
    except (TypeError, ValueError):
        raise UsageError(f"checkpoint {args.resume!r}: its recorded run options are damaged") from None
    if args.resume and args.checkpoint is None:
        args.checkpoint = args.resume  # keep checkpointing where the run was checkpointed


def _cmd_train(args):
    if not args.distributed:
        return _train(args)
    from sukiyaki.distributed.cluster import ClusterError, ClusterRun

    try:
        cluster = ClusterRun.start(timeout=args.dist_timeout, bucket_bytes=int(args.bucket_mb * (1 << 20)))
    except ClusterError as exc:
        print(f"sukiyaki train: error: {exc}", file=sys.stderr)
        return 1
    args.failure = None
    try:
        rc = _train(args, cluster)
        if rc == 0:
            cluster.finish()
            return 0
    except ClusterError as exc:
        print(f"sukiyaki train: error: {cluster.explain(exc)}", file=sys.stderr)
        cluster.fail(cluster.explain(exc))
        return 1
    except BaseException as exc:
        cluster.fail(f"{type(exc).__name__}: {exc}")
        raise
    cluster.fail(args.failure or f"stopped with exit status {rc}")
    return rc


def _train(args, cluster=None):
    """``sukiyaki train``; ``cluster``: this rank's :class:`sukiyaki.distributed.cluster.ClusterRun`."""
    from sukiyaki.nn.train import Trainer, check_appendable, make_optimizer
    from sukiyaki.nn.weights import load_weights

    root = cluster is None or cluster.is_root

    def say(*line, **kw):  # only rank 0 talks
        if root:
            print(*line, **kw)

    if args.log:
        check_appendable(args.log, "--log")  # before anything is built or trained
    if args.resume and args.initial_weights:
        raise UsageError("--resume and --initial-weights exclude each other (a checkpoint holds the weights)")
    _apply_resume_options(args)
    if args.batch_size % args.batch_div:
        raise UsageError(f"--batch-div {args.batch_div} does not divide --batch-size {args.batch_size}")
    if cluster is not None:
        if args.batch_size < cluster.world_size:
            raise UsageError(f"--batch-size {args.batch_size} is smaller than WORLD_SIZE {cluster.world_size}: "
                             f"every rank needs a share of each batch")
        args.device = cluster.pin_device(args.device)
    net = build_net(args, seed=args.seed)
    opt = make_optimizer(args.optimizer, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                         schedule=args.lr_schedule)
    if args.initial_weights:
        fmt = load_weights(net, args.initial_weights)
        say(f"initial weights: {args.initial_weights} ({fmt})")
    out_dir = args.out_dir
    if out_dir and not os.path.isdir(out_dir):
        os.makedirs(out_dir, exist_ok=True)
    checkpoint = args.checkpoint
    if checkpoint is None and args.checkpoint_every:
        checkpoint = os.path.join(out_dir, f"{_net_stem(args)}_checkpoint.safetensors")
    save_final = None if args.save_template else os.path.join(out_dir, f"{_net_stem(args)}_final.safetensors")
    if not root:  # only rank 0 writes files, validates, logs and draws the bar
        args.save_template, args.log, args.no_progress, args.val_cycle = None, None, True, None
        args.checkpoint_every = checkpoint = save_final = None
    trainer = Trainer(net, opt, batch_size=args.batch_size, batch_div=args.batch_div, iterations=args.iterations,
                      epochs=args.epochs if args.iterations is None else None, val_cycle=args.val_cycle,
                      seed=args.seed, save_template=args.save_template, save_final=save_final,
                      checkpoint=checkpoint, checkpoint_every=args.checkpoint_every,
                      shard=None if cluster is None else cluster.shard,
                      progress=False if args.no_progress else sys.stderr,
                      log=lambda line: say(line, flush=True), metrics_log=args.log, graph=not args.no_graph)
    if args.resume:
        it = trainer.resume(args.resume)
        say(f"resumed from {args.resume} at iteration {it}", flush=True)
    if cluster is not None:
        cluster.attach(trainer)
        low, high = args.batch_size // cluster.world_size, -(-args.batch_size // cluster.world_size)
        say(f"cluster: {cluster.world_size} ranks, {low if low == high else f'{low}-{high}'} samples of each batch "
            f"per rank, gradients averaged by {'NCCL' if cluster.gpu is not None else 'the host store'}", flush=True)
    say(f"training {_net_stem(args)}: {trainer.n_train} samples, batch {trainer.batch_size}"
        f"{f' in {trainer.batch_div} sub-batches' if trainer.batch_div > 1 else ''}, "
        f"{trainer.total_iterations} iterations, {opt.type_name} lr {opt.base_lr:g}, device {net.device}",
        flush=True)
    try:
        summary = trainer.train()
    except KeyboardInterrupt:
        print(f"sukiyaki train: interrupted at iteration {trainer.iteration}", file=sys.stderr)
        if cluster is not None:
            args.failure = f"interrupted at iteration {trainer.iteration}"
        return 130
    except (FloatingPointError, ValueError, OSError, MemoryError, _cluster_error()) as exc:
        message = cluster.explain(exc) if cluster is not None and _is_cluster_error(exc) else _message(exc)
        print(f"sukiyaki train: error at iteration {trainer.iteration}: {message}", file=sys.stderr)
        if cluster is not None:
            args.failure = f"error at iteration {trainer.iteration}: {message}"
        return 1
    if not root:
        return 0
    val = summary["val"]
    if val is not None:
        from sukiyaki.nn.train import format_metrics

        print(f"final {format_metrics(val, 'test')}")
    rate = summary["images_per_s"]
    if cluster is not None:  # rank 0 counted its share of each batch
        rate *= args.batch_size / -(-args.batch_size // cluster.world_size)
    print(f"{summary['iterations_run']} iterations ({summary['epoch']:.2f} epochs done) in "
          f"{summary['seconds']:.1f} s of training, {rate:,.0f} images/s"
          f"{f' (all {cluster.world_size} ranks)' if cluster is not None else ''}")
    final = summary["saved"][-1] if summary["saved"] else None
    if final:
        print(f"weights saved to {final}")
    if summary["checkpoint"]:
        print(f"checkpoint saved to {summary['checkpoint']}")
    return 0


def _cmd_test(args):
    from sukiyaki.nn.train import evaluate, format_metrics
    from sukiyaki.nn.weights import load_weights

    net = build_net(args)
    if "test" not in net.schedules:
        raise UsageError(f"network {args.net!r} has no test phase")
    fmt = load_weights(net, args.weights)
    print(f"weights: {args.weights} ({fmt})")
    print(format_metrics(evaluate(net, args.batch_size), "test"))
    return 0


def _add_train(sub):
    from sukiyaki.nn.optim import OPTIMIZERS

    p = sub.add_parser("train", help="train a network on its data layers",
                       description="Train a network defined in JSON (as the original's train_node).")
    _add_common(p)
    p.add_argument("--optimizer", default="momentum_sgd", choices=sorted(OPTIMIZERS))
    p.add_argument("--lr", type=_number(float, 0), default=None,
                   help="learning rate (default 0.02; 0.001 for adam)")
    p.add_argument("--momentum", type=_number(float, 0, below=1), default=0.9)
    p.add_argument("--weight-decay", type=_number(float, 0), default=0.0005)
    p.add_argument("--lr-schedule", type=_schedule, default="constant", metavar="constant|step:N[:g]|cosine:N",
                   help="learning-rate schedule (default constant)")
    p.add_argument("--batch-size", type=_number(int, 1), default=64)
    p.add_argument("--batch-div", type=_number(int, 1), default=1,
                   help="split each batch into this many sub-batches (gradient accumulation)")
    p.add_argument("--val-cycle", type=_number(int, 0), default=None,
                   help="validate every N iterations (0: only at the end; default 500)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--iterations", type=_number(int, 1), default=None)
    length.add_argument("--epochs", type=_number(int, 1), default=None, help="(default 10)")
    p.add_argument("--initial-weights", metavar="PATH", help="start from these weights (.safetensors or .bin)")
    p.add_argument("--save-template", metavar="PATH", help="weights at each validation, e.g. runs/lenet_{iteration}.safetensors")
    p.add_argument("--out-dir", default=".", help="folder of the default outputs (default: current folder)")
    p.add_argument("--checkpoint", metavar="PATH", help="checkpoint file (at each validation and at the end)")
    p.add_argument("--checkpoint-every", type=_number(int, 1), metavar="N", help="checkpoint every N iterations")
    p.add_argument("--resume", metavar="PATH",
                   help="continue from a checkpoint, with the run length, validation cycle, save template and "
                        "checkpoint settings it recorded unless given again")
    p.add_argument("--seed", type=_number(int, 0), default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-graph", action="store_true",
                   help="on a GPU, run every step eagerly instead of replaying it as one CUDA graph")
    p.add_argument("--log", metavar="PATH",
                   help="append JSON lines to PATH: one per iteration (iteration, loss, images_per_s, time) "
                        "and one per validation (iteration, validation)")
    p.add_argument("--distributed", action="store_true",
                   help="cluster mode: one process per GPU (or CPU) started by any launcher, with RANK, WORLD_SIZE, "
                        "MASTER_ADDR, MASTER_PORT (and LOCAL_RANK) in the environment; gradients averaged by NCCL "
                        "on --device cuda, through rank 0's store otherwise")
    p.add_argument("--dist-timeout", type=_number(float, 0, strict=True), default=600.0, metavar="S",
                   help="with --distributed: seconds to wait for the other ranks before failing (default 600)")
    p.add_argument("--bucket-mb", type=_number(float, 0, strict=True), default=25.0, metavar="MB",
                   help="with --distributed: megabytes of gradients per all-reduce bucket (default 25)")
    p.set_defaults(func=_cmd_train)


def _add_test(sub):
    p = sub.add_parser("test", help="accuracy and loss of weights on the test phase")
    _add_common(p)
    p.add_argument("weights", help="weights file (.safetensors, .bin, or a checkpoint)")
    p.add_argument("--batch-size", type=_number(int, 1), default=500)
    p.set_defaults(func=_cmd_test)


def build_parser():
    """The argument parser with every subcommand."""
    p = _Parser(prog="sukiyaki", description="sukiyaki deep-learning platform")
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="show the version and the backends available here")
    info.set_defaults(func=_cmd_info)
    _add_train(sub)
    _add_test(sub)
    from sukiyaki.distributed.cli import add_commands
    from sukiyaki.web.cli import add_commands as add_web_commands

    add_commands(sub)
    add_web_commands(sub)
    return p


def _cluster_error():
    from sukiyaki.distributed.cluster.env import ClusterError

    return ClusterError


def _is_cluster_error(exc):
    return isinstance(exc, _cluster_error())


def _message(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc)


def main(argv=None):
    """Entry point of the ``sukiyaki`` command; returns the exit status."""
    from sukiyaki.backends import BackendUnavailable

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except (UsageError, ValueError, OSError, BackendUnavailable, MemoryError) as exc:
        print(f"sukiyaki {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
