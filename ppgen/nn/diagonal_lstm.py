"""The Diagonal BiLSTM of PixelRNN: two LSTMs that scan the image along its diagonals, one from each side.

The input is skewed (row i moved i columns right) so that each diagonal becomes a column; an LSTM
then runs over the columns, its state-to-state kernel (2 x 1 in the skewed map) reading the state
above and the state to the left of each pixel:

    [o, f, i, g]_{ij} = K_is x_{ij} + K_ss [h_{i-1,j}, h_{i,j-1}],
    c_{ij} = sigmoid(f) c_{i,j-1} + sigmoid(i) tanh(g),  h_{ij} = sigmoid(o) tanh(c_{ij})

(zeros outside the image). The left-to-right state at (i, j) sees the whole quadrant above and left of
(i, j); a second LSTM on the mirrored image sees the quadrant above and right, which includes the
pixels right of (i, j) in its own row, so its output is shifted down one row before the two are added.
Together they see every earlier pixel: no blind spot and no leak of a later one.

One detail the paper leaves open: after a type-A first layer no feature of row i - 1 contains the last
pixel of that row (x_{i-1,W-1} first enters the features of row i), so it would be a blind spot of
(i, j) for j < W - 1 - k/2. Since its output is shifted down, the right-to-left LSTM may read row i - 1's
pixels themselves: in the stack it also receives the image features, which closes that gap.

References:
    Pixel Recurrent Neural Networks (van den Oord et al., 2016), arXiv:1601.06759, section 3.2.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppgen.nn.masked_conv import (
    RasterGrid,
    condition_bias,
    folded_bias,
    pointwise,
    pointwise_matrix,
    pointwise_reach,
    shift_down,
    shift_right,
)
from ppgen.nn.row_lstm import LSTMStack, lstm_cell

__all__ = ["skew", "unskew", "DiagonalLSTM", "DiagonalBiLSTM", "DiagonalBiLSTMStack"]


def skew(x: Tensor) -> Tensor:
    r"""Moves row i right by i columns: (B, C, H, W) -> (B, C, H, W + H - 1), zeros elsewhere."""
    height, width = x.shape[-2:]
    flat = F.pad(x, (0, height)).flatten(-2)  # rows of W + H, read back as rows of W + H - 1
    return flat[..., : height * (width + height - 1)].unflatten(-1, (height, width + height - 1))


def unskew(s: Tensor, width: int) -> Tensor:
    r"""The inverse of :func:`skew`: (B, C, H, W + H - 1) -> (B, C, H, W)."""
    height = s.shape[-2]
    return F.pad(s.flatten(-2), (0, height)).unflatten(-1, (height, width + height))[..., :width]


class DiagonalLSTM(nn.Module):
    r"""One diagonal LSTM, scanning left to right: h_{ij} from x_{ij}, h_{i-1,j} and h_{i,j-1}.

    Arguments:
        in_channels: C_in.
        channels: the hidden size C.
        embed_dim: the size of a conditioning vector e added to the gates, or None.
        groups: the image's channel groups, masked in the input-to-state map (see
            :func:`~ppgen.nn.masked_conv.pointwise`); the states above and left are earlier pixels.

    Example:
        >>> DiagonalLSTM(2, 8)(torch.zeros(3, 2, 4, 5)).shape
        torch.Size([3, 8, 4, 5])
    """

    def __init__(self, in_channels: int, channels: int, embed_dim: int | None = None, groups: int = 1):
        super().__init__()
        self.channels = channels
        self.input_to_state = pointwise(in_channels, 4 * channels, groups, chunks=4)
        self.state_to_state = nn.Conv1d(channels, 4 * channels, 2)  # taps: [above, left]
        self.cond = nn.Linear(embed_dim, 4 * channels, bias=False) if embed_dim else None
        with torch.no_grad():  # forget gates start open
            self.state_to_state.bias[channels : 2 * channels] += 1.0

    def forward(self, x: Tensor, e: Tensor | None = None) -> Tensor:
        r"""x: (B, C_in, H, W), e: (B, E) or None -> (B, C, H, W); loops over the W + H - 1 diagonals."""
        height, width = x.shape[-2:]
        gates = skew(self.input_to_state(x) + condition_bias(self.cond, e))  # (B, 4C, H, W + H - 1)
        inside = skew(x.new_ones(1, 1, height, width))[0]  # (1, H, W + H - 1): 1 on the image
        h = c = x.new_zeros(x.shape[0], self.channels, height)  # (B, C, H): one diagonal
        columns = []
        for t in range(gates.shape[-1]):
            # the previous diagonal at rows i - 1 and i is the state above and the state to the left
            h, c = lstm_cell(gates[..., t] + self.state_to_state(F.pad(h, (1, 0))), c)
            h, c = h * inside[..., t], c * inside[..., t]
            columns.append(h)
        return unskew(torch.stack(columns, dim=-1), width)

    def step_weights(self, e: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""The LSTM at one position as one affine map, for cached sampling: gates (B, 4C) =
        bias + [x, above, left] @ weight, with weight (C_in + 2C, 4C) and bias (4C,) or (B, 4C) (the
        conditioning term of e folded in)."""
        taps = self.state_to_state.weight  # (4C, C, 2): [above, left]
        weight = torch.cat([pointwise_matrix(self.input_to_state), taps[..., 0].T, taps[..., 1].T])
        return weight, folded_bias(self.state_to_state, self.cond, e, self.input_to_state.bias)


