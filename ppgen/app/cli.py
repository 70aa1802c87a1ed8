"""The `ppgen` command: subcommands from ``ppgen.app.commands``; bad input -> one line on stderr, exit 2."""

import argparse
import importlib
import sys

from ppgen.app.commands import COMMANDS
from ppgen.errors import NonFiniteLossError, PPGenError

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    r"""A command line that argparse cannot parse (its message, without the usage text)."""


class Parser(argparse.ArgumentParser):
    r"""An ArgumentParser whose errors are one line (raised as :class:`UsageError`), not usage and exit."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ppgen", description="Probabilistic programming for deep generative models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"ppgen.app.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as e:
        print(f"{e} (see ppgen -h)", file=sys.stderr)
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # ppgen train --nproc reruns it per rank
    try:
        return args.run(args) or 0
    except PPGenError as e:
        print(f"ppgen {args.command}: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        print(f"ppgen {args.command}: training stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ppgen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
