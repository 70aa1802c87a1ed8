"""A multi-scale image flow (Glow-style RealNVP) for discrete images, trained on dequantized pixels.

Pixels x in {0, ..., K-1} become continuous v = x + u with u in [0, 1)^D drawn from a dequantizer
q(u | x); the flow gives the exact density p(v) of
    v -> v / K -> logit(alpha + (1 - 2 alpha) v / K) -> [squeeze -> L x (actnorm, 1x1 conv, coupling) ->
    split]^levels -> z,
and log P(x) >= E_q[log p(x + u) - log q(u | x)] (the dequantization bound), which is what this
model reports (``test_nll_kind: "dequantized"``) and trains. As a Pyro program: u is a latent
site with a uniform prior, the guide is q(u | x) (uniform, or a learned conditional flow with
``dequantization="variational"``) and the observed site "x" is the flow at v = x + u, so the
default ELBO objective trains both.

References:
    | Density estimation using Real NVP (Dinh et al., 2017), arXiv:1605.08803
    | Glow: Generative Flow with Invertible 1x1 Convolutions (Kingma & Dhariwal, 2018), arXiv:1807.03039
    | Flow++ (Ho et al., 2019), arXiv:1902.00275 -- variational dequantization
"""

import math

import networkx as nx
import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.distributions import AffineTransform, ComposeTransform, SigmoidTransform

from ppgen.base import GenerativeModel, register
from ppgen.errors import PPGenError
from ppgen.flows import (
    ActNorm,
    AffineCoupling2d,
    InvertibleConv1x1,
    Split,
    Squeeze,
    UniformDequantizer,
    VariationalDequantizer,
)

__all__ = ["Glow"]


