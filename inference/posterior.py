"""The ArviZ bridge: true and amortized latent posteriors of a trained latent-variable model as InferenceData.

For chosen data points x_b this module gives
- the true posterior p(z | x_b) by Pyro's NUTS on the trained decoder (several chains, for R-hat);
- the guide q(z | x_b) as draws with their importance weights p(x_b, z) / q(z | x_b) and the PSIS
  k-hat per point (ArviZ has no group for variational posteriors; the weights make them checkable);
- the inference gaps of Cremer et al.: log p(x) - ELBO = approximation gap (the best guide of the
  family, fitted to x_b alone, still misses p(z | x_b)) + amortization gap (the encoder misses that guide);
- posterior-collapse diagnostics: KL(q || p) per latent dimension and the number of active units.

The model must follow the VAE protocol of ``ppgen.models.vae``: ``model(x, y)`` and ``guide(x, y)``
with the latent site "z" inside the plate "data", and ``posterior_params`` / ``posterior_from_params``.

References:
    | Inference Suboptimality in Variational Autoencoders (Cremer et al., 2018) https://arxiv.org/abs/1801.03558
    | Yes, but Did It Work?: Evaluating Variational Inference (Yao et al., 2018) https://arxiv.org/abs/1802.02538
    | Pareto Smoothed Importance Sampling (Vehtari et al., 2015) https://arxiv.org/abs/1507.02646
    | The No-U-Turn Sampler (Hoffman & Gelman, 2011) https://arxiv.org/abs/1111.4246
    | Importance Weighted Autoencoders (Burda et al., 2015) -- active units https://arxiv.org/abs/1509.00519
"""

import math
from contextlib import contextmanager

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import torch
import xarray as xr
from pyro.infer.mcmc import MCMC, NUTS
from torch import Tensor

from ppgen.errors import PPGenError
from ppgen.estimators.importance import elbo_estimate, log_importance_weights, log_marginal

__all__ = ["nuts_posterior", "guide_posterior", "inference_gaps", "kl_per_dim", "active_units"]


