"""Fourier input features, which let a small MLP resolve structure much finer than the input's range."""

import torch
from torch import Tensor, nn

__all__ = ["FourierFeatures"]


class FourierFeatures(nn.Module):
    r"""x -> [x, sin(2^k pi x), cos(2^k pi x)] for k < octaves, per coordinate.

    Arguments:
        octaves: the number of frequencies (0: the identity).

    Example:
        >>> FourierFeatures(3)(torch.zeros(4, 2)).shape
        torch.Size([4, 14])

    References:
        | Fourier Features Let Networks Learn High Frequency Functions in Low Dimensional Domains
        | (Tancik et al., 2020) https://arxiv.org/abs/2006.10739
    """

    def __init__(self, octaves: int = 0):
        super().__init__()
        self.register_buffer("frequencies", torch.pi * 2.0 ** torch.arange(octaves))

    def out_features(self, dim: int) -> int:
        return dim * (1 + 2 * len(self.frequencies))

    def forward(self, x: Tensor) -> Tensor:
        r"""x: (B, D) -> (B, D (1 + 2 octaves))."""
        if not len(self.frequencies):
            return x
        a = (x.unsqueeze(-1) * self.frequencies).flatten(1)  # (B, D K)
        return torch.cat([x, torch.sin(a), torch.cos(a)], dim=1)
