"""The objective protocol: one optimisation step of one family, and the registry of objectives."""

import torch
from torch import Tensor

__all__ = ["Objective", "register_objective", "OBJECTIVES"]

OBJECTIVES: dict[str, type] = {}


def register_objective(name: str):
    r"""Class decorator: makes an :class:`Objective` available to models whose ``objective`` is ``name``."""

    def wrap(cls):
        OBJECTIVES[name] = cls
        cls.objective_name = name
        return cls

    return wrap


class Objective:
    r"""How one family is fit: ``step`` consumes a mini-batch and returns scalar logs with a "loss".

    Subclasses keep their optimizers in ``self.optimizers`` (a dict) so that resuming restores them;
    ``self.average``, set by :func:`ppgen.fit`, is the weight average saved with them (or None).
    ``watch_divergence`` (class variable) says that the loss is likelihood-like, so that a loss far above
    the best seen means divergence (see inference/guard.py); adversarial and contrastive losses are not.

    Arguments:
        model: the :class:`~ppgen.base.GenerativeModel` to fit.
        lr: the learning rate.
        options: objective-specific keyword options.
    """

    watch_divergence: bool = False

    def __init__(self, model, lr: float, **options):
        self.model = model
        self.lr = lr
        self.options = options
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.average = None

    def step(self, x: Tensor, y: Tensor | None) -> dict[str, float]:
        raise NotImplementedError

    def end_epoch(self) -> dict[str, float]:
        r"""Called after each epoch; may return extra logs."""
        return {}

    def state_dict(self) -> dict:
        state = {k: opt.state_dict() for k, opt in self.optimizers.items()}
        if self.average is not None:
            state["weight_average"] = self.average.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        for k, opt in self.optimizers.items():
            if k in state:
                opt.load_state_dict(state[k])
        if self.average is not None and "weight_average" in state:
            self.average.load_state_dict(state["weight_average"])


def gradient_step(
    optimizer: torch.optim.Optimizer, loss: Tensor, params, clip_norm: float | None = None
) -> float:
    r"""zero_grad, backward, optional clipping, step; returns the gradient norm before clipping."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in params if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, clip_norm if clip_norm else float("inf"))
    optimizer.step()
    return float(norm)
