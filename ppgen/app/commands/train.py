"""`ppgen train MODEL --data DATA --out RUN_DIR`: fit, evaluate and write a run directory."""

from pathlib import Path

import matplotlib.pyplot as plt

from ppgen.app import runs
from ppgen.app.commands.options import add_data_arguments, add_run_arguments, load_split, parse_config
from ppgen.app.job import resolve_device, run_job
from ppgen.app.plots import sample_figure
from ppgen.app.specs import build_model, canonical, lookup
from ppgen.errors import NonFiniteLossError, PPGenError
from ppgen.seed import seed_everything

HELP = "train a model, evaluate it on the test split and write a run directory"


def add_arguments(p):
    p.add_argument(
        "model", help="a registered model (see `ppgen list`), or your own program as path/to/file.py:NAME"
    )
    add_data_arguments(p)
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=None)
    length.add_argument("--steps", type=int, default=None)
    p.add_argument("--budget-seconds", type=float, default=None, help="stop training after this many seconds")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--num-samples", type=int, default=1000, help="K of importance-sampled test estimates")
    p.add_argument("--config", nargs="*", metavar="KEY=VALUE", help="model options, e.g. hidden=256")
    p.add_argument("--out", required=True, help="the run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out up to --epochs")
    add_run_arguments(p)


def _check_positive(args):
    for name in ("epochs", "steps", "batch_size", "num_samples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise PPGenError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    for name in ("lr", "budget_seconds"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise PPGenError(f"--{name.replace('_', '-')} must be positive, got {value}")


def run(args) -> int:
    lookup(args.model)  # unknown names and programs that do not load fail before anything else
    _check_positive(args)
    out = runs.prepare_run_dir(Path(args.out), force=args.force, resume=args.resume)
    device = resolve_device(args.device)
    train, test = load_split(args, "train"), load_split(args, "test")
    config = parse_config(args.config)

    model, start_epoch, objective_state, log = None, 0, None, []
    if args.resume:
        saved = runs.read_json(out / runs.CONFIG)
        if saved.get("source", saved.get("model")) != canonical(args.model) or saved.get("data") != args.data:
            raise PPGenError(
                f"--resume: {out} holds {saved.get('model')} on {saved.get('data')}, "
                f"not {args.model} on {args.data}"
            )
        model, payload = runs.load_checkpoint(out / runs.CHECKPOINT, map_location=device)
        trainer = payload["trainer"]
        start_epoch, objective_state, log = (
            trainer.get("epoch", 0),
            trainer.get("objective"),
            trainer.get("log", []),
        )
        config = model.config
    else:  # built before anything is written, so that a bad --config leaves no run directory behind
        seed_everything(args.seed)
        model = build_model(args.model, train, config)

    fit_options = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "steps": args.steps,
            "budget_seconds": args.budget_seconds,
            "batch_size": args.batch_size,
            "lr": args.lr,
        }.items()
        if v is not None
    }
    fit_options.update(start_epoch=start_epoch, objective_state=objective_state)
    out.mkdir(parents=True, exist_ok=True)
    runs.write_json(
        out / runs.CONFIG,
        {
            "model": args.model,
            "source": canonical(args.model),
            "data": args.data,
            "data_root": args.data_root,
            "kind": args.kind,
            "config": config,
            "fit": {k: v for k, v in fit_options.items() if k != "objective_state"},
            "seed": args.seed,
            "device": str(device),
            "format_version": runs.FORMAT_VERSION,
        },
    )

    def checkpoint(epoch, row, objective):
        log.append(row)
        runs.save_checkpoint(
            out / runs.CHECKPOINT,
            objective.model,
            {"epoch": epoch, "objective": objective.state_dict(), "log": log},
        )
        runs.write_train_log(out / "train_log.csv", log)

    try:
        job = run_job(
            args.model,
            train,
            test,
            config,
            fit_options,
            seed=args.seed,
            device=device,
            num_samples=args.num_samples,
            model=model,
            on_epoch_end=checkpoint,
            progress=not args.quiet,
        )
    except NonFiniteLossError as e:
        if not (out / runs.CHECKPOINT).exists():  # failed in the first epoch: keep the initial model
            runs.save_checkpoint(out / runs.CHECKPOINT, e.model, {"epoch": start_epoch, "log": log})
        runs.write_json(
            out / "metrics.json",
            {"model": args.model, "data": args.data, "stopped": str(e), "seed": args.seed},
        )
        raise NonFiniteLossError(f"{e}; the last good checkpoint is {out / runs.CHECKPOINT}") from None

    metrics = {**job.metrics, "data": args.data}
    runs.write_json(out / "metrics.json", metrics)
    figure = sample_figure(job.model.sample(64).cpu(), test, title=f"{args.model} on {args.data}")
    figure.savefig(out / "samples.png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    nll = metrics["test_nll_nats"]
    summary = f"{args.model} on {args.data}: " + (
        f"test NLL {nll:.3f} nats ({metrics['test_nll_kind']}), {metrics['test_bpd']:.4f} bits/dim"
        if nll is not None
        else "no density (samples only)"
    )
    print(f"{summary}; run written to {out}")
    return 0
