"""Invertible 1x1 convolution: a learned channel mixing, LU-parametrised so its log-determinant is cheap."""

import torch
from pyro.distributions import constraints
from pyro.distributions.torch_transform import TransformModule
from torch import Tensor, nn

__all__ = ["InvertibleConv1x1"]


class InvertibleConv1x1(TransformModule):
    r"""z = W x at every pixel, W = P L (U + diag(sign * exp(log_s))): (*, C, H, W) -> (*, C, H, W).

    P is a fixed permutation, L unit lower triangular, U strictly upper triangular, so
    log|det J| = H W sum(log_s). W starts as a random rotation. It generalises the fixed channel
    permutations of RealNVP.

    Arguments:
        channels: C.

    References:
        | Glow: Generative Flow with Invertible 1x1 Convolutions (Kingma & Dhariwal, 2018), arXiv:1807.03039

    Example:
        >>> t = InvertibleConv1x1(4)
        >>> x = torch.randn(2, 4, 3, 3)
        >>> bool(torch.allclose(t.inv(t(x)), x, atol=1e-5))
        True
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)
    bijective = True

    def __init__(self, channels: int):
        super().__init__(cache_size=1)
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        p, lower, upper = torch.linalg.lu(q)
        s = upper.diagonal()
        self.register_buffer("p", p)
        self.register_buffer("s_sign", s.sign())
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(upper.triu(1))
        self.log_s = nn.Parameter(s.abs().log())

    def weight(self) -> Tensor:
        eye = torch.eye(self.p.shape[0], dtype=self.p.dtype, device=self.p.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.s_sign * self.log_s.exp())
        return self.p @ lower @ upper

    def _call(self, x: Tensor) -> Tensor:
        return torch.einsum("ij,...jhw->...ihw", self.weight(), x)

    def _inverse(self, z: Tensor) -> Tensor:
        return torch.einsum("ij,...jhw->...ihw", torch.linalg.inv(self.weight()), z)

    def log_abs_det_jacobian(self, x: Tensor, z: Tensor) -> Tensor:
        ladj = self.log_s.sum() * x.shape[-2] * x.shape[-1]
        return ladj.expand(x.shape[:-3])
