"""The `ppgen` command: subcommands from ``ppgen.app.commands``; bad input -> one line on stderr, exit 2.

Only the module of the command being run is imported (`ppgen -h` imports none), so that start-up costs
what that command needs and no more (``benchmarks/startup.py`` times it). Every command takes
``--threads N`` (see :mod:`ppgen.app.threads`), applied before the command runs.
"""

import argparse
import importlib
import os
import sys

from ppgen.app.commands import COMMANDS
from ppgen.app.threads import add_threads_argument, set_threads
from ppgen.errors import NonFiniteLossError, PPGenError

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    r"""A command line that argparse cannot parse (its message, without the usage text)."""


class Parser(argparse.ArgumentParser):
    r"""An ArgumentParser whose errors are one line (raised as :class:`UsageError`), not usage and exit."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message}")


def build_parser(commands=None) -> argparse.ArgumentParser:
    r"""The `ppgen` parser; the arguments of ``commands`` (default: all) are added, the others only listed.

    Arguments:
        commands: the names whose modules are imported to add their arguments, e.g. ``["list"]``.
    """
    parser = Parser(prog="ppgen", description="Probabilistic programming for deep generative models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, line in COMMANDS.items():
        p = sub.add_parser(name, help=line, description=line)
        if commands is None or name in commands:
            module = importlib.import_module(f"ppgen.app.commands.{name}")
            module.add_arguments(p)
            add_threads_argument(p)
            p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)  # the top level has no valued options
    try:
        args = build_parser([command]).parse_args(argv)
    except UsageError as e:
        print(f"{e} (see ppgen -h)", file=sys.stderr)
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # ppgen train --nproc reruns it per rank
    try:
        set_threads(args.threads)
        return args.run(args) or 0
    except PPGenError as e:
        print(f"ppgen {args.command}: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        print(f"ppgen {args.command}: training stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C reaches every rank of ``--nproc``: only the launcher says so
        if os.environ.get("PPGEN_LAUNCHED") != "1":
            print(f"ppgen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
