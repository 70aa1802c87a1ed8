"""`ppgen train MODEL --data DATA --out RUN_DIR`: fit, evaluate and write a run directory.

Everything that can be checked is checked before anything is written, so a refused train leaves
nothing behind. The run holds the directory's lock from start to end; ``--force`` clears the old
outputs first; every epoch writes a checkpoint with the optimizers' and random generators' state, so
that ``--resume`` continues exactly where the run stopped (4 epochs and 2 + 2 give the same weights).
A resume applies a new ``--batch-size`` and ``--lr`` (every saved learning rate scaled to it) and
refuses a different ``--config`` or ``--seed``; ``--epochs``/``--steps`` are the run's totals.
"""

import copy
import io
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from ppgen.app import data_parallel, runs
from ppgen.app.commands.options import add_data_arguments, add_run_arguments, load_split, parse_config
from ppgen.app.job import resolve_device, run_job
from ppgen.app.specs import build_model, canonical, lookup
from ppgen.errors import NonFiniteLossError, PPGenError
from ppgen.inference.tasks.missing import fit_missing, observed_log_prob, supports_missing
from ppgen.seed import get_rng_state, seed_everything

FIT_KEYS = ("epochs", "steps", "budget_seconds", "batch_size", "lr")


def add_arguments(p):
    p.add_argument(
        "model", help="a registered model (see `ppgen list`), or your own program as path/to/file.py:NAME"
    )
    add_data_arguments(p)
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=None, help="with --resume: the total number of epochs")
    length.add_argument("--steps", type=int, default=None, help="with --resume: the total number of steps")
    p.add_argument("--budget-seconds", type=float, default=None, help="stop training after this many seconds")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--num-samples", type=int, default=1000, help="K of importance-sampled test estimates")
    p.add_argument("--config", nargs="*", metavar="KEY=VALUE", help="model options, e.g. hidden=256")
    p.add_argument("--out", required=True, help="the run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out up to --epochs")
    p.add_argument(
        "--missing",
        action="store_true",
        help="NaN in a data file marks a missing entry: fit log p(x_o) with a model that marginalizes them",
    )
    add_run_arguments(p, seed_default=None)
    data_parallel.add_arguments(p)


