"""Structure through independence: one factor per dimension, n parameters for n binary pixels."""

import math

import networkx as nx
import pyro
import torch
from torch import nn
from torch.nn import functional as F

from ppgen.base import GenerativeModel, register
from ppgen.graph.dag import variable_names
from ppgen.likelihoods import factorized

__all__ = ["Independent"]


@register
class Independent(GenerativeModel):
    r"""p(x) = prod_i p(x_i): a Bernoulli, categorical or Gaussian factor per dimension.

    Fit by maximum likelihood in closed form (counting), with add-``smoothing`` pseudo-counts for
    discrete data (1 = Laplace's rule; 0 = the plain MLE).

    Arguments:
        spec: the data spec.
        smoothing: pseudo-count per category.

    Example:
        >>> import ppgen, torch
        >>> data = ppgen.data.from_tensor(torch.tensor([[0., 1.], [1., 1.]]), kind="binary")
        >>> m = ppgen.create("independent", data, smoothing=0.0)
        >>> _ = ppgen.fit(m, data, progress=False)
        >>> m.log_prob(torch.tensor([[1., 1.]])).exp().detach()  # p(x1 = 1) p(x2 = 1) = 0.5 * 1
        tensor([0.5000])
    """

    name = "independent"
    family = "graphical"
    density = "exact"
    objective = "counting"
    fit_defaults = {"epochs": 1, "batch_size": 4096, "lr": 0.0}
    # quick mode: the closed-form fit (nothing to tune); patches-rgb is the colour baseline (issue 19)
    quick_presets = {"patches-rgb": {"config": {}, "fit": {"epochs": 1}}}

    def __init__(self, spec, smoothing: float = 1.0):
        super().__init__(spec)
        self.smoothing = smoothing
        shape = tuple(spec.event_shape)
        if spec.kind == "binary":
            self.params = nn.Parameter(torch.zeros(shape))  # logits
        elif spec.base_kind == "categorical":
            self.params = nn.Parameter(torch.zeros(*shape, spec.num_categories))  # logits
        else:
            self.params = nn.Parameter(torch.zeros(2, *shape))  # loc, log scale

    def likelihood(self):
        return factorized(self.spec, self.params)

    def model(self, x=None, y=None):
        n = 1 if x is None else x.shape[0]
        with pyro.plate("data", n):
            return pyro.sample("x", self.likelihood(), obs=x)

    def log_prob(self, x, y=None):
        return self.likelihood().log_prob(self.check_input(x))

    def observed_log_prob(self, x, num_samples=1):
        r"""Exact log p(x_o) = sum_{i observed} log p(x_i), (B,); NaN marks a missing entry."""
        observed = ~torch.isnan(x)
        per_dim = self.likelihood().base_dist.log_prob(torch.nan_to_num(x))
        return torch.where(observed, per_dim, torch.zeros_like(per_dim)).flatten(1).sum(1)

    def sample(self, n, y=None):
        with torch.no_grad():
            return self.likelihood().sample((n,)).to(self.params.dtype)  # categorical draws are long

    # --- closed-form maximum likelihood (inference/counting.py) ---------------------------------
    def sufficient_statistics(self, x, y=None):
        stats = {"n": torch.tensor(float(x.shape[0]), device=x.device, dtype=torch.float64)}
        if self.spec.base_kind == "categorical":
            k = self.spec.num_categories
            stats["counts"] = nn.functional.one_hot(x.long(), k).sum(0).double()
        elif self.spec.kind == "binary":
            stats["counts"] = x.sum(0).double()
        else:
            stats["sum"], stats["sum_sq"] = x.sum(0).double(), (x.double() ** 2).sum(0)
        return stats

    def statistics_log_likelihood(self, stats):
        r"""sum_i log p(x_i) of the examples counted in ``stats`` under the current factors (float64)."""
        n, params = stats["n"], self.params.double()
        if self.spec.kind == "binary":
            c = stats["counts"]
            return (c * F.logsigmoid(params) + (n - c) * F.logsigmoid(-params)).sum()
        if self.spec.base_kind == "categorical":
            return (stats["counts"] * params.log_softmax(-1)).sum()
        loc, log_scale = params
        squares = stats["sum_sq"] - 2 * loc * stats["sum"] + n * loc**2  # sum_i (x_i - loc)^2
        return (-0.5 * squares * (-2 * log_scale).exp() - n * (log_scale + 0.5 * math.log(2 * math.pi))).sum()

    @torch.no_grad()
    def set_from_statistics(self, stats, smoothing=None):
        a = self.smoothing if smoothing is None else smoothing
        n = stats["n"]
        if self.spec.kind == "binary":
            p = (stats["counts"] + a) / (n + 2 * a)
            # finite logits: a pixel never (or always) on has p = 0 (1), and Bernoulli(logits=-inf).log_prob
            # is NaN; at -1e4 it is log p(0) = 0, log p(1) = -1e4
            self.params.copy_((p.log() - (-p).log1p()).clamp(-1e4, 1e4).float())
        elif self.spec.base_kind == "categorical":
            k = self.spec.num_categories
            self.params.copy_(((stats["counts"] + a) / (n + k * a)).log().float())
        else:
            mean = stats["sum"] / n
            var = (stats["sum_sq"] / n - mean**2).clamp_min(1e-12)
            self.params.copy_(torch.stack([mean, 0.5 * var.log()]).float())

    def graph(self):
        g = nx.DiGraph()
        g.add_nodes_from(variable_names(self.spec.dim))
        return g
