"""The likelihood of a discrete Bayes net over the dimensions of one example (pixels in raster order)."""

import math

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import Tensor

__all__ = ["BayesNetLikelihood"]


class BayesNetLikelihood(dist.TorchDistribution):
    r"""p(x) = prod_i p(x_i | x_pa(i)) of a :class:`~ppgen.graph.BayesNet` whose variables are the
    flattened dimensions of ``event_shape`` (variable i is dimension i of ``x.reshape(-1)``).

    Arguments:
        net: the Bayes net; its variables must be ordered as the flattened event (``x0 ... x{D-1}``).
        event_shape: the shape of one example, e.g. (1, 8, 8); prod(event_shape) = number of variables.
    """

    arg_constraints = {}

    def __init__(self, net, event_shape, validate_args=None):
        self.net = net
        self.num_categories = max(net.cards.values())
        if math.prod(event_shape) != len(net.variables):
            raise ValueError(f"event shape {tuple(event_shape)} does not hold {len(net.variables)} variables")
        super().__init__(torch.Size(), torch.Size(event_shape), validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(
            constraints.integer_interval(0, self.num_categories - 1), len(self.event_shape)
        )

    def log_prob(self, value: Tensor) -> Tensor:
        r"""value: (*batch, *event_shape) -> (*batch,) exact log p(x)."""
        batch = value.shape[: value.dim() - len(self.event_shape)]
        return self.net.log_prob(value.reshape(-1, len(self.net.variables))).reshape(batch)

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        r"""Ancestral samples, (*sample_shape, *event_shape), as floats like the data."""
        n = math.prod(sample_shape)
        x = self.net.sample(max(n, 1))[:n]
        return x.to(self.net.dtype).reshape(*sample_shape, *self.event_shape)