def _check_positive(args):
    for name in ("epochs", "steps", "batch_size", "num_samples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise PPGenError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    for name in ("lr", "budget_seconds"):
        value = getattr(args, name)
        if value is not None and not 0 < value < float("inf"):
            raise PPGenError(f"--{name.replace('_', '-')} must be a positive finite number, got {value}")


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def run(args) -> int:
    return data_parallel.run(args, _run)  # one process, or this process's rank of a data-parallel run


def _run(args) -> int:
    lookup(args.model)  # unknown names and programs that do not load fail before anything else
    _check_positive(args)
    if args.force and args.resume:
        raise PPGenError("--force starts the run afresh and --resume continues it; pass one of them")
    if args.missing and (args.resume or args.steps is not None):
        raise PPGenError("--missing trains in one go for --epochs; it does not take --resume or --steps")
    out = runs.prepare_run_dir(Path(args.out), force=args.force, resume=args.resume)
    device = resolve_device(args.device)
    if args.resume:
        with runs.RunLock(out):
            return _resume(args, out, device)
    return _fresh(args, out, device)


def _fresh(args, out: Path, device) -> int:
    seed = 0 if args.seed is None else args.seed
    train, test = load_split(args, "train"), load_split(args, "test")
    config = parse_config(args.config)
    seed_everything(seed)
    model = build_model(args.model, train, config)  # a bad --config fails here, before anything is written
    if args.missing:
        return _fresh_missing(args, out, device, model, train, test, seed)
    fit_asked = {k: getattr(args, k) for k in FIT_KEYS}
    created = runs.make_run_dir(out)
    wrote = []
    with runs.RunLock(out):  # refused: another writer holds it, and the folder is its own
        try:
            runs.prepare_run_dir(out, force=args.force)  # again under the lock: another run may have written
            if args.force:
                runs.clear_outputs(out)
            record = _record(args, model, fit_asked, seed, device)
            runs.write_json(out / runs.CONFIG, record)
            state = {"epoch": 0, "steps": 0, "seconds": 0.0, "log": []}
            return _train(args, out, device, model, train, test, record, fit_asked, state, seed, wrote)
        except BaseException as e:
            if created and not wrote and not isinstance(e, NonFiniteLossError):
                shutil.rmtree(out, ignore_errors=True)  # a refused or failed train leaves nothing behind
            raise


def _fresh_missing(args, out: Path, device, model, train, test, seed: int) -> int:
    r"""--missing: fit sum log p(x_o) (``ppgen.inference.tasks.missing``), score the test split's observed
    entries, write config.json, model.pt and metrics.json (no resume, no samples figure)."""
    if (reason := supports_missing(model)) is not None:
        raise PPGenError(reason)
    model.to(device)
    fit_asked = {k: getattr(args, k) for k in FIT_KEYS}
    defaults = model.fit_defaults
    options = {
        "epochs": args.epochs or defaults.get("epochs", 50),
        "batch_size": args.batch_size or defaults.get("batch_size", 128),
        "lr": args.lr or defaults.get("lr", 1e-3),
        "budget_seconds": args.budget_seconds,
    }
    created = runs.make_run_dir(out)
    with runs.RunLock(out):
        try:
            if args.force:
                runs.clear_outputs(out)
            record = {**_record(args, model, fit_asked, seed, device), "missing": True}
            runs.write_json(out / runs.CONFIG, record)
            start = time.perf_counter()
            losses = fit_missing(model, train, generator=torch.Generator().manual_seed(seed), **options)
            seconds = time.perf_counter() - start
            runs.save_checkpoint(out / runs.CHECKPOINT, model, {"epoch": len(losses), "log": []})
        except BaseException:
            if created:
                shutil.rmtree(out, ignore_errors=True)
            raise
        k = args.num_samples if model.density == "lower-bound" else 1
        with torch.no_grad():
            nll = torch.cat([-observed_log_prob(model, xb.to(device), k) for xb in test.x.split(500)])
        kind = "exact" if model.density == "exact" else f"miwae-{k} bound"
        metrics = {
            "model": args.model,
            "data": args.data,
            "density": model.density,
            "n_params": model.num_parameters,
            "train_seconds": seconds,
            "epochs": len(losses),
            "train_loss_nats": losses[-1],
            "missing_fraction_train": float(torch.isnan(train.x).double().mean()),
            "missing_fraction_test": float(torch.isnan(test.x).double().mean()),
            "test_observed_nll_nats": float(nll.mean()),
            "test_observed_nll_kind": f"-log p(x_o), {kind}",
            "device": str(device),
            "seed": seed,
        }
        runs.write_json(out / runs.METRICS, metrics)
    print(
        f"{args.model} on {args.data} with missing entries ({metrics['missing_fraction_train']:.1%} of "
        f"train): test -log p(x_o) {metrics['test_observed_nll_nats']:.3f} nats ({kind}); "
        f"run written to {out}"
    )
    return 0


def _resume(args, out: Path, device) -> int:
    runs.clear_temporary(out)  # left by a writer that was killed; we hold the lock now
    saved = runs.read_config(out)
    model, payload = runs.load_checkpoint(out / runs.CHECKPOINT, map_location=device)
    runs.check_consistency(out, saved, payload)
    if saved.get("source", saved["model"]) != canonical(args.model) or saved["data"] != args.data:
        raise PPGenError(
            f"--resume: {out} holds {saved['model']} on {saved['data']}, not {args.model} on {args.data}"
        )
    trainer = payload.get("trainer")
    if not isinstance(trainer, dict) or "objective" not in trainer:
        raise PPGenError(f"--resume: {out / runs.CHECKPOINT} holds no trainer state to continue from")
    if args.config and not _same(parse_config(args.config), model.config):
        raise PPGenError(
            f"--resume: the run's model config is {model.config};"
            f" --config cannot change it (start a new run with --force)"
        )
    seed = saved.get("seed", 0)
    if args.seed is not None and args.seed != seed:
        raise PPGenError(
            f"--resume: the run was trained with --seed {seed}; drop --seed or pass --seed {seed}"
        )
    saved_lr, objective_state = trainer.get("lr"), trainer["objective"]
    if args.lr is not None and args.lr != saved_lr:
        if not saved_lr:
            raise PPGenError(
                f"--resume: {out / runs.CHECKPOINT} does not record its learning rate, "
                "so --lr cannot be applied (drop --lr)"
            )
        objective_state = _rescale_learning_rates(objective_state, args.lr / saved_lr)
        print(
            f"ppgen train: --lr {args.lr} applied to the saved optimizer state (was {saved_lr})",
            file=sys.stderr,
        )
    saved_fit = saved.get("fit") if isinstance(saved.get("fit"), dict) else {}
    done = {"epoch": int(trainer.get("epoch", 0)), "steps": int(trainer.get("steps", 0))}
    fit_asked = {
        "epochs": args.epochs,
        "steps": args.steps,
        "budget_seconds": args.budget_seconds,
        "batch_size": args.batch_size or saved_fit.get("batch_size"),
        "lr": args.lr if args.lr is not None else saved_fit.get("lr"),
    }
    if args.epochs is None and args.steps is None:
        fit_asked["epochs"], fit_asked["steps"] = saved_fit.get("epochs"), saved_fit.get("steps")
        if fit_asked["epochs"] is None and fit_asked["steps"] is None:
            fit_asked["epochs"] = model.fit_defaults.get("epochs", 50)
    if fit_asked["epochs"] is not None and fit_asked["epochs"] <= done["epoch"]:
        raise PPGenError(
            f"--resume: {out} already has {done['epoch']} epochs;"
            f" --epochs {fit_asked['epochs']} would train nothing (ask for more)"
        )
    if fit_asked["steps"] is not None and fit_asked["steps"] <= done["steps"]:
        raise PPGenError(
            f"--resume: {out} already has {done['steps']} steps;"
            f" --steps {fit_asked['steps']} would train nothing (ask for more)"
        )
    args.data_root = args.data_root or saved.get("data_root")
    args.kind = args.kind or saved.get("kind")
    train, test = load_split(args, "train"), load_split(args, "test")
    record = _record(args, model, fit_asked, seed, device)
    runs.write_json(out / runs.CONFIG, record)
    state = {
        "epoch": done["epoch"],
        "steps": done["steps"],
        "seconds": float(trainer.get("seconds", 0.0)),
        "log": list(trainer.get("log", [])),
        "objective": objective_state,
        "rng": trainer.get("rng"),
    }
    return _train(args, out, device, model, train, test, record, fit_asked, state, seed, [True])


def _rescale_learning_rates(objective_state: dict, ratio: float) -> dict:
    r"""The saved optimizers' and schedulers' state with every learning rate multiplied by ``ratio``
    (a schedule keeps its shape: decays and warm-ups apply to the new rate)."""
    state = copy.deepcopy(objective_state)
    for value in state.values():
        for group in value.get("param_groups", []) if isinstance(value, dict) else []:
            for key in ("lr", "initial_lr"):
                if key in group:
                    group[key] *= ratio
    for scheduler in state.get("schedulers", {}).values():
        for key in ("base_lrs", "_last_lr"):
            if key in scheduler:
                scheduler[key] = [lr * ratio for lr in scheduler[key]]
    return state


def _record(args, model, fit_asked: dict, seed: int, device) -> dict:
    r"""config.json: what was asked, and the hash that ties it to model.pt."""
    return {
        "model": args.model,
        "source": canonical(args.model),
        "data": args.data,
        "data_root": args.data_root,
        "kind": args.kind,
        "config": model.config,
        "defaults": model.defaults_regime,
        "config_hash": runs.config_hash(model.name, model.config, model.spec.to_dict()),
        "fit": fit_asked,
        "seed": seed,
        "device": str(device),
        "format_version": runs.FORMAT_VERSION,
    }


def _train(args, out, device, model, train, test, record, fit_asked, state, seed, wrote) -> int:
    r"""Fits from ``state`` (epoch, steps, seconds, log, objective and RNG state), checkpointing every
    epoch, then writes metrics.json and samples.png. ``wrote`` gets an entry once a checkpoint exists."""
    import matplotlib.pyplot as plt  # here: `ppgen train --help` need not load matplotlib

    from ppgen.app.plots import sample_figure

    fit_options = {k: v for k, v in fit_asked.items() if v is not None}
    if fit_options.get("steps") is not None:
        fit_options["steps"] -= state["steps"]  # --steps is the run's total
    fit_options.update(
        start_epoch=state["epoch"], objective_state=state.get("objective"), rng_state=state.get("rng")
    )
    log = state["log"]
    data_parallel.share(  # the other ranks of a data-parallel run join the fit here (else nothing)
        {"spec": args.model, "config": model.config, "state_dict": model.state_dict(), "seed": seed,
         "data": args.data, "data_root": args.data_root, "kind": args.kind, "fit_options": fit_options}
    )  # fmt: skip
    start = time.perf_counter()  # as run_job counts train_seconds: the fit with its set-up

    def checkpoint(epoch, row, objective):
        seconds = state["seconds"] + time.perf_counter() - start
        row = {**row, "steps": state["steps"] + row["steps"], "seconds": seconds}
        log.append(row)
        trainer = {
            "epoch": epoch,
            "steps": row["steps"],
            "seconds": row["seconds"],
            "lr": objective.lr,
            "objective": objective.state_dict(),
            "log": log,
            "rng": get_rng_state(),
        }
        runs.save_checkpoint(out / runs.CHECKPOINT, objective.model, trainer)
        wrote.append(epoch)
        runs.write_train_log(out / "train_log.csv", log)

    try:
        job = run_job(
            args.model,
            train,
            test,
            model.config,
            fit_options,
            seed=seed,
            device=device,
            num_samples=args.num_samples,
            model=model,
            on_epoch_end=checkpoint,
            progress=not args.quiet,
        )
    except NonFiniteLossError as e:
        if not (out / runs.CHECKPOINT).exists():  # failed in the first epoch: keep the initial model
            runs.save_checkpoint(out / runs.CHECKPOINT, e.model, {"epoch": state["epoch"], "log": log})
        runs.write_json(
            out / runs.METRICS,
            {"model": args.model, "data": args.data, "stopped": str(e), "seed": seed},
        )
        raise NonFiniteLossError(f"{e}; the last good checkpoint is {out / runs.CHECKPOINT}") from None
    except OSError as e:
        raise PPGenError(
            f"training into {out} failed: {e.strerror or e}; the last checkpoint is kept"
        ) from None

    metrics = {**job.metrics, "data": args.data}
    metrics["steps"] = state["steps"] + job.fit.steps  # cumulative over resumed segments
    metrics["train_seconds"] = state["seconds"] + job.metrics["train_seconds"]
    runs.write_json(out / runs.METRICS, runs.metrics_record(metrics))
    figure = sample_figure(job.model.sample(64).cpu(), test, title=f"{args.model} on {args.data}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    runs.atomic_write(out / "samples.png", buffer.getvalue())
    nll = metrics["test_nll_nats"]
    summary = f"{args.model} on {args.data}: " + (
        f"test NLL {nll:.3f} nats ({metrics['test_nll_kind']}), {metrics['test_bpd']:.4f} bits/dim"
        if nll is not None
        else "no density (samples only)"
    )
    print(f"{summary}; run written to {out}")
    return 0
