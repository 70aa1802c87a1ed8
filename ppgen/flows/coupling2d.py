"""Affine coupling for images: half the channels are scaled and shifted by a conv net of the other half."""

import torch
from pyro.distributions import constraints
from pyro.distributions.torch_transform import TransformModule
from torch import Tensor, nn

__all__ = ["AffineCoupling2d", "coupling_net"]


def coupling_net(in_channels: int, out_channels: int, hidden: int) -> nn.Sequential:
    r"""conv3x3 -> ReLU -> conv1x1 -> ReLU -> conv3x3, the last zero-initialised so that the coupling
    starts as the identity."""
    last = nn.Conv2d(hidden, out_channels, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(), last
    )


class AffineCoupling2d(TransformModule):
    r"""z = (x_a, x_b * exp(s(x_a)) + t(x_a)) with the channels split as x = (x_a, x_b): (*, C, H, W).

    The Jacobian is block triangular with diagonal exp(s), so log|det J| = sum s. The log-scale is
    bounded softly, s = max_log_scale * tanh(raw / max_log_scale), so training cannot blow it up.

    Arguments:
        channels: C (at least 2).
        hidden: the width of the conv net.
        max_log_scale: the bound on |s|.

    References:
        | Density estimation using Real NVP (Dinh et al., 2017), arXiv:1605.08803

    Example:
        >>> t = AffineCoupling2d(4, hidden=8)
        >>> t(torch.randn(2, 4, 3, 3)).shape
        torch.Size([2, 4, 3, 3])
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)
    bijective = True

    def __init__(self, channels: int, hidden: int = 64, max_log_scale: float = 3.0):
        super().__init__(cache_size=1)
        if channels < 2:
            raise ValueError("AffineCoupling2d needs at least 2 channels")
        self.split = channels // 2
        self.net = coupling_net(self.split, 2 * (channels - self.split), hidden)
        self.max_log_scale = max_log_scale
        self._cached = None

    def _shift_log_scale(self, xa: Tensor) -> tuple[Tensor, Tensor]:
        *batch, c, h, w = xa.shape
        out = self.net(xa.reshape(-1, c, h, w)).reshape(*batch, -1, h, w)
        shift, raw = out.chunk(2, dim=-3)
        return shift, self.max_log_scale * torch.tanh(raw / self.max_log_scale)

    def _call(self, x: Tensor) -> Tensor:
        xa, xb = x[..., : self.split, :, :], x[..., self.split :, :, :]
        shift, log_s = self._shift_log_scale(xa)
        z = torch.cat([xa, xb * log_s.exp() + shift], dim=-3)
        self._cached = (x, z, log_s)
        return z

    def _inverse(self, z: Tensor) -> Tensor:
        za, zb = z[..., : self.split, :, :], z[..., self.split :, :, :]
        shift, log_s = self._shift_log_scale(za)
        x = torch.cat([za, (zb - shift) * torch.exp(-log_s)], dim=-3)
        self._cached = (x, z, log_s)
        return x

    def log_abs_det_jacobian(self, x: Tensor, z: Tensor) -> Tensor:
        if self._cached is not None and self._cached[0] is x and self._cached[1] is z:
            log_s = self._cached[2]
        else:
            _, log_s = self._shift_log_scale(x[..., : self.split, :, :])
        return log_s.sum((-3, -2, -1))
