"""Autoregressive rational-quadratic splines with a fused log-determinant (the neural spline flow's step).

The parameterization is Pyro's ``SplineAutoregressive(order="quadratic")`` (softmax bin widths and heights,
each at least ``MIN_BIN``, softplus inner slopes plus ``MIN_SLOPE``, boundary slopes 1 - ``MIN_SLOPE``,
the identity outside [-bound, bound]) and the state is laid out as Pyro's, so the two compute the same
density from the same weights; what changes is the cost: one gather for every bin quantity, no in-place
masking, and the log-determinant computed in the same pass as the map (``call_and_ladj``).

References:
    | Neural Spline Flows (Durkan et al., 2019), arXiv:1906.04032
    | Invertible Generative Modeling using Linear Rational Splines (Dolatabadi et al., 2020), arXiv:2001.05168
"""

import functools

import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from pyro.distributions.conditional import ConditionalTransformModule
from pyro.distributions.torch_transform import TransformModule
from pyro.nn import ConditionalAutoRegressiveNN
from torch import Tensor, nn
from torch.distributions import Transform

__all__ = [
    "AutoregressiveSpline",
    "ConditionalAutoregressiveSpline",
    "ConditionedAutoregressiveSpline",
    "rational_quadratic_spline",
    "spline_knots",
    "packed_spline_knots",
]

MIN_BIN = 1e-3  # the smallest bin width and height, as a fraction of the interval
MIN_SLOPE = 1e-3  # added to the softplus of the inner slopes
EPS = 1e-6  # the bin search's tolerance (Pyro's)


def spline_knots(widths: Tensor, heights: Tensor, slopes: Tensor, bound: float) -> tuple[Tensor, Tensor]:
    r"""The knots of a monotone spline on [-bound, bound] from unconstrained parameters.

    Arguments:
        widths: the bin widths' logits, (*, K).
        heights: the bin heights' logits, (*, K).
        slopes: the inner knots' slopes before softplus, (*, K - 1).
        bound: the half-width B of the interval.

    Returns:
        The knots' abscissae x_0 = -B < ... < x_K = B and ordinates y_0 = -B < ... < y_K = B, (*, 2, K + 1),
        and their slopes d_0, ..., d_K (d_0 = d_K = 1 - MIN_SLOPE), (*, K + 1).
    """
    return packed_spline_knots(torch.cat([widths, heights, slopes], -1), bound)


def packed_spline_knots(params: Tensor, bound: float) -> tuple[Tensor, Tensor]:
    r""":func:`spline_knots` of the parameters packed in one tensor, (*, 3K - 1): widths, heights, slopes
    (what the spline's MADE computes; the widths and heights are normalized as one (*, 2, K) view)."""
    k, width = (params.shape[-1] + 1) // 3, 2 * bound
    # bin sizes in units of the interval, (*, 2, K); in place only where autograd keeps no operand
    sizes = (params[..., : 2 * k].unflatten(-1, (2, k)).softmax(-1) * ((1 - MIN_BIN * k) * width)).add_(
        MIN_BIN * width
    )
    knots = F.pad(torch.cumsum(sizes, -1), (1, 0)).sub_(bound)  # (*, 2, K + 1); x_0 = -B exactly
    knots[..., -1] = bound  # and x_K = B exactly (the cumulative sum ends within rounding of 2B)
    # the pad also makes the slopes contiguous (softplus is 6x slower on the strided slice)
    slopes = F.softplus(F.pad(params[..., 2 * k :], (1, 1))).add_(MIN_SLOPE)
    slopes[..., 0] = slopes[..., -1] = 1.0 - MIN_SLOPE
    return knots, slopes


