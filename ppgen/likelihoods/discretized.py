"""The discretized Gaussian: a Normal on [-1, 1] integrated over the bins of K grey levels.

Level k in {0, ..., K-1} sits at c_k = 2k / (K - 1) - 1 and owns the bin [c_k - d, c_k + d] with
d = 1 / (K - 1); the two outer bins extend to -inf and +inf, so the K probabilities sum to one.
With K = 2 it is a Bernoulli whose success probability is Phi(loc / scale).

References:
    | Denoising Diffusion Probabilistic Models (Ho et al., 2020) https://arxiv.org/abs/2006.11239
    | (section 3.3, the discrete decoder p(x_0 | x_1))
"""

import math

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor
from torch.distributions.utils import broadcast_all

__all__ = ["DiscretizedGaussian", "level_centers", "log_normal_mass"]


def level_centers(x: Tensor, num_categories: int) -> Tensor:
    r"""Integer levels {0, ..., K-1} -> their centres in [-1, 1]."""
    return 2.0 * x / (num_categories - 1) - 1.0


def _log1mexp(d: Tensor) -> Tensor:
    r"""log(1 - exp(d)) for d <= 0, accurate on both sides of -log 2."""
    return torch.where(d > -math.log(2.0), torch.log(-torch.expm1(d)), torch.log1p(-torch.exp(d)))


def log_normal_mass(lo: Tensor, hi: Tensor) -> Tensor:
    r"""log(Phi(hi) - Phi(lo)) for standardized bounds lo < hi (either may be infinite), stably.

    Bins right of the origin are mirrored to the left (a < b, a + b <= 0), where both tails are
    accurate; it is computed in float64, and beyond b < -20 the difference of the two log-CDFs
    uses the Gaussian tail's asymptotic form -(a^2 - b^2) / 2 - log(a / b), which float
    cancellation cannot turn into 0 (a mass of exactly zero).
    """
    dtype = lo.dtype
    lo, hi = lo.double(), hi.double()
    right = lo + hi > 0
    a = torch.where(right, -hi, lo)
    b = torch.where(right, -lo, hi)
    a = torch.maximum(
        a, b.clamp(max=0.0) - 1e4
    )  # -inf -> a point of negligible mass (keeps gradients finite)
    lb = torch.special.log_ndtr(b)
    tail = b < -20.0
    ta, tb = torch.where(tail, a, b.new_tensor(-21.0)), torch.where(tail, b, b.new_tensor(-20.0))
    d = torch.where(tail, -(ta - tb) * (ta + tb) / 2 - torch.log(ta / tb), torch.special.log_ndtr(a) - lb)
    return (lb + _log1mexp(d.clamp(max=0.0))).to(dtype)


class DiscretizedGaussian(TorchDistribution):
    r"""N(loc, scale^2) on [-1, 1] read off at K evenly spaced levels; values are the integer levels.

    Elementwise (event shape ``()``); use ``.to_event(n)`` for an image.

    Arguments:
        loc: the means, in the [-1, 1] scale of the level centres.
        scale: the standard deviations (> 0).
        num_categories: K >= 2.

    Example:
        >>> d = DiscretizedGaussian(torch.tensor(0.1), torch.tensor(0.5), 17)
        >>> float(d.log_prob(torch.arange(17.0)).exp().sum())  # doctest: +ELLIPSIS
        1.0...
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_enumerate_support = True

    def __init__(self, loc: Tensor, scale: Tensor, num_categories: int, validate_args=None):
        if int(num_categories) < 2:
            raise ValueError(f"DiscretizedGaussian needs num_categories >= 2, got {num_categories}")
        self.loc, self.scale = broadcast_all(loc, scale)
        self.num_categories = int(num_categories)
        super().__init__(self.loc.shape, torch.Size(), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self.num_categories - 1)

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape)
        return DiscretizedGaussian(self.loc.expand(shape), self.scale.expand(shape), self.num_categories)

    @property
    def half_width(self) -> float:
        return 1.0 / (self.num_categories - 1)

    def log_prob(self, value: Tensor) -> Tensor:
        r"""Integer levels, broadcastable against the batch shape -> log masses."""
        if self._validate_args:
            self._validate_sample(value)
        c = level_centers(value.double(), self.num_categories)
        inf = torch.full_like(c, math.inf)
        lo = torch.where(value <= 0, -inf, c - self.half_width)
        hi = torch.where(value >= self.num_categories - 1, inf, c + self.half_width)
        loc, scale = self.loc.double(), self.scale.double()  # float64: far-off bins must not round together
        return log_normal_mass((lo - loc) / scale, (hi - loc) / scale).to(self.loc.dtype)

    def _level(self, u: Tensor) -> Tensor:
        k = torch.round((u.clamp(-1.0, 1.0) + 1.0) * (self.num_categories - 1) / 2.0)
        return k.clamp(0, self.num_categories - 1)

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            u = self.loc.expand(shape) + self.scale.expand(shape) * torch.randn(
                shape, dtype=self.loc.dtype, device=self.loc.device
            )
            return self._level(u)

    @property
    def mode(self) -> Tensor:
        r"""The level whose bin holds the mean (the most probable one: the Normal is unimodal)."""
        return self._level(self.loc)

    @property
    def mean(self) -> Tensor:
        values = self.enumerate_support()  # (K, *batch)
        return (values * self.log_prob(values).exp()).sum(0)

    def enumerate_support(self, expand: bool = True) -> Tensor:
        values = torch.arange(self.num_categories, dtype=self.loc.dtype, device=self.loc.device)
        values = values.view((-1,) + (1,) * len(self.batch_shape))
        return values.expand((-1,) + self.batch_shape) if expand else values
