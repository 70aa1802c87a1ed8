"""The checks around a fit: its arguments at the boundary, and a guard that stops training when it
breaks down numerically.

Training has broken down when a step's loss or any logged number (a gradient norm) is NaN or infinite
(blamed on a parameter when one is), when a step raises because a parameter became NaN or infinite
(on the first step Pyro's distributions validate their parameters, ``ValueError: Expected parameter loc
... to satisfy the constraint``; :func:`ppgen.fit` runs later steps without that validation), when the weights
hold NaN or infinite values at the end of an epoch, or when a likelihood-type loss diverges: it rises
far above the best loss seen in this fit. :func:`ppgen.fit` then restores the last epoch that ended
well and raises :class:`~ppgen.errors.NonFiniteLossError`.
"""

import math
import numbers
import re

import torch

from ppgen.errors import PPGenError

__all__ = ["check_fit_arguments", "TrainingGuard", "DIVERGENCE_FACTOR"]

DIVERGENCE_FACTOR = 1000.0  # diverged: loss > best + DIVERGENCE_FACTOR * max(1, |best|)
_PYRO_VALIDATION = ("Expected parameter", "Expected value argument", "to satisfy the constraint", "support")


def check_fit_arguments(data, epochs, steps, batch_size, lr, budget_seconds) -> None:
    r"""Refuses training lengths, batch sizes and learning rates that would do nothing or the wrong thing.

    ``None`` means the model's default; everything else must be a positive number (an integer where a
    count is meant), and the data must hold at least one example.

    Raises:
        PPGenError: naming the argument and what was expected.
    """
    for name, value in (("epochs", epochs), ("steps", steps), ("batch_size", batch_size)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise PPGenError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (("lr", lr), ("budget_seconds", budget_seconds)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
            raise PPGenError(f"{name} must be a positive finite number, got {value!r}")
    if len(data) == 0:
        raise PPGenError(
            f"the training data {getattr(data, 'name', '')!r} hold no examples; expected at least one"
        )


def _non_finite_parameters(model) -> str | None:
    for name, p in model.named_parameters():  # -inf is a log-probability of 0 (counted tables), not a fault
        if torch.isnan(p).any() or torch.isposinf(p).any():
            return name
    return None


class TrainingGuard:
    r"""Tells whether a step, an exception or an epoch means that training broke down.

    Arguments:
        model: the model being fit.
        watch_divergence: whether the loss is a likelihood-type loss whose divergence can be told from
            its scale (the objective's ``watch_divergence``); adversarial and contrastive losses are not.
        factor: the loss diverged when it exceeds ``best + factor * max(1, |best|)``.
    """

    def __init__(self, model, watch_divergence: bool = False, factor: float = DIVERGENCE_FACTOR):
        self.model = model
        self.watch_divergence = watch_divergence
        self.factor = factor
        self.best = math.inf

    def check_step(self, logs: dict) -> str | None:
        r"""None if the step's logs are sound, else what went wrong."""
        loss = logs["loss"]
        if not math.isfinite(loss):  # a parameter gone NaN says more (distributions are not validated)
            bad = _non_finite_parameters(self.model)
            return "non-finite loss" if bad is None else f"non-finite parameter {bad}"
        for key, value in logs.items():
            if isinstance(value, float) and not math.isfinite(value):
                return f"non-finite {key.replace('_', ' ')}"
        if self.watch_divergence:
            if loss > self.best + self.factor * max(1.0, abs(self.best)):
                return f"diverging loss ({loss:.4g}, best so far {self.best:.4g})"
            self.best = min(self.best, loss)
        return None

    def check_exception(self, error: BaseException) -> str | None:
        r"""What an exception raised by a step means: a numerical breakdown (described) or not (None)."""
        if not isinstance(error, (ValueError, RuntimeError)):
            return None
        bad = _non_finite_parameters(self.model)
        if bad is not None:
            return f"non-finite parameter {bad} ({type(error).__name__})"
        message = str(error)
        if any(s in message for s in _PYRO_VALIDATION) and ("nan" in message or "inf" in message):
            what = re.search(r"Expected (parameter \w+|value argument)", message)
            where = re.search(r"of distribution (\w+)", message)
            detail = (what.group(1) if what else "a value") + (f" of {where.group(1)}" if where else "")
            return f"non-finite values inside the model ({detail} failed validation)"
        return None

    def check_epoch(self) -> str | None:
        r"""None if every parameter is finite at the end of an epoch, else which one is not."""
        bad = _non_finite_parameters(self.model)
        return None if bad is None else f"non-finite parameter {bad}"
