"""Planar flows that can also be inverted: Pyro's planar map plus a numerical inverse."""

import math

import torch
from pyro.distributions.conditional import ConditionalTransformModule
from pyro.distributions.transforms.planar import ConditionedPlanar, Planar
from pyro.nn import DenseNN
from torch import Tensor

__all__ = [
    "InvertiblePlanar",
    "ConditionalInvertiblePlanar",
    "invertible_planar",
    "conditional_invertible_planar",
]


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


def near_identity(u: Tensor, w: Tensor, scale: float = 0.01) -> None:
    r"""Sets u in place so that u_hat is a small vector orthogonal to w: the map starts near the identity.

    Pyro's u_hat = u + (softplus(w.u) - 1 - w.u) w / |w|^2 has w.u_hat = softplus(w.u) - 1, which is
    0 (no contraction along w) when w.u = log(e - 1); then u_hat is u's component orthogonal to w.
    """
    with torch.no_grad():
        w_unit = w / w.norm()
        v = scale * torch.randn_like(u)
        v = v - (v * w_unit).sum() * w_unit
        u.copy_(math.log(math.e - 1) * w / w.norm() ** 2 + v)


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

    def reset_parameters(self):
        super().reset_parameters()
        near_identity(self.u, self.w)


class ConditionalInvertiblePlanar(ConditionalTransformModule):
    r"""The conditional planar map: (bias, u, w) are learned base values plus offsets ``nn(context)``.

    The base values start as a near-identity map and the offsets at zero, so that an untrained
    conditional flow is close to its base distribution for every context.

    Arguments:
        nn: a network mapping context (*, C) to the offsets (*, 1), (*, D), (*, D); its last layer is zeroed.
        input_dim: D.
    """

    bijective = True

    def __init__(self, nn, input_dim: int):
        super().__init__()
        self.nn = nn
        self.base = InvertiblePlanar(input_dim)
        last = [m for m in nn.modules() if isinstance(m, torch.nn.Linear)][-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)

    def _params(self, context: Tensor):
        db, du, dw = self.nn(context)
        return self.base.bias + db, self.base.u + du, self.base.w + dw

    def condition(self, context: Tensor) -> ConditionedInvertiblePlanar:
        return ConditionedInvertiblePlanar(lambda: self._params(context))


def invertible_planar(input_dim: int) -> InvertiblePlanar:
    r"""A planar map on D = ``input_dim`` dimensions."""
    return InvertiblePlanar(input_dim)


def conditional_invertible_planar(
    input_dim: int, context_dim: int, hidden_dims=None
) -> ConditionalInvertiblePlanar:
    r"""A planar map on D = ``input_dim`` dimensions whose parameters are a DenseNN of the context."""
    hidden_dims = hidden_dims or [10 * context_dim]
    return ConditionalInvertiblePlanar(
        DenseNN(context_dim, hidden_dims, param_dims=[1, input_dim, input_dim]), input_dim
    )
