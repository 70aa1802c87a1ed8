"""Training diffusion models by denoising: the simplified eps-loss, or the variational bound itself.

References:
    | Denoising Diffusion Probabilistic Models (Ho et al., 2020) https://arxiv.org/abs/2006.11239
    | (equation 14, L_simple; equation 5, the bound)
"""

import torch

from ppgen.errors import PPGenError
from ppgen.inference.objective import Objective, gradient_step, register_objective

__all__ = ["DenoisingObjective", "simple_loss", "bound_loss"]


def simple_loss(model, x: torch.Tensor) -> torch.Tensor:
    r"""L_simple = E_{t, eps} ||eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t)||^2, t ~ U{1..T}.

    Returns the batch mean of the per-example squared error summed over dimensions.
    """
    x0 = model.to_model_space(x)
    t = torch.randint(1, model.T + 1, (x.shape[0],), device=x.device)
    noise = torch.randn_like(x0)
    err = (noise - model.eps(model.schedule.q_sample(x0, t, noise), t)) ** 2
    return err.flatten(1).sum(1).mean()


def bound_loss(model, x: torch.Tensor) -> torch.Tensor:
    r"""-L(x), unbiased, per example: T L_{t-1}(x) at one t ~ U{1..T} plus the prior KL; batch mean, nats."""
    t = torch.randint(1, model.T + 1, (x.shape[0],), device=x.device)
    return (model.T * model.bound_terms(x, t) + model.prior_kl(x)).mean()


LOSSES = {"simple": simple_loss, "bound": bound_loss}


@register_objective("denoising")
class DenoisingObjective(Objective):
    r"""Adam on a denoising loss (``ppgen.fit`` keeps the weight average of the model's ``fit_defaults``).

    Options:
        loss: "simple" (Ho et al.'s eps-loss, the default) or "bound" (the variational bound by one
            random step per example). Pyro's own ELBO of the model/guide pair is the objective "elbo".
        weight_decay: Adam's weight decay.
        clip_norm: clip the gradient norm (default 1).
        lr_decay: the learning-rate factor per *step* (default 0.5^(1/4000): the rate halves every
            4,000 steps). Precise denoisers need the late, small steps: tight modes sharpen.

    The loss logged is the training loss; "bound" logs nats per example.
    """

    defaults = {
        **Objective.defaults,
        "loss": "simple",
        "weight_decay": 0.0,
        "clip_norm": 1.0,
        "lr_decay": 0.5 ** (1.0 / 4000),
    }
    lr_decay_every = "step"
    watch_divergence = True

    def __init__(self, model, lr: float, **options):
        super().__init__(model, lr, **options)
        loss = self.options["loss"]
        if loss not in LOSSES:
            raise PPGenError(f"unknown denoising loss {loss!r}; expected one of: {', '.join(LOSSES)}")
        self.loss_fn = LOSSES[loss]
        self.clip_norm = self.options["clip_norm"]
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizers["adam"] = torch.optim.Adam(
            self.params, lr=lr, weight_decay=self.options["weight_decay"]
        )

    def step(self, x, y):
        loss = self.loss_fn(self.model, x)
        norm = gradient_step(self.optimizers["adam"], loss, self.params, self.clip_norm)
        lr = self.advance_lr("step").get("lr", self.optimizers["adam"].param_groups[0]["lr"])
        return {"loss": loss.item(), "grad_norm": norm, "lr": lr}
