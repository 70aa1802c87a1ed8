"""Maximum likelihood and SVI through Pyro: minimise ``model.elbo().differentiable_loss`` with Adam.

For a fully observed model the guide is empty and the loss is exactly -log p(x) (maximum likelihood);
with enumerated discrete sites (``TraceEnum_ELBO``) it is the marginal -log p(x); with latent sites
it is the negative ELBO (SVI). A plain torch optimizer drives it: Pyro's ``PyroOptim`` makes one
optimizer per parameter, which is slower.
"""

import torch

from ppgen.inference.objective import Objective, gradient_step, register_objective

__all__ = ["ELBOObjective"]


@register_objective("elbo")
class ELBOObjective(Objective):
    r"""-ELBO per example (nats) as the loss.

    Options (besides the learning-rate schedule of :class:`~ppgen.inference.objective.Objective`):
        weight_decay: Adam's (L2) weight decay (default 0).
        clip_norm: clip the gradient norm (default None).
    """

    defaults = {**Objective.defaults, "weight_decay": 0.0, "clip_norm": None}
    watch_divergence = True

    def __init__(self, model, lr: float, **options):
        super().__init__(model, lr, **options)
        self.loss_fn = model.elbo()
        self.clip_norm = self.options["clip_norm"]
        self.optimizers["adam"] = torch.optim.Adam(
            model.parameters(), lr=lr, weight_decay=self.options["weight_decay"]
        )

    def step(self, x, y):
        loss = self.loss_fn.differentiable_loss(self.model.model, self.model.guide, x, y) / x.shape[0]
        norm = gradient_step(self.optimizers["adam"], loss, self.model.parameters(), self.clip_norm)
        return {"loss": loss.item(), "grad_norm": norm}
