"""Training a deterministic autoencoder: Adam on its reconstruction loss, and the Gaussian of its codes.

The model states its loss (``reconstruction_loss(x)``, per example); this objective minimises the batch
mean and, because an autoencoder samples from a Gaussian fitted to its training codes, accumulates the
first and second moments of the codes it sees during an epoch and hands them to the model at the
epoch's end (``set_codes``): the data-dependent statistics come from the objective, not from sampling.
"""

import torch

from ppgen.inference.objective import Objective, gradient_step, register_objective

__all__ = ["ReconstructionObjective"]


@register_objective("reconstruction")
class ReconstructionObjective(Objective):
    r"""Adam on ``model.reconstruction_loss(x).mean()``; the code Gaussian refitted after every epoch.

    Options:
        weight_decay: Adam's weight decay (default 0).
        clip_norm: clip the gradient norm (default None).
    """

    def __init__(
        self, model, lr: float, weight_decay: float = 0.0, clip_norm: float | None = None, **options
    ):
        super().__init__(model, lr, **options)
        self.clip_norm = clip_norm
        self.optimizers["adam"] = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        self._reset()

    def _reset(self) -> None:
        self.count, self.total, self.outer = 0, 0.0, 0.0

    def step(self, x, y):
        loss = self.model.reconstruction_loss(x).mean()
        norm = gradient_step(self.optimizers["adam"], loss, self.model.parameters(), self.clip_norm)
        with torch.no_grad():  # the codes after the update, in float64: (B, L)
            z = self.model.codes(x).double()
        self.count += z.shape[0]
        self.total = self.total + z.sum(0)
        self.outer = self.outer + z.T @ z
        return {"loss": loss.item(), "grad_norm": norm}

    def end_epoch(self) -> dict[str, float]:
        if self.count > 1:
            mean = self.total / self.count
            cov = self.outer / self.count - torch.outer(mean, mean)
            with torch.no_grad():
                self.model.set_codes(mean, cov)
        self._reset()
        return {}
