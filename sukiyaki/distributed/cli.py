"""The ``sukiyaki serve`` and ``sukiyaki worker`` commands (distributed training).

Example:
    $ sukiyaki serve lenet --iterations 500 --batch-size 64
    $ sukiyaki worker http://127.0.0.1:8765 --token <the token serve printed>
"""

import asyncio
import ipaddress
import logging
import secrets
import sys


def _serve(args):
    from aiohttp import web

    from sukiyaki.cli import UsageError, build_net
    from sukiyaki.distributed.codec import CODECS
    from sukiyaki.distributed.coordinator.app import CoordinatorServer, make_app
    from sukiyaki.distributed.coordinator.checkpoint import recorded_log, restore_checkpoint
    from sukiyaki.distributed.coordinator.state import CoordinatorState, Settings
    from sukiyaki.nn.train import check_appendable, make_optimizer

    for key in ("codec_down", "codec_up"):
        if getattr(args, key) not in CODECS:
            raise UsageError(f"--{key.replace('_', '-')} must be one of {', '.join(CODECS)}")
    _set_codec_threads(args)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.resume and not args.log:
        args.log = recorded_log(args.resume)  # a resumed run goes on writing the same metrics log
    if args.log:
        try:
            check_appendable(args.log, "--log")  # before anything is built
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    args.device = "numpy"
    net = build_net(args, seed=args.seed)
    try:
        settings = Settings(batch_size=args.batch_size, iterations=args.iterations, seed=args.seed,
                            shard_size=args.shard_size, codec_down=args.codec_down, codec_up=args.codec_up,
                            deterministic=args.deterministic, deadline=args.deadline,
                            first_deadline=args.first_deadline, local_steps=args.local_steps,
                            val_cycle=args.val_cycle,
                            inner_lr=args.lr if args.lr is not None else 0.02, outer_lr=args.outer_lr,
                            outer_momentum=args.outer_momentum)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if settings.local_steps > 1:  # the coordinator takes the outer step on the averaged change
        opt = make_optimizer("momentum_sgd", lr=settings.outer_lr, momentum=settings.outer_momentum, weight_decay=0.0)
    else:
        opt = make_optimizer(args.optimizer, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    state = CoordinatorState(net, settings, opt)
    if args.resume:
        it = restore_checkpoint(state, args.resume)
        print(f"resumed from {args.resume} at iteration {it}", flush=True)
    join = args.token or secrets.token_urlsafe(16)
    admin = args.admin_token or secrets.token_urlsafe(16)
    try:
        server = CoordinatorServer(state, join, admin, checkpoint=args.checkpoint or args.resume,
                                   checkpoint_every=args.checkpoint_every, pyodide=args.pyodide, metrics_log=args.log)
    except ValueError as exc:  # --pyodide is not a Pyodide folder
        raise UsageError(str(exc)) from None
    ssl_context = None
    if args.tls_cert:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--tls-cert/--tls-key: cannot load them ({exc})") from None
    scheme = "https" if ssl_context else "http"
    url = f"{scheme}://{args.host}:{args.port}"
    print(f"coordinator of {args.net}: {state.n_train} samples, batch {settings.batch_size}, "
          f"{settings.iterations or 'unlimited'} iterations", flush=True)
    print(f"dashboard: {url}/", flush=True)
    print(f"workers:   sukiyaki worker {url} --token {join}", flush=True)
    print(f"           or a browser tab: {url}/worker#token={join}", flush=True)
    print(f"admin token (pause, resume, stop, save): {admin}", flush=True)
    if not ssl_context and not _loopback(args.host):
        print("note: plain HTTP on a non-loopback address: browsers give WebGPU only to secure contexts, so a "
              "tab on another machine needs --tls-cert/--tls-key", flush=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)

    async def main():
        app = make_app(server)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port, ssl_context=ssl_context)
        await site.start()
        try:
            await server.done.wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print(f"sukiyaki serve: interrupted at iteration {state.iteration}", file=sys.stderr)
        return 130
    if state.diverged:
        print(f"sukiyaki serve: error: {state.diverged}", file=sys.stderr)
        return 1
    print(f"done: {state.iteration} iterations", flush=True)
    return 0


