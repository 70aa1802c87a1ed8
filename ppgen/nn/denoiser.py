"""Noise-prediction networks eps(x_t, t): a residual MLP for vectors and a small U-Net for images.

Both condition on the time step through :class:`~ppgen.nn.time_embedding.TimeEmbedding` features
added inside every residual block, and both start as the zero function (zero-initialised output
layer), so an untrained diffusion model predicts no noise.

References:
    | Denoising Diffusion Probabilistic Models (Ho et al., 2020) https://arxiv.org/abs/2006.11239
    | U-Net: Convolutional Networks for Biomedical Image Segmentation (Ronneberger et al., 2015)
    | https://arxiv.org/abs/1505.04597
"""

import math

import torch
from torch import Tensor, nn

from ppgen.nn.time_embedding import TimeEmbedding

__all__ = ["MLPDenoiser", "ConvDenoiser", "denoiser"]


def _zero(layer: nn.Module) -> nn.Module:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class _MLPBlock(nn.Module):
    def __init__(self, hidden: int, emb: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.time = nn.Linear(emb, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.act = nn.SiLU()

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        r = self.act(self.fc1(self.norm(h)) + self.time(e))
        return h + self.fc2(r)


class MLPDenoiser(nn.Module):
    r"""eps(x, t) for flat data: residual MLP blocks with additive time features.

    Arguments:
        dim: the data dimension D.
        hidden: the width of the blocks.
        blocks: the number of residual blocks.
        time_scale: see :class:`~ppgen.nn.time_embedding.TimeEmbedding` (1000 / T).
        fourier: octaves of Fourier input features [sin, cos](2^k pi x), k < fourier, appended to x
            (0 for none): they let a small MLP resolve sharp structure such as modes of std 0.02.

    References:
        | Fourier Features Let Networks Learn High Frequency Functions in Low Dimensional Domains
        | (Tancik et al., 2020) https://arxiv.org/abs/2006.10739

    Example:
        >>> net = MLPDenoiser(2, hidden=32, blocks=2, fourier=4)
        >>> net(torch.randn(5, 2), torch.randint(1, 100, (5,))).shape
        torch.Size([5, 2])
    """

    def __init__(
        self, dim: int, hidden: int = 256, blocks: int = 3, time_scale: float = 1.0, fourier: int = 0
    ):
        super().__init__()
        emb = min(hidden, 128)
        self.time = TimeEmbedding(emb, time_scale)
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(fourier, dtype=torch.float32))
        self.inp = nn.Linear(dim * (1 + 2 * fourier), hidden)
        self.blocks = nn.ModuleList(_MLPBlock(hidden, emb) for _ in range(blocks))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), _zero(nn.Linear(hidden, dim)))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        r"""x: (B, D), t: (B,) -> (B, D)."""
        e = self.time(t)
        if len(self.frequencies):
            a = (x.unsqueeze(-1) * self.frequencies).flatten(-2)  # (B, D * fourier)
            x = torch.cat([x, torch.sin(a), torch.cos(a)], dim=-1)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, e)
        return self.out(h)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(emb, cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        r = self.conv1(self.act(self.norm1(h))) + self.time(e)[:, :, None, None]
        r = self.conv2(self.act(self.norm2(r)))
        return self.skip(h) + r


class ConvDenoiser(nn.Module):
    r"""eps(x, t) for images (C, H, W): a two-level U-Net (one stride-2 level when H and W are even).

    Arguments:
        channels: the image channels C.
        width: the channels of the first level (the second has twice as many).
        time_scale: see :class:`~ppgen.nn.time_embedding.TimeEmbedding` (1000 / T).
        downsample: use the second, half-resolution level (needs even H and W).

    Example:
        >>> net = ConvDenoiser(1, width=16)
        >>> net(torch.randn(3, 1, 8, 8), torch.randint(1, 100, (3,))).shape
        torch.Size([3, 1, 8, 8])
    """

    def __init__(self, channels: int, width: int = 64, time_scale: float = 1.0, downsample: bool = True):
        super().__init__()
        emb = 4 * width if width <= 32 else 128
        self.time = TimeEmbedding(emb, time_scale)
        self.downsample = downsample
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.enc = _ConvBlock(width, width, emb)
        if downsample:
            self.down = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
            self.mid = nn.ModuleList(
                [_ConvBlock(2 * width, 2 * width, emb), _ConvBlock(2 * width, 2 * width, emb)]
            )
            self.up = nn.Conv2d(2 * width, width, 3, padding=1)
        else:
            self.mid = nn.ModuleList([_ConvBlock(width, width, emb), _ConvBlock(width, width, emb)])
        self.dec = _ConvBlock(2 * width, width, emb)
        self.out = nn.Sequential(_norm(width), nn.SiLU(), _zero(nn.Conv2d(width, channels, 3, padding=1)))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        r"""x: (B, C, H, W), t: (B,) -> (B, C, H, W)."""
        e = self.time(t)
        skip = self.enc(self.stem(x), e)  # (B, width, H, W)
        h = self.down(skip) if self.downsample else skip  # (B, 2 width, H/2, W/2)
        for block in self.mid:
            h = block(h, e)
        if self.downsample:
            h = self.up(
                nn.functional.interpolate(h, size=skip.shape[-2:], mode="nearest")
            )  # (B, width, H, W)
        return self.out(self.dec(torch.cat([h, skip], dim=1), e))


def denoiser(
    event_shape: tuple,
    hidden: int = 256,
    blocks: int = 3,
    width: int = 64,
    time_scale: float = 1.0,
    fourier: int | None = None,
    architecture: str = "auto",
) -> nn.Module:
    r"""A sensibly sized eps-network for data of this event shape.

    Arguments:
        event_shape: (D,) -> :class:`MLPDenoiser`; (C, H, W) -> :class:`ConvDenoiser` (an MLP on the
            flattened image when H or W is below 4, where convolutions see little).
        hidden, blocks: the MLP's width and depth.
        width: the U-Net's first-level channels.
        time_scale: 1000 / T.
        fourier: the MLP's Fourier octaves (default 6 for D <= 4, else 0).
        architecture: "auto" (as above), "mlp" (flatten images too) or "conv" (images only).
    """
    event_shape = tuple(event_shape)
    if architecture not in ("auto", "mlp", "conv"):
        raise ValueError(f"unknown denoiser architecture {architecture!r}; expected 'auto', 'mlp' or 'conv'")
    if architecture == "conv" and len(event_shape) != 3:
        raise ValueError(f"a convolutional denoiser needs images (C, H, W), not event shape {event_shape}")
    if (
        architecture == "conv"
        or architecture == "auto"
        and len(event_shape) == 3
        and min(event_shape[1:]) >= 4
    ):
        even = event_shape[1] % 2 == 0 and event_shape[2] % 2 == 0
        return ConvDenoiser(event_shape[0], width, time_scale, downsample=even)
    dim = math.prod(event_shape)
    fourier = (6 if dim <= 4 else 0) if fourier is None else fourier
    return _Flat(MLPDenoiser(dim, hidden, blocks, time_scale, fourier), event_shape)


class _Flat(nn.Module):
    r"""Applies a flat (B, D) denoiser to (B, *event_shape) data."""

    def __init__(self, net: nn.Module, event_shape: tuple):
        super().__init__()
        self.net = net
        self.event_shape = event_shape

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(x.reshape(x.shape[0], -1), t).reshape(x.shape)
