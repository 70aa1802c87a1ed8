"""Denoising score matching over a noise ladder: how noise-conditional score models are fit.

Fitting a score is not maximum likelihood: there is no ELBO here. For each example a noise level
sigma_i is drawn uniformly from the ladder, x~ = x + sigma_i z, and the network is regressed on the
score of the Gaussian perturbation kernel, -z / sigma_i, weighted by sigma_i^2 (Song & Ermon, 2019):

    loss = E_i E_z [ sigma_i^2 / 2 * | s(x + sigma_i z, sigma_i) + z / sigma_i |^2 ].

Its minimiser is the score of the data smoothed at each sigma_i (Vincent, 2011).

References:
    | A Connection Between Score Matching and Denoising Autoencoders (Vincent, 2011)
    | Generative Modeling by Estimating Gradients of the Data Distribution (Song & Ermon, 2019)
    | https://arxiv.org/abs/1907.05600
"""

from collections.abc import Callable

import torch
from torch import Tensor

from ppgen.inference.objective import Objective, gradient_step, register_objective

__all__ = ["dsm_loss", "DenoisingScoreMatching"]


def dsm_loss(
    score: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    sigmas: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""The sigma^2-weighted denoising score matching loss of each example.

    Arguments:
        score: (x (B, *shape), sigma (B,)) -> (B, *shape).
        x: clean data, (B, *shape).
        sigmas: the noise ladder, (L,).

    Returns:
        (B,): sigma_i^2 / 2 * |score(x~, sigma_i) + z / sigma_i|^2 with i and z drawn per example.
    """
    b = x.shape[0]
    idx = torch.randint(len(sigmas), (b,), generator=generator, device=sigmas.device).to(x.device)
    sigma = sigmas.to(x.device, x.dtype)[idx]  # (B,)
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    s = sigma.reshape(b, *([1] * (x.ndim - 1)))
    residual = s * score(x + s * z, sigma) + z  # sigma * (score + z / sigma)
    return 0.5 * residual.reshape(b, -1).pow(2).sum(-1)


@register_objective("dsm")
class DenoisingScoreMatching(Objective):
    r"""Denoising score matching with Adam, for models with a noise ladder.

    The model provides ``prepare(x) -> u`` (its working space, fitted by ``model.initialize(data)``),
    ``sigmas`` (L,) in that space and ``score_u(u, sigma)``. The logged "loss" is the
    mean of :func:`dsm_loss` per example.

    Options:
        clip_norm: clip the gradient norm (default 1.0; 0 disables).
        weight_decay: Adam's weight decay (default 0).
    """

    defaults = {**Objective.defaults, "clip_norm": 1.0, "weight_decay": 0.0}
    watch_divergence = True

    def __init__(self, model, lr: float, **options):
        super().__init__(model, lr, **options)
        self.clip_norm = self.options["clip_norm"]
        self.optimizers["adam"] = torch.optim.Adam(
            model.parameters(), lr=lr, weight_decay=self.options["weight_decay"]
        )

    def step(self, x, y):
        u = self.model.prepare(x)
        loss = dsm_loss(self.model.score_u, u, self.model.sigmas).mean()
        norm = gradient_step(self.optimizers["adam"], loss, self.model.parameters(), self.clip_norm)
        return {"loss": loss.item(), "grad_norm": norm}
