"""PixelCNN and Gated PixelCNN: the chain rule over pixels in raster order, every conditional from one
masked-convolution pass.

Both are variants of one implementation, :class:`PixelModel`: the image's levels are one-hot
features, a causal body (a :mod:`ppgen.nn.masked_conv` stack, or a Row LSTM in
:mod:`ppgen.models.pixelrnn`) turns them into features at every pixel that see only earlier pixels,
and a 1x1 head gives the logits of each p(x_ij | x_<ij). Colour images (C, H, W) are generated channel
by channel within each pixel, p(x) = prod_i p(x_iR | x_<i) p(x_iG | x_<i, x_iR) p(x_iB | x_<i, x_iR,
x_iG), through the channel-group masks of :mod:`ppgen.nn.masked_conv`. Labels enter every layer through
a class embedding (p(x | y)). Sampling is cached: each activation is computed once, at the step where
its inputs become known (once per channel at the pixel being drawn), instead of one full pass per pixel.
"""

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppgen.base import register
from ppgen.errors import PPGenError
from ppgen.models.autoregressive import AutoregressiveModel
from ppgen.nn.masked_conv import (
    GatedPixelCNNStack,
    PixelCNNStack,
    folded_bias,
    point_sources,
    pointwise,
    pointwise_matrix,
    pointwise_reach,
)

__all__ = ["PixelModel", "PixelCNN", "GatedPixelCNN"]