@contextmanager
def frozen(module: torch.nn.Module):
    r"""Turns off the gradients of every parameter of ``module`` for the duration (restored after)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _check(model, x: Tensor, y: Tensor | None):
    if model.latent_site != "z":
        raise PPGenError(f"{model.name} is not a latent-variable model with a guide over 'z'")
    x = model.check_input(x)
    return x, model.check_labels(y, x.shape[0])


def _coords(model, x: Tensor, point_ids) -> dict:
    ids = list(range(x.shape[0])) if point_ids is None else [int(i) for i in point_ids]
    if len(ids) != x.shape[0]:
        raise PPGenError(f"point_ids has {len(ids)} entries for {x.shape[0]} points")
    return {"point": ids, "latent": list(range(model.latent_dim)), "pixel": list(range(model.spec.dim))}


def nuts_posterior(
    model,
    x: Tensor,
    y: Tensor | None = None,
    num_samples: int = 1000,
    warmup_steps: int = 500,
    num_chains: int = 2,
    seed: int = 0,
    point_ids=None,
    max_tree_depth: int = 8,
) -> az.InferenceData:
    r"""Draws from the true posterior p(z | x_b) ∝ p(z) p(x_b | z) of the trained decoder by NUTS.

    NUTS runs on the potential -log p(z) - log p(x_b | z) of the model's prior and decoder (a plain
    torch function: no Pyro trace per gradient). The B points are sampled jointly (their posteriors are
    independent: B samplers sharing one adapted step size and a diagonal mass matrix); the chains run one
    after another, each from its own uniform start on [-2, 2]^L and seed, so that R-hat compares them.

    Arguments:
        model: a trained VAE-protocol model (its parameters are held fixed).
        x: (B, *event_shape) the chosen points; y: (B,) labels for conditional models.
        num_samples, warmup_steps: draws kept and adaptation steps, per chain.
        num_chains: chains (>= 2 for R-hat).
        seed: the seed of chain c is ``seed + c``.
        point_ids: the coordinates of the points (e.g. their indices in the data set).

    Returns:
        InferenceData with ``posterior.z`` (chain, draw, point, latent), ``sample_stats.diverging``
        (chain, draw) and ``observed_data.x`` (point, pixel).
    """
    x, y = _check(model, x, y)
    if num_chains < 1 or num_samples < 1:
        raise PPGenError(f"num_chains and num_samples must be positive, got {num_chains} and {num_samples}")

    def potential(params):  # -log p(x, z), summed over the independent points
        z = params["z"]
        return -(model.prior().log_prob(z) + model.likelihood(z, y).log_prob(x)).sum()

    draws, diverging = [], []
    was_training = model.training
    model.eval()
    with frozen(model):
        for c in range(num_chains):
            pyro.set_rng_seed(seed + c)
            start = (
                4 * torch.rand(x.shape[0], model.latent_dim, dtype=model.prior_loc.dtype, device=x.device) - 2
            )  # U(-2, 2)
            kernel = NUTS(potential_fn=potential, max_tree_depth=max_tree_depth, target_accept_prob=0.8)
            mcmc = MCMC(
                kernel,
                num_samples=num_samples,
                warmup_steps=warmup_steps,
                initial_params={"z": start},
                disable_progbar=True,
            )
            mcmc.run()
            draws.append(mcmc.get_samples()["z"].detach().cpu().double().numpy())  # (S, B, L)
            flags = np.zeros(num_samples, dtype=bool)
            divergent = mcmc.diagnostics().get("divergences", {}).get("chain 0", [])
            flags[[i for i in divergent if i < num_samples]] = True
            diverging.append(flags)
    model.train(was_training)
    return az.from_dict(
        posterior={"z": np.stack(draws)},
        sample_stats={"diverging": np.stack(diverging)},
        observed_data={"x": x.reshape(x.shape[0], -1).cpu().numpy()},
        coords=_coords(model, x, point_ids),
        dims={"z": ["point", "latent"], "x": ["point", "pixel"]},
    )


@torch.no_grad()
def guide_posterior(
    model, x: Tensor, y: Tensor | None = None, num_samples: int = 1000, point_ids=None
) -> az.InferenceData:
    r"""The amortized guide q(z | x_b) as draws with importance weights and PSIS diagnostics.

    Arguments:
        model: a trained VAE-protocol model.
        x: (B, *event_shape); y: (B,) labels for conditional models.
        num_samples: S draws per point.
        point_ids: the coordinates of the points.

    Returns:
        InferenceData with ``posterior.z`` (chain = 1, draw, point, latent) drawn from q, and in
        ``sample_stats``: ``log_weight`` (chain, draw, point) = log p(x, z) - log q(z | x),
        ``weight`` (the self-normalized weights per point, which reweight q's draws towards p(z | x)),
        ``psis_khat`` (point): the Pareto k-hat of the weights (< 0.5 good, > 0.7 the guide is
        unreliable as a proposal), and ``log_marginal`` (point): the IWAE-S estimate of log p(x_b).
    """
    x, y = _check(model, x, y)
    log_w, values = log_importance_weights(
        model.model, model.guide, x, y, num_samples=num_samples, sites=("z",)
    )
    lw = log_w.double().cpu().numpy().T  # (B, S)
    _, khat = az.psislw(lw.copy())
    weights = np.exp(lw - np.logaddexp.reduce(lw, axis=1, keepdims=True))
    coords = _coords(model, x, point_ids)
    idata = az.from_dict(
        posterior={"z": values["z"].double().cpu().numpy()[None]},  # (1, S, B, L)
        sample_stats={"log_weight": lw.T[None], "weight": weights.T[None]},
        observed_data={"x": x.reshape(x.shape[0], -1).cpu().numpy()},
        coords=coords,
        dims={
            "z": ["point", "latent"],
            "log_weight": ["point"],
            "weight": ["point"],
            "x": ["point", "pixel"],
        },
    )
    log_px = np.logaddexp.reduce(lw, axis=1) - math.log(num_samples)
    idata.sample_stats["psis_khat"] = xr.DataArray(
        np.asarray(khat, dtype=float).reshape(-1), dims=["point"], coords={"point": coords["point"]}
    )
    idata.sample_stats["log_marginal"] = xr.DataArray(
        log_px, dims=["point"], coords={"point": coords["point"]}
    )
    return idata


def _optimal_local_params(model, x, y, steps: int, lr: float, particles: int) -> dict:
    r"""The guide's local parameters fitted to each point alone (the encoder's output as the start)."""
    with torch.no_grad():
        start = model.posterior_params(x, y)
    free = {
        k: (v.clamp_min(1e-6).log() if k == "scale" else v).clone().requires_grad_(True)
        for k, v in start.items()
    }

    def params():
        return {k: (v.exp() if k == "scale" else v) for k, v in free.items()}

    def local_guide(x, y=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", model.posterior_from_params(params()))

    optimizer = torch.optim.Adam(free.values(), lr=lr)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1 - t / steps)  # to 0: no noise floor
    for _ in range(steps):
        loss = -elbo_estimate(model.model, local_guide, x, y, num_samples=particles).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        decay.step()
    return local_guide


def inference_gaps(
    model,
    x: Tensor,
    y: Tensor | None = None,
    num_samples: int = 5000,
    elbo_samples: int = 1000,
    steps: int = 500,
    lr: float = 1e-2,
    particles: int = 32,
) -> dict:
    r"""log p(x) - ELBO split into the approximation gap and the amortization gap, per point, in nats.

    ``log_px`` is the larger of the IWAE-K estimates (K = ``num_samples``) under the amortized and the
    per-point optimized guide (each a stochastic lower bound on log p(x) that tightens with K);
    ``elbo_amortized`` is the ELBO of the encoder's q(z | x); ``elbo_optimal`` the ELBO of the best
    guide of the same family for x alone, found by ``steps`` Adam steps on the guide's local
    parameters (loc, scale, and the flow's context for IAF guides) from the encoder's output.

    Returns:
        A dict of (B,) tensors: ``log_px``, ``elbo_amortized``, ``elbo_optimal``,
        ``approximation_gap`` = log_px - elbo_optimal, ``amortization_gap`` = elbo_optimal - elbo_amortized.
    """
    x, y = _check(model, x, y)
    was_training = model.training
    model.eval()
    with frozen(model):
        local_guide = _optimal_local_params(model, x, y, steps, lr, particles)
        with torch.no_grad():
            elbo_amortized = elbo_estimate(model.model, model.guide, x, y, num_samples=elbo_samples)
            elbo_optimal = elbo_estimate(model.model, local_guide, x, y, num_samples=elbo_samples)
            log_px = torch.maximum(
                log_marginal(model.model, model.guide, x, y, num_samples=num_samples),
                log_marginal(model.model, local_guide, x, y, num_samples=num_samples),
            )
    model.train(was_training)
    return {
        "log_px": log_px,
        "elbo_amortized": elbo_amortized,
        "elbo_optimal": elbo_optimal,
        "approximation_gap": log_px - elbo_optimal,
        "amortization_gap": elbo_optimal - elbo_amortized,
    }


def _moments(q: dist.Distribution, num_samples: int = 256) -> tuple[Tensor, Tensor]:
    try:
        return q.mean, q.stddev
    except NotImplementedError:
        z = q.sample((num_samples,))
        return z.mean(0), z.std(0)


@torch.no_grad()
def kl_per_dim(model, x: Tensor, y: Tensor | None = None, num_samples: int = 256) -> Tensor:
    r"""E_x KL(q(z_u | x) || p(z_u)) for each latent dimension u, (L,) nats.

    Of the Normal with q's per-dimension mean and variance (exact for Normal guides) against the prior's
    marginal p(z_u): in closed form for a Normal prior, else (the VampPrior's mixture) by ``num_samples``
    draws per point. Dimensions with KL near 0 have collapsed to the prior (the decoder ignores them).
    """
    x, y = _check(model, x, y)
    mean, sd = _moments(model.posterior(x, y))  # (B, L)
    prior = model.prior()
    if isinstance(prior, dist.Independent) and isinstance(prior.base_dist, dist.Normal):
        p_mean, p_sd = prior.base_dist.loc, prior.base_dist.scale
        kl = (p_sd / sd).log() + 0.5 * (sd**2 + (mean - p_mean) ** 2) / p_sd**2 - 0.5
        return kl.mean(0)
    q = dist.Normal(mean, sd)
    z = q.sample((num_samples,))  # (S, B, L)
    return (q.log_prob(z) - prior.marginals().log_prob(z)).mean((0, 1))


@torch.no_grad()
def active_units(model, x: Tensor, y: Tensor | None = None, threshold: float = 0.01) -> tuple[int, Tensor]:
    r"""Burda et al.'s active units: dimension u is active when Cov_x(E_q[z_u | x]) > ``threshold``.

    Returns:
        ``(count, variances)``: the number of active units and the (L,) variances across x of the guide's
        mean.
    """
    x, y = _check(model, x, y)
    if x.shape[0] < 2:
        raise PPGenError("active_units needs at least 2 data points")
    mean, _ = _moments(model.posterior(x, y))
    var = mean.var(0)
    return int((var > threshold).sum()), var