def rational_quadratic_spline(
    x: Tensor, knots: Tensor, slopes: Tensor, inverse: bool = False, with_ladj: bool = True
) -> tuple[Tensor, Tensor | None]:
    r"""The monotone rational-quadratic spline through ``knots`` (or its inverse) and log|dy/dx|.

    Arguments:
        x: the inputs, (*,).
        knots: the abscissae and ordinates from :func:`spline_knots`, (*, 2, K + 1).
        slopes: the slopes at the knots, (*, K + 1).
        inverse: map y -> x instead.
        with_ladj: compute the log-derivative (sampling does not need it).

    Returns:
        The outputs (*,) and the log-derivative of the forward map at the (input or output) abscissa, (*,)
        (None without ``with_ladj``); the identity (0) outside [-bound, bound].
    """
    search = knots[..., 1 if inverse else 0, :]  # (*, K + 1)
    bound = search[..., -1]
    k = (x.unsqueeze(-1) - EPS >= search[..., 1:-1]).sum(-1, keepdim=True)  # the bin, (*, 1) in [0, K)
    index = torch.cat([k, k + 1], -1)  # (*, 2)
    x0, x1, y0, y1 = (
        knots.gather(-1, index.unsqueeze(-2).expand(*index.shape[:-1], 2, 2)).flatten(-2).unbind(-1)
    )
    d0, d1 = slopes.gather(-1, index).unbind(-1)  # (*,) each
    inside = x.abs() <= bound  # the interval is symmetric
    w, h = x1 - x0, y1 - y0
    s = h / w
    c2 = d0 + d1 - 2 * s
    if inverse:
        dy = inside * (x - y0)
        a = h * (s - d0) + dy * c2
        b = h * d0 - dy * c2
        c = -s * dy
        theta = 2 * c / (-b - (b * b - 4 * a * c).clamp_min(0).sqrt())
        out = torch.where(inside, x0 + theta * w, x)
        if not with_ladj:
            return out, None
    else:
        theta = inside * (x - x0) / w
    t1 = theta * (1 - theta)
    denom = s + c2 * t1
    if not inverse:
        out = torch.where(inside, y0 + h * (s * theta * theta + d0 * t1) / denom, x)
        if not with_ladj:
            return out, None
    ladj = torch.log(s * s * (d1 * theta * theta + 2 * s * t1 + d0 * (1 - theta) ** 2) / (denom * denom))
    return out, inside * ladj


