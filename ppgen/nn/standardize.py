"""A continuous working space for networks that see data as reals (diffusion, score, energy, GAN).

Gradient-based samplers and discriminators need a space where one step size (one initialization)
suits every data set: continuous data are standardized (per-dimension mean; one overall scale, so
isotropic data stay isotropic, or one scale per dimension); binary and categorical data are mapped
affinely from their levels {0, ..., K-1} to [-1, 1] and rounded back.
"""

import torch
from torch import Tensor, nn

from ppgen.data import DataSpec

__all__ = ["Standardize"]


class Standardize(nn.Module):
    r"""An affine map x -> u = (x - shift) / scale, with its inverse and the range of data seen.

    For continuous data, ``shift`` and ``scale`` are set by :meth:`fit` from the training data, once:
    models call it in ``initialize(data)``, which :func:`ppgen.fit` runs before a fresh fit (later calls
    only widen the range ``lo``/``hi``); for discrete data they are fixed at construction. Everything
    is a buffer, so it moves with ``.to(device)`` and is saved.

    Arguments:
        spec: the data spec.
        per_dimension: one scale per dimension (the standard deviation of each), instead of one overall
            scale (the root mean variance).
        min_scale: the smallest scale (for constant dimensions).

    Example:
        >>> from ppgen.data import DataSpec
        >>> s = Standardize(DataSpec("categorical:5", (3,)))
        >>> s(torch.tensor([[0., 2., 4.]]))
        tensor([[-1.,  0.,  1.]])
        >>> s.inverse(torch.tensor([[-0.9, 0.2, 7.0]]))
        tensor([[0., 2., 4.]])
    """

    def __init__(self, spec: DataSpec, per_dimension: bool = False, min_scale: float = 1e-6):
        super().__init__()
        self.spec = spec
        self.per_dimension = per_dimension
        self.min_scale = min_scale
        shape = tuple(spec.event_shape)
        k = spec.num_categories
        discrete = k > 0
        half = (k - 1) / 2 if discrete else 0.0
        self.register_buffer("shift", torch.full(shape, half))
        scale = half if discrete else 1.0
        self.register_buffer("scale", torch.full(shape, scale) if per_dimension else torch.tensor(scale))
        self.register_buffer("lo", torch.full(shape, 0.0 if discrete else torch.inf))
        self.register_buffer("hi", torch.full(shape, float(k - 1) if discrete else -torch.inf))
        self.register_buffer("ready", torch.tensor(discrete))

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        r"""Sets shift/scale from ``x`` (N, *event_shape) the first time (continuous data); widens lo/hi."""
        x = x.to(self.shift)
        if not bool(self.ready):
            var = x.var(0, unbiased=False)
            self.shift.copy_(x.mean(0))
            self.scale.copy_((var if self.per_dimension else var.mean()).sqrt().clamp_min(self.min_scale))
            self.ready.fill_(True)
        if not self.spec.num_categories:
            self.lo.copy_(torch.minimum(self.lo, x.min(0).values))
            self.hi.copy_(torch.maximum(self.hi, x.max(0).values))

    def forward(self, x: Tensor) -> Tensor:
        r"""x: (B, *event_shape) -> u: (B, *event_shape)."""
        return (x - self.shift) / self.scale

    def inverse(self, u: Tensor, snap: bool = True) -> Tensor:
        r"""u -> x, rounded to the nearest level and clamped for discrete data (unless ``snap`` is False)."""
        x = u * self.scale + self.shift
        k = self.spec.num_categories
        if k and snap:
            x = x.round().clamp(0, k - 1) + 0.0  # + 0.0 turns -0.0 into 0.0
        return x

    def box(self, margin: float = 0.1) -> tuple[Tensor, Tensor]:
        r"""The range of the data seen in u-space, widened by ``margin`` of its width on each side."""
        if not bool(torch.isfinite(self.lo).all()):
            lo, hi = -torch.ones_like(self.shift) * 2, torch.ones_like(self.shift) * 2  # before any data
        else:
            lo, hi = self(self.lo), self(self.hi)
        width = hi - lo
        return lo - margin * width, hi + margin * width
