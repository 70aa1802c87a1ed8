"""Multi-scale factoring: the later steps of a flow act on half the channels, the rest go to the base."""

import torch
from pyro.distributions import constraints
from torch import Tensor
from torch.distributions import Transform

__all__ = ["Split"]


class Split(Transform):
    r"""Applies ``inner`` to the first ``keep`` channels and passes the others through: (*, C, H, W).

    In the normalizing direction the passed-through channels are "factored out": they are already
    latent and meet the base distribution directly, which is how RealNVP and Glow spend less
    computation on the coarser scales. log|det J| is the inner transform's.

    Arguments:
        inner: a transform of (*, keep, H, W) tensors with event_dim 3 (e.g. a ``ComposeTransform``
            of the next level's steps); its parameters belong to the model that owns its modules.
        keep: the number of channels that continue through ``inner``.

    References:
        | Density estimation using Real NVP (Dinh et al., 2017), arXiv:1605.08803, section 3.6

    Example:
        >>> from ppgen.flows.squeeze import Squeeze
        >>> t = Split(Squeeze(), keep=2)
        >>> t.forward_shape((5, 4, 2, 2))
        (5, 4, 2, 2)
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)
    bijective = True

    def __init__(self, inner: Transform, keep: int):
        super().__init__(cache_size=1)
        self.inner = inner
        self.keep = keep
        self._cached = None  # (x, xa, za): reused by log_abs_det_jacobian so the inner steps run once

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[..., : self.keep, :, :], x[..., self.keep :, :, :]

    def _call(self, x: Tensor) -> Tensor:
        xa, xb = self._split(x)
        za = self.inner(xa)
        self._cached = (x, xa, za)
        return torch.cat([za.reshape(*xb.shape[:-3], -1, *xb.shape[-2:]), xb], dim=-3)

    def _inverse(self, z: Tensor) -> Tensor:
        c, h, w = self.inner.forward_shape((self.keep, *z.shape[-2:]))
        za = z[..., : self.keep, :, :].reshape(*z.shape[:-3], c, h, w)
        xa = self.inner.inv(za)
        x = torch.cat([xa, z[..., self.keep :, :, :]], dim=-3)
        self._cached = (x, xa, za)
        return x

    def log_abs_det_jacobian(self, x: Tensor, z: Tensor) -> Tensor:
        if self._cached is not None and self._cached[0] is x:
            _, xa, za = self._cached
        else:
            xa, _ = self._split(x)
            za = self.inner(xa)
        return self.inner.log_abs_det_jacobian(xa, za)
