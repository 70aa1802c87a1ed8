"""Product likelihoods: one independent factor per dimension, of the data kind's family."""

import pyro.distributions as dist
import torch
from torch import Tensor

from ppgen.data import DataSpec

__all__ = ["factorized", "factorized_params_shape"]


def factorized_params_shape(spec: DataSpec) -> tuple:
    r"""The parameter shape per example: event_shape for binary (logits), (*event_shape, K) for
    categorical (logits), (2, *event_shape) for continuous (loc, log scale)."""
    shape = tuple(spec.event_shape)
    if spec.kind == "binary":
        return shape
    if spec.base_kind == "categorical":
        return (*shape, spec.num_categories)
    return (2, *shape)


def factorized(spec: DataSpec, params: Tensor) -> dist.TorchDistribution:
    r"""The product distribution over one example whose factors ``params`` parameterize.

    Arguments:
        spec: the data spec (kind and event shape).
        params: (*batch, *factorized_params_shape(spec)).

    Returns:
        A distribution with batch shape ``*batch`` and event shape ``spec.event_shape``: Bernoulli
        (logits), Categorical (logits) or Normal (loc, exp(log scale)) factors.
    """
    n = len(spec.event_shape)
    if spec.kind == "binary":
        return dist.Bernoulli(logits=params).to_event(n)
    if spec.base_kind == "categorical":
        return dist.Categorical(logits=params).to_event(n)
    loc, log_scale = torch.unbind(params, dim=-n - 1)
    return dist.Normal(loc, log_scale.exp()).to_event(n)