class _Spline:
    r"""The map, its inverse and log-determinant of an autoregressive spline; ``params(x)`` gives the packed
    spline parameters of every coordinate (*, D, 3K - 1) (see :func:`packed_spline_knots`), coordinate i's
    from x_<i only, and ``net`` is the MADE that computes them."""

    def params(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def knots(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""The knots (*, D, 2, K + 1) and slopes (*, D, K + 1) of every coordinate's spline at x (*, D)."""
        return packed_spline_knots(self.params(x), self.bound)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""x (*, D) -> (y (*, D), log|det dy/dx| (*,)) in one pass."""
        y, ladj = rational_quadratic_spline(x, *self.knots(x))
        return y, ladj.sum(-1)

    def _call(self, x: Tensor) -> Tensor:
        return self.call_and_ladj(x)[0]

    def _inverse(self, y: Tensor) -> Tensor:
        r"""D passes of the network; pass i fixes the i-th coordinate of the autoregressive order, so only its
        spline is built and inverted (with the network's ``permutation``; without one, every coordinate's
        in every pass)."""
        order = getattr(self.net, "permutation", None)
        x = torch.zeros_like(y)
        if order is None:
            for _ in range(y.shape[-1]):
                x = rational_quadratic_spline(y, *self.knots(x), inverse=True, with_ladj=False)[0]
            return x
        for i in order.tolist():
            knots, slopes = packed_spline_knots(self.params(x)[..., i, :], self.bound)  # (*, 2, K + 1), ...
            xi = rational_quadratic_spline(y[..., i], knots, slopes, inverse=True, with_ladj=False)[0]
            x = torch.cat([x[..., :i], xi.unsqueeze(-1), x[..., i + 1 :]], -1)
        return x

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self.call_and_ladj(x)[1]


def made_by_coordinate(net: nn.Module, x: Tensor, context: Tensor | None = None) -> Tensor:
    r"""A MADE's output as (*, D, M): the M parameters of each coordinate together.

    Pyro's ``(Conditional)AutoRegressiveNN`` lays its outputs out parameter by parameter, (*, M, D), so the
    spline would read every coordinate's parameters with a stride of D. For one of those (without skip
    connections) the output layer is evaluated with its rows reordered coordinate by coordinate and each
    coordinate's block padded to a multiple of 8 rows: the same weights and numbers, no transposed copy,
    and a matrix product of a width the CPU kernels like (64 inputs to 94 outputs for 5,000 points took
    1.0 ms here, to 96 outputs 0.74 ms). Any other network is called as it is and its output transposed.

    Arguments:
        net: the MADE, called as ``net(x)`` or ``net(x, context=context)``; output (*, M, D) or a tuple of
            slices along M (Pyro's ``param_dims=[K, K, K - 1]``).
        x: (*, D).
        context: (*, C) or (C,), for a conditional MADE.

    Returns:
        (*, D, M), a view (contiguous in its last dimension for Pyro's MADEs without skip connections).
    """
    if not isinstance(net, ConditionalAutoRegressiveNN) or net.skip_layer is not None:
        out = net(x) if context is None else net(x, context=context)
        return _packed(out).transpose(-1, -2)
    h = x if context is None else torch.cat([context.expand(*x.shape[:-1], context.shape[-1]), x], -1)
    for layer in net.layers[:-1]:
        h = net.f(layer(h))
    last, d, m = net.layers[-1], net.input_dim, net.output_multiplier
    rows, width = _coordinate_rows(d, m, last.weight.device)
    weight = torch.cat([last.weight * last.mask, last.weight.new_zeros(1, last.weight.shape[1])])
    bias = torch.cat([last.bias, last.bias.new_zeros(1)])
    out = F.linear(h, weight.index_select(0, rows), bias.index_select(0, rows))  # (*, D * width)
    return out.unflatten(-1, (d, width))[..., :m]


@functools.lru_cache(maxsize=64)
def _coordinate_rows(d: int, m: int, device: torch.device) -> tuple[Tensor, int]:
    r"""For Pyro's output rows (row p D + i: parameter p of coordinate i), the row each coordinate-major
    position i W + p reads, W = m rounded up to a multiple of 8; padding positions read row D M (zeros)."""
    width = -(-m // 8) * 8
    p, i = torch.arange(width, device=device), torch.arange(d, device=device)
    rows = torch.where(p[None, :] < m, p[None, :] * d + i[:, None], d * m)  # (D, W)
    return rows.reshape(-1), width


def _packed(params) -> Tensor:
    r"""The network's output as one (*, 3K - 1, D) tensor: a MADE built with ``param_dims=[3K - 1]`` returns
    it as is; one built with ``[K, K, K - 1]`` (Pyro's layout, the same weights) returns three slices."""
    return torch.cat(params, -2) if isinstance(params, (tuple, list)) else params


def _drop_pyro_alias(state_dict, prefix, *args):
    # Pyro's SplineAutoregressive registered its network twice (``arn`` and ``spline.nn``)
    for key in [k for k in state_dict if k.startswith(prefix + "spline.nn.")]:
        del state_dict[key]


class AutoregressiveSpline(_Spline, TransformModule):
    r"""y_i = g_i(x_i), g_i a monotone rational-quadratic spline whose knots a MADE computes from x_<i.

    Arguments:
        input_dim: D.
        autoregressive_nn: a MADE (e.g. ``pyro.nn.AutoRegressiveNN``) with ``param_dims=[3 K - 1]`` or
            Pyro's ``[K, K, K - 1]`` (the same weights, returned in three slices):
            x (*, D) -> bin-width logits (*, K, D), bin-height logits (*, K, D), inner slopes (*, K - 1, D).
        count_bins: K.
        bound: the spline acts on [-bound, bound] and is the identity outside.

    Example:
        >>> from pyro.nn import AutoRegressiveNN
        >>> t = AutoregressiveSpline(2, AutoRegressiveNN(2, [8], param_dims=[4, 4, 3]), count_bins=4)
        >>> x = torch.randn(5, 2)
        >>> y, ladj = t.call_and_ladj(x)
        >>> bool(torch.allclose(t.inv(y), x, atol=1e-5)), ladj.shape
        (True, torch.Size([5]))
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    autoregressive = True

    def __init__(self, input_dim: int, autoregressive_nn: nn.Module, count_bins: int = 8, bound: float = 3.0):
        super().__init__(cache_size=0)
        self.input_dim, self.count_bins, self.bound = input_dim, count_bins, bound
        self.arn = autoregressive_nn
        self._register_load_state_dict_pre_hook(_drop_pyro_alias)

    @property
    def net(self) -> nn.Module:
        return self.arn

    def params(self, x: Tensor) -> Tensor:
        return made_by_coordinate(self.arn, x)


class ConditionedAutoregressiveSpline(_Spline, Transform):
    r"""A :class:`ConditionalAutoregressiveSpline` at one context (what its ``condition`` returns)."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    autoregressive = True

    def __init__(self, net: nn.Module, context: Tensor, bound: float):
        super().__init__(cache_size=0)
        self.net, self.context, self.bound = net, context, bound

    def params(self, x: Tensor) -> Tensor:
        return made_by_coordinate(self.net, x, self.context)


class ConditionalAutoregressiveSpline(ConditionalTransformModule):
    r"""The :class:`AutoregressiveSpline` whose knots also depend on a context c (e.g. a one-hot label).

    Arguments:
        input_dim: D.
        autoregressive_nn: a conditional MADE (e.g. ``pyro.nn.ConditionalAutoRegressiveNN``) with
            ``param_dims=[3 K - 1]`` (or ``[K, K, K - 1]``), called as ``autoregressive_nn(x, context=c)``.
        count_bins: K.
        bound: the spline acts on [-bound, bound] and is the identity outside.
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, input_dim: int, autoregressive_nn: nn.Module, count_bins: int = 8, bound: float = 3.0):
        super().__init__()
        self.input_dim, self.count_bins, self.bound = input_dim, count_bins, bound
        self.nn = autoregressive_nn

    def condition(self, context: Tensor) -> ConditionedAutoregressiveSpline:
        return ConditionedAutoregressiveSpline(self.nn, context, self.bound)