def _quadrant(r: Tensor) -> Tensor:
    r"""r (N, G, H, W) -> the maximum of r over its groups, rows <= i and columns <= j, (N, 1, H, W)."""
    return r.amax(1, keepdim=True).cummax(dim=-2).values.cummax(dim=-1).values


class DiagonalBiLSTM(nn.Module):
    r"""One Diagonal BiLSTM layer: left-to-right plus the right-to-left output shifted down one row.

    Arguments:
        in_channels: C_in.
        channels: the hidden size C.
        embed_dim: the size of a conditioning vector e added to the gates, or None.
        image_channels: C_image, the image features that the right-to-left LSTM also reads (0: none).
        groups: the image's channel groups, masked in the left-to-right LSTM's input (the right-to-left
            one, shifted down, reads whole rows above).

    Example:
        >>> DiagonalBiLSTM(2, 8)(torch.zeros(3, 2, 4, 5)).shape
        torch.Size([3, 8, 4, 5])
    """

    margin = 0

    def __init__(
        self,
        in_channels: int,
        channels: int,
        embed_dim: int | None = None,
        image_channels: int = 0,
        groups: int = 1,
    ):
        super().__init__()
        self.channels, self.image_channels = channels, image_channels
        self.left = DiagonalLSTM(in_channels, channels, embed_dim, groups)
        self.right = DiagonalLSTM(in_channels + image_channels, channels, embed_dim)

    def forward(self, x: Tensor, e: Tensor | None = None, image: Tensor | None = None) -> Tensor:
        r"""x: (B, C_in, H, W), e: (B, E) or None, image: (B, C_image, H, W) when ``image_channels``
        -> (B, C, H, W); (i, j) sees x up to (i, j) and the image on the rows above."""
        right = x if image is None else torch.cat([x, image], dim=1)
        return self.left(x, e) + shift_down(self.right(right.flip(-1), e).flip(-1))

    def reach(self, r: Tensor, image: Tensor | None = None) -> Tensor:
        r"""r: (N, G, H, W) what the input's channel groups see, image: the point sources or None ->
        (N, G, H, W). The left-to-right state at (i, j) reads its own input's groups up to its own and
        every group of the states above and left."""
        q = _quadrant(r)
        left = torch.maximum(pointwise_reach(r), torch.maximum(shift_down(q), shift_right(q)))
        right = r if image is None else torch.maximum(r, image)
        return torch.maximum(left, shift_down(_quadrant(right.flip(-1)).flip(-1)))

    def cache(self, grid: RasterGrid, image: Tensor, e: Tensor | None = None) -> "_DiagonalCache":
        r"""The state of cached sampling (see :class:`~ppgen.nn.row_lstm.LSTMStack`), reading the image
        features' buffer ``image`` as they are sampled."""
        return _DiagonalCache(self, grid, image, e)


