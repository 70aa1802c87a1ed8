"""Generator and discriminator networks for GANs: MLPs for vectors, DCGAN convolutions for images.

Both discriminators end in the same head: a linear score of their features plus, when conditional,
the projection term <embed(y), features> of Miyato & Koyama; both generators take [z, embed(y)].

References:
    | Unsupervised Representation Learning with Deep Convolutional GANs (Radford et al., 2015)
    | https://arxiv.org/abs/1511.06434
    | cGANs with Projection Discriminator (Miyato & Koyama, 2018) https://arxiv.org/abs/1802.05637
    | Conditional Generative Adversarial Nets (Mirza & Osindero, 2014) https://arxiv.org/abs/1411.1784
"""

import math
from functools import partial

import torch
from torch import Tensor, nn

from ppgen.nn.fourier import FourierFeatures
from ppgen.nn.mlp import mlp

__all__ = [
    "Generator",
    "Discriminator",
    "mlp_generator",
    "mlp_discriminator",
    "conv_generator",
    "conv_discriminator",
]


class Generator(nn.Module):
    r"""x_raw = body([z, embed(y)]): maps latent codes (and labels) to unconstrained outputs.

    Arguments:
        body: a module mapping (B, latent_dim + embed_dim) to (B, *event_shape).
        num_classes: the number of labels for p(x | y), or None.
        embed_dim: the size of the label embedding.
    """

    def __init__(self, body: nn.Module, num_classes: int | None = None, embed_dim: int = 0):
        super().__init__()
        self.body = body
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        r"""z: (B, latent_dim), y: (B,) -> (B, *event_shape)."""
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=-1)
        return self.body(z)


class Discriminator(nn.Module):
    r"""logit = w . phi(x) + b [+ <embed(y), phi(x)>]: a score per example (a logit, or a critic value).

    Arguments:
        body: a module mapping (B, *event_shape) to features (B, F).
        features: F.
        num_classes: the number of labels for the projection term, or None.
    """

    def __init__(self, body: nn.Module, features: int, num_classes: int | None = None):
        super().__init__()
        self.body = body
        self.head = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features) if num_classes else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        r"""x: (B, *event_shape), y: (B,) -> (B,)."""
        h = self.body(x)  # (B, F)
        out = self.head(h).squeeze(-1)
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(-1)
        return out


def mlp_generator(
    latent_dim: int,
    event_shape: tuple,
    hidden: int = 256,
    layers: int = 3,
    num_classes: int | None = None,
    embed_dim: int = 16,
) -> Generator:
    r"""An MLP generator: [z, embed(y)] -> ReLU layers -> linear -> (B, *event_shape)."""
    embed_dim = embed_dim if num_classes else 0
    net = mlp(latent_dim + embed_dim, (hidden,) * layers, math.prod(event_shape), nn.ReLU)
    body = nn.Sequential(*net, nn.Unflatten(-1, tuple(event_shape)))
    return Generator(body, num_classes, embed_dim)


def mlp_discriminator(
    event_shape: tuple, hidden: int = 256, layers: int = 3, num_classes: int | None = None, fourier: int = 0
) -> Discriminator:
    r"""An MLP discriminator: flatten -> [Fourier features] -> LeakyReLU(0.2) layers -> features (B, hidden).

    ``fourier`` octaves of :class:`~ppgen.nn.fourier.FourierFeatures` (0: none) let the critic resolve
    structure much finer than the data's range (many small modes).
    """
    features = [FourierFeatures(fourier)] if fourier else []
    d = math.prod(event_shape) * (1 + 2 * fourier)
    net = mlp(d, (hidden,) * layers, None, partial(nn.LeakyReLU, 0.2))
    body = nn.Sequential(nn.Flatten(), *features, *net)
    return Discriminator(body, hidden, num_classes)


class _Crop(nn.Module):
    def __init__(self, h: int, w: int):
        super().__init__()
        self.h, self.w = h, w

    def forward(self, x: Tensor) -> Tensor:
        return x[..., : self.h, : self.w]


class _Pad(nn.Module):
    def __init__(self, h: int, w: int):
        super().__init__()
        self.h, self.w = h, w

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.pad(x, (0, self.w - x.shape[-1], 0, self.h - x.shape[-2]))


def _quarter(event_shape: tuple) -> tuple[int, int, int]:
    c, h, w = event_shape
    return c, math.ceil(h / 4), math.ceil(w / 4)


def conv_generator(
    latent_dim: int,
    event_shape: tuple,
    channels: int = 64,
    num_classes: int | None = None,
    embed_dim: int = 16,
) -> Generator:
    r"""The DCGAN generator: linear to (2c, H/4, W/4), two stride-2 transposed convolutions, crop to
    (C, H, W).

    No batch norm: samples then do not depend on the batch or on train/eval mode.

    H and W that are not multiples of 4 are generated at the next multiple and cropped (8x8 digits:
    2x2 -> 4x4 -> 8x8; 28x28 MNIST: 7x7 -> 14x14 -> 28x28).
    """
    embed_dim = embed_dim if num_classes else 0
    c_out, h4, w4 = _quarter(event_shape)
    c = channels
    body = nn.Sequential(
        nn.Linear(latent_dim + embed_dim, 2 * c * h4 * w4),
        nn.Unflatten(-1, (2 * c, h4, w4)),
        nn.ReLU(),
        nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),  # (B, c, 2h4, 2w4)
        nn.ReLU(),
        nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1),  # (B, C, 4h4, 4w4)
        _Crop(event_shape[1], event_shape[2]),
    )
    return Generator(body, num_classes, embed_dim)


def conv_discriminator(
    event_shape: tuple, channels: int = 64, num_classes: int | None = None
) -> Discriminator:
    r"""The DCGAN discriminator without batch norm (so that it also serves as a WGAN-GP critic):
    zero-pad to a multiple of 4, two stride-2 convolutions with LeakyReLU(0.2), flatten."""
    c_in, h4, w4 = _quarter(event_shape)
    c = channels
    body = nn.Sequential(
        _Pad(4 * h4, 4 * w4),
        nn.Conv2d(c_in, c, 4, stride=2, padding=1),  # (B, c, 2h4, 2w4)
        nn.LeakyReLU(0.2),
        nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),  # (B, 2c, h4, w4)
        nn.LeakyReLU(0.2),
        nn.Flatten(),
    )
    return Discriminator(body, 2 * c * h4 * w4, num_classes)
