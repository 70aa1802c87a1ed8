"""`ppgen compare --data DATA [--models a,b] [--quick] [--jobs N] [--seeds 0,1,2] --out DIR`: the main job."""

import sys
from pathlib import Path

from ppgen.app.commands.options import add_data_arguments, add_run_arguments, load_split
from ppgen.app.demo import DEMO_MODELS
from ppgen.app.executors import EXECUTORS, SlurmOptions, make_executor
from ppgen.app.job import resolve_device
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
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="where the cells run: local processes (--jobs), Ray tasks (pip install 'ppgen[ray]') or "
        "Slurm jobs through submitit (pip install 'ppgen[slurm]'); on a cluster set PPGEN_CACHE to a "
        "shared folder",
    )
    p.add_argument(
        "--address", default=None, help="--executor ray: the cluster (e.g. auto, ray://head:10001); "
        "default: a local instance with --jobs CPUs"
    )  # fmt: skip
    slurm = p.add_argument_group("--executor slurm (one array job, a task per cell)")
    slurm.add_argument("--slurm-partition", default=None)
    slurm.add_argument("--slurm-time", type=int, default=60, metavar="MINUTES", help="time limit of each job")
    slurm.add_argument("--slurm-cpus", type=int, default=1, help="CPUs per job")
    slurm.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per job (use with --device cuda)")
    slurm.add_argument("--slurm-mem-gb", type=float, default=None, help="memory per job")
    slurm.add_argument(
        "--slurm-cluster", default=None, choices=["slurm", "local", "debug"],
        help="submitit's cluster (default: slurm where sbatch exists, else local processes)",
    )  # fmt: skip
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
    from ppgen.app.compare import applicable_models

    if data.name in DEMO_MODELS:
        return list(DEMO_MODELS[data.name])
    return [n for n in applicable_models(data) if lookup(n).quick_preset(data.name) is not None]


def run(args) -> int:
    # here: `ppgen compare --help` need not load matplotlib (the report) and the grid
    from ppgen.app.compare import applicable_models, compare, default_jobs, format_table
    from ppgen.app.report import summarize

    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models is not None else None
    if names == []:
        raise PPGenError(
            f"--models {args.models!r} names no model; expected e.g. --models independent,mixture"
        )
    seeds = _seeds(args.seeds, args.seed)
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise PPGenError(f"--jobs must be at least 1, got {jobs}")
    for name in ("slurm_time", "slurm_cpus"):
        if getattr(args, name) < 1:
            raise PPGenError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    slurm = SlurmOptions(args.slurm_partition, args.slurm_time, args.slurm_cpus, args.slurm_gpus,
                         args.slurm_mem_gb, args.slurm_cluster)  # fmt: skip
    executor = make_executor(args.executor, Path(args.out), args.address, jobs, slurm)
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
    where = f"{jobs} jobs" if executor is None else f"executor {args.executor}"
    print(
        f"ppgen compare on {args.data}: {len(names)} models x {len(seeds)} seeds, {where}"
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
        executor=executor,
    )
    print(format_table(summarize(rows)))
    print(f"\nreport: {out / 'report.md'} (and report.html)")
    return 1 if any("error" in r for r in rows) else 0
