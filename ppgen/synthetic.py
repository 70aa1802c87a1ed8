"""Synthetic 2-D data sets, with their true density where it has a closed form.

References:
    | VEEGAN: Reducing Mode Collapse in GANs using Implicit Variational Learning (Srivastava et al., 2017)
    | https://arxiv.org/abs/1705.07761
    | PacGAN: The power of two samples in generative adversarial networks (Lin et al., 2018)
    | https://arxiv.org/abs/1712.04086
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["GaussianRing", "Checkerboard", "SYNTHETIC", "sample_moons", "sample_spirals"]


@dataclass(frozen=True)
class GaussianModes:
    r"""An equal-weight mixture of isotropic Gaussians with well separated means.

    Arguments:
        modes: the means, (K, 2).
        std: the standard deviation of every component.
    """

    modes: tuple
    std: float

    @property
    def means(self) -> Tensor:
        return torch.tensor(self.modes, dtype=torch.float64)  # (K, 2)

    def sample(self, n: int, rng: np.random.Generator) -> Tensor:
        means = np.asarray(self.modes)
        k = rng.integers(len(means), size=n)
        x = means[k] + self.std * rng.standard_normal((n, 2))
        return torch.as_tensor(x, dtype=torch.float32)

    def log_prob(self, x: Tensor) -> Tensor:
        r"""Exact log density. x: (*, 2) -> (*)."""
        means = self.means.to(x.device, torch.float64)
        d2 = ((x.double().unsqueeze(-2) - means) ** 2).sum(-1)  # (*, K)
        log_norm = -math.log(2 * math.pi * self.std**2)
        lp = torch.logsumexp(-0.5 * d2 / self.std**2, dim=-1) + log_norm - math.log(len(self.modes))
        return lp.to(x.dtype)

    @property
    def entropy(self) -> float:
        r"""log K + the entropy of one component (exact up to the overlap, here below 1e-100)."""
        return math.log(len(self.modes)) + math.log(2 * math.pi * math.e * self.std**2)


def GaussianRing(k: int = 8, radius: float = 2.0, std: float = 0.02) -> GaussianModes:
    angles = [2 * math.pi * i / k for i in range(k)]
    return GaussianModes(tuple((radius * math.cos(a), radius * math.sin(a)) for a in angles), std)


def GaussianGrid(values=(-4, -2, 0, 2, 4), std: float = 0.05) -> GaussianModes:
    return GaussianModes(tuple((float(a), float(b)) for a in values for b in values), std)


@dataclass(frozen=True)
class Checkerboard:
    r"""Uniform on the 8 dark unit squares of a 4x4 board on [-2, 2]^2 (entropy log 8)."""

    modes = None

    @staticmethod
    def _dark(x: Tensor) -> Tensor:
        i = torch.floor(x[..., 0] + 2)
        j = torch.floor(x[..., 1] + 2)
        inside = (x.abs() < 2).all(-1)
        return inside & ((i + j) % 2 == 0)

    def sample(self, n: int, rng: np.random.Generator) -> Tensor:
        squares = [(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0]
        k = rng.integers(len(squares), size=n)
        corner = np.asarray(squares, dtype=np.float64)[k] - 2.0
        return torch.as_tensor(corner + rng.random((n, 2)), dtype=torch.float32)

    def log_prob(self, x: Tensor) -> Tensor:
        r"""Exact log density. x: (*, 2) -> (*), -inf off the dark squares."""
        lp = torch.full(x.shape[:-1], -math.log(8.0), dtype=x.dtype, device=x.device)
        return torch.where(self._dark(x), lp, torch.full_like(lp, -math.inf))

    @property
    def entropy(self) -> float:
        return math.log(8.0)


def sample_moons(n: int, rng: np.random.Generator, noise: float = 0.05) -> Tensor:
    r"""scikit-learn's two interleaving half circles, centred and scaled to about [-2, 2]^2."""
    from sklearn.datasets import make_moons

    x, _ = make_moons(n, noise=noise, random_state=int(rng.integers(2**31)))
    x = (x - np.array([0.5, 0.25])) * 1.4
    return torch.as_tensor(x, dtype=torch.float32)


def sample_spirals(n: int, rng: np.random.Generator, noise: float = 0.05) -> Tensor:
    r"""Two interleaved Archimedean spirals in about [-2, 2]^2."""
    t = np.sqrt(rng.random(n)) * 3 * math.pi
    arm = rng.integers(2, size=n)
    r = t / (3 * math.pi) * 2.0
    angle = t + math.pi * arm
    x = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1) + noise * rng.standard_normal((n, 2))
    return torch.as_tensor(x, dtype=torch.float32)


SYNTHETIC = {
    "rings8": GaussianRing(),
    "grid25": GaussianGrid(),
    "checkerboard": Checkerboard(),
}
