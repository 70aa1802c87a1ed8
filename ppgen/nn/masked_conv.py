"""Masked convolutions for autoregressive images: raster masks (type A, B), the vertical and
horizontal stacks of Gated PixelCNN, and the position-wise evaluation that cached sampling needs.

Colour images (C channels, e.g. R, G, B) are generated pixel by pixel and channel by channel within a
pixel. Every feature map is then split into C channel groups (:func:`channel_groups`); at the centre tap
of a kernel, output group c reads the input groups before c (type A) or up to c (type B), and every
group reads every group at earlier pixels. So the features of group c see the context, plus the
channels before c of the pixel itself (R sees the context, G the context and R, B the context, R and
G), and the logits of channel c are read from groups up to c. With C = 1 there is one group and the
masks are the plain raster masks.

Every layer here has three faces: ``forward`` (the whole image in one parallel pass, for training and
``log_prob``), a windowed evaluation at one position or one row (for cached sampling: each
activation is computed once, when its inputs are known) and ``reach`` (which input pixels each
output can see, propagated through the kernels' footprints: the receptive field, exactly).

Cached sampling runs a few dozen tiny operations per pixel, so its cost is torch's per-call overhead,
not arithmetic. Its buffers are therefore laid out channels last with the pixels flattened
(:class:`RasterGrid`): a kernel's window at one pixel is one ``index_select`` of the buffer's rows and
one matrix product with the masked kernel flattened once per sampling call (:meth:`MaskedConv2d.at`),
and the biases, conditioning terms and 1x1 maps are folded into plain matrices and vectors
(:func:`pointwise_matrix`, :func:`folded_bias`).

References:
    Pixel Recurrent Neural Networks (van den Oord et al., 2016), arXiv:1601.06759.
    Conditional Image Generation with PixelCNN Decoders (van den Oord et al., 2016), arXiv:1606.05328.
    Fast Generation for Convolutional Autoregressive Models (Ramachandran et al., 2017), arXiv:1704.06001.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MASKS",
    "conv_mask",
    "channel_groups",
    "centre_mask",
    "MaskedConv2d",
    "pointwise",
    "pointwise_reach",
    "shift_down",
    "shift_right",
    "gate",
    "point_sources",
    "condition_bias",
    "pointwise_matrix",
    "folded_bias",
    "active_dropout",
    "MaskedResidualBlock",
    "GatedBlock",
    "RasterGrid",
    "RasterCache",
    "RasterStack",
    "PixelCNNStack",
    "GatedPixelCNNStack",
]

MASKS = ("A", "B", "V", "HA", "HB")
_CENTRED = {"A": "B", "HA": "HB"}  # the footprint of a colour mask, whose centre tap is masked per group


def conv_mask(kernel_size: int, mask: str) -> Tensor:
    r"""The (k, k) boolean footprint of a masked kernel, centred on the output pixel.

    Arguments:
        kernel_size: k, odd.
        mask: "A" (rows above, and left in the centre row: the first PixelCNN layer), "B" (as A plus
            the centre: later layers), "V" (rows above and the centre row, all columns: the vertical
            stack, which is shifted down before the horizontal stack reads it), "HA" / "HB" (the
            centre row left of the centre, without / with it: the horizontal stack).
    """
    if mask not in MASKS:
        raise ValueError(f"unknown mask {mask!r}; expected one of {MASKS}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    k, c = kernel_size, kernel_size // 2
    m = torch.zeros(k, k, dtype=torch.bool)
    if mask in ("A", "B", "V"):
        m[:c] = True
    if mask == "V":
        m[c] = True
    if mask in ("A", "HA"):
        m[c, :c] = True
    if mask in ("B", "HB"):
        m[c, : c + 1] = True
    if not m.any():
        raise ValueError(f"mask {mask!r} of size {k} is empty; use kernel_size >= 3")
    return m


def channel_groups(width: int, groups: int, chunks: int = 1) -> Tensor:
    r"""The channel group of each of ``width`` feature channels, (width,) long.

    The channels are cut into ``chunks`` equal chunks (the two halves of a gate, the four gates of an
    LSTM), and each chunk into ``groups`` contiguous blocks, group 0 first; so one-hot image features
    laid out channel by channel (C K of them) fall in the group of their colour channel.

    Example:
        >>> channel_groups(6, 3).tolist(), channel_groups(8, 2, chunks=2).tolist()
        ([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 0, 0, 1, 1])
    """
    size = width // chunks
    if size * chunks != width or size < groups:
        raise ValueError(f"{width} channels in {chunks} chunks cannot hold {groups} channel groups each")
    return (torch.arange(width) % size) * groups // size


def centre_mask(out_groups: Tensor, in_groups: Tensor, strict: bool) -> Tensor:
    r"""Which input channel each output channel reads at the centre tap, (C_out, C_in) bool: the input
    groups before the output's (``strict``, type A) or up to it (type B)."""
    return out_groups[:, None] > in_groups if strict else out_groups[:, None] >= in_groups


