"""Options and data loading that several subcommands share."""

import argparse
import json

from ppgen import data as ppdata
from ppgen.errors import PPGenError
from ppgen.seed import check_seed

__all__ = ["add_data_arguments", "add_run_arguments", "load_split", "parse_config", "seed_argument"]


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


def seed_argument(text: str) -> int:
    r"""argparse type of ``--seed``: an integer in [0, 2**63 - 1]."""
    try:
        return check_seed(int(text))
    except (ValueError, PPGenError):
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**63 - 1], got {text!r}") from None


def add_run_arguments(p: argparse.ArgumentParser, seed_default: int | None = 0) -> None:
    r"""--device, --seed, --quiet, --force; ``seed_default`` None lets a command tell an explicit seed."""
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=seed_argument, default=seed_default, help="default 0")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")


def load_split(args, split: str):
    r"""The named data set's split, or a data file split deterministically."""
    if args.data.endswith(ppdata.FILE_SUFFIXES):
        missing = getattr(args, "missing", False)
        try:
            return ppdata.load_file(args.data, split, kind=args.kind, missing=missing)
        except PPGenError as e:
            if missing or "NaN" not in str(e):
                raise
            raise PPGenError(
                f"{args.data} has NaN entries; if they are missing values, pass --missing (models that "
                "marginalize them: independent, mixture, bayesnet, unconditional VAEs)"
            ) from None
    if args.kind is not None:
        raise PPGenError("--kind applies only to data files; named data sets know their kind")
    return ppdata.load(args.data, split, root=args.data_root)


def parse_config(items: list[str] | None) -> dict:
    r"""``["hidden=[64,64]", "lr=1e-3", "name=x", "flag=true"]`` -> a dict of JSON values (numbers, lists,
    booleans, null, objects); a value that is not JSON stays a string (``true``/``false``/``none`` in any
    case are booleans and None)."""
    config = {}
    for item in items or []:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise PPGenError(f"--config expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        if not key.isidentifier():
            raise PPGenError(f"--config: {key!r} is not an option name (key=value, e.g. hidden=[64,64])")
        if key in config:
            raise PPGenError(f"--config gives {key!r} twice")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = {"true": True, "false": False, "none": None}.get(value.lower(), value)
        config[key] = value
    return config
