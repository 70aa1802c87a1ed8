"""Product likelihoods: one independent factor per dimension, of the data kind's family."""

import pyro.distributions as dist
import torch
from torch import Tensor
from torch.nn import functional as F

from ppgen.data import DataSpec

__all__ = ["factorized", "factorized_params_shape", "pairwise_log_prob"]


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


def pairwise_log_prob(spec: DataSpec, params: Tensor, x: Tensor) -> Tensor:
    r"""log p(x_b | params_k) for every example b and every set of factors k: (B, K).

    Equal to ``factorized(spec, params).log_prob(x.unsqueeze(1))``, but for discrete data one matrix
    product instead of a (B, K, D) tensor of per-pixel terms: a Bernoulli factor's log-likelihood is
    x l - softplus(l) (binary cross-entropy with logits, written out), a categorical one's is the one-hot
    x times log softmax(l). The mixture's training step on digits with 24 components took 0.78 ms with it,
    1.72 ms for the same loop with ``binary_cross_entropy_with_logits`` (one run, one thread).

    Arguments:
        spec: the data spec.
        params: (K, *factorized_params_shape(spec)).
        x: (B, *event_shape) data.
    """
    k = params.shape[0]
    if spec.kind == "binary":
        logits = params.reshape(k, -1)  # (K, D)
        return x.reshape(len(x), -1).to(logits.dtype) @ logits.T - F.softplus(logits).sum(-1)
    if spec.base_kind == "categorical":
        c = spec.num_categories
        log_p = params.reshape(k, -1, c).log_softmax(-1).reshape(k, -1)  # (K, D C)
        one_hot = F.one_hot(x.reshape(len(x), -1).long(), c).reshape(len(x), -1).to(log_p.dtype)
        return one_hot @ log_p.T
    return factorized(spec, params).log_prob(x.unsqueeze(1))
