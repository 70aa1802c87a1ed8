"""The objective protocol: one optimisation step of one family, its options, its learning-rate schedule,
and the registry of objectives."""

from typing import ClassVar

import torch
from torch import Tensor

from ppgen.errors import PPGenError
from ppgen.inference.distributed import sync_gradients

__all__ = [
    "Objective",
    "register_objective",
    "resolve_options",
    "adam",
    "gradient_step",
    "total_norm",
    "OBJECTIVES",
]

OBJECTIVES: dict[str, type] = {}


def register_objective(name: str):
    r"""Class decorator: makes an :class:`Objective` available to models whose ``objective`` is ``name``."""

    def wrap(cls):
        OBJECTIVES[name] = cls
        cls.objective_name = name
        return cls

    return wrap


def resolve_options(model, defaults: dict, given: dict, also=()) -> dict:
    r"""Merges options: the objective's (or trainer's) ``defaults``, then the model's ``fit_defaults``,
    then the ``given`` ones (a None there keeps the default).

    Arguments:
        model: the :class:`~ppgen.base.GenerativeModel` whose ``fit_defaults`` apply.
        defaults: every valid option and its default.
        given: the options the user gave.
        also: further valid names, only listed in the error (e.g. the trainer's own arguments).

    Raises:
        PPGenError: an unknown option; the message lists the valid ones.

    Example:
        >>> import ppgen
        >>> m = ppgen.create("independent", ppgen.data.DataSpec("binary", (2,)))
        >>> resolve_options(m, {"lr": 1e-3, "clip_norm": None}, {"clip_norm": 5.0})
        {'lr': 0.0, 'clip_norm': 5.0}
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        valid = ", ".join(sorted({*defaults, *also}))
        names = ", ".join(map(repr, unknown))
        raise PPGenError(f"unknown option {names} for {model.name}; valid options: {valid}")
    model_defaults = model.fit_defaults
    return {
        k: given[k] if given.get(k) is not None else model_defaults.get(k, v) for k, v in defaults.items()
    }


class Objective:
    r"""How one family is fit: ``step`` consumes a mini-batch and returns scalar logs with a "loss".

    Subclasses list their options and defaults in ``defaults`` (extending the base's), read them from
    ``self.options`` (merged by :func:`resolve_options`: the model's ``fit_defaults`` override the
    objective's defaults, the given options override both) and keep their optimizers in
    ``self.optimizers`` (a dict) so that resuming restores them; ``self.average``, set by
    :func:`ppgen.fit`, is the weight average saved with them (or None).

    The learning-rate schedule is the same for every objective: after each ``lr_decay_every`` ("epoch":
    in :meth:`end_epoch`; "step": where the subclass calls ``self.advance_lr("step")``) every
    optimizer's rate becomes lr_0 max(lr_decay^k, min_lr_fraction), k the number of epochs (steps) done.

    ``watch_divergence`` (class variable) says that the loss is likelihood-like, so that a loss far above
    the best seen means divergence (see inference/guard.py); adversarial and contrastive losses are not.

    Options:
        lr_decay: the factor per epoch (or step) of the learning rate (default 1: constant).
        min_lr_fraction: the floor of the schedule, as a fraction of the initial rate (default 0).

    Arguments:
        model: the :class:`~ppgen.base.GenerativeModel` to fit.
        lr: the learning rate.
        options: objective-specific keyword options (see ``defaults``).
    """

    defaults: ClassVar[dict] = {"lr_decay": 1.0, "min_lr_fraction": 0.0}
    lr_decay_every: ClassVar[str] = "epoch"
    watch_divergence: ClassVar[bool] = False

    def __init__(self, model, lr: float, **options):
        self.model = model
        self.lr = lr
        self.options = resolve_options(model, type(self).defaults, options)
        for name in ("lr_decay", "min_lr_fraction"):
            if not 0 <= self.options[name] <= 1 or name == "lr_decay" and self.options[name] == 0:
                raise PPGenError(f"{name} must be in (0, 1], got {self.options[name]}")
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.average = None
        self.lr_steps = 0  # epochs (or steps) the schedule has taken

    def step(self, x: Tensor, y: Tensor | None) -> dict[str, float]:
        raise NotImplementedError

    def end_epoch(self) -> dict[str, float]:
        r"""Called after each epoch: moves the learning-rate schedule on; subclasses add their own logs."""
        return self.advance_lr("epoch")

    def advance_lr(self, unit: str) -> dict[str, float]:
        r"""One ``unit`` ("epoch" or "step") of the learning-rate schedule; returns ``{"lr": the new rate}``
        of the first optimizer, or nothing when the rate is constant or ``unit`` is not the schedule's."""
        decay, floor = self.options["lr_decay"], self.options["min_lr_fraction"]
        if unit != self.lr_decay_every or decay == 1.0:
            return {}
        self.lr_steps += 1
        factor = max(decay**self.lr_steps, floor)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor
        first = next(iter(self.optimizers.values()), None)
        return {} if first is None else {"lr": first.param_groups[0]["lr"]}

    def state_dict(self) -> dict:
        state = {k: opt.state_dict() for k, opt in self.optimizers.items()}
        state["lr_steps"] = self.lr_steps
        if self.average is not None:
            state["weight_average"] = self.average.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        for k, opt in self.optimizers.items():
            if k in state:
                opt.load_state_dict(state[k])
        self.lr_steps = state.get("lr_steps", 0)
        if self.average is not None and "weight_average" in state:
            self.average.load_state_dict(state["weight_average"])


def adam(params, lr: float, **options) -> torch.optim.Adam:
    r"""``torch.optim.Adam`` with PyTorch's fused kernel where the parameters allow it (one kernel a step
    instead of about ten tensor operations a parameter: on CPU the VAE's update takes 0.3 ms instead of
    1.2 ms), else the default implementation. The update rule is Adam's either way."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, **options)
    except (RuntimeError, ValueError):  # a device or dtype the fused kernel does not support
        return torch.optim.Adam(params, lr=lr, **options)


def gradient_step(
    optimizer: torch.optim.Optimizer, loss: Tensor, params: list, clip_norm: float | None = None
) -> float:
    r"""zero_grad, backward, optional clipping, step; returns the gradient norm before clipping.

    ``params`` is a list (kept by the objective, so that no step walks the module tree again). In a
    data-parallel fit the gradients are averaged over processes before clipping
    (:func:`~ppgen.inference.distributed.sync_gradients`). The gradients are set to None directly and
    the norm is one ``_foreach_norm`` (under cProfile ``optimizer.zero_grad`` and ``get_total_norm`` took
    about 0.07 ms each a step of the mixture, in profiler hooks and argument checks)."""
    for group in optimizer.param_groups:  # optimizer.zero_grad(set_to_none=True), without its hooks
        for p in group["params"]:
            p.grad = None
    loss.backward()
    with_grad = [p for p in params if p.grad is not None]
    sync_gradients(with_grad)
    norm = total_norm([p.grad for p in with_grad])
    if clip_norm:  # (clip_grad_norm_ without a bound would still multiply every gradient by 1)
        torch.nn.utils.clip_grads_with_norm_(with_grad, clip_norm, norm)
    optimizer.step()
    return float(norm)


def total_norm(grads: list[Tensor]) -> Tensor:
    r"""The 2-norm of all ``grads`` together (a 0-dim tensor): ``torch.nn.utils.get_total_norm``, with one
    ``_foreach_norm`` call where they share a device and dtype."""
    if not grads:
        return torch.zeros(())
    if len({(g.device, g.dtype) for g in grads}) > 1 or any(g.is_sparse for g in grads):
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
