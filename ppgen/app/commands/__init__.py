"""The `ppgen` subcommands: one module each, with ``add_arguments(parser)`` and ``run(args) -> int``.

Each module also defines ``HELP`` (one line). ``COMMANDS`` lists them in the order `ppgen -h` shows.
"""

COMMANDS = ["list", "train", "sample", "complete", "eval", "compare", "graph", "inspect"]
