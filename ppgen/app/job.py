"""One model on one data set: seed, create, fit, evaluate. Shared by `ppgen train` and `ppgen compare`."""

import time
from dataclasses import dataclass

import torch

from ppgen.app.specs import build_model
from ppgen.data import Dataset
from ppgen.errors import PPGenError
from ppgen.inference import evaluate, fit
from ppgen.seed import seed_everything

__all__ = ["resolve_device", "run_job", "JobResult"]


def resolve_device(name: str = "auto") -> torch.device:
    r"""``auto`` picks CUDA when present; ``cuda`` without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PPGenError(
            "--device cuda was asked for, but CUDA is not available here; use --device cpu or auto"
        )
    if name not in ("cpu", "cuda"):
        raise PPGenError(f"unknown device {name!r}; expected auto, cpu or cuda")
    return torch.device(name)


@dataclass
class JobResult:
    model: object
    fit: object
    metrics: dict


def run_job(
    name: str,
    train: Dataset,
    test: Dataset,
    config: dict | None = None,
    fit_options: dict | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    num_samples: int = 1000,
    eval_options: dict | None = None,
    model=None,
    on_epoch_end=None,
    progress: bool = True,
) -> JobResult:
    r"""Seeds, builds (unless ``model`` is given, e.g. when resuming), fits and evaluates a model.

    Evaluation is re-seeded with ``seed`` so that the same seed gives the same metrics.

    Arguments:
        name: the registry name, or a user's program as ``file.py:NAME``.
        train, test: the two splits.
        config: the model's constructor options.
        fit_options: keyword arguments of :func:`ppgen.fit` (epochs, steps, budget_seconds, lr, ...).
        num_samples: K for importance-sampled estimates.
        eval_options: more keyword arguments of :func:`ppgen.evaluate` (e.g. ``n_image_samples``).
    """
    seed_everything(seed)
    if model is None:
        model = build_model(name, train, config)
    model = model.to(device)
    start = time.perf_counter()
    result = fit(model, train, progress=progress, on_epoch_end=on_epoch_end, **(fit_options or {}))
    train_seconds = time.perf_counter() - start
    seed_everything(seed)
    metrics = evaluate(model, test, num_samples=num_samples, **(eval_options or {}))
    metrics.update(train_seconds=train_seconds, epochs=result.epochs, steps=result.steps, seed=seed)
    return JobResult(model, result, metrics)
