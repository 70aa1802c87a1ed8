"""Score-based generative modelling (SMLD/NCSN): a noise-conditional score network, sampled by
annealed Langevin dynamics; and the chain-sampled base that the energy-based model shares.

References:
    | Generative Modeling by Estimating Gradients of the Data Distribution (Song & Ermon, 2019)
    | https://arxiv.org/abs/1907.05600
    | Improved Techniques for Training Score-Based Generative Models (Song & Ermon, 2020)
    | https://arxiv.org/abs/2006.09011
"""

import math

import networkx as nx
import pyro
import torch
from torch import Tensor

from ppgen.base import GenerativeModel, register
from ppgen.errors import PPGenError
from ppgen.estimators.langevin import annealed_langevin
from ppgen.likelihoods import SampledDistribution
from ppgen.nn.score_net import NoiseConditionalScoreNet
from ppgen.nn.standardize import Standardize

__all__ = ["ChainSampledModel", "SMLD", "geometric_sigmas"]


def geometric_sigmas(sigma_max: float, sigma_min: float, num: int) -> Tensor:
    r"""The ladder sigma_1 > ... > sigma_L, geometric, computed in float64, returned as float32 (L,)."""
    if not 0 < sigma_min < sigma_max or num < 2:
        raise PPGenError(
            f"need 0 < sigma_min < sigma_max and at least 2 levels; got {sigma_min}, {sigma_max}, {num}"
        )
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), num, dtype=torch.float64).float()


class ChainSampledModel(GenerativeModel):
    r"""What score and energy models share: a working space u (standardized data, or discrete levels
    mapped to [-1, 1]), a Pyro program whose site "x" is drawn by a Markov chain, and snapshots of
    that chain for figures.

    Subclasses define ``sample_u(n, on_step=None)`` (the chain in u-space), ``num_sampling_steps``
    and ``score(x, sigma=None)`` (the learned grad_x log p in data space, for figures).
    """

    sampling_reason = "no log density"
    completion = "langevin"

    def __init__(self, spec):
        super().__init__(spec)
        self.standardize = Standardize(spec)

    def initialize(self, data) -> None:
        r"""Fits the standardization (continuous data) and the data range to the training split (once)."""
        self.standardize.fit(data.x)

    def prepare(self, x: Tensor) -> Tensor:
        r"""x (B, *event_shape) -> u, the working space."""
        return self.standardize(x)

    def unnormalized_log_prob(self, x: Tensor) -> Tensor | None:
        return None

    def likelihood(self, n: int) -> SampledDistribution:
        r"""The distribution of site "x" for a batch of n: sampled by the chain."""
        lp = self.unnormalized_log_prob if self.density == "unnormalized" else None
        return SampledDistribution(self.spec, self.sample, (n,), lp, f"{self.name}: {self.sampling_reason}")

    def model(self, x=None, y=None):
        n = 1 if x is None else x.shape[0]
        with pyro.plate("data", n):
            return pyro.sample("x", self.likelihood(n), obs=x)

    def sample_u(self, n: int, on_step=None) -> Tensor:
        raise NotImplementedError

    @property
    def num_sampling_steps(self) -> int:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, y=None) -> Tensor:
        return self.standardize.inverse(self.sample_u(n))

    @torch.no_grad()
    def sample_chain(self, n: int, steps) -> dict[int, Tensor]:
        r"""Snapshots of n chains at the given steps (0: the start, ..., ``num_sampling_steps``), as data.

        Discrete data are shown unrounded (clamped to the level range), so the chain's progress is visible.
        """
        steps = sorted({int(s) for s in steps})
        if not steps or steps[0] < 0 or steps[-1] > self.num_sampling_steps:
            raise PPGenError(
                f"{self.name}: steps to show must lie in [0, {self.num_sampling_steps}], got {steps}"
            )
        wanted, shots = set(steps), {}
        k = self.spec.num_categories

        def record(step, u):
            if step in wanted:
                x = self.standardize.inverse(u, snap=False)
                shots[step] = x.clamp(0, k - 1) if k else x.clone()

        self.sample_u(n, on_step=record)
        return shots

    def graph(self) -> nx.DiGraph:
        r"""The sampling chain, abridged: its start (noise) -> its intermediate states -> the sample x."""
        g = nx.DiGraph()
        nx.add_path(g, ["x_start", "x_chain", "x"])
        return g


