"""An energy network E(x): a smooth MLP from flat or flattened data to one scalar per example."""

from torch import Tensor, nn

from ppgen.nn.fourier import FourierFeatures
from ppgen.nn.mlp import mlp

__all__ = ["EnergyNet"]


class EnergyNet(nn.Module):
    r"""E_theta(x) = scale * f_theta(x) + |x|^2 / (2 tau^2): a SiLU MLP plus a weak confinement.

    SiLU keeps E smooth, so that grad_x E (the negative score that SGLD follows) is continuous. The
    quadratic term with a wide ``tau`` makes exp(-E) integrable on all of R^D whatever the network
    does far from the data, so the partition function exists; inside the data's range it is small.

    Arguments:
        dim: the data dimension D (inputs are flattened).
        hidden: the width of the hidden layers.
        layers: the number of hidden layers.
        tau: the width of the confining Gaussian, in the (standardized) input units; None for none.
        fourier: octaves of Fourier input features (see :class:`~ppgen.nn.fourier.FourierFeatures`).
        scale: a fixed factor on the network's output, so that an O(1) network spans energies of
            O(scale) nats (a sharp density) while its initialisation and gradients keep their usual size.

    Example:
        >>> import torch
        >>> net = EnergyNet(2, hidden=16, layers=2)
        >>> net(torch.randn(5, 2)).shape
        torch.Size([5])

    References:
        | Implicit Generation and Generalization in Energy-Based Models (Du & Mordatch, 2019)
        | https://arxiv.org/abs/1903.08689
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        layers: int = 3,
        tau: float | None = 4.0,
        scale: float = 1.0,
        fourier: int = 0,
    ):
        super().__init__()
        self.features = FourierFeatures(fourier)
        self.net = mlp(self.features.out_features(dim), (hidden,) * layers, 1, nn.SiLU)
        self.tau = tau
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        r"""x: (B, *shape) -> E: (B,)."""
        h = x.reshape(x.shape[0], -1)  # (B, D)
        e = self.scale * self.net(self.features(h)).squeeze(-1)
        if self.tau:
            e = e + 0.5 * (h**2).sum(-1) / self.tau**2
        return e
