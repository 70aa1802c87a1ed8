"""Dequantizers: the distribution q(u | x) of the noise u in [0, 1)^D added to discrete data x.

For K-level data the flow models the continuous v = x + u, and for any q,
    log P(x) = log E_q[p(x + u) / q(u | x)] >= E_q[log p(x + u) - log q(u | x)],
so a continuous flow gives a lower bound on the discrete log-likelihood. Uniform dequantization is
q = U[0, 1)^D (log q = 0); variational dequantization learns q, which tightens the bound.
Both follow the lazy-distribution pattern: ``forward(x)`` returns a fresh distribution.

References:
    | A note on the evaluation of generative models (Theis et al., 2016), arXiv:1511.01844
    | Flow++: Improving Flow-Based Generative Models with Variational Dequantization and
      Architecture Design (Ho et al., 2019), arXiv:1902.00275
"""

import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.distributions import AffineTransform, SigmoidTransform

__all__ = ["UniformDequantizer", "VariationalDequantizer"]


class UniformDequantizer(nn.Module):
    r"""q(u | x) = U[0, 1)^D, independent of x.

    Example:
        >>> q = UniformDequantizer()(torch.zeros(3, 1, 2, 2))
        >>> q.sample().shape, q.log_prob(q.sample()).shape
        (torch.Size([3, 1, 2, 2]), torch.Size([3]))
    """

    def forward(self, x: Tensor) -> dist.Distribution:
        r"""x: (B, *event_shape) -> a distribution with batch (B,) and x's event shape."""
        return dist.Uniform(torch.zeros_like(x), torch.ones_like(x)).to_event(x.ndim - 1)


class VariationalDequantizer(nn.Module):
    r"""q(u | x): u = eps + (1 - 2 eps) sigmoid(m(x) + exp(s(x)) e), e ~ N(0, I), for images (B, C, H, W).

    A conditional flow of one elementwise affine layer and a sigmoid, with m and s from a small conv
    net of x (scaled to [-0.5, 0.5]). The margin ``eps`` keeps u strictly inside (0, 1) in float32;
    ``|s| <= max_log_scale`` (soft) bounds the scale. Flow++ uses a deeper conditional flow here.

    Arguments:
        channels: C.
        num_categories: K (x takes values 0..K-1).
        hidden: the conv net's width.

    Example:
        >>> q = VariationalDequantizer(1, 17)(torch.zeros(3, 1, 4, 4))
        >>> u = q.sample(); bool(((u > 0) & (u < 1)).all())
        True
    """

    def __init__(
        self,
        channels: int,
        num_categories: int,
        hidden: int = 16,
        eps: float = 1e-4,
        max_log_scale: float = 3.0,
    ):
        super().__init__()
        self.num_categories = num_categories
        self.eps = eps
        self.max_log_scale = max_log_scale
        last = nn.Conv2d(hidden, 2 * channels, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(), last)

    def forward(self, x: Tensor) -> dist.Distribution:
        r"""x: (B, C, H, W) integer levels -> q(u | x) with batch (B,) and event (C, H, W)."""
        m, raw = self.net(x / (self.num_categories - 1) - 0.5).chunk(2, dim=1)
        log_s = self.max_log_scale * torch.tanh(raw / self.max_log_scale)
        base = dist.Normal(torch.zeros_like(x), torch.ones_like(x))
        transforms = [
            AffineTransform(m, log_s.exp()),
            SigmoidTransform(),
            AffineTransform(self.eps, 1 - 2 * self.eps),
        ]
        return dist.TransformedDistribution(base, transforms).to_event(3)