@register
class Glow(GenerativeModel):
    r"""Multi-scale flow on dequantized K-level images (N, C, H, W), reporting the dequantization bound.

    ``log_prob(x)`` is a one-sample estimate of the dequantization bound (a lower bound on
    log P(x) in expectation); ``estimate_log_prob(x, k)`` is the tighter importance-weighted bound
    log (1/k) sum_i p(x + u_i) / q(u_i | x); ``continuous_log_prob(v)`` the exact density of v.

    Arguments:
        spec: binary or categorical:K images; H and W divisible by 2**levels.
        levels: the number of scales (each squeezes, runs its steps, then factors out half the channels).
        steps_per_level: flow steps (actnorm, invertible 1x1 convolution, affine coupling) per scale.
        hidden: the width of the coupling networks.
        dequantization: "uniform" or "variational".
        alpha: the margin of the logit preprocessing.

    Example:
        >>> import ppgen
        >>> m = ppgen.create("glow", ppgen.data.DataSpec("categorical:3", (1, 4, 4)), hidden=8)
        >>> m.sample(2).shape
        torch.Size([2, 1, 4, 4])
    """

    name = "glow"
    family = "flow"
    density = "lower-bound"
    kinds = ("binary", "categorical")
    images_only = True
    objective = "annealed-elbo"
    fit_defaults = {"epochs": 100, "batch_size": 64, "lr": 1e-3, "lr_decay": 0.97, "clip_norm": 50.0}

    def __init__(
        self,
        spec,
        levels: int = 2,
        steps_per_level: int = 4,
        hidden: int = 64,
        dequantization: str = "uniform",
        alpha: float = 0.05,
    ):
        super().__init__(spec)
        c, h, w = spec.event_shape
        if levels < 1 or h % 2**levels or w % 2**levels:
            raise PPGenError(
                f"glow: expected height and width divisible by 2**levels = {2**levels}, got {h}x{w}"
            )
        if dequantization not in ("uniform", "variational"):
            raise PPGenError(
                f"glow: dequantization must be 'uniform' or 'variational', got {dequantization!r}"
            )
        self.levels, self.steps_per_level, self.hidden, self.alpha = levels, steps_per_level, hidden, alpha
        self.num_categories = spec.num_categories
        self.dequantization = dequantization
        self.dequantizer = (
            UniformDequantizer()
            if dequantization == "uniform"
            else VariationalDequantizer(c, self.num_categories)
        )
        self.prior_u = UniformDequantizer()
        self.steps = nn.ModuleList()
        latent_shape = (4 * c, h // 2, w // 2)
        self.register_buffer("base_loc", torch.zeros(latent_shape))
        self.register_buffer("base_scale", torch.ones(latent_shape))
        for level in range(levels):
            channels = 4 * c * 2**level  # after this level's squeeze
            for _ in range(steps_per_level):
                self.steps.extend(
                    [
                        ActNorm(channels, event_dim=3),
                        InvertibleConv1x1(channels),
                        AffineCoupling2d(channels, hidden),
                    ]
                )

    # --- the flow of v = x + u --------------------------------------------------------------------
    def _level(self, level: int) -> ComposeTransform:
        k = 3 * self.steps_per_level
        parts = [Squeeze(), *self.steps[level * k : (level + 1) * k]]
        if level + 1 < self.levels:
            channels = 4 * self.spec.event_shape[0] * 2**level
            parts.append(Split(self._level(level + 1), keep=channels // 2))
        return ComposeTransform(parts)

    def normalizing_transform(self) -> ComposeTransform:
        r"""f: v in [0, K)^D -> z, (B, C, H, W) -> (B, 4C, H/2, W/2): logit preprocessing then the scales."""
        a, k = self.alpha, self.num_categories
        pre = [
            AffineTransform(a, (1 - 2 * a) / k, event_dim=3, cache_size=1),
            SigmoidTransform(cache_size=1).inv,
        ]
        return ComposeTransform(pre + [self._level(0)])

    def flow(self) -> dist.TransformedDistribution:
        r"""The distribution of the dequantized v: base N(0, I) pushed through f^{-1}."""
        base = dist.Normal(self.base_loc, self.base_scale).to_event(3)
        return dist.TransformedDistribution(base, [self.normalizing_transform().inv])

    # --- the Pyro program: u latent, v = x + u observed ---------------------------------------------
    def model(self, x=None, y=None):
        n = 1 if x is None else x.shape[0]
        with pyro.plate("data", n):
            if x is None:
                v = pyro.sample("x", self.flow())
                return v.floor().clamp(0, self.num_categories - 1)
            u = pyro.sample("u", self.prior_u(x))
            return pyro.sample("x", self.flow(), obs=x + u)

    def guide(self, x=None, y=None):
        if x is None:
            return
        with pyro.plate("data", x.shape[0]):
            pyro.sample("u", self.dequantizer(x))

    # --- densities and samples ----------------------------------------------------------------------
    def continuous_log_prob(self, v: Tensor) -> Tensor:
        r"""The exact log density of the dequantized variable: v (B, C, H, W) -> (B,)."""
        return self.flow().log_prob(v)

    def _bound_terms(self, x: Tensor, num_samples: int) -> Tensor:
        r"""log p(x + u_i) - log q(u_i | x) for u_i ~ q: (num_samples, B)."""
        terms = []
        for _ in range(num_samples):
            q = self.dequantizer(x)
            u = q.rsample()
            terms.append(self.continuous_log_prob(x + u) - q.log_prob(u))
        return torch.stack(terms)

    def log_prob(self, x, y=None):
        r"""A one-sample estimate of the dequantization bound E_q[log p(x + u) - log q(u | x)]: (B,) nats."""
        return self._bound_terms(self.check_input(x), 1)[0]

    def estimate_log_prob(self, x, num_samples: int = 100, y=None):
        r"""The importance-weighted dequantization bound with ``num_samples`` draws (tighter, still
        <= log P(x) in expectation)."""
        terms = self._bound_terms(self.check_input(x), num_samples)
        return torch.logsumexp(terms, 0) - math.log(num_samples)

    def evaluation_log_prob(self, x, y=None, num_samples: int = 1000):
        r"""The dequantization bound averaged over 8 draws of u per example, labelled "dequantized"."""
        return self._bound_terms(self.check_input(x), 8).mean(0), "dequantized"

    @torch.no_grad()
    def sample(self, n, y=None):
        v = self.flow().sample((n,))
        return v.floor().clamp(0, self.num_categories - 1)

    def graph(self):
        r"""z -> v -> x: the flow maps the latent z to the dequantized image v, and x = floor(v)."""
        g = nx.DiGraph()
        g.add_node("z", shape=tuple(self.base_loc.shape), latent=True)
        g.add_node("v", shape=tuple(self.spec.event_shape), latent=True)
        g.add_node("x", shape=tuple(self.spec.event_shape), observed=True)
        g.add_edges_from([("z", "v"), ("v", "x")])
        return g
