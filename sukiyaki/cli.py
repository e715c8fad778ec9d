"""The ``sukiyaki`` command line.

Example:
    $ sukiyaki info
"""

import argparse
import sys


def _cmd_info(args):
    import numpy as np

    import sukiyaki
    from sukiyaki.backends import available_backends

    print(f"sukiyaki {sukiyaki.__version__} (numpy {np.__version__})")
    print("backends available here: " + ", ".join(available_backends()))
    return 0


def build_parser():
    """The argument parser with every subcommand."""
    p = argparse.ArgumentParser(prog="sukiyaki", description="sukiyaki deep-learning platform")
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="show the version and the backends available here")
    info.set_defaults(func=_cmd_info)
    return p


def main(argv=None):
    """Entry point of the ``sukiyaki`` command."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
