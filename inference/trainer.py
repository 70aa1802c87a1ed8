"""The one training loop: epochs of mini-batches through a family's objective, with a time budget,
a progress bar, a callback per epoch (checkpoints) and a clean stop on a non-finite loss."""

import copy
import math
import sys
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ppgen.data import Dataset, batches
from ppgen.errors import NonFiniteLossError, PPGenError
from ppgen.inference.objective import OBJECTIVES, resolve_options
from ppgen.inference.weight_average import WeightAverage

__all__ = ["fit", "FitResult", "FIT_DEFAULTS"]

# the trainer's own options that a model's ``fit_defaults`` may set (the rest go to the objective)
FIT_DEFAULTS = {"epochs": 50, "batch_size": 128, "lr": 1e-3, "ema_decay": None}
FIT_ARGUMENTS = (*FIT_DEFAULTS, "steps", "budget_seconds", "objective", "progress", "on_epoch_end")


@dataclass
class FitResult:
    r"""What a call of :func:`fit` did: epochs and steps done, seconds spent, one log row per epoch."""

    epochs: int = 0
    steps: int = 0
    seconds: float = 0.0
    log: list = field(default_factory=list)
    stopped: str | None = None


def _mean_logs(rows: list[dict]) -> dict:
    keys = {k for r in rows for k in r}
    return {k: sum(r[k] for r in rows if k in r) / sum(1 for r in rows if k in r) for k in sorted(keys)}


def check_fit_arguments(**values) -> None:
    r"""Refuses non-positive ``epochs``, ``steps``, ``batch_size``, ``lr``, ``budget_seconds`` (None: unset).

    Unknown options are refused where options are merged (:func:`~ppgen.inference.objective.resolve_options`).

    Raises:
        PPGenError: naming the option and what was expected.
    """
    for key, value in values.items():
        if value is None:
            continue
        integer = key in ("epochs", "steps", "batch_size")
        if (
            isinstance(value, bool)
            or not isinstance(value, int if integer else (int, float))
            or not value > 0
        ):
            kind = "a positive integer" if integer else "a positive number"
            raise PPGenError(f"fit: {key} must be {kind}, got {value!r}")


def fit(
    model,
    data: Dataset,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    budget_seconds: float | None = None,
    progress: bool = True,
    on_epoch_end=None,
    start_epoch: int = 0,
    objective_state: dict | None = None,
    generator: torch.Generator | None = None,
    ema_decay: float | None = None,
    clock=None,
    **options,
) -> FitResult:
    r"""Fits ``model`` to ``data`` with the objective its family names.

    Training stops after ``epochs`` epochs, ``steps`` steps or ``budget_seconds`` seconds, whichever
    comes first (defaults: the model's ``fit_defaults``, else :data:`FIT_DEFAULTS`). Batches move to
    the model's device.

    Arguments:
        model: a :class:`~ppgen.base.GenerativeModel`.
        data: the training split.
        on_epoch_end: called as ``on_epoch_end(epoch, row, objective)`` after each epoch (row: the logs).
        start_epoch: the epoch to resume from (with ``objective_state``, the optimizers' saved state).
        ema_decay: keep an exponential moving average of the weights with this per-step decay and hand
            it to ``on_epoch_end`` and the caller (:class:`~ppgen.inference.weight_average.WeightAverage`);
            default ``fit_defaults.get("ema_decay")``, 0 or None for the last iterate.
        clock: the seconds the budget and the logs count, default ``time.perf_counter``; e.g. a clock
            that leaves out the time ``on_epoch_end`` spends evaluating.
        options: ``objective=`` overrides the model's objective; the rest are the objective's options
            (e.g. ``clip_norm``, ``lr_decay``), merged with the model's ``fit_defaults`` by
            :func:`~ppgen.inference.objective.resolve_options`.

    Raises:
        PPGenError: the data do not fit the model, or an option is unknown (the error lists the valid ones).
        NonFiniteLossError: a loss was NaN or infinite; the model is restored to the last epoch whose
            losses were all finite (the state ``on_epoch_end`` last saw), and the error says so.
    """
    check_fit_arguments(
        epochs=epochs, steps=steps, batch_size=batch_size, lr=lr, budget_seconds=budget_seconds
    )
    if model.spec is None:  # a user's program built without data is sized by the first data it is fit to
        model.bind(data)
    settings = resolve_options(
        model, FIT_DEFAULTS, {"epochs": epochs, "batch_size": batch_size, "lr": lr, "ema_decay": ema_decay}
    )
    batch_size, lr, ema_decay = settings["batch_size"], settings["lr"], settings["ema_decay"]
    if epochs is None and steps is None and budget_seconds is None:
        epochs = settings["epochs"]
    model.check_data(data)
    objective_name = options.pop("objective", type(model).objective)
    if objective_name not in OBJECTIVES:
        raise PPGenError(f"unknown objective {objective_name!r}; expected one of: {', '.join(OBJECTIVES)}")
    cls = OBJECTIVES[objective_name]
    resolve_options(model, cls.defaults, options, also=FIT_ARGUMENTS)  # names every valid option
    objective = cls(model, lr, **options)
    if start_epoch == 0 and not objective_state:
        model.initialize(data)
    objective.average = WeightAverage(model, ema_decay) if ema_decay else None
    if objective_state:
        objective.load_state_dict(objective_state)
    average = objective.average

    device = model.device
    result = FitResult()
    last_good = copy.deepcopy(model.state_dict())
    clock = clock or time.perf_counter
    start = clock()
    bar = tqdm(
        total=epochs,
        initial=start_epoch,
        desc=f"fit {model.name}",
        unit="epoch",
        disable=not progress,
        file=sys.stderr,
        leave=False,
    )
    epoch = start_epoch
    model.train()
    try:
        while epochs is None or epoch < epochs:
            rows = []
            if average is not None and average.swapped:  # train the iterate, not the average
                average.swap()
            for x, y in batches(data, batch_size, shuffle=True, generator=generator):
                x = x.to(device)
                y = None if y is None else y.to(device)
                logs = objective.step(x, y)
                if not math.isfinite(logs["loss"]):
                    model.load_state_dict(last_good)
                    result.stopped = (
                        f"non-finite loss at epoch {epoch + 1}, step {result.steps + 1}; "
                        f"restored the model of epoch {epoch}"
                    )
                    error = NonFiniteLossError(result.stopped)
                    error.model = model
                    raise error
                rows.append(logs)
                if average is not None:
                    average.update()
                result.steps += 1
                out_of_time = budget_seconds is not None and clock() - start > budget_seconds
                if (steps is not None and result.steps >= steps) or out_of_time:
                    break
            if average is not None:
                average.swap()
            row = {"epoch": epoch + 1, "steps": result.steps, **_mean_logs(rows), **objective.end_epoch()}
            epoch += 1
            result.epochs = epoch
            row["seconds"] = clock() - start
            result.log.append(row)
            last_good = copy.deepcopy(model.state_dict())
            if on_epoch_end is not None:
                on_epoch_end(epoch, row, objective)
            bar.update(1)
            bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4g}")
            if (steps is not None and result.steps >= steps) or (
                budget_seconds is not None and clock() - start > budget_seconds
            ):
                break
    finally:
        bar.close()
        model.eval()
        result.seconds = clock() - start
    return result