class _DiagonalCache:
    r"""One Diagonal BiLSTM's cached sampling: the left-to-right LSTM steps at each pixel (from the states
    above and to the left); the right-to-left one runs over a row once that row is complete, at the start
    of the next, and its states are added to the next row's outputs."""

    def __init__(self, layer: DiagonalBiLSTM, grid: RasterGrid, image: Tensor, e: Tensor | None):
        self.grid, self.image, self.image_channels = grid, image, layer.image_channels
        self.left_weight, self.left_bias = layer.left.step_weights(e)
        weight, self.right_bias = layer.right.step_weights(e)
        inputs = weight.shape[0] - 2 * layer.channels
        self.right_input, self.right_state = weight[:inputs], weight[inputs:]
        self.zeros = image.new_zeros(image.shape[0], layer.channels)
        self.row, width = 0, grid.width
        self.above = self.right = [self.zeros] * width  # row i - 1's states: left-to-right, right-to-left
        self.h, self.c = [self.zeros] * width, [self.zeros] * width  # row i's left-to-right so far

    def _next_row(self, buf: Tensor, i: int) -> None:
        r"""Runs the right-to-left LSTM over row i - 1 from its inputs in buf (and the image's)."""
        row = self.grid.image_row(buf, i - 1)  # (B, W, C_in)
        if self.image_channels:
            row = torch.cat([row, self.grid.image_row(self.image, i - 1)], dim=-1)
        pre = (torch.matmul(row, self.right_input) + self.right_bias.unsqueeze(-2)).unbind(1)  # W x (B, 4C)
        right, h, c = list(self.right), self.zeros, self.zeros
        for j in range(self.grid.width - 1, -1, -1):  # from the right: above, then the state to the right
            h, c = lstm_cell(torch.addmm(pre[j], torch.cat([self.right[j], h], dim=1), self.right_state), c)
            right[j] = h
        self.above, self.right, self.h, self.c, self.row = self.h, right, list(self.h), list(self.c), i

    def at(self, buf: Tensor, i: int, j: int, x: Tensor) -> Tensor:
        if i != self.row:
            self._next_row(buf, i)
        left, c_left = (self.h[j - 1], self.c[j - 1]) if j else (self.zeros, self.zeros)
        gates = torch.addmm(self.left_bias, torch.cat([x, self.above[j], left], dim=1), self.left_weight)
        self.h[j], self.c[j] = lstm_cell(gates, c_left)
        return self.h[j] + self.right[j]  # plus the right-to-left state at (i - 1, j)


class DiagonalBiLSTMStack(LSTMStack):
    r"""The PixelRNN body with Diagonal BiLSTM layers (see :class:`~ppgen.nn.row_lstm.LSTMStack`), whose
    right-to-left LSTMs also read the image features (shifted down with their output, so causal).

    Arguments:
        in_channels: the image features per pixel (one-hot levels).
        channels: C.
        layers: the number of Diagonal BiLSTM layers.
        first_kernel: the size of the type-A kernel.
        embed_dim: the size of a conditioning vector, or None.
        dropout: dropout on each layer's output before the residual sum.
        groups: the image's channel groups (see :class:`~ppgen.nn.masked_conv.MaskedConv2d`).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int = 32,
        layers: int = 2,
        first_kernel: int = 7,
        embed_dim: int | None = None,
        dropout: float = 0.0,
        groups: int = 1,
    ):
        super().__init__(
            in_channels,
            lambda: DiagonalBiLSTM(channels, channels, embed_dim, in_channels, groups),
            channels,
            layers,
            first_kernel,
            embed_dim,
            dropout,
            groups,
        )

    def run_layer(self, lstm: DiagonalBiLSTM, h: Tensor, x: Tensor, e: Tensor | None) -> Tensor:
        return lstm(h, e, image=x)

    def layer_reach(self, lstm: DiagonalBiLSTM, r: Tensor, sources: Tensor) -> Tensor:
        return lstm.reach(r, image=sources)
