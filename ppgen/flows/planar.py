"""Planar flows that can also be inverted: Pyro's planar map plus a numerical inverse."""

import torch
from pyro.distributions.conditional import ConditionalTransformModule
from pyro.distributions.transforms.planar import ConditionedPlanar, Planar
from pyro.nn import DenseNN
from torch import Tensor

__all__ = ["InvertiblePlanar", "ConditionalInvertiblePlanar", "invertible_planar", "conditional_invertible_planar"]


class _PlanarInverse:
    r"""x from y = x + u_hat tanh(w.x + b), for any y (Pyro's planar inverts only its own cached outputs).

    With a = w.x + b, the map reduces to the scalar equation t = a + (w.u_hat) tanh(a), t = w.y + b,
    which is increasing in a because w.u_hat >= -1; its root lies in [t - |w.u_hat|, t + |w.u_hat|].
    Bisection finds it (no gradient), then one Newton step, taken with gradients, gives the implicit
    derivative, so the inverse is differentiable in the parameters.
    """

    bisection_steps: int = 60

    def _inverse(self, y: Tensor) -> Tensor:
        bias, u, w = self._params() if callable(self._params) else self._params
        u_hat = self.u_hat(u, w)
        c = (w * u_hat).sum(-1)  # (*,) >= -1
        t = (w * y).sum(-1) + bias.squeeze(-1)
        with torch.no_grad():
            lo, hi = t - c.abs() - 1e-3, t + c.abs() + 1e-3
            lo, hi = torch.broadcast_tensors(lo, hi)
            lo, hi = lo.clone(), hi.clone()
            for _ in range(self.bisection_steps):
                mid = (lo + hi) / 2
                above = mid + c * torch.tanh(mid) > t
                hi = torch.where(above, mid, hi)
                lo = torch.where(above, lo, mid)
            a = (lo + hi) / 2
        f = a + c * torch.tanh(a) - t
        a = a - f / (1 + c * (1 - torch.tanh(a) ** 2))  # Newton step: exact at the root, carries gradients
        return y - u_hat * torch.tanh(a).unsqueeze(-1)


class ConditionedInvertiblePlanar(_PlanarInverse, ConditionedPlanar):
    r"""A planar map with given parameters (bias, u, w) that also inverts (see :class:`InvertiblePlanar`)."""


class InvertiblePlanar(_PlanarInverse, Planar):
    r"""y = x + u_hat tanh(w.x + b): (*, D) -> (*, D), with log|det J| = log|1 + u_hat . h'(w.x + b) w|.

    Pyro's :class:`~pyro.distributions.transforms.Planar` with an inverse for any input, so the map can
    be used in either direction of a flow (a density model runs it data -> base, where it is closed form).

    Arguments:
        input_dim: D.

    References:
        | Variational Inference with Normalizing Flows (Rezende & Mohamed, 2015), arXiv:1505.05770

    Example:
        >>> t = InvertiblePlanar(2)
        >>> x = torch.randn(5, 2)
        >>> bool(torch.allclose(t.inv(t(x)), x, atol=1e-5))
        True
    """


class ConditionalInvertiblePlanar(ConditionalTransformModule):
    r"""A planar map whose (bias, u, w) are the outputs of ``nn(context)``: the conditional version.

    Arguments:
        nn: a network mapping context (*, C) to the three tensors (*, 1), (*, D), (*, D).
    """

    bijective = True

    def __init__(self, nn):
        super().__init__()
        self.nn = nn

    def condition(self, context: Tensor) -> ConditionedInvertiblePlanar:
        return ConditionedInvertiblePlanar(lambda: self.nn(context))


def invertible_planar(input_dim: int) -> InvertiblePlanar:
    r"""A planar map on D = ``input_dim`` dimensions."""
    return InvertiblePlanar(input_dim)


def conditional_invertible_planar(input_dim: int, context_dim: int, hidden_dims=None) -> ConditionalInvertiblePlanar:
    r"""A planar map on D = ``input_dim`` dimensions whose parameters are a DenseNN of the context."""
    hidden_dims = hidden_dims or [10 * context_dim]
    return ConditionalInvertiblePlanar(DenseNN(context_dim, hidden_dims, param_dims=[1, input_dim, input_dim]))
