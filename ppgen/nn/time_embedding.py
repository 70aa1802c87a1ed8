"""Sinusoidal embeddings of a diffusion time step, as in the Transformer's position encoding.

References:
    | Attention Is All You Need (Vaswani et al., 2017) https://arxiv.org/abs/1706.03762
    | Denoising Diffusion Probabilistic Models (Ho et al., 2020) https://arxiv.org/abs/2006.11239
"""

import math

import torch
from torch import Tensor, nn

__all__ = ["sinusoidal_embedding", "TimeEmbedding"]


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    r"""Sines and cosines of ``t`` at ``dim // 2`` geometric frequencies.

    Arguments:
        t: (B,) time steps (integers or reals, any float scale up to about ``max_period``).
        dim: the embedding size (even).
        max_period: the longest period.

    Returns:
        (B, dim), in the dtype of the default float type or of ``t`` when it is floating.

    Example:
        >>> sinusoidal_embedding(torch.tensor([0, 10]), 4).shape
        torch.Size([2, 4])
    """
    half = dim // 2
    dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=dtype) / half
    )  # (half,)
    args = t.to(dtype).unsqueeze(-1) * freqs  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimeEmbedding(nn.Module):
    r"""t -> MLP(sinusoidal(t * scale)): the learned time-step features a denoiser conditions on.

    Arguments:
        dim: the output size.
        scale: multiplies ``t`` before the sinusoids, so that a T-step schedule can be read on the
            [0, 1000] scale its frequencies were chosen for (``scale = 1000 / T``).
    """

    def __init__(self, dim: int, scale: float = 1.0):
        super().__init__()
        self.dim = dim
        self.scale = scale
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        r"""(B,) -> (B, dim); (1, dim) when every t is the same (a sampler's step), which broadcasts."""
        if t.numel() > 1 and bool((t == t[0]).all()):
            t = t[:1]
        dtype = self.net[0].weight.dtype
        return self.net(sinusoidal_embedding(t.to(dtype) * self.scale, self.dim))
