"""Masked linear layers and the degree-based masks that make a network autoregressive (MADE, FVSBN)."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MaskedLinear", "degree_mask", "made_degrees"]


class MaskedLinear(nn.Linear):
    r"""A linear layer whose weight is multiplied by a fixed 0/1 mask: y = x (W * M)^T + b.

    The mask is a buffer, so it moves with ``.to(device)`` and is saved in the ``state_dict``;
    :meth:`set_mask` replaces it (MADE's connectivity resampling).

    Arguments:
        in_features: the input size.
        out_features: the output size.
        mask: (out_features, in_features), 1 where a connection is allowed; default all ones.
        bias: whether to add a bias.

    Example:
        >>> layer = MaskedLinear(3, 2, mask=torch.tensor([[1., 0., 0.], [1., 1., 0.]]))
        >>> layer(torch.randn(5, 3)).shape
        torch.Size([5, 2])
    """

    def __init__(self, in_features: int, out_features: int, mask: Tensor | None = None, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("mask", torch.ones(out_features, in_features))
        if mask is not None:
            self.set_mask(mask)

    def set_mask(self, mask: Tensor) -> None:
        r"""mask: (out_features, in_features), bool or 0/1."""
        if tuple(mask.shape) != tuple(self.mask.shape):
            raise ValueError(f"mask must have shape {tuple(self.mask.shape)}, got {tuple(mask.shape)}")
        self.mask.copy_(mask.to(self.mask.dtype))

    def forward(self, x: Tensor) -> Tensor:
        r"""x: (*, in_features) -> (*, out_features)."""
        return F.linear(x, self.weight * self.mask, self.bias)


def degree_mask(in_degrees: Tensor, out_degrees: Tensor, strict: bool) -> Tensor:
    r"""The MADE connectivity mask: unit j may feed unit i when d(i) >= d(j) (hidden layers) or
    d(i) > d(j) (``strict``, the output layer).

    Arguments:
        in_degrees: (in_features,) integer degrees of the inputs.
        out_degrees: (out_features,) integer degrees of the outputs.
        strict: use > instead of >=.

    Returns:
        (out_features, in_features) float 0/1 mask.

    References:
        MADE: Masked Autoencoder for Distribution Estimation (Germain et al., 2015), arXiv:1502.03509.
    """
    if strict:
        return (out_degrees[:, None] > in_degrees[None, :]).float()
    return (out_degrees[:, None] >= in_degrees[None, :]).float()


def made_degrees(
    ordering: Tensor, hidden_sizes: list[int], generator: torch.Generator | None = None, random: bool = True
) -> list[Tensor]:
    r"""The degrees of every layer of a MADE: inputs, each hidden layer, outputs.

    Input dimension i gets degree 1 + its position in ``ordering``; the output of dimension i gets
    the same degree (so a strict mask lets it see only earlier dimensions); hidden units get degrees
    in [min degree of the previous layer, D - 1], uniformly at random (``random``, connectivity
    resampling) or cycled deterministically.

    Arguments:
        ordering: (D,) the flat dimensions in generation order.
        hidden_sizes: the width of each hidden layer.
        generator: the random source of the hidden degrees.
        random: draw hidden degrees at random (else cycle through the allowed range).

    Returns:
        [input degrees (D,), hidden degrees (H_1,), ..., output degrees (D,)], long.

    References:
        MADE: Masked Autoencoder for Distribution Estimation (Germain et al., 2015), arXiv:1502.03509.
    """
    d = ordering.numel()
    position = torch.empty(d, dtype=torch.long)
    position[ordering.cpu()] = torch.arange(d)
    degrees = [position + 1]
    for h in hidden_sizes:
        low = min(int(degrees[-1].min()), d - 1)
        if random:
            deg = torch.randint(low, max(d, low + 1), (h,), generator=generator)
        else:
            deg = low + torch.arange(h) % max(d - low, 1)
        degrees.append(deg)
    degrees.append(position + 1)
    return degrees
