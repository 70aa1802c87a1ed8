"""Activation normalization: a per-feature affine map initialised from the first batch of data."""

import torch
from pyro.distributions import constraints
from pyro.distributions.torch_transform import TransformModule
from torch import Tensor, nn

__all__ = ["ActNorm"]


class ActNorm(TransformModule):
    r"""z = (x - loc) * exp(-log_scale), one (loc, log_scale) pair per feature (vectors) or channel (images).

    Like every transform in :mod:`ppgen.flows`, the forward map runs in the normalizing direction,
    data -> base (a flow model uses ``ComposeTransform(steps).inv`` to generate). The first time it
    is called in training mode it sets itself so that it standardises that batch:
    loc = mean, exp(log_scale) = std. This is how a flow standardises its inputs (e.g. rings8, whose
    modes have std 0.02) without a separate pass over the data; ``initialized`` is a buffer, so a
    loaded model does not re-initialise.

    Arguments:
        features: the number of features (vectors) or channels (images).
        event_dim: 1 for vectors (*, D), 3 for images (*, C, H, W).
        max_log_scale: |log_scale| is bounded by this (soft, through tanh), so no step can blow up the scale.

    References:
        | Glow: Generative Flow with Invertible 1x1 Convolutions (Kingma & Dhariwal, 2018), arXiv:1807.03039

    Example:
        >>> t = ActNorm(2)
        >>> _ = t.train(); z = t(torch.randn(64, 2) * 5 + 3)
        >>> bool((z.mean(0).abs() < 1e-5).all())
        True
    """

    bijective = True

    def __init__(self, features: int, event_dim: int = 1, max_log_scale: float = 10.0):
        super().__init__(cache_size=1)
        if event_dim not in (1, 3):
            raise ValueError("ActNorm: event_dim must be 1 (vectors) or 3 (images)")
        self._event_dim = event_dim
        shape = (features,) if event_dim == 1 else (features, 1, 1)
        self.loc = nn.Parameter(torch.zeros(shape))
        self.raw_log_scale = nn.Parameter(torch.zeros(shape))
        self.max_log_scale = max_log_scale
        self.register_buffer("initialized", torch.tensor(False))

    @constraints.dependent_property(is_discrete=False)
    def domain(self):
        return constraints.independent(constraints.real, self._event_dim)

    @constraints.dependent_property(is_discrete=False)
    def codomain(self):
        return constraints.independent(constraints.real, self._event_dim)

    @property
    def log_scale(self) -> Tensor:
        return self.max_log_scale * torch.tanh(self.raw_log_scale / self.max_log_scale)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        r"""Sets loc and scale to the per-feature mean and std of x: (B, D) or (B, C, H, W)."""
        dims = [0] if self._event_dim == 1 else [0, 2, 3]
        mean = x.mean(dims, keepdim=True)[0]
        std = x.std(dims, keepdim=True)[0].clamp_min(1e-6) if x.shape[0] > 1 else torch.ones_like(mean)
        log_std = std.log().clamp(-0.99 * self.max_log_scale, 0.99 * self.max_log_scale)
        self.loc.copy_(mean.reshape(self.loc.shape))
        self.raw_log_scale.copy_(
            (self.max_log_scale * torch.atanh(log_std / self.max_log_scale)).reshape(self.loc.shape)
        )
        self.initialized.fill_(True)

    def _call(self, x: Tensor) -> Tensor:
        if self.training and not bool(self.initialized):
            self.initialize(x)
        return (x - self.loc) * torch.exp(-self.log_scale)

    def _inverse(self, z: Tensor) -> Tensor:
        return z * self.log_scale.exp() + self.loc

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""(z, log|det dz/dx|) in one call, without the transform cache (see ppgen.flows.NormalizingFlow)."""
        z = self._call(x)
        return z, self.log_abs_det_jacobian(x, z)

    def log_abs_det_jacobian(self, x: Tensor, z: Tensor) -> Tensor:
        ladj = -self.log_scale.sum()
        if self._event_dim == 3:
            ladj = ladj * x.shape[-2] * x.shape[-1]
        return ladj.expand(x.shape[: x.ndim - self._event_dim])
