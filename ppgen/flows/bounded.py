"""Softly bounded log-scales for Pyro's affine flows, so that training cannot blow the scales up."""

import torch
from torch import Tensor, nn

__all__ = ["BoundedScale"]


class BoundedScale(nn.Module):
    r"""Wraps a hypernet returning (shift, log_scale); maps log_scale to ``bound * tanh(log_scale / bound)``.

    Pyro's affine coupling and autoregressive transforms clamp the log-scale with
    ``clamp_preserve_gradients``: the value is clipped but the gradient passes as if it were not, so
    the raw output can run off while the optimiser keeps pushing, and the shared hidden layers with
    it (an unbounded MAF on rings8 reached a loss of 1e7 nats after 10 epochs). A tanh bound has
    the true, vanishing gradient at saturation. Choose ``bound`` inside Pyro's clip range, so the
    clip never acts. Works for ``DenseNN``/``AutoRegressiveNN`` and their conditional versions (the
    ``context`` keyword and the ``permutation`` of autoregressive nets are passed through).

    Arguments:
        net: the hypernet, returning a (shift, log_scale) pair.
        bound: the largest |log_scale|.

    Example:
        >>> from pyro.nn import DenseNN
        >>> net = BoundedScale(DenseNN(1, [8], [1, 1]), bound=2.0)
        >>> shift, log_scale = net(100 * torch.randn(5, 1))
        >>> bool((log_scale.abs() <= 2.0).all())
        True
    """

    def __init__(self, net: nn.Module, bound: float = 2.5):
        super().__init__()
        self.net = net
        self.bound = bound

    @property
    def permutation(self) -> Tensor:
        return self.net.permutation

    def get_permutation(self) -> Tensor:
        return self.net.get_permutation()

    def forward(self, inputs: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        shift, log_scale = self.net(inputs) if context is None else self.net(inputs, context=context)
        return shift, self.bound * torch.tanh(log_scale / self.bound)
