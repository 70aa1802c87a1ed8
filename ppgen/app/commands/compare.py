"""`ppgen compare --data DATA [--models a,b] --out DIR`: the main job, every model on the same data."""

import sys
from pathlib import Path

from ppgen.app.commands.options import add_data_arguments, add_run_arguments, load_split
from ppgen.app.compare import applicable_models, compare, format_table
from ppgen.app.job import resolve_device
from ppgen.app.runs import prepare_run_dir
from ppgen.base import get, supports
from ppgen.errors import PPGenError

HELP = "train every requested model on the same data and budget; write report.md, report.json and figures"


def add_arguments(p):
    add_data_arguments(p)
    p.add_argument(
        "--models", default=None, help="comma-separated names (default: every model that supports the data)"
    )
    p.add_argument("--budget-seconds", type=float, default=None, help="training seconds per model")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a 2-second budget per model, K = 100 importance samples, 200 samples for image metrics",
    )
    p.add_argument("--out", required=True, help="the report directory")
    add_run_arguments(p)


def run(args) -> int:
    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models is not None else None
    if names == []:
        raise PPGenError(
            f"--models {args.models!r} names no model; expected e.g. --models independent,mixture"
        )
    train = load_split(args, "train")
    if names:
        for n in names:
            if (reason := supports(get(n), train.spec)) is not None:
                raise PPGenError(reason)
    if args.budget_seconds is not None and not args.budget_seconds > 0:
        raise PPGenError(f"--budget-seconds must be positive, got {args.budget_seconds}")
    out = prepare_run_dir(Path(args.out), force=args.force)
    device = resolve_device(args.device)
    test = load_split(args, "test")
    names = applicable_models(train, names)
    print(
        f"ppgen compare on {args.data}: {len(names)} models" + (" (quick)" if args.quick else ""),
        file=sys.stderr,
    )
    rows = compare(
        train,
        test,
        names,
        out,
        args.budget_seconds,
        args.quick,
        args.seed,
        device,
        progress=not args.quiet,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(format_table(rows))
    print(f"\nreport: {out / 'report.md'}")
    return 1 if any("error" in r for r in rows) else 0