@register
class SMLD(ChainSampledModel):
    r"""A noise-conditional score network s_theta(x, sigma) ~ grad_x log p_sigma(x), over a geometric ladder.

    p_sigma is the data smoothed with N(0, sigma^2 I). The model learns a score, not a density:
    ``log_prob`` raises and ``evaluation_log_prob`` returns None. Its Pyro program observes site
    "x" from a :class:`~ppgen.likelihoods.SampledDistribution` whose ``sample`` runs annealed
    Langevin dynamics (Song & Ermon, 2019) with the learned score. Training is denoising score
    matching (``ppgen.inference.score_matching``, objective "dsm"), not the ELBO.

    Continuous data are standardized inside the model (buffers set from the training split by
    :meth:`initialize`); binary and categorical levels are mapped to [-1, 1] and samples rounded
    back. The ladder is in those standardized units.

    Arguments:
        spec: the data spec.
        sigma_min: the smallest noise level (standardized units).
        sigma_max: the largest; None for 2 sqrt(2 D), about the largest distance between standardized
            examples.
        num_sigmas: the number of levels L.
        hidden: the score network's width.
        layers: its number of hidden layers.
        fourier: octaves of Fourier input features (None: 6 for data of dimension <= 4, else 0).
        steps_per_sigma: Langevin steps per level when sampling (T).
        step_ratio: the Langevin step a_i = step_ratio * sigma_i^2.
        denoise: end sampling with the Tweedie step x + sigma_L^2 s(x, sigma_L).

    Example:
        >>> import ppgen, torch
        >>> data = ppgen.data.from_tensor(torch.randn(64, 2), kind="continuous")
        >>> m = ppgen.create("smld", data, num_sigmas=4, steps_per_sigma=3, hidden=16)
        >>> _ = ppgen.fit(m, data, steps=2, progress=False)
        >>> m.sample(5).shape
        torch.Size([5, 2])
    """

    name = "smld"
    family = "diffusion"
    density = "implicit"
    objective = "dsm"
    # default config on rings8 (benchmarks/diffusion_quality.py, validation split, 1 thread, seed 0): the bars
    # (>= 7/8 modes, >= 60 % HQ) from epoch 20 (7.6 training CPU s: 8/8, 83.8 %), 98.6 % at epoch 100 (30 s)
    fit_defaults = {"epochs": 100, "batch_size": 256, "lr": 2e-3}
    # quick mode (benchmarks/quick_presets.py): rings8 validation 8/8 modes, 79% HQ in 7 CPU s (15 epochs);
    # on digits 20 epochs gave FD-digits 520 (no digits preset)
    quick_presets = {"rings8": {"config": {}, "fit": {"epochs": 15}}}
    sampling_reason = "a score model learns grad log p, not a density; log_prob is not available"

    def __init__(
        self,
        spec,
        sigma_min: float = 0.01,
        sigma_max: float | None = None,
        num_sigmas: int = 20,
        hidden: int = 128,
        layers: int = 3,
        fourier: int | None = None,
        steps_per_sigma: int = 25,
        step_ratio: float = 0.1,
        denoise: bool = True,
    ):
        super().__init__(spec)
        sigma_max = 2 * math.sqrt(2 * spec.dim) if sigma_max is None else sigma_max
        self.register_buffer("sigmas", geometric_sigmas(sigma_max, sigma_min, num_sigmas))
        fourier = (6 if spec.dim <= 4 else 0) if fourier is None else fourier
        self.net = NoiseConditionalScoreNet(spec.dim, hidden, layers, fourier)
        self.steps_per_sigma = steps_per_sigma
        self.step_ratio = step_ratio
        self.denoise = denoise

    def score_u(self, u: Tensor, sigma: Tensor) -> Tensor:
        r"""The score in the standardized space. u: (B, *event_shape), sigma: (B,) -> (B, *event_shape)."""
        return self.net(u, sigma)

    def score(self, x: Tensor, sigma: float | None = None) -> Tensor:
        r"""grad_x log p_sigma(x) in data space, sigma in data units (default: the smallest level).
        x: (B, *event_shape)."""
        scale = self.standardize.scale
        s = (
            self.sigmas[-1]
            if sigma is None
            else torch.as_tensor(sigma, dtype=x.dtype, device=x.device) / scale
        )
        return self.score_u(self.standardize(x), s.expand(x.shape[0])) / scale

    def log_prob(self, x, y=None):
        self.check_input(x)
        raise PPGenError(f"{self.name}: {self.sampling_reason}")

    def evaluation_log_prob(self, x, y=None, num_samples=1000):
        return None

    @property
    def num_sampling_steps(self) -> int:
        return len(self.sigmas) * self.steps_per_sigma + int(self.denoise)

    def sample_u(self, n: int, on_step=None) -> Tensor:
        start = self.sigmas[0] * torch.randn(
            n, *self.spec.event_shape, device=self.sigmas.device, dtype=self.sigmas.dtype
        )
        return annealed_langevin(
            self.score_u,
            start,
            self.sigmas,
            self.steps_per_sigma,
            self.step_ratio,
            self.denoise,
            on_step=on_step,
        )