class PixelModel(AutoregressiveModel):
    r"""The shared machinery of pixel-level autoregressive models on (C_image, H, W) images.

    A subclass builds ``self.body`` in :meth:`make_body`: a module with ``forward(features, e)``
    (B, C_image K, H, W) -> (B, C, H, W), ``out_channels``, ``reach(sources)`` (the exact receptive
    field per channel group, see :func:`~ppgen.nn.masked_conv.point_sources`) and ``cache(features, e)``
    (a :class:`~ppgen.nn.masked_conv.RasterCache`: ``at(i, j) -> (B, C)`` and ``set(i, j, features,
    start)`` for raster-order sampling), whose masks keep the C_image channel groups causal (``groups``).

    The flat order of generation is pixel by pixel and, within a pixel, channel by channel
    (:meth:`ordering`); a one-channel image is plain raster order.

    Every variant takes the same arguments (documented on each); only ``default_layers`` and the body
    differ.

    Arguments:
        spec: a binary or categorical spec of shape (C_image, H, W), e.g. (3, H, W) for RGB.
        channels: C, the body's width.
        layers: the body's depth (None: the variant's ``default_layers``).
        first_kernel: the size of the first (type-A) kernel.
        kernel_size: the size of the body's other kernels.
        head: the width of the 1x1 output head.
        dropout: the body's dropout.
        embed_dim: the size of the class embedding (conditional models).
        conditional: model p(x | y).
    """

    kinds = ("binary", "categorical")
    images_only = True
    conditionable = True
    default_layers: ClassVar[int] = 4
    tiny_config = {"channels": 8, "layers": 2, "first_kernel": 3, "head": 16, "embed_dim": 4}

    def __init__(
        self,
        spec,
        channels: int = 32,
        layers: int | None = None,
        first_kernel: int = 7,
        kernel_size: int = 3,
        head: int = 64,
        dropout: float = 0.2,
        embed_dim: int = 16,
        conditional: bool = False,
    ):
        super().__init__(spec, conditional)
        body = {
            "layers": self.default_layers if layers is None else layers,
            "first_kernel": first_kernel,
            "kernel_size": kernel_size,
            "dropout": dropout,
        }
        colours = spec.event_shape[0]
        if min(channels, head) < colours:
            raise PPGenError(
                f"{self.name}: channels and head must be at least the image's {colours} channels "
                f"(one group of features per channel), got {channels} and {head}"
            )
        k = spec.num_categories
        self.embedding = nn.Embedding(self.num_classes, embed_dim) if self.conditional else None
        self.body = self.make_body(
            colours * k, channels, embed_dim if self.conditional else None, groups=colours, **body
        )
        out = 1 if spec.kind == "binary" else k
        self.head = nn.Sequential(
            nn.ELU(),
            pointwise(self.body.out_channels, head, colours),
            nn.ELU(),
            pointwise(head, colours * out, colours),
        )

    def make_body(
        self, in_channels: int, channels: int, embed_dim: int | None, groups: int, **config
    ) -> nn.Module:
        raise NotImplementedError

    @property
    def colours(self) -> int:
        r"""The image's channels C_image (3 for RGB)."""
        return self.spec.event_shape[0]

    # --- the parallel pass ------------------------------------------------------------------
    def embed(self, y: Tensor | None) -> Tensor | None:
        return None if self.embedding is None or y is None else self.embedding(y)

    def features(self, x: Tensor) -> Tensor:
        r"""x: (B, C_image, H, W) levels -> (B, C_image K, H, W) one-hot features, channel by channel
        (straight-through gradient)."""
        hot = self.one_hot(x).permute(0, 1, 4, 2, 3)  # (B, C_image, K, H, W)
        return hot.reshape(x.shape[0], -1, *x.shape[-2:])

    def logits(self, h: Tensor) -> Tensor:
        r"""Head features (B, C, H, W) -> binary logits (B, C_image, H, W) or categorical logits
        (B, C_image, H, W, K)."""
        out = self.head(h)
        if self.spec.kind == "binary":
            return out
        return out.reshape(out.shape[0], self.colours, -1, *out.shape[-2:]).permute(0, 1, 3, 4, 2)

    def conditionals(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.logits(self.body(self.features(x), self.embed(y)))

    def ordering(self) -> Tensor:
        r"""Pixel by pixel in raster order, channel by channel within a pixel: flat index c H W + i W + j
        at position (i W + j) C_image + c, (D,) long."""
        pixels = self.spec.dim // self.colours
        return torch.arange(self.spec.dim, device=self.device).reshape(self.colours, pixels).T.flatten()

    def dependencies(self) -> dict[int, set[int]]:
        r"""The receptive field, propagated through every kernel's footprint and channel-group mask (not
        assumed): for plain PixelCNN a strict subset of the earlier pixels when the image is wider than
        the blind spot allows."""
        dim = self.spec.dim
        sources = point_sources(*self.spec.event_shape[1:], self.head[1].weight, channels=self.colours)
        seen = pointwise_reach(self.body.reach(sources)).reshape(dim, dim) > 0  # [source, dimension]
        return {i: set(seen[:, i].nonzero().flatten().tolist()) for i in range(dim)}

    # --- cached sampling ----------------------------------------------------------------------
    def _head_matrices(self) -> tuple[Tensor, Tensor, list[tuple[Tensor, Tensor]]]:
        r"""The head as plain affine maps on (B, C) features: the hidden layer's matrix and bias, then per
        image channel the output layer's (for that channel's logits only)."""
        hidden, out = self.head[1], self.head[3]
        weight, bias = pointwise_matrix(out), folded_bias(out)
        size = weight.shape[1] // self.colours
        per_channel = [
            (weight[:, c * size : (c + 1) * size].contiguous(), bias[c * size : (c + 1) * size])
            for c in range(self.colours)
        ]
        return pointwise_matrix(hidden), folded_bias(hidden), per_channel

    def _scan(self, x: Tensor, known: Tensor, y: Tensor | None, choose) -> Tensor:
        r"""The cached raster scan shared by :meth:`sequential` and :meth:`cached_conditionals`.

        Pixel by pixel and channel by channel, the body's cache gives the features of each value not known
        in every example, the head its logits, ``choose(i, j, c, logits)`` its levels (B,) long (merged
        with the known ones), whose one-hot features are then set in the cache. The known values' features
        are in the cache from the start: the masks keep them from earlier pixels.

        Arguments:
            x: (B, C_image, H, W) levels, valid where known.
            known: (B, C_image, H W) bool.
            y: (B,) labels or None.
            choose: ``(i, j, c, logits) -> (B,)`` long levels; logits (B, K_out).

        Returns:
            The (B, C_image, H, W) levels: x's where known, the chosen ones elsewhere.
        """
        b, (colours, height, width), k = x.shape[0], self.spec.event_shape, self.spec.num_categories
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        mask = known.reshape(x.shape)
        levels = torch.where(mask, x, zero)
        cache = self.body.cache(self.features(levels) * mask.repeat_interleave(k, 1), self.embed(y))
        out = levels.reshape(b, colours, -1).permute(2, 1, 0).clone()  # (H W, C_image, B)
        hot = torch.eye(k, dtype=self.dtype, device=x.device)
        hidden, hidden_bias, heads = self._head_matrices()
        every, some = known.all(0).T.tolist(), known.any(0).T.tolist()  # (H W, C_image), once
        for i in range(height):
            for j in range(width):
                p, stale = i * width + j, True  # stale: features set since the layers at (i, j) last ran
                for c in range(colours):
                    if every[p][c]:
                        continue
                    h = cache.at(i, j)  # (B, C): group c sees the channels before c
                    a = torch.addmm(hidden_bias, F.elu(h), hidden)
                    weight, bias = heads[c]
                    value = choose(i, j, c, torch.addmm(bias, F.elu(a), weight))
                    if some[p][c]:
                        value = torch.where(known[:, c, p], out[p, c].long(), value)
                    cache.set(i, j, hot.index_select(0, value), c * k)
                    out[p, c] = value
                    stale = c < colours - 1
                if stale:  # the layers at (i, j) must see every channel but the last
                    cache.at(i, j)
        return out.permute(2, 1, 0).reshape(x.shape)

    @torch.no_grad()
    def sequential(self, x: Tensor, observed: Tensor, y: Tensor | None = None, cached: bool = True) -> Tensor:
        r"""Fills the unobserved values pixel by pixel in raster order, channel by channel within a pixel;
        used by :meth:`sample` and :meth:`complete`.

        With ``cached`` each layer is evaluated once per pixel and channel from buffers of earlier
        activations (the cost of C_image parallel passes in all, run as a few dozen small matrix products
        per pixel); without it, one full :meth:`conditionals` pass per value (the naive sampler, kept to
        measure and test against). The cached sampler draws a binary value as [logit > L] with logistic
        noise L, a categorical one as the arg max of logits plus Gumbel noise (both exact), the noise
        drawn a row at a time.

        Arguments:
            x: (B, C_image, H, W), the observed values in place.
            observed: (B, C_image H W) bool.
            y: (B,) labels or None.
        """
        if not cached:
            return super().sequential(x, observed, y)
        b, (colours, height, width) = x.shape[0], self.spec.event_shape
        binary, k = self.spec.kind == "binary", self.spec.num_categories
        noise = {"row": -1}  # the current row's, per column and channel: (B,) logistic or (B, K) Gumbel

        def choose(i, j, c, logits):
            if noise["row"] != i:
                shape = (width, colours, b) if binary else (width, colours, b, k)
                u = torch.rand(shape, dtype=logits.dtype, device=logits.device).clamp_(min=1e-30)
                u = u.log() - torch.log1p(-u) if binary else -(-u.log()).log()
                noise.update(row=i, values=[column.unbind(0) for column in u.unbind(0)])
            if binary:
                return (logits[:, 0] > noise["values"][j][c]).long()
            return (logits + noise["values"][j][c]).argmax(dim=1)

        known = observed.reshape(b, colours, height * width)
        return self._scan(x, known, y, choose).to(x.dtype)

    @torch.no_grad()
    def cached_conditionals(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        r"""The logits of every conditional computed the way the cached sampler computes them, teacher-forced
        on x: equal to :meth:`conditionals` (up to rounding), at the cached sampler's cost.

        Arguments:
            x: (B, C_image, H, W) levels.
            y: (B,) labels or None.

        Returns:
            As :meth:`conditionals`: (B, C_image, H, W) binary or (B, C_image, H, W, K) categorical logits.
        """
        b, (colours, height, width) = x.shape[0], self.spec.event_shape
        given = x.long()
        logits = [[None] * colours for _ in range(height * width)]

        def choose(i, j, c, out):
            logits[i * width + j][c] = out
            return given[:, c, i, j]

        known = torch.zeros(b, colours, height * width, dtype=torch.bool, device=x.device)
        self._scan(x, known, y, choose)
        out = torch.stack(
            [torch.stack(per_pixel, dim=1) for per_pixel in logits], dim=2
        )  # (B, C, H W, K_out)
        out = out.reshape(b, colours, height, width, -1)
        return out[..., 0] if self.spec.kind == "binary" else out

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None, cached: bool = True) -> Tensor:
        r"""n samples (n, C_image, H, W); ``cached=False`` runs the naive full-recompute sampler."""
        y = self.labels_or_uniform(n, y)
        x = torch.zeros(n, *self.spec.event_shape, device=self.device, dtype=self.dtype)
        observed = torch.zeros(n, self.spec.dim, dtype=torch.bool, device=self.device)
        return self.sequential(x, observed, y, cached=cached)


@register
class PixelCNN(PixelModel):
    r"""PixelCNN: a type-A masked convolution, then residual type-B masked convolutions.

    Stacked raster masks leave a blind spot above and to the right of each pixel; :meth:`dependencies`
    reports the true receptive field. ``gated-pixelcnn`` removes the blind spot.

    Arguments:
        spec: a binary or categorical spec of shape (C_image, H, W).
        channels: the width C of the body.
        layers: the number of residual blocks after the first layer.
        first_kernel: the size of the type-A kernel.
        kernel_size: the size of the type-B kernels.
        head: the width of the 1x1 output head.
        dropout: dropout inside the residual blocks (digits has only 1,437 training images).
        embed_dim: the size of the class embedding.
        conditional: model p(x | y) with a class embedding in every layer.

    References:
        Pixel Recurrent Neural Networks (van den Oord et al., 2016), arXiv:1601.06759.

    Example:
        >>> import ppgen, torch
        >>> from ppgen.data import DataSpec
        >>> m = ppgen.create("pixelcnn", DataSpec("binary", (1, 3, 3)))
        >>> m.log_prob(torch.zeros(2, 1, 3, 3)).shape, m.sample(2).shape
        (torch.Size([2]), torch.Size([2, 1, 3, 3]))
        >>> rgb = ppgen.create("pixelcnn", DataSpec("categorical:8", (3, 4, 4)))  # R -> G -> B per pixel
        >>> rgb.sample(2).shape, rgb.ordering()[:4].tolist()  # (R, G, B) of pixel 0, then R of pixel 1
        (torch.Size([2, 3, 4, 4]), [0, 16, 32, 1])
    """

    name = "pixelcnn"
    default_layers = 4
    # with these, digits: test NLL 16.50 nats, 45 s of one core
    fit_defaults = {"epochs": 70, "batch_size": 64, "lr": 2e-3}
    # patches-rgb (benchmarks/patches_rgb.py --split validation, seed 0): validation bits/dim 1.004, 0.768,
    # 0.665, 0.614, 0.591, 0.571, 0.558, 0.552, 0.546 after epochs 1-9 (about 7 CPU s each, one thread):
    # still falling by about 1 % an epoch, so quick mode stops at 10
    quick_presets = {"patches-rgb": {"config": {}, "fit": {"epochs": 10, "budget_seconds": 300}}}

    def make_body(self, in_channels, channels, embed_dim, groups, **config):
        return PixelCNNStack(in_channels, channels, embed_dim=embed_dim, groups=groups, **config)


@register
class GatedPixelCNN(PixelCNN):
    r"""Gated PixelCNN: gated layers with a vertical and a horizontal stack, so no blind spot.

    Arguments:
        spec: a binary or categorical spec of shape (C_image, H, W).
        channels: the width C of each stack.
        layers: the number of gated layers (the first included).
        first_kernel: the kernel size of the first layer.
        kernel_size: the kernel size of the others.
        head: the width of the 1x1 output head.
        dropout: dropout on the horizontal stack's gated activations.
        embed_dim: the size of the class embedding.
        conditional: model p(x | y) with the class embedding as a bias of every gate.

    References:
        Conditional Image Generation with PixelCNN Decoders (van den Oord et al., 2016), arXiv:1606.05328.

    Example:
        >>> import ppgen, torch
        >>> from ppgen.data import DataSpec
        >>> m = ppgen.create("gated-pixelcnn", DataSpec("categorical:3", (1, 2, 2)))
        >>> m.log_prob(torch.zeros(2, 1, 2, 2)).shape
        torch.Size([2])
    """

    name = "gated-pixelcnn"
    default_layers = 5
    # with these, digits: test NLL 16.80 nats, 97 s of one core
    fit_defaults = {"epochs": 60, "batch_size": 64, "lr": 2e-3}
    # patches-rgb (benchmarks/patches_rgb.py --split validation, seed 0): validation bits/dim 1.063, 0.803,
    # 0.684 after epochs 1-3 (about 3 times pixelcnn's CPU per epoch); quick mode stops at 3
    quick_presets = {"patches-rgb": {"config": {}, "fit": {"epochs": 3, "budget_seconds": 300}}}

    def make_body(self, in_channels, channels, embed_dim, groups, **config):
        return GatedPixelCNNStack(in_channels, channels, embed_dim=embed_dim, groups=groups, **config)