def _loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _worker(args):
    from sukiyaki.distributed.worker import FatalError, Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    _set_codec_threads(args)
    w = Worker(args.url, args.token, backend=args.backend, name=args.name, max_batch=args.max_batch,
               max_tasks=args.max_tasks, cafile=args.cafile, speed=args.speed)
    try:
        done = asyncio.run(w.run())
    except FatalError as exc:
        print(f"sukiyaki worker: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"done: {done} tasks", flush=True)
    return 0


def add_commands(sub):
    """Add ``serve`` and ``worker`` to the sukiyaki command's subparsers."""
    from sukiyaki.backends import USER_BACKENDS
    from sukiyaki.cli import _add_common, _number
    from sukiyaki.nn.optim import OPTIMIZERS

    p = sub.add_parser("serve", help="coordinate distributed training (workers join over HTTP/WebSocket)")
    _add_common(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_number(int, 0), default=8765)
    p.add_argument("--token", help="the join token (default: a random one, printed)")
    p.add_argument("--admin-token", help="the admin token (default: a random one, printed)")
    p.add_argument("--batch-size", type=_number(int, 1), default=64)
    p.add_argument("--iterations", type=_number(int, 1), default=None)
    p.add_argument("--seed", type=_number(int, 0), default=0)
    p.add_argument("--optimizer", default="momentum_sgd", choices=sorted(OPTIMIZERS))
    p.add_argument("--lr", type=_number(float, 0), default=None)
    p.add_argument("--momentum", type=_number(float, 0, below=1), default=0.9)
    p.add_argument("--weight-decay", type=_number(float, 0), default=0.0005)
    p.add_argument("--shard-size", type=_number(int, 0), default=0, help="samples per unit of work (0: batch/32)")
    p.add_argument("--codec-down", default="raw", help="weights to the workers: raw, fp16, dettmers8, block8")
    p.add_argument("--codec-up", default="raw", help="gradients from the workers: raw, fp16, dettmers8, block8")
    p.add_argument("--deterministic", action="store_true", help="bit-equal weights whatever the workers")
    p.add_argument("--local-steps", type=_number(int, 1), default=1,
                   help="H > 1: each worker takes H steps of its own between synchronisations (as DiLoCo); "
                        "--lr is then the workers' inner rate")
    p.add_argument("--outer-lr", type=_number(float, 0, strict=True), default=0.7, help="outer step rate (local steps)")
    p.add_argument("--outer-momentum", type=_number(float, 0, below=1), default=0.5,
                   help="outer Nesterov momentum (local steps; 0.9 as DiLoCo diverged on LeNet with 8 steps)")
    p.add_argument("--deadline", type=_number(float, 0, strict=True), default=30.0,
                   help="seconds a task may take at least; more when the worker's speed predicts more (5x the "
                        "predicted time; the speed measured, else declared by the worker, else the others' median)")
    p.add_argument("--first-deadline", type=_number(float, 0, strict=True), default=600.0,
                   help="seconds a task may take when nothing predicts its worker's speed (its first task, no "
                        "speed declared, no worker measured yet; default 600: VGG16 at 5 images/s needs 51 s "
                        "for a batch of 256)")
    p.add_argument("--val-cycle", type=_number(int, 0), default=100,
                   help="validate on the coordinator every N iterations and at the end (0: never; default 100)")
    p.add_argument("--checkpoint", metavar="PATH", help="the coordinator's checkpoint file")
    p.add_argument("--checkpoint-every", type=_number(int, 1), default=100)
    p.add_argument("--resume", metavar="PATH",
                   help="continue from a coordinator checkpoint (and append to the --log it recorded)")
    p.add_argument("--log", metavar="PATH",
                   help="append JSON lines to PATH, as sukiyaki train --log: one per iteration (iteration, loss, "
                        "images_per_s, time) and one per validation (iteration, validation, time)")
    p.add_argument("--tls-cert", metavar="PEM")
    p.add_argument("--tls-key", metavar="PEM")
    p.add_argument("--pyodide", metavar="URL|PATH",
                   help="where browser workers (/worker) load Pyodide 0.27.7: an http(s) URL, or a local folder "
                        "served under /pyodide/ (default: the official CDN)")
    _add_codec_threads(p, _number)
    p.set_defaults(func=_serve)

    w = sub.add_parser("worker", help="join a coordinator and compute gradients")
    w.add_argument("url", help="the coordinator's URL, e.g. http://127.0.0.1:8765")
    w.add_argument("--token", required=True, help="the join token the coordinator printed")
    w.add_argument("--backend", default="numpy", choices=list(USER_BACKENDS))
    w.add_argument("--name", help="how the dashboard calls this worker")
    w.add_argument("--max-batch", type=_number(int, 1), default=256, help="the most samples in one pass")
    w.add_argument("--max-tasks", type=_number(int, 1), default=None, help="leave after N tasks")
    w.add_argument("--cafile", metavar="PEM", help="trust this certificate (an https coordinator's self-signed one)")
    w.add_argument("--speed", type=_number(float, 0, strict=True), default=None, metavar="IMAGES_PER_S",
                   help="the images/s this worker expects to compute, told to the coordinator (its first task's "
                        "deadline; measured afterwards)")
    _add_codec_threads(w, _number)
    w.set_defaults(func=_worker)


def _add_codec_threads(p, number):
    p.add_argument("--codec-threads", type=number(int, 1), default=None, metavar="N",
                   help="threads that encode a large tensor (default: SUKIYAKI_CODEC_THREADS, else min(8, cores))")


def _set_codec_threads(args):
    if args.codec_threads is not None:
        from sukiyaki.distributed.codec_threads import set_threads

        set_threads(args.codec_threads)
