"""The ELBO objective with a learning rate that decays every epoch, for models that need to settle.

Flows fit to sharp densities (rings8 has modes of std 0.02) keep oscillating at a constant learning
rate: the test NLL of an NSF swings by tenths of a nat between epochs. Decaying the step size lets
the last epochs average those swings out. The decay is per epoch, so a run cut short by a time
budget simply stops earlier on the same schedule.
"""

import torch

from ppgen.errors import PPGenError
from ppgen.inference.elbo import ELBOObjective
from ppgen.inference.objective import register_objective

__all__ = ["AnnealedELBOObjective"]


@register_objective("annealed-elbo")
class AnnealedELBOObjective(ELBOObjective):
    r"""-ELBO per example (nats) with Adam, the learning rate multiplied by ``lr_decay`` after every epoch.

    Options:
        lr_decay: the per-epoch factor (default: the model's ``fit_defaults["lr_decay"]``, else 0.95).
        min_lr_fraction: the learning rate never falls below this fraction of the initial one (default 0.01).
        clip_norm: clip the gradient norm (default: the model's ``fit_defaults["clip_norm"]``, else None).
        weight_decay: Adam's weight decay (default 0).
    """

    def __init__(self, model, lr: float, lr_decay: float | None = None, min_lr_fraction: float = 0.01, clip_norm: float | None = None, **options):
        defaults = type(model).fit_defaults
        clip_norm = clip_norm if clip_norm is not None else defaults.get("clip_norm")
        super().__init__(model, lr, clip_norm=clip_norm, **options)
        self.lr_decay = lr_decay if lr_decay is not None else defaults.get("lr_decay", 0.95)
        if not 0 < self.lr_decay <= 1:
            raise PPGenError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        floor = min_lr_fraction
        self.schedulers = {"adam": torch.optim.lr_scheduler.LambdaLR(self.optimizers["adam"], lambda e: max(self.lr_decay**e, floor))}

    def end_epoch(self):
        self.schedulers["adam"].step()
        return {"lr": self.optimizers["adam"].param_groups[0]["lr"]}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for k, s in state.get("schedulers", {}).items():
            self.schedulers[k].load_state_dict(s)
