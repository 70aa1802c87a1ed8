"""One model on one data set: seed, create, fit, evaluate. Shared by `ppgen train` and `ppgen compare`."""

import time
from dataclasses import dataclass

import torch

from ppgen.app.samplers import Sampler, use_sampler
from ppgen.app.specs import build_model
from ppgen.data import Dataset
from ppgen.errors import NonFiniteLossError, PPGenError
from ppgen.inference import evaluate, fit
from ppgen.inference.trainer import FitResult
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
    sampler=None,
    score_non_finite: bool = False,
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
        sampler: the :class:`~ppgen.app.samplers.Sampler` evaluation draws with, or a function of the
            model that picks one (e.g. :func:`~ppgen.app.samplers.fast_sampler`); default ``model.sample``.
        score_non_finite: on a non-finite loss, evaluate the last finite model (``fit.stopped`` and
            ``metrics["non_finite_stop"]`` say so) instead of raising.

    Returns:
        The model, the :class:`~ppgen.inference.trainer.FitResult` and the metrics, with
        ``train_seconds`` (the wall time of :func:`ppgen.fit`, callbacks included), ``eval_seconds``,
        ``epochs``, ``steps``, ``seed`` and ``sampler`` (its label).
    """
    seed_everything(seed)
    if model is None:
        model = build_model(name, train, config)
    model = model.to(device)
    start, non_finite = time.perf_counter(), None
    try:
        result = fit(model, train, progress=progress, on_epoch_end=on_epoch_end, **(fit_options or {}))
    except NonFiniteLossError as e:
        if not score_non_finite:
            raise
        model, result, non_finite = e.model, FitResult(stopped=str(e)), str(e)
    train_seconds = time.perf_counter() - start
    model.eval()
    seed_everything(seed)
    start = time.perf_counter()
    if callable(sampler):
        sampler = sampler(model)
    with use_sampler(model, sampler or Sampler("default")):
        metrics = evaluate(model, test, num_samples=num_samples, **(eval_options or {}))
    if non_finite is not None:
        metrics["non_finite_stop"] = non_finite
    metrics.update(
        train_seconds=train_seconds,
        eval_seconds=time.perf_counter() - start,
        epochs=result.epochs,
        steps=result.steps,
        seed=seed,
        sampler=(sampler or Sampler("default")).label,
    )
    return JobResult(model, result, metrics)