class MaskedConv2d(nn.Module):
    r"""A 'same' 2-D convolution whose kernel is zero outside a causal footprint.

    Only the bounding box of the footprint is stored and convolved (a 3x3 type-B kernel is 2x3, a
    horizontal one 1x2), with the asymmetric zero padding that keeps the output aligned with the input.

    With ``groups`` > 1 (colour), the centre tap of an A, B, HA or HB kernel is masked between channel
    groups (:func:`centre_mask`) instead of all in or all out; a V kernel reads all groups (its output is
    shifted down a row before the horizontal stack reads it).

    Arguments:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: k, odd.
        mask: see :func:`conv_mask`.
        bias: add a learnt bias.
        groups: the number of channel groups (the image's colour channels), 1 for one-channel images.
        chunks: the number of chunks of the output (see :func:`channel_groups`).

    Example:
        >>> conv = MaskedConv2d(1, 4, 3, "A")
        >>> conv(torch.zeros(2, 1, 5, 5)).shape
        torch.Size([2, 4, 5, 5])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        mask: str = "B",
        bias: bool = True,
        groups: int = 1,
        chunks: int = 1,
    ):
        super().__init__()
        colour = groups > 1 and mask != "V"
        full = conv_mask(kernel_size, _CENTRED.get(mask, mask) if colour else mask)
        rows, cols = full.any(1).nonzero().flatten(), full.any(0).nonzero().flatten()
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        c = kernel_size // 2
        self.kernel_size, self.mask_type, self.groups = kernel_size, mask, groups
        self.pad = (c - c0, c1 - c, c - r0, r1 - c)  # left, right, top, bottom (F.pad order)
        box = full[r0 : r1 + 1, c0 : c1 + 1]
        # the reach of each channel group from each: (G, G, kh, kw)
        group_mask = box.expand(groups, groups, *box.shape).clone()
        if colour:
            strict = mask in ("A", "HA")
            group_mask[..., c - r0, c - c0] = centre_mask(torch.arange(groups), torch.arange(groups), strict)
            weights = box.expand(out_channels, in_channels, *box.shape).clone()  # (C_out, C_in, kh, kw)
            weights[..., c - r0, c - c0] = centre_mask(
                channel_groups(out_channels, groups, chunks), channel_groups(in_channels, groups), strict
            )
            self.register_buffer("mask", weights.float())
        else:
            self.register_buffer("mask", box.float())
        self.register_buffer("group_mask", group_mask.float(), persistent=False)
        bound = 1 / math.sqrt(in_channels * float(box.sum()))
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels, r1 - r0 + 1, c1 - c0 + 1).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound)) if bias else None

    @property
    def margin(self) -> int:
        r"""The zero margin a cache buffer needs around the image for :meth:`at` and :meth:`row_at`."""
        return max(self.pad)

    def masked_weight(self) -> Tensor:
        r"""The kernel with its mask applied, (C_out, C_in, kh, kw)."""
        return self.weight * self.mask

    def flat_weight(self) -> Tensor:
        r"""The masked kernel as one (kh kw C_in, C_out) matrix whose rows follow a channels-last patch,
        tap by tap in raster order: the weight of :meth:`at`, computed once per sampling call."""
        return self.masked_weight().permute(2, 3, 1, 0).reshape(-1, self.weight.shape[0])

    def forward(self, x: Tensor) -> Tensor:
        r"""x: (B, C_in, H, W) -> (B, C_out, H, W)."""
        return F.conv2d(F.pad(x, self.pad), self.masked_weight(), self.bias)

    def at(self, buf: Tensor, taps: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        r"""The output at one pixel, (B, C_out), equal to ``forward(input)[..., i, j]`` plus ``bias``.

        Arguments:
            buf: the input as a :class:`RasterGrid` buffer, (B, N, C_in).
            taps: the buffer rows of the kernel's box at the pixel, (kh kw,) (:meth:`RasterGrid.taps`).
            weight: :meth:`flat_weight`.
            bias: (C_out,) or (B, C_out), e.g. :func:`folded_bias`, which replaces the layer's own.
        """
        return torch.addmm(bias, buf.index_select(1, taps).view(buf.shape[0], -1), weight)

    def row_at(self, buf: Tensor, taps: Tensor, weight: Tensor) -> Tensor:
        r"""The output on one image row without the bias, (B, W, C_out): as :meth:`at` for every pixel of
        the row at once, taps (W kh kw,) from :meth:`RasterGrid.row_taps`."""
        return torch.matmul(buf.index_select(1, taps).view(buf.shape[0], -1, weight.shape[0]), weight)

    def reach(self, r: Tensor) -> Tensor:
        r"""Which sources each output group sees: r (N, G, H, W) indicator per source and channel group
        -> (N, G, H, W)."""
        return (F.conv2d(F.pad(r, self.pad), self.group_mask) > 0).to(r.dtype)


def pointwise(in_channels: int, out_channels: int, groups: int = 1, chunks: int = 1) -> nn.Module:
    r"""A 1x1 convolution that keeps the channel groups causal: a plain ``nn.Conv2d`` for one group, else a
    type-B :class:`MaskedConv2d` (output group c reads input groups up to c)."""
    if groups == 1:
        return nn.Conv2d(in_channels, out_channels, 1)
    return MaskedConv2d(in_channels, out_channels, 1, "B", groups=groups, chunks=chunks)


def pointwise_matrix(module: nn.Module) -> Tensor:
    r"""The (C_in, C_out) matrix of a :func:`pointwise` map (mask applied), for ``torch.addmm`` on (B, C_in)
    features."""
    weight = module.masked_weight() if isinstance(module, MaskedConv2d) else module.weight
    return weight[..., 0, 0].T.contiguous()


def folded_bias(
    layer: nn.Module, proj: nn.Module | None = None, e: Tensor | None = None, *more: Tensor | None
) -> Tensor:
    r"""A layer's bias plus the conditioning term V e and any further biases, (C_out,) or (B, C_out): the
    constant part of its output at every pixel, computed once per sampling call.

    Arguments:
        layer: a module with ``weight`` (C_out first) and ``bias`` (or None).
        proj: the conditioning map V (an ``nn.Linear``) or None.
        e: (B, E) conditioning vectors or None.
        more: further (C_out,) biases (None ones skipped).
    """
    total = layer.weight.new_zeros(layer.weight.shape[0]) if layer.bias is None else layer.bias
    if proj is not None and e is not None:
        total = total + proj(e)
    for b in more:
        if b is not None:
            total = total + b
    return total


def active_dropout(drop: nn.Dropout) -> nn.Dropout | None:
    r"""The dropout module if it changes anything (training mode, p > 0), else None: cached sampling skips
    the call."""
    return drop if drop.training and drop.p > 0 else None


def pointwise_reach(r: Tensor) -> Tensor:
    r"""What a :func:`pointwise` map's output groups see: r (N, G, H, W) -> (N, G, H, W), group c the
    union of groups up to c."""
    return r.cummax(dim=1).values


def shift_down(x: Tensor) -> Tensor:
    r"""Moves every row one down, zeros in the first: (B, C, H, W) -> (B, C, H, W)."""
    return F.pad(x, (0, 0, 1, 0))[..., :-1, :]


def shift_right(x: Tensor) -> Tensor:
    r"""Moves every column one right, zeros in the first: (B, C, H, W) -> (B, C, H, W)."""
    return F.pad(x, (1, 0))[..., :-1]


def gate(x: Tensor) -> Tensor:
    r"""The gated activation tanh(a) * sigmoid(b) of the two channel halves: (B, 2C, ...) -> (B, C, ...)."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def point_sources(height: int, width: int, like: Tensor | None = None, channels: int = 1) -> Tensor:
    r"""One indicator image per pixel and channel, (C H W, C, H, W), source c H W + i W + j at group c of
    pixel (i, j): the input of a ``reach`` propagation."""
    d = channels * height * width
    eye = torch.eye(
        d, dtype=torch.float32 if like is None else like.dtype, device=None if like is None else like.device
    )
    return eye.reshape(d, channels, height, width)


