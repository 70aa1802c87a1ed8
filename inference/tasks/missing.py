"""Training with missing data: maximize the likelihood of the observed part, log p(x_o) = log sum p(x_o, x_h).

Missing entries are NaN in the data (``ppgen.data.from_tensor(x, kind, missing=True)``, ``ppgen train
--missing``). A model can be fit to such data when it can compute or bound log p(x_o), which it declares
by overriding :meth:`~ppgen.base.GenerativeModel.observed_log_prob`:

- ``independent``: log p(x_o) = sum_{i observed} log p(x_i), exact;
- ``mixture``: log p(x_o) = log sum_k pi_k prod_{i observed} p(x_i | k), exact (the missing factors sum
  to one);
- ``bayesnet``: exact, the missing entries enumerated out by Pyro (``obs_mask`` and variable elimination
  in ``ppgen.graph.program.log_marginal``); its gradient in the CPTs is the EM direction, so Adam on it
  reaches a (local) maximum of the observed-data likelihood;
- VAEs: the MIWAE bound (Mattei & Frellsen, 2019), log (1/K) sum_k p(x_o | z_k) p(z_k) / q(z_k | x~)
  with z_k ~ q(z | x~), x~ the data with missing entries set to zero, and p(x_o | z) the likelihood of
  the observed entries only.

The other families refuse with one line. Autoregressive models (MADE, NADE, PixelCNN, ...) among them:
log p(x_o) sums the chain rule over the missing entries, which is one pass only when every missing
entry comes after every observed one in the model's ordering; with MADE's order-agnostic masks one can
pick such an ordering per example, but then each example is scored by a different ordering, and the
orderings of a trained MADE are different models (their likelihoods disagree), so the sum would not be
the marginal likelihood of any one model. The loss is driven by a plain torch optimizer, as in
:func:`ppgen.fit`.

References:
    MIWAE: Deep Generative Modelling and Imputation of Incomplete Data Sets (Mattei & Frellsen, 2019),
    arXiv:1812.02633.
"""

import time
from dataclasses import replace

import torch
from torch import Tensor

from ppgen.data import Dataset
from ppgen.errors import PPGenError

__all__ = ["observed_log_prob", "supports_missing", "fit_missing"]


def supports_missing(model) -> str | None:
    r"""None if ``model`` can be fit to data with missing entries, else why not (one line).

    Asks the model's :meth:`~ppgen.base.GenerativeModel.observed_log_prob` for log p(x_o) of one example
    whose entries are all missing but the first; None there means the model cannot marginalize.
    """
    probe = torch.full((1, *model.spec.event_shape), float("nan"), device=model.device)
    probe.view(-1)[0] = 0.0
    with torch.no_grad():
        declared = model.observed_log_prob(probe) is not None
    if declared:
        return None
    return (
        f"{model.name} cannot train on data with missing entries: only models that marginalize them "
        "(independent, mixture, bayesnet, unconditional VAEs) do; see ppgen.inference.tasks.missing"
    )


def observed_log_prob(model, x: Tensor, num_samples: int = 1) -> Tensor:
    r"""log p(x_o) of each example (exact), or its MIWAE bound with K = ``num_samples`` (VAEs), (B,) nats.

    Arguments:
        model: a model that declares :meth:`~ppgen.base.GenerativeModel.observed_log_prob`.
        x: (B, *event_shape), NaN where an entry is missing.
        num_samples: K importance samples of the VAE bound.
    """
    out = model.observed_log_prob(x, num_samples)
    if out is None:
        raise PPGenError(supports_missing(model))
    return out


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
        model: a model that marginalizes missing entries (others raise :class:`~ppgen.errors.PPGenError`).
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
