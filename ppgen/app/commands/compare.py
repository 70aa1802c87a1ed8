"""`ppgen compare --data DATA [--models a,b] [--quick] [--jobs N] [--seeds 0,1,2] --out DIR`: the main job."""

import sys
from pathlib import Path

from ppgen.app.commands.options import add_data_arguments, add_run_arguments, load_split
from ppgen.app.compare import applicable_models, compare, default_jobs, format_table
from ppgen.app.demo import DEMO_MODELS
from ppgen.app.job import resolve_device
from ppgen.app.report import summarize
from ppgen.app.runs import prepare_run_dir
from ppgen.app.specs import lookup
from ppgen.app.threads import resolve_threads
from ppgen.base import supports
from ppgen.errors import PPGenError


def add_arguments(p):
    add_data_arguments(p)
    p.add_argument(
        "--models",
        default=None,
        help="comma-separated names (default: every model that supports the data); 'demo': the models "
        "`make demo` shows on the data (ppgen.app.demo.DEMO_MODELS, else every one with a quick preset)",
    )
    p.add_argument(
        "--budget-seconds",
        type=float,
        default=None,
        help="training seconds per model, evaluation excluded "
        "(default: the epochs decide; quick mode: the preset's)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="each model's quick preset for the data (models without one are left out); K = 100 for IWAE",
    )
    p.add_argument("--jobs", type=int, default=None, help="parallel processes (default: the number of cores)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2 (default: --seed)")
    p.add_argument(
        "--no-cache", action="store_true", help="retrain every model; neither read nor write the cache"
    )
    p.add_argument(
        "--no-uses",
        action="store_true",
        help="leave out the sections on outlier rejection, Bayes-rule classification and completion",
    )
    p.add_argument("--out", required=True, help="the report directory")
    add_run_arguments(p)


def _seeds(text: str | None, default: int) -> list[int]:
    if text is None:
        return [default]
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise PPGenError(f"--seeds expects comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise PPGenError(f"--seeds expects distinct integers, got {text!r}")
    return seeds


def _demo_models(data) -> list[str]:
    if data.name in DEMO_MODELS:
        return list(DEMO_MODELS[data.name])
    return [n for n in applicable_models(data) if lookup(n).quick_preset(data.name) is not None]


def run(args) -> int:
    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models is not None else None
    if names == []:
        raise PPGenError(
            f"--models {args.models!r} names no model; expected e.g. --models independent,mixture"
        )
    seeds = _seeds(args.seeds, args.seed)
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise PPGenError(f"--jobs must be at least 1, got {jobs}")
    train = load_split(args, "train")
    if names == ["demo"]:
        names = _demo_models(train)
        if not names:
            raise PPGenError(f"no model has a quick preset for {train.name}, so the demo has nothing to show")
    if names:
        for n in names:
            if (reason := supports(lookup(n), train.spec)) is not None:
                raise PPGenError(reason)
    if args.budget_seconds is not None and not args.budget_seconds > 0:
        raise PPGenError(f"--budget-seconds must be positive, got {args.budget_seconds}")
    device = resolve_device(args.device)  # before the report folder is made: no CUDA, nothing written
    out = prepare_run_dir(Path(args.out), force=args.force)
    test = load_split(args, "test")
    names = applicable_models(train, names)
    print(
        f"ppgen compare on {args.data}: {len(names)} models x {len(seeds)} seeds, {jobs} jobs"
        f" of {resolve_threads(args.threads) or 'the default number of'} thread(s)"
        + (" (quick)" if args.quick else ""),
        file=sys.stderr,
    )
    rows = compare(
        train,
        test,
        names,
        out,
        args.budget_seconds,
        args.quick,
        seeds,
        device,
        jobs=jobs,
        use_cache=not args.no_cache,
        uses=not args.no_uses,
        progress=not args.quiet,
        log=lambda m: print(m, file=sys.stderr),
        threads=args.threads,
    )
    print(format_table(summarize(rows)))
    print(f"\nreport: {out / 'report.md'} (and report.html)")
    return 1 if any("error" in r for r in rows) else 0
