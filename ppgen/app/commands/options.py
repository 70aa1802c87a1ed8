"""Options and data loading that several subcommands share."""

import argparse
import json

from ppgen import data as ppdata
from ppgen.errors import PPGenError

__all__ = ["add_data_arguments", "add_run_arguments", "load_split", "parse_config"]


def add_data_arguments(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--data",
        required=required,
        help=f"a data set ({', '.join(ppdata.names())}) or a file (.npy/.npz/.pt/.csv)",
    )
    p.add_argument(
        "--data-root", default=None, help="folder with the MNIST IDX files (else $PPGEN_DATA/mnist)"
    )
    p.add_argument(
        "--kind", default=None, help="data kind of a data file: binary, categorical:K or continuous"
    )


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")


def load_split(args, split: str):
    r"""The named data set's split, or a data file split deterministically."""
    if args.data.endswith(ppdata.FILE_SUFFIXES):
        return ppdata.load_file(args.data, split, kind=args.kind)
    if args.kind is not None:
        raise PPGenError("--kind applies only to data files; named data sets know their kind")
    return ppdata.load(args.data, split, root=args.data_root)


def parse_config(items: list[str] | None) -> dict:
    r"""``["hidden=[64,64]", "lr=1e-3", "name=x", "flag=true"]`` -> a dict of JSON values (numbers, lists,
    booleans, null, objects); a value that is not JSON stays a string (``true``/``false``/``none`` in any
    case are booleans and None)."""
    config = {}
    for item in items or []:
        if "=" not in item:
            raise PPGenError(f"--config expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        if not key.isidentifier():
            raise PPGenError(f"--config: {key!r} is not an option name (key=value, e.g. hidden=[64,64])")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = {"true": True, "false": False, "none": None}.get(value.lower(), value)
        config[key] = value
    return config