def condition_bias(proj: nn.Module | None, e: Tensor | None) -> Tensor | float:
    r"""The per-channel bias V e of a conditioning vector e (B, E), shaped (B, C, 1, 1); 0 without one."""
    return 0.0 if proj is None or e is None else proj(e)[..., None, None]


class MaskedResidualBlock(nn.Module):
    r"""h + W1 * drop(elu(W_B * elu(h) + V e)): the residual block of a plain PixelCNN.

    Arguments:
        channels: C.
        kernel_size: k of the type-B masked convolution.
        embed_dim: the size of a conditioning vector e (class embedding), or None.
        dropout: dropout rate on the hidden activation.
        groups: the image's channel groups (see :class:`MaskedConv2d`).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        embed_dim: int | None = None,
        dropout: float = 0.0,
        groups: int = 1,
    ):
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, kernel_size, "B", groups=groups)
        self.out = pointwise(channels, channels, groups)
        self.cond = nn.Linear(embed_dim, channels, bias=False) if embed_dim else None
        self.drop = nn.Dropout(dropout)

    def _tail(self, a: Tensor, h: Tensor, e: Tensor | None) -> Tensor:
        return h + self.out(self.drop(F.elu(a + condition_bias(self.cond, e))))

    def forward(self, h: Tensor, e: Tensor | None = None) -> Tensor:
        r"""h: (B, C, H, W), e: (B, E) or None -> (B, C, H, W)."""
        return self._tail(self.conv(F.elu(h)), h, e)

    def reach(self, r: Tensor) -> Tensor:
        return torch.maximum(r, pointwise_reach(self.conv.reach(r)))


class GatedBlock(nn.Module):
    r"""One Gated PixelCNN layer: a vertical stack (rows above) and a horizontal stack (the row so far).

    v_pre = W_v * v + V_v e,  v' = gate(v_pre),  h' = h + W_1 gate(W_h * h + W_vh shift_down(v_pre) + V_h e).

    The vertical stack sees whole rows, so it is shifted down one row before the horizontal stack
    reads it; together they cover every earlier pixel: no blind spot. The first layer reads the image
    in both stacks, masks the centre pixel out of the horizontal one ("HA") and has no residual.

    Arguments:
        in_channels: C_in (the image features for the first layer, else C).
        channels: C.
        kernel_size: k.
        first: the first layer.
        embed_dim: the size of a conditioning vector e, or None.
        dropout: dropout rate on the horizontal stack's gated activation.
        groups: the image's channel groups (see :class:`MaskedConv2d`); only the horizontal stack masks
            them, the vertical one sees rows above only.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int = 3,
        first: bool = False,
        embed_dim: int | None = None,
        dropout: float = 0.0,
        groups: int = 1,
    ):
        super().__init__()
        self.first = first
        self.v_conv = MaskedConv2d(in_channels, 2 * channels, kernel_size, "V", groups=groups)
        self.h_conv = MaskedConv2d(
            in_channels, 2 * channels, kernel_size, "HA" if first else "HB", groups=groups, chunks=2
        )
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = pointwise(channels, channels, groups)
        self.v_cond = nn.Linear(embed_dim, 2 * channels, bias=False) if embed_dim else None
        self.h_cond = nn.Linear(embed_dim, 2 * channels, bias=False) if embed_dim else None
        self.drop = nn.Dropout(dropout)

    @property
    def margin(self) -> int:
        return max(self.v_conv.margin, self.h_conv.margin)

    def _horizontal(self, hp: Tensor, h: Tensor, e: Tensor | None) -> Tensor:
        out = self.h_out(self.drop(gate(hp + condition_bias(self.h_cond, e))))
        return out if self.first else h + out

    def forward(self, v: Tensor, h: Tensor, e: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""v, h: (B, C_in, H, W), e: (B, E) or None -> v', h': (B, C, H, W)."""
        vp = self.v_conv(v) + condition_bias(self.v_cond, e)  # (B, 2C, H, W)
        hp = self.h_conv(h) + self.v_to_h(shift_down(vp))
        return gate(vp), self._horizontal(hp, h, e)

    def reach(self, rv: Tensor, rh: Tensor) -> tuple[Tensor, Tensor]:
        rvp = self.v_conv.reach(rv)
        rhp = pointwise_reach(torch.maximum(self.h_conv.reach(rh), shift_down(rvp)))
        return rvp, rhp if self.first else torch.maximum(rh, rhp)


class RasterGrid:
    r"""The layout of cached sampling's buffers: an H x W image with a zero margin m on every side, channels
    last and the pixels flattened, (B, N, C) with N = (H + 2m)(W + 2m); pixel (i, j) is row
    (i + m)(W + 2m) + j + m. A pixel's features are one row of the buffer and a kernel's window at a pixel
    is the rows of :meth:`taps`, gathered by one ``index_select``.

    Arguments:
        height: H.
        width: W.
        margin: m, at least every kernel's reach.
        device: where the tap indices live (the buffers' device).
    """

    def __init__(self, height: int, width: int, margin: int, device: torch.device | None = None):
        self.height, self.width, self.margin, self.row = height, width, margin, width + 2 * margin
        self.size = (height + 2 * margin) * self.row
        rows = torch.arange(height, device=device)[:, None] + margin
        self._positions = (rows * self.row + torch.arange(width, device=device) + margin).flatten()
        self.positions = self._positions.tolist()  # pixel i W + j -> its buffer row

    def zeros(self, like: Tensor, channels: int) -> Tensor:
        r"""A zero buffer (B, N, C) with like's batch size, dtype and device."""
        return like.new_zeros(like.shape[0], self.size, channels)

    def pad(self, x: Tensor) -> Tensor:
        r"""An image x (B, C, H, W) -> a new buffer (B, N, C) holding it."""
        padded = F.pad(x, (self.margin,) * 4)  # (B, C, H + 2m, W + 2m)
        return padded.permute(0, 2, 3, 1).reshape(x.shape[0], self.size, x.shape[1])

    def image_row(self, buf: Tensor, i: int) -> Tensor:
        r"""Row i of the image in a buffer (B, N, C), (B, W, C), a view."""
        start = (i + self.margin) * self.row + self.margin
        return buf[:, start : start + self.width]

    def _taps(self, conv: MaskedConv2d) -> Tensor:
        left, right, top, bottom = conv.pad
        device = self._positions.device
        box = torch.arange(-top, bottom + 1, device=device)[:, None] * self.row
        offsets = (box + torch.arange(-left, right + 1, device=device)).flatten()
        return self._positions[:, None] + offsets  # (H W, kh kw)

    def taps(self, conv: MaskedConv2d) -> list[Tensor]:
        r"""Per pixel i W + j, the (kh kw,) buffer rows of conv's kernel box there, in the order of
        :meth:`MaskedConv2d.flat_weight` (for :meth:`MaskedConv2d.at`)."""
        return list(self._taps(conv).unbind(0))

    def row_taps(self, conv: MaskedConv2d) -> list[Tensor]:
        r"""Per image row, the (W kh kw,) buffer rows of conv's kernel boxes at its pixels, pixel by pixel
        (for :meth:`MaskedConv2d.row_at`)."""
        return list(self._taps(conv).view(self.height, -1).unbind(0))


class RasterCache:
    r"""Activation buffers for cached raster-order sampling.

    Subclasses write ``at(i, j) -> (B, C)``: the body's top features at pixel (i, j), computing each
    layer there once, which needs the features of every earlier pixel ``set``. Set features of later
    pixels are harmless (the masks never read them), so known values may be in ``x`` from the start.
    The buffers are :class:`RasterGrid` buffers with the margin of the widest kernel; the weights are
    flattened and the biases folded once, here, for the sampling call.

    Arguments:
        stack: the body, with a ``margin`` property.
        x: (B, C_in, H, W) input features, zeros where not yet sampled.
        e: (B, E) conditioning vectors or None.
    """

    def __init__(self, stack: nn.Module, x: Tensor, e: Tensor | None):
        self.stack, self.e = stack, e
        self.height, self.width = x.shape[-2:]
        self.grid = RasterGrid(self.height, self.width, stack.margin, x.device)
        self.x = self.grid.pad(x)  # (B, N, C_in)

    def set(self, i: int, j: int, features: Tensor, start: int = 0) -> None:
        r"""features: (B, F), the input features start, ..., start + F - 1 of the pixel at (i, j)."""
        self.x[:, self.grid.positions[i * self.width + j], start : start + features.shape[1]] = features


class RasterStack(nn.Module):
    r"""What the PixelCNN and PixelRNN bodies share: the first, type-A masked convolution of the image
    features (with the conditioning bias of e), which later layers refine.

    Arguments:
        in_channels: the image features per pixel (one-hot levels).
        channels: C, the output width.
        first_kernel: the size of the type-A kernel.
        embed_dim: the size of a conditioning vector, or None.
        groups: the image's channel groups (see :class:`MaskedConv2d`).
    """

    def __init__(
        self, in_channels: int, channels: int, first_kernel: int, embed_dim: int | None, groups: int = 1
    ):
        super().__init__()
        self.first = MaskedConv2d(in_channels, channels, first_kernel, "A", groups=groups)
        self.first_cond = nn.Linear(embed_dim, channels, bias=False) if embed_dim else None
        self.out_channels = channels

    def first_layer(self, x: Tensor, e: Tensor | None = None) -> Tensor:
        r"""x: (B, C_in, H, W) -> (B, C, H, W), the type-A convolution plus the conditioning bias."""
        return self.first(x) + condition_bias(self.first_cond, e)


class PixelCNNStack(RasterStack):
    r"""The plain PixelCNN body: a type-A k0 x k0 masked convolution, then residual type-B blocks.

    Its receptive field has the blind spot of stacked raster masks: pixels above and to the right,
    beyond the first kernel, are never seen (:meth:`reach` reports exactly what is seen).

    Arguments:
        in_channels: the image features per pixel (one-hot levels).
        channels: C.
        layers: the number of residual blocks.
        first_kernel: k0.
        kernel_size: k of the blocks.
        embed_dim: the size of a conditioning vector, or None.
        dropout: dropout rate inside the blocks.
        groups: the image's channel groups (see :class:`MaskedConv2d`).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int = 32,
        layers: int = 4,
        first_kernel: int = 7,
        kernel_size: int = 3,
        embed_dim: int | None = None,
        dropout: float = 0.0,
        groups: int = 1,
    ):
        super().__init__(in_channels, channels, first_kernel, embed_dim, groups)
        self.blocks = nn.ModuleList(
            MaskedResidualBlock(channels, kernel_size, embed_dim, dropout, groups) for _ in range(layers)
        )

    @property
    def margin(self) -> int:
        return max([self.first.margin] + [b.conv.margin for b in self.blocks])

    def forward(self, x: Tensor, e: Tensor | None = None) -> Tensor:
        r"""x: (B, C_in, H, W) image features -> (B, C, H, W); output (i, j) sees earlier pixels only."""
        h = self.first_layer(x, e)
        for block in self.blocks:
            h = block(h, e)
        return h

    def reach(self, r: Tensor) -> Tensor:
        r = self.first.reach(r)
        for block in self.blocks:
            r = block.reach(r)
        return r

    def cache(self, x: Tensor, e: Tensor | None = None) -> "_PlainCache":
        r"""A cache for raster-order sampling from image features x (B, C_in, H, W) (zeros where unknown)."""
        return _PlainCache(self, x, e)


class _PlainCache(RasterCache):
    def __init__(self, stack: PixelCNNStack, x: Tensor, e: Tensor | None):
        super().__init__(stack, x, e)
        grid, first = self.grid, stack.first
        self.first = (grid.taps(first), first.flat_weight(), folded_bias(first, stack.first_cond, e))
        self.blocks = [
            (
                grid.zeros(self.x, stack.out_channels),  # the elu of the block's input
                block.conv,
                grid.taps(block.conv),
                block.conv.flat_weight(),
                folded_bias(block.conv, block.cond, e),
                pointwise_matrix(block.out),
                folded_bias(block.out),
                active_dropout(block.drop),
            )
            for block in stack.blocks
        ]

    def at(self, i: int, j: int) -> Tensor:
        r"""(B, C): the top features at (i, j), computing each layer at (i, j) only; every pixel before
        (i, j) must be set."""
        p = i * self.width + j
        q = self.grid.positions[p]
        taps, weight, bias = self.first
        h = self.stack.first.at(self.x, taps[p], weight, bias)  # (B, C)
        for act, conv, taps, weight, bias, out, out_bias, drop in self.blocks:
            act[:, q] = F.elu(h)  # elu(0) = 0 keeps the margin zero
            a = F.elu(conv.at(act, taps[p], weight, bias))
            h = torch.addmm(out_bias, a if drop is None else drop(a), out).add_(h)
        return h


class GatedPixelCNNStack(nn.Module):
    r"""The Gated PixelCNN body: gated layers with vertical and horizontal stacks, no blind spot.

    Arguments:
        in_channels: the image features per pixel (one-hot levels).
        channels: C.
        layers: the number of gated layers (the first included).
        first_kernel: k0 of the first layer.
        kernel_size: k of the others.
        embed_dim: the size of a conditioning vector, or None.
        dropout: dropout rate in the horizontal stack.
        groups: the image's channel groups (see :class:`MaskedConv2d`).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int = 32,
        layers: int = 5,
        first_kernel: int = 7,
        kernel_size: int = 3,
        embed_dim: int | None = None,
        dropout: float = 0.0,
        groups: int = 1,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            GatedBlock(
                in_channels if n == 0 else channels,
                channels,
                first_kernel if n == 0 else kernel_size,
                n == 0,
                embed_dim,
                dropout,
                groups,
            )
            for n in range(layers)
        )
        self.out_channels = channels

    @property
    def margin(self) -> int:
        return max(b.margin for b in self.blocks)

    def forward(self, x: Tensor, e: Tensor | None = None) -> Tensor:
        r"""x: (B, C_in, H, W) image features -> (B, C, H, W), the horizontal stack's output."""
        v = h = x
        for block in self.blocks:
            v, h = block(v, h, e)
        return h

    def reach(self, r: Tensor) -> Tensor:
        rv = rh = r
        for block in self.blocks:
            rv, rh = block.reach(rv, rh)
        return rh

    def cache(self, x: Tensor, e: Tensor | None = None) -> "_GatedCache":
        return _GatedCache(self, x, e)


class _GatedCache(RasterCache):
    def __init__(self, stack: GatedPixelCNNStack, x: Tensor, e: Tensor | None):
        super().__init__(stack, x, e)
        grid, c, n = self.grid, stack.out_channels, len(stack.blocks)
        self.vs = [self.x] + [grid.zeros(self.x, c) for _ in range(n - 1)]  # the vertical stack's inputs
        self.hs = [self.x] + [grid.zeros(self.x, c) for _ in range(n - 1)]  # the horizontal stack's inputs
        self.vertical = [
            (
                grid.row_taps(block.v_conv),
                block.v_conv.flat_weight(),
                folded_bias(block.v_conv, block.v_cond, e),
            )
            for block in stack.blocks
        ]
        # the constant part of each horizontal pre-activation: its bias, v_to_h's and V_h e
        self.bases = [folded_bias(block.h_conv, block.h_cond, e, block.v_to_h.bias) for block in stack.blocks]
        self.horizontal = [
            (
                block.h_conv,
                grid.taps(block.h_conv),
                block.h_conv.flat_weight(),
                pointwise_matrix(block.h_out),
                folded_bias(block.h_out),
                active_dropout(block.drop),
                block.first,
            )
            for block in stack.blocks
        ]
        self.to_h = [pointwise_matrix(block.v_to_h) for block in stack.blocks]
        self.row = 0
        self.terms = [[base] * self.width for base in self.bases]  # row 0: nothing above

    def _next_row(self, i: int) -> None:
        r"""Runs every layer's vertical stack over row i - 1 (complete) and sets the horizontal stack's
        per-column terms of row i: bases plus W_vh times the vertical pre-activation above."""
        for k, (block, (taps, weight, bias)) in enumerate(zip(self.stack.blocks, self.vertical)):
            vp = block.v_conv.row_at(self.vs[k], taps[i - 1], weight) + bias.unsqueeze(-2)  # (B, W, 2C)
            if k + 1 < len(self.vs):
                a, b = vp.chunk(2, dim=-1)
                self.grid.image_row(self.vs[k + 1], i - 1).copy_(torch.tanh(a) * torch.sigmoid(b))
            self.terms[k] = (torch.matmul(vp, self.to_h[k]) + self.bases[k].unsqueeze(-2)).unbind(1)
        self.row = i

    def at(self, i: int, j: int) -> Tensor:
        if i != self.row:
            self._next_row(i)
        p = i * self.width + j
        q, last = self.grid.positions[p], len(self.hs) - 1
        h = None
        for k, (conv, taps, weight, out, out_bias, drop, first) in enumerate(self.horizontal):
            a, b = conv.at(self.hs[k], taps[p], weight, self.terms[k][j]).chunk(2, dim=1)
            g = torch.tanh(a) * torch.sigmoid(b)  # (B, C)
            out = torch.addmm(out_bias, g if drop is None else drop(g), out)
            h = out if first else out.add_(h)
            if k < last:
                self.hs[k + 1][:, q] = h
        return h
