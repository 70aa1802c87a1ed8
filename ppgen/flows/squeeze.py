"""Squeeze: trade spatial resolution for channels, (C, H, W) -> (4C, H/2, W/2), volume preserving."""

from pyro.distributions import constraints
from torch import Tensor
from torch.distributions import Transform

__all__ = ["Squeeze"]


class Squeeze(Transform):
    r"""Moves each 2x2 block of pixels into 4 channels: (*, C, H, W) -> (*, 4C, H/2, W/2).

    A permutation of the entries, so log|det J| = 0. It lets the couplings of a multi-scale flow
    mix pixels that a channel split would otherwise never bring together.

    References:
        | Density estimation using Real NVP (Dinh et al., 2017), arXiv:1605.08803

    Example:
        >>> Squeeze()(torch.arange(16.).reshape(1, 1, 4, 4)).shape
        torch.Size([1, 4, 2, 2])
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)
    bijective = True

    def __init__(self, cache_size: int = 1):
        super().__init__(cache_size=cache_size)

    def __eq__(self, other):
        return isinstance(other, Squeeze)

    def _call(self, x: Tensor) -> Tensor:
        *batch, c, h, w = x.shape
        x = x.reshape(*batch, c, h // 2, 2, w // 2, 2)
        nb = len(batch)
        x = x.permute(*range(nb), nb, nb + 2, nb + 4, nb + 1, nb + 3)  # (*, C, 2, 2, H/2, W/2)
        return x.reshape(*batch, 4 * c, h // 2, w // 2)

    def _inverse(self, z: Tensor) -> Tensor:
        *batch, c4, h, w = z.shape
        z = z.reshape(*batch, c4 // 4, 2, 2, h, w)
        nb = len(batch)
        z = z.permute(*range(nb), nb, nb + 3, nb + 1, nb + 4, nb + 2)  # (*, C, H/2, 2, W/2, 2)
        return z.reshape(*batch, c4 // 4, 2 * h, 2 * w)

    def log_abs_det_jacobian(self, x: Tensor, z: Tensor) -> Tensor:
        return x.new_zeros(x.shape[:-3])

    def forward_shape(self, shape):
        *batch, c, h, w = shape
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze needs even height and width, got {h}x{w}")
        return (*batch, 4 * c, h // 2, w // 2)

    def inverse_shape(self, shape):
        *batch, c4, h, w = shape
        return (*batch, c4 // 4, 2 * h, 2 * w)
