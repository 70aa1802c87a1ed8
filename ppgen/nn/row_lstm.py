"""The Row LSTM of PixelRNN: an LSTM that runs down the image one row at a time, convolving along each row.

[o, f, i, g]_r = K_ss * h_{r-1} + K_is * x_r (K_is masked to the pixel and its left, K_ss a plain 1-D
convolution of the row above), c_r = sigmoid(f) c_{r-1} + sigmoid(i) tanh(g), h_r = sigmoid(o) tanh(c_r).
Each hidden state sees a triangle above it that widens by k // 2 columns per row.

References:
    Pixel Recurrent Neural Networks (van den Oord et al., 2016), arXiv:1601.06759.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppgen.nn.masked_conv import (
    MaskedConv2d,
    RasterCache,
    RasterGrid,
    RasterStack,
    active_dropout,
    condition_bias,
    folded_bias,
    pointwise,
    pointwise_matrix,
    pointwise_reach,
)

__all__ = ["lstm_cell", "RowLSTM", "LSTMStack", "RowLSTMStack"]


def lstm_cell(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    r"""One LSTM update: gate pre-activations [o, f, i, g] (B, 4C, ...), cell c (B, C, ...) -> (h, c)."""
    o, f, i, g = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class RowLSTM(nn.Module):
    r"""One Row LSTM layer.

    Arguments:
        in_channels: C_in.
        channels: the hidden size C.
        kernel_size: k of both the input-to-state and the state-to-state convolutions (odd, >= 3).
        embed_dim: the size of a conditioning vector e added to the gates, or None.
        groups: the image's channel groups: the input-to-state kernel masks them at its centre (see
            :class:`~ppgen.nn.masked_conv.MaskedConv2d`); the state-to-state one reads the row above.

    Example:
        >>> RowLSTM(2, 8)(torch.zeros(3, 2, 4, 5)).shape
        torch.Size([3, 8, 4, 5])
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int = 3,
        embed_dim: int | None = None,
        groups: int = 1,
    ):
        super().__init__()
        self.channels = channels
        self.input_to_state = MaskedConv2d(
            in_channels, 4 * channels, kernel_size, "HB", groups=groups, chunks=4
        )
        self.state_to_state = nn.Conv1d(channels, 4 * channels, kernel_size, padding=kernel_size // 2)
        self.cond = nn.Linear(embed_dim, 4 * channels, bias=False) if embed_dim else None
        with torch.no_grad():  # forget gates start open
            self.state_to_state.bias[channels : 2 * channels] += 1.0

    @property
    def margin(self) -> int:
        return max(self.input_to_state.margin, self.state_to_state.padding[0], 1)

    def forward(self, x: Tensor, e: Tensor | None = None) -> Tensor:
        r"""x: (B, C_in, H, W), e: (B, E) or None -> hidden states (B, C, H, W); loops over the H rows."""
        gates = self.input_to_state(x) + condition_bias(self.cond, e)  # (B, 4C, H, W)
        h = c = x.new_zeros(x.shape[0], self.channels, x.shape[-1])  # (B, C, W)
        rows = []
        for r in range(x.shape[-2]):
            h, c = lstm_cell(gates[..., r, :] + self.state_to_state(h), c)
            rows.append(h)
        return torch.stack(rows, dim=-2)

    def cache(self, grid: RasterGrid, image: Tensor, e: Tensor | None = None) -> "_RowLSTMCache":
        r"""The state of cached sampling (see :class:`LSTMStack`); image, the image features, is unused."""
        return _RowLSTMCache(self, grid, image, e)

    def reach(self, r: Tensor) -> Tensor:
        r"""r: (N, G, H, W) sources per channel group -> (N, G, H, W): what each hidden state sees."""
        k = self.state_to_state.kernel_size[0]
        seen = self.input_to_state.reach(r)
        h = c = r.new_zeros(r.shape[0], 1, r.shape[-1])
        rows = []
        for row in range(r.shape[-2]):
            gates = torch.maximum(seen[..., row, :], F.max_pool1d(h, k, 1, k // 2))  # (N, G, W)
            c = torch.maximum(gates, c)
            rows.append(c)  # h = o * tanh(c): the gates and c
            h = c.amax(1, keepdim=True)  # the row above reaches every group
        return torch.stack(rows, dim=-2)


class LSTMStack(RasterStack):
    r"""The PixelRNN body: a type-A masked convolution, then LSTM layers with residual connections.

    h_0 = W_A * x + V e,  h_{l+1} = h_l + W_l drop(LSTM_l(h_l)). A layer is a module with
    ``forward(h, e)`` (B, C, H, W) -> (B, C, H, W), ``margin``, ``reach(r)`` and, for cached sampling,
    ``cache(grid, image, e)`` (a :class:`~ppgen.nn.masked_conv.RasterGrid` and the image features'
    buffer, which it may keep) returning an object with ``at(buf, i, j, x) -> (B, C)``: the output at
    (i, j) given the layer's input buffer ``buf`` set up to (i, j) and x, its row there (B, C):
    :class:`RowLSTM` or :class:`~ppgen.nn.diagonal_lstm.DiagonalBiLSTM`.

    Arguments:
        in_channels: the image features per pixel (one-hot levels).
        layer: builds one LSTM layer of width C (called ``layers`` times).
        channels: C.
        layers: the number of LSTM layers.
        first_kernel: the size of the type-A kernel.
        embed_dim: the size of a conditioning vector, or None.
        dropout: dropout on each LSTM's output before the residual sum.
        groups: the image's channel groups (see :class:`~ppgen.nn.masked_conv.MaskedConv2d`).
    """

    def __init__(
        self,
        in_channels: int,
        layer: Callable[[], nn.Module],
        channels: int = 32,
        layers: int = 2,
        first_kernel: int = 7,
        embed_dim: int | None = None,
        dropout: float = 0.0,
        groups: int = 1,
    ):
        super().__init__(in_channels, channels, first_kernel, embed_dim, groups)
        self.lstms = nn.ModuleList(layer() for _ in range(layers))
        self.projections = nn.ModuleList(pointwise(channels, channels, groups) for _ in range(layers))
        self.drop = nn.Dropout(dropout)

    @property
    def margin(self) -> int:
        return max([self.first.margin] + [lstm.margin for lstm in self.lstms])

    def forward(self, x: Tensor, e: Tensor | None = None) -> Tensor:
        r"""x: (B, C_in, H, W) -> (B, C, H, W); output (i, j) depends on pixels before (i, j) only."""
        h = self.first_layer(x, e)
        for lstm, proj in zip(self.lstms, self.projections):
            h = h + proj(self.drop(self.run_layer(lstm, h, x, e)))
        return h

    def run_layer(self, lstm: nn.Module, h: Tensor, x: Tensor, e: Tensor | None) -> Tensor:
        r"""One layer on its input h (B, C, H, W), given the image features x: here ``lstm(h, e)``."""
        return lstm(h, e)

    def layer_reach(self, lstm: nn.Module, r: Tensor, sources: Tensor) -> Tensor:
        r"""What one layer's output sees, given what its input and the image see: here ``lstm.reach(r)``."""
        return lstm.reach(r)

    def reach(self, r: Tensor) -> Tensor:
        sources, r = r, self.first.reach(r)
        for lstm in self.lstms:
            r = torch.maximum(r, pointwise_reach(self.layer_reach(lstm, r, sources)))
        return r

    def cache(self, x: Tensor, e: Tensor | None = None) -> "_LSTMCache":
        return _LSTMCache(self, x, e)


class RowLSTMStack(LSTMStack):
    r"""The PixelRNN body with Row LSTM layers (see :class:`LSTMStack`).

    Arguments:
        in_channels: the image features per pixel (one-hot levels).
        channels: C.
        layers: the number of Row LSTM layers.
        first_kernel: the size of the type-A kernel.
        kernel_size: k of the Row LSTMs.
        embed_dim: the size of a conditioning vector, or None.
        dropout: dropout on each LSTM's output before the residual sum.
        groups: the image's channel groups (see :class:`~ppgen.nn.masked_conv.MaskedConv2d`).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int = 32,
        layers: int = 2,
        first_kernel: int = 7,
        kernel_size: int = 3,
        embed_dim: int | None = None,
        dropout: float = 0.0,
        groups: int = 1,
    ):
        super().__init__(
            in_channels,
            lambda: RowLSTM(channels, channels, kernel_size, embed_dim, groups),
            channels,
            layers,
            first_kernel,
            embed_dim,
            dropout,
            groups,
        )


class _RowLSTMCache:
    r"""One Row LSTM's cached sampling: the state-to-state term of the current row, computed from the row
    above once per row, the cells of the row above, and the hidden states and cells of the row so far."""

    def __init__(self, lstm: RowLSTM, grid: RasterGrid, image: Tensor, e: Tensor | None):
        conv = lstm.input_to_state
        self.conv, self.taps, self.weight, self.width = conv, grid.taps(conv), conv.flat_weight(), grid.width
        taps = lstm.state_to_state.weight  # (4C, C, k)
        self.state_weight, self.padding = taps.flatten(1).T.contiguous(), taps.shape[-1] // 2  # (C k, 4C)
        self.base = folded_bias(lstm.state_to_state, lstm.cond, e, conv.bias)  # (4C,) or (B, 4C)
        zeros = image.new_zeros(image.shape[0], lstm.channels)
        self.row, self.terms, self.c_above = 0, [self.base] * grid.width, [zeros] * grid.width
        self.h, self.c = [zeros] * grid.width, [zeros] * grid.width  # the current row's states so far

    def _next_row(self, i: int) -> None:
        above = F.pad(torch.stack(self.h, dim=2), (self.padding, self.padding))  # (B, C, W + k - 1)
        windows = above.unfold(2, 2 * self.padding + 1, 1).transpose(1, 2).flatten(2)  # (B, W, C k)
        self.terms = (torch.matmul(windows, self.state_weight) + self.base.unsqueeze(-2)).unbind(1)
        self.c_above, self.h, self.c, self.row = self.c, list(self.h), list(self.c), i

    def at(self, buf: Tensor, i: int, j: int, x: Tensor) -> Tensor:
        if i != self.row:
            self._next_row(i)
        gates = self.conv.at(buf, self.taps[i * self.width + j], self.weight, self.terms[j])  # (B, 4C)
        self.h[j], self.c[j] = lstm_cell(gates, self.c_above[j])
        return self.h[j]


class _LSTMCache(RasterCache):
    def __init__(self, stack: LSTMStack, x: Tensor, e: Tensor | None):
        super().__init__(stack, x, e)
        grid, first = self.grid, stack.first
        self.first = (grid.taps(first), first.flat_weight(), folded_bias(first, stack.first_cond, e))
        self.layers = [
            (
                grid.zeros(self.x, stack.out_channels),  # the layer's input
                lstm.cache(grid, self.x, e),
                pointwise_matrix(proj),
                folded_bias(proj),
            )
            for lstm, proj in zip(stack.lstms, stack.projections)
        ]
        self.drop = active_dropout(stack.drop)

    def at(self, i: int, j: int) -> Tensor:
        p = i * self.width + j
        q = self.grid.positions[p]
        taps, weight, bias = self.first
        h = self.stack.first.at(self.x, taps[p], weight, bias)  # (B, C)
        for buf, layer, proj, proj_bias in self.layers:
            buf[:, q] = h
            out = layer.at(buf, i, j, h)
            h = torch.addmm(proj_bias, out if self.drop is None else self.drop(out), proj).add_(h)
        return h
