"""Training with missing data: maximize the likelihood of the observed part, log p(x_o) = log sum p(x_o, x_h).

Missing entries are NaN in the data (``ppgen.data.from_tensor(x, kind, missing=True)``). A model can be
fit to such data when it can compute or bound log p(x_o):

- ``independent``: log p(x_o) = sum_{i observed} log p(x_i), exact;
- ``mixture``: log p(x_o) = log sum_k pi_k prod_{i observed} p(x_i | k), exact (the missing factors sum
  to one);
- VAEs: the MIWAE bound (Mattei & Frellsen, 2019), log (1/K) sum_k p(x_o | z_k) p(z_k) / q(z_k | x~)
  with z_k ~ q(z | x~), x~ the data with missing entries set to zero, and p(x_o | z) the likelihood of
  the observed entries only.

Other families refuse with one line. The loss is driven by a plain torch optimizer, as in
:func:`ppgen.fit`.

References:
    MIWAE: Deep Generative Modelling and Imputation of Incomplete Data Sets (Mattei & Frellsen, 2019),
    arXiv:1812.02633.
"""

import math
import time
from dataclasses import replace

import torch
from torch import Tensor

from ppgen.data import Dataset
from ppgen.errors import PPGenError
from ppgen.likelihoods import factorized

__all__ = ["observed_log_prob", "supports_missing", "fit_missing"]


def supports_missing(model) -> str | None:
    r"""None if ``model`` can be fit to data with missing entries, else why not (one line)."""
    if hasattr(model, "weight_logits") and hasattr(model, "params"):
        return None
    if model.name == "independent" or all(hasattr(model, a) for a in ("posterior", "prior", "likelihood")):
        if model.density in ("exact", "lower-bound") and not getattr(model, "conditional", False):
            return None
    return (
        f"{model.name} cannot train on data with missing entries: only independent, mixture and "
        "(unconditional) VAEs marginalize them"
    )


def _masked_per_dim(per_dim: Tensor, observed: Tensor) -> Tensor:
    r"""sum over observed dimensions of per-dimension log densities (*, B, *event) -> (*, B)."""
    kept = torch.where(observed, per_dim, torch.zeros_like(per_dim))
    return kept.flatten(-len(observed.shape[1:])).sum(-1)


def observed_log_prob(model, x: Tensor, num_samples: int = 1) -> Tensor:
    r"""log p(x_o) of each example (exact), or its MIWAE bound with K = ``num_samples`` (VAEs), (B,) nats.

    Arguments:
        model: an independent, mixture or VAE model.
        x: (B, *event_shape), NaN where an entry is missing.
        num_samples: K importance samples of the VAE bound.
    """
    if (reason := supports_missing(model)) is not None:
        raise PPGenError(reason)
    observed = ~torch.isnan(x)
    filled = torch.where(observed, x, torch.zeros_like(x))
    if hasattr(model, "weight_logits"):
        per_dim = factorized(model.spec, model.params).base_dist.log_prob(
            filled.unsqueeze(1)
        )  # (B, K, *event)
        kept = torch.where(observed.unsqueeze(1), per_dim, torch.zeros_like(per_dim))
        log_obs = kept.flatten(2).sum(-1)  # (B, K): log p(x_o | k)
        return torch.logsumexp(log_obs + model.weight_logits.log_softmax(0), dim=1)
    if model.name == "independent":
        return _masked_per_dim(model.likelihood().base_dist.log_prob(filled), observed)
    q = model.posterior(filled)
    z = q.rsample((num_samples,))  # (K, B, L)
    per_dim = model.likelihood(z).base_dist.log_prob(filled.expand(num_samples, *filled.shape))
    log_w = _masked_per_dim(per_dim, observed) + model.prior().log_prob(z) - q.log_prob(z)  # (K, B)
    return log_w.logsumexp(0) - math.log(num_samples)


def fit_missing(
    model,
    data: Dataset,
    epochs: int = 50,
    batch_size: int = 128,
    lr: float = 1e-3,
    num_samples: int = 5,
    budget_seconds: float | None = None,
    generator: torch.Generator | None = None,
) -> list[float]:
    r"""Fits ``model`` by maximizing sum of log p(x_o) (exact, or the MIWAE bound with K = ``num_samples``).

    Arguments:
        model: an independent, mixture or VAE model (others raise :class:`~ppgen.errors.PPGenError`).
        data: the training split; NaN marks a missing entry.
        epochs, batch_size, lr: Adam's schedule.
        budget_seconds: stop after this many seconds of wall time.

    Returns:
        the mean training loss (-log p(x_o), or the negative bound) of each epoch, nats per example.
    """
    if (reason := supports_missing(model)) is not None:
        raise PPGenError(reason)
    x_all = data.x.to(model.device)
    if torch.isnan(x_all).flatten(1).all(1).any():
        raise PPGenError("some examples have every entry missing; drop them first")
    model.initialize(replace(data, x=torch.nan_to_num(data.x)))  # e.g. VampPrior pseudo-inputs, missing -> 0
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history, start = [], time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=generator).to(x_all.device)
        total = 0.0
        for idx in order.split(batch_size):
            loss = -observed_log_prob(model, x_all[idx], num_samples).mean()
            if not torch.isfinite(loss):
                raise PPGenError("training on missing data stopped: the loss is not finite")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / len(x_all))
        if budget_seconds is not None and time.perf_counter() - start > budget_seconds:
            break
    model.eval()
    return history
