"""How many CPU threads torch uses in the `ppgen` command, `compare`'s workers and the benchmarks.

ppgen's networks are small (MLPs of a few hundred units, 8 x 8 images), so one step is a chain of small
kernels: extra intra-op threads buy little and cost a synchronisation per kernel, which turns into long
waits when other processes share the cores. ``benchmarks/threads.py`` measures it per family: on a shared
2-core machine (load average 7-12) torch's default of 2 threads made a training step 8-45x slower in wall
time than one thread (and 8-40x in CPU time: the threads spin while they wait), for one small model of
each of the seven families; so the default here is one thread. ``--threads N`` on the command line, or
``PPGEN_THREADS=N`` in the environment, sets another count; 0 leaves torch's own default (one per core),
which can pay on a quiet machine with many cores and large networks.

The Python API (``ppgen.fit`` and friends) never changes torch's global thread count: only the command
line, ``compare``'s worker processes and the benchmark scripts call :func:`set_threads`.
"""

import argparse
import os

from ppgen.errors import PPGenError

__all__ = [
    "DEFAULT_THREADS",
    "ENV",
    "add_threads_argument",
    "parse_threads",
    "resolve_threads",
    "set_threads",
]

DEFAULT_THREADS = 1
ENV = "PPGEN_THREADS"


def parse_threads(text, source: str = "--threads") -> int:
    r"""A thread count from text: an integer >= 0 (0: torch's default).

    Raises:
        PPGenError: ``text`` is not such an integer (the message names ``source``).
    """
    try:
        value = int(str(text).strip())
    except ValueError:
        value = -1
    if value < 0:
        raise PPGenError(f"{source} must be a non-negative integer (0: torch's default), got {text!r}")
    return value


def resolve_threads(threads: int | None = None) -> int:
    r"""The thread count to use: ``threads`` if given, else ``$PPGEN_THREADS``, else :data:`DEFAULT_THREADS`.

    Returns 0 for torch's own default.

    Raises:
        PPGenError: ``threads`` is negative or ``$PPGEN_THREADS`` is not a non-negative integer.
    """
    if threads is not None:
        return parse_threads(threads)
    if os.environ.get(ENV, "").strip():
        return parse_threads(os.environ[ENV], source=ENV)
    return DEFAULT_THREADS


def set_threads(threads: int | None = None) -> int:
    r"""Sets torch's intra-op thread count (see :func:`resolve_threads`) and returns the count in effect.

    ``compare`` passes the count to its worker processes itself; this function leaves the environment alone.
    """
    import torch  # here, not at the top: `ppgen --help` parses its arguments without torch

    n = resolve_threads(threads)
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def _argument(text: str) -> int:
    try:
        return parse_threads(text)
    except PPGenError:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer (0: torch's default), got {text!r}"
        ) from None


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    r"""Adds ``--threads N`` (default: ``$PPGEN_THREADS``, else one thread)."""
    p.add_argument(
        "--threads",
        type=_argument,
        default=None,
        metavar="N",
        help=f"torch CPU threads (default ${ENV}, else {DEFAULT_THREADS}; 0: torch's default, one per core)",
    )
