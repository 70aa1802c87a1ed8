"""The ArviZ bridge: true and amortized latent posteriors of a trained latent-variable model as InferenceData.

For chosen data points x_b this module gives
- the true posterior p(z | x_b) by Pyro's NUTS on the trained decoder (several chains, for R-hat);
- the guide q(z | x_b) as draws with their importance weights p(x_b, z) / q(z | x_b) and the PSIS
  k-hat per point (ArviZ has no group for variational posteriors; the weights make them checkable);
- the inference gaps of Cremer et al.: log p(x) - ELBO = approximation gap (the best guide of the
  family, fitted to x_b alone, still misses p(z | x_b)) + amortization gap (the encoder misses that guide);
- posterior-collapse diagnostics: KL(q || p) per latent dimension and the number of active units.

Any model with a guide works, built-in VAEs and users' programs (:func:`ppgen.program`) alike, through the
protocol: ``model.model(x, y)`` and ``model.guide(x, y)`` with every latent site the guide samples inside the
per-example plate (``model.plate``, default "data"), whatever the sites' names and shapes. In InferenceData
each latent site is a variable of that name with dims ``(point, *event)``; the event dim is called
"latent" when the model has one latent site with one event dim (not itself called "latent"), else
``<site>_dim_<i>``.
:func:`inspect_point` puts them together for one data point (what ``ppgen inspect`` prints and draws).

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
from pyro.infer.autoguide.initialization import init_to_uniform
from pyro.infer.mcmc import MCMC, NUTS
from pyro.poutine.util import site_is_subsample
from torch import Tensor

from ppgen.errors import PPGenError
from ppgen.estimators.importance import elbo_estimate, log_importance_weights, log_marginal
from ppgen.inference.numpyro_nuts import has_numpyro_twin, numpyro_nuts_draws
from ppgen.seed import seed_everything

__all__ = [
    "BACKENDS",
    "nuts_backend",
    "nuts_posterior",
    "guide_posterior",
    "inference_gaps",
    "kl_per_dim",
    "active_units",
    "latent_sites",
    "latent_labels",
    "flatten_draws",
    "inspect_point",
]


BACKENDS = ("auto", "pyro", "numpyro")


def nuts_backend(model, backend: str = "auto") -> str:
    r"""The NUTS backend to use: "auto" is NumPyro where the model has a NumPyro twin (faster end to end,
    JIT included: ``benchmarks/numpyro_vs_pyro.py``), else Pyro; "numpyro" needs the twin.

    Raises:
        PPGenError: an unknown backend, or "numpyro" for a model without a twin.
    """
    if backend not in BACKENDS:
        raise PPGenError(f"unknown NUTS backend {backend!r}; expected one of: {', '.join(BACKENDS)}")
    twin = has_numpyro_twin(model)
    if backend == "numpyro" and not twin:
        raise PPGenError(
            f"{getattr(model, 'name', type(model).__name__)} has no NumPyro twin of its program; "
            "use --backend pyro"
        )
    return backend if backend != "auto" else ("numpyro" if twin else "pyro")


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
    x = model.check_input(x)
    if model.conditional:
        y = model.check_labels(y, x.shape[0])
    if getattr(model, "_ensure_discovered", None) is not None:
        model._ensure_discovered(x, y)
    return x, y


def _options(model) -> dict:
    r"""The per-example plate and plate nesting of the model's program (importance-sampling options)."""
    return {
        "plate": getattr(model, "plate", None) or "data",
        "max_plate_nesting": getattr(model, "max_plate_nesting", 1),
    }


@torch.no_grad()
def latent_sites(model, x: Tensor, y: Tensor | None = None) -> dict:
    r"""The latent sites the guide samples, in program order: {name: event shape per example}.

    Raises:
        PPGenError: the model has no guide over latent sites (nothing to compare NUTS with).
    """
    x, y = _check(model, x, y)
    trace = pyro.poutine.trace(model.guide).get_trace(x, y)
    sites = {
        name: tuple(site["value"].shape[1:])
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
    }
    if not sites:
        raise PPGenError(
            f"{getattr(model, 'name', type(model).__name__)} has no guided latent sites to inspect "
            "(its density is exact: no latent sites, or discrete ones summed out)"
        )
    return sites


def _dims(sites: dict) -> dict:
    r"""The InferenceData dims of each site: ("point", *event dims)."""
    if len(sites) == 1 and len(next(iter(sites.values()))) == 1 and "latent" not in sites:
        return {next(iter(sites)): ["point", "latent"]}
    return {name: ["point"] + [f"{name}_dim_{i}" for i in range(len(shape))] for name, shape in sites.items()}


def _coords(model, x: Tensor, point_ids) -> dict:
    ids = list(range(x.shape[0])) if point_ids is None else [int(i) for i in point_ids]
    if len(ids) != x.shape[0]:
        raise PPGenError(f"point_ids has {len(ids)} entries for {x.shape[0]} points")
    return {"point": ids, "pixel": list(range(x[0].numel()))}


def _observed(x: Tensor) -> dict:
    return {"x": x.reshape(x.shape[0], -1).detach().cpu().numpy()}


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
    backend: str = "pyro",
) -> az.InferenceData:
    r"""Draws from the true posterior p(z | x_b) of every latent site, the trained model held fixed, by NUTS.

    Pyro's NUTS runs on the model's program conditioned on x (constrained latents are sampled in the
    unconstrained space); with ``backend="numpyro"`` NumPyro's NUTS runs on the model's NumPyro twin
    instead (``ppgen.inference.numpyro_nuts``, same settings, jit-compiled). The B points are sampled
    jointly (their posteriors are independent: B samplers sharing one adapted step size and a diagonal
    mass matrix); the chains run one after another, each from its own uniform start on [-2, 2]
    (unconstrained) and seed, so that R-hat compares them.

    Arguments:
        model: a trained model with a guide (its parameters are held fixed).
        x: (B, *event_shape) the chosen points; y: (B,) labels for conditional models.
        num_samples, warmup_steps: draws kept and adaptation steps, per chain.
        num_chains: chains (>= 2 for R-hat).
        seed: the seed of chain c is ``seed + c``.
        point_ids: the coordinates of the points (e.g. their indices in the data set).
        backend: "pyro", or "numpyro" for a model with ``numpyro_model()`` (see :func:`nuts_backend`).

    Returns:
        InferenceData with one ``posterior`` variable per latent site (chain, draw, point, *event),
        ``sample_stats.diverging`` (chain, draw) and ``observed_data.x`` (point, pixel).
    """
    x, y = _check(model, x, y)
    if num_chains < 1 or num_samples < 1:
        raise PPGenError(f"num_chains and num_samples must be positive, got {num_chains} and {num_samples}")
    sites = latent_sites(model, x, y)
    draws, diverging = {name: [] for name in sites}, []
    was_training = model.training
    model.eval()
    if backend not in BACKENDS[1:]:
        raise PPGenError(f"unknown NUTS backend {backend!r}; expected 'pyro' or 'numpyro'")
    with frozen(model):
        if backend == "numpyro":
            draws, diverging = numpyro_nuts_draws(
                model, x, y, sites, num_samples, warmup_steps, num_chains, seed, max_tree_depth
            )
        for c in range(num_chains if backend == "pyro" else 0):
            pyro.set_rng_seed(seed + c)
            kernel = NUTS(
                model.model,
                max_plate_nesting=_options(model)["max_plate_nesting"],
                max_tree_depth=max_tree_depth,
                target_accept_prob=0.8,
                init_strategy=init_to_uniform(radius=2.0),
            )
            mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, disable_progbar=True)
            mcmc.run(x, y)
            samples = mcmc.get_samples()
            for name in sites:
                draws[name].append(samples[name].detach().cpu().double().numpy())  # (S, B, *event)
            flags = np.zeros(num_samples, dtype=bool)
            divergent = mcmc.diagnostics().get("divergences", {}).get("chain 0", [])
            flags[[i for i in divergent if i < num_samples]] = True
            diverging.append(flags)
    model.train(was_training)
    return az.from_dict(
        posterior={name: np.stack(v) for name, v in draws.items()},
        sample_stats={"diverging": np.stack(diverging)},
        observed_data=_observed(x),
        coords=_coords(model, x, point_ids),
        dims={**_dims(sites), "x": ["point", "pixel"]},
    )


@torch.no_grad()
def guide_posterior(
    model, x: Tensor, y: Tensor | None = None, num_samples: int = 1000, point_ids=None
) -> az.InferenceData:
    r"""The amortized guide q(z | x_b) as draws with importance weights and PSIS diagnostics.

    Arguments:
        model: a trained model with a guide.
        x: (B, *event_shape); y: (B,) labels for conditional models.
        num_samples: S draws per point.
        point_ids: the coordinates of the points.

    Returns:
        InferenceData with one ``posterior`` variable per latent site (chain = 1, draw, point, *event) drawn
        from q, and in ``sample_stats``: ``log_weight`` (chain, draw, point) = log p(x, z) - log q(z | x),
        ``weight`` (the self-normalized weights per point, which reweight q's draws towards p(z | x)),
        ``psis_khat`` (point): the Pareto k-hat of the weights (< 0.5 good, > 0.7 the guide is
        unreliable as a proposal), and ``log_marginal`` (point): the IWAE-S estimate of log p(x_b).
    """
    x, y = _check(model, x, y)
    sites = latent_sites(model, x, y)
    log_w, values = log_importance_weights(
        model.model, model.guide, x, y, num_samples=num_samples, sites=tuple(sites), **_options(model)
    )
    lw = log_w.double().cpu().numpy().T  # (B, S)
    _, khat = az.psislw(lw.copy())
    weights = np.exp(lw - np.logaddexp.reduce(lw, axis=1, keepdims=True))
    coords = _coords(model, x, point_ids)
    idata = az.from_dict(
        posterior={name: values[name].double().cpu().numpy()[None] for name in sites},  # (1, S, B, *event)
        sample_stats={"log_weight": lw.T[None], "weight": weights.T[None]},
        observed_data=_observed(x),
        coords=coords,
        dims={**_dims(sites), "log_weight": ["point"], "weight": ["point"], "x": ["point", "pixel"]},
    )
    log_px = np.logaddexp.reduce(lw, axis=1) - math.log(num_samples)
    idata.sample_stats["psis_khat"] = xr.DataArray(
        np.asarray(khat, dtype=float).reshape(-1), dims=["point"], coords={"point": coords["point"]}
    )
    idata.sample_stats["log_marginal"] = xr.DataArray(
        log_px, dims=["point"], coords={"point": coords["point"]}
    )
    return idata


def _optimal_local_params(model, x, y, steps: int, lr: float, particles: int):
    r"""The guide's local parameters fitted to each point alone (the encoder's output as the start), for
    models that expose them (``posterior_params`` / ``posterior_from_params``)."""
    (site,) = latent_sites(model, x, y)
    with torch.no_grad():
        start = model.posterior_params(x, y)
    free = {
        k: (v.clamp_min(1e-6).log() if k == "scale" else v).clone().requires_grad_(True)
        for k, v in start.items()
    }

    def params():
        return {k: (v.exp() if k == "scale" else v) for k, v in free.items()}

    def local_guide(x, y=None):
        with pyro.plate(_options(model)["plate"], x.shape[0]):
            pyro.sample(site, model.posterior_from_params(params()))

    optimizer = torch.optim.Adam(free.values(), lr=lr)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1 - t / steps)  # to 0: no noise floor
    for _ in range(steps):
        loss = -elbo_estimate(model.model, local_guide, x, y, num_samples=particles, **_options(model)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        decay.step()
    return local_guide


def _guide_parameters(model, x, y) -> list:
    r"""The parameters the guide's draws and densities depend on (found by autograd on its trace)."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    try:
        with torch.enable_grad():
            total = pyro.poutine.trace(model.guide).get_trace(x, y).log_prob_sum()
            grads = torch.autograd.grad(total, params, allow_unused=True)
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
    return [p for p, g in zip(params, grads) if g is not None]


def _refitted_guide_bounds(model, x, y, steps, lr, particles, elbo_samples, num_samples):
    r"""For each point alone, the guide's parameters refitted (the model's held fixed) from the trained ones:
    the ELBO and the IWAE estimate of that best guide of the family, (B,) each; the parameters restored."""
    options = _options(model)
    params = _guide_parameters(model, x, y)
    saved = [p.detach().clone() for p in params]
    elbos, log_pxs = [], []
    try:
        for b in range(x.shape[0]):
            xb, yb = x[b : b + 1], None if y is None else y[b : b + 1]
            for p in params:
                p.requires_grad_(True)
            optimizer = torch.optim.Adam(params, lr=lr)
            decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1 - t / steps)
            for _ in range(steps):
                loss = -elbo_estimate(
                    model.model, model.guide, xb, yb, num_samples=particles, **options
                ).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                decay.step()
            for p in params:
                p.requires_grad_(False)
            with torch.no_grad():
                elbos.append(
                    elbo_estimate(model.model, model.guide, xb, yb, num_samples=elbo_samples, **options)
                )
                log_pxs.append(
                    log_marginal(model.model, model.guide, xb, yb, num_samples=num_samples, **options)
                )
                for p, value in zip(params, saved):
                    p.copy_(value)
    finally:
        with torch.no_grad():
            for p, value in zip(params, saved):
                p.copy_(value)
    return torch.cat(elbos), torch.cat(log_pxs)


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
    ``elbo_amortized`` is the ELBO of the trained guide q(z | x); ``elbo_optimal`` the ELBO of the best
    guide of the same family for x alone, found by ``steps`` Adam steps from the trained guide: on the
    guide's local parameters (loc, scale, the flow's context) where the model exposes them
    (``posterior_params``), else on all the guide's parameters, refitted to each point alone (the
    better of the refit and the trained guide, which is where the refit starts: too few steps, or too
    large a step, can leave it worse).

    Returns:
        A dict of (B,) tensors: ``log_px``, ``elbo_amortized``, ``elbo_optimal``,
        ``approximation_gap`` = log_px - elbo_optimal, ``amortization_gap`` = elbo_optimal - elbo_amortized.
    """
    x, y = _check(model, x, y)
    options = _options(model)
    was_training = model.training
    model.eval()
    with frozen(model):
        with torch.no_grad():
            elbo_amortized = elbo_estimate(
                model.model, model.guide, x, y, num_samples=elbo_samples, **options
            )
            log_px = log_marginal(model.model, model.guide, x, y, num_samples=num_samples, **options)
        if model.latent_site is not None:  # a VAE: refit its local (loc, scale) parameters
            local_guide = _optimal_local_params(model, x, y, steps, lr, particles)
            with torch.no_grad():
                elbo_optimal = elbo_estimate(
                    model.model, local_guide, x, y, num_samples=elbo_samples, **options
                )
                best = log_marginal(model.model, local_guide, x, y, num_samples=num_samples, **options)
        else:
            elbo_optimal, best = _refitted_guide_bounds(
                model, x, y, steps, lr, particles, elbo_samples, num_samples
            )
            elbo_optimal = torch.maximum(
                elbo_optimal, elbo_amortized
            )  # the refit starts at the trained guide
        log_px = torch.maximum(log_px, best)
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


def latent_labels(sites: dict) -> list[str]:
    r"""Names of the flattened latent coordinates, in program order: ``z[0]``, ``latent[3]``, ``w[1,2]``."""
    labels = []
    for name, shape in sites.items():
        for index in np.ndindex(*shape) if shape else [()]:
            labels.append(f"{name}[{','.join(map(str, index))}]" if shape else name)
    return labels


def flatten_draws(idata: az.InferenceData, sites: dict, point: int = 0) -> np.ndarray:
    r"""The posterior draws of one point, every latent site flattened and concatenated: (chain * draw, D)."""
    parts = []
    for name in sites:
        v = idata.posterior[name].values  # (chain, draw, point, *event)
        parts.append(v[:, :, point].reshape(v.shape[0] * v.shape[1], -1))
    return np.concatenate(parts, axis=1)


@torch.no_grad()
def _latent_draws(model, x, y, num_samples: int) -> tuple[Tensor, Tensor]:
    r"""Draws of the flattened latents from the guide q(z | x) and from the prior p(z): (S, B, D) each."""
    sites = latent_sites(model, x, y)
    options = _options(model)
    _, values = log_importance_weights(
        model.model, model.guide, x, y, num_samples=num_samples, sites=tuple(sites), **options
    )
    guide = torch.cat([values[s].reshape(num_samples, x.shape[0], -1) for s in sites], -1)
    prior_model = pyro.plate("prior_draws", num_samples, dim=-options["max_plate_nesting"] - 1)(model.model)
    trace = pyro.poutine.trace(prior_model).get_trace(x, y)
    prior = torch.cat(
        [
            trace.nodes[s]["value"]
            .expand(num_samples, x.shape[0], *sites[s])
            .reshape(num_samples, x.shape[0], -1)
            for s in sites
        ],
        -1,
    )
    return guide, prior


def _gaussian_kl(mq, sq, mp, sp) -> Tensor:
    return (sp / sq).log() + 0.5 * (sq**2 + (mq - mp) ** 2) / sp**2 - 0.5


@torch.no_grad()
def kl_per_dim(model, x: Tensor, y: Tensor | None = None, num_samples: int = 256) -> Tensor:
    r"""E_x KL(q(z_u | x) || p(z_u)) for each latent coordinate u (every latent site flattened), (D,) nats.

    Of the Normal with q's per-dimension mean and variance against the prior's marginal p(z_u): where the
    model exposes its guide and prior as distributions (``posterior``, ``prior``: the VAEs), q's moments
    are exact, and the prior's marginal is used in closed form for a Normal prior, else (the VampPrior's
    mixture) by ``num_samples`` draws per point; for any other model (a user's program) both are the
    Normals matching the moments of ``num_samples`` draws from the guide and from the prior. Coordinates
    with KL near 0 have collapsed to the prior (the decoder ignores them).
    """
    x, y = _check(model, x, y)
    if not (hasattr(model, "posterior") and hasattr(model, "prior")):
        guide, prior = _latent_draws(model, x, y, num_samples)
        return _gaussian_kl(guide.mean(0), guide.std(0), prior.mean(0), prior.std(0)).mean(0)
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
def active_units(
    model, x: Tensor, y: Tensor | None = None, threshold: float = 0.01, num_samples: int = 64
) -> tuple[int, Tensor]:
    r"""Burda et al.'s active units: dimension u is active when Cov_x(E_q[z_u | x]) > ``threshold``.

    Returns:
        ``(count, variances)``: the number of active units and the (D,) variances across x of the guide's
        mean (exact where the model exposes ``posterior``, else by ``num_samples`` draws).
    """
    x, y = _check(model, x, y)
    if x.shape[0] < 2:
        raise PPGenError("active_units needs at least 2 data points")
    if hasattr(model, "posterior"):
        mean, _ = _moments(model.posterior(x, y))
    else:  # the guide's mean by Monte Carlo
        mean = _latent_draws(model, x, y, num_samples)[0].mean(0)
    var = mean.var(0)
    return int((var > threshold).sum()), var


def _khat_verdict(k: float) -> str:
    return "good" if k < 0.5 else "ok" if k < 0.7 else "the guide is an unreliable proposal"


def inspect_point(
    model,
    data,
    index: int,
    num_samples: int = 1000,
    warmup_steps: int = 500,
    num_chains: int = 2,
    gap_samples: int = 5000,
    gap_steps: int = 500,
    seed: int = 0,
    max_pair_dims: int = 8,
    backend: str = "auto",
) -> dict:
    r"""One data point's latent posterior: NUTS next to the guide, with ArviZ summaries, PSIS k-hat, the
    inference gaps and posterior-collapse diagnostics (the core of ``ppgen inspect``; figures are the app's).

    Arguments:
        model: a trained model with a guide over its latent sites (a VAE, a user's program, ...).
        data: the split to take the point from (and the collapse diagnostics' points, up to 1000).
        index: the example's index in ``data``.
        max_pair_dims: the pair plot's coordinates: all when there are at most this many, else this many
            with the largest KL to the prior.
        backend: NUTS in "pyro", "numpyro" (the model's NumPyro twin) or "auto" (:func:`nuts_backend`).

    Returns:
        A dict: ``text`` (the report), ``nuts`` and ``guide`` (InferenceData), ``idata`` (one InferenceData:
        NUTS's posterior and sample stats, the guide's draws and weights as the groups ``guide_posterior``
        and ``guide_stats``, the data point as ``observed_data``), ``sites`` ({name: event shape}),
        ``labels`` (the flattened coordinates' names), ``kl_per_dim``, ``pair_dims`` (indices into
        ``labels``), ``r_hat_max``, ``psis_khat``, ``gaps`` (floats, nats), ``active_units``.
    """
    if not 0 <= index < len(data):
        raise PPGenError(f"--index must be in [0, {len(data)}), got {index}")
    model.check_data(data)
    backend = nuts_backend(model, backend)
    seed_everything(seed)
    device = model.device
    x = data.x[index : index + 1].to(device)
    y = data.y[index : index + 1].to(device) if model.conditional else None
    sites = latent_sites(model, x, y)
    labels = latent_labels(sites)
    nuts = nuts_posterior(
        model,
        x,
        y,
        num_samples=num_samples,
        warmup_steps=warmup_steps,
        num_chains=num_chains,
        seed=seed,
        point_ids=[index],
        backend=backend,
    )
    guide = guide_posterior(model, x, y, num_samples=num_samples, point_ids=[index])
    gaps = {
        k: float(v[0])
        for k, v in inference_gaps(model, x, y, num_samples=gap_samples, steps=gap_steps).items()
    }
    n = min(len(data), 1000)
    xs = data.x[:n].to(device)
    ys = data.y[:n].to(device) if model.conditional else None
    kl = kl_per_dim(model, xs, ys)
    active, _ = active_units(model, xs, ys)
    names = list(sites)
    nuts_summary = az.summary(nuts, var_names=names)
    guide_summary = az.summary(guide, var_names=names, kind="stats")
    r_hat_max = float(max(float(az.rhat(nuts, var_names=[s])[s].max()) for s in names))
    khat = float(guide.sample_stats["psis_khat"].values[0])
    w = guide.sample_stats["weight"].values[0, :, 0]
    ess = float(1.0 / np.sum(w**2))
    divergences = int(nuts.sample_stats["diverging"].values.sum())
    order = [int(u) for u in torch.argsort(kl, descending=True)]
    pair_dims = list(range(len(labels))) if len(labels) <= max_pair_dims else order[:max_pair_dims]
    idata = nuts.copy()
    idata.add_groups(
        guide_posterior=guide.posterior, guide_stats=guide.sample_stats, warn_on_custom_groups=False
    )
    shapes = ", ".join(f"{s} {tuple(e)}" for s, e in sites.items())
    lines = [
        f"{model.name} on {data.name}[{index}]: latent sites {shapes}, {len(labels)} coordinates; "
        f"{active} active units (Cov_x E_q[z_u] > 0.01 over {n} points)",
        "KL(q || p) per latent coordinate, nats (largest first): "
        + ", ".join(f"{labels[u]}={float(kl[u]):.2f}" for u in order),
        "",
        f"true posterior p(z | x) by NUTS in {'NumPyro' if backend == 'numpyro' else 'Pyro'} ({num_chains} "
        f"chains x {num_samples} draws, {warmup_steps} warmup, {divergences} divergences):",
        nuts_summary.to_string(),
        f"max R-hat {r_hat_max:.4f}",
        "",
        f"guide q(z | x) ({num_samples} draws):",
        guide_summary.to_string(),
        f"PSIS k-hat of the importance weights p(x, z) / q(z | x): {khat:.3f} ({_khat_verdict(khat)}); "
        f"importance ESS {ess:.0f} of {num_samples}",
        "",
        "gaps (nats):",
        f"  {'log p(x) (IWAE-' + str(gap_samples) + ')':<26} {gaps['log_px']:.3f}",
        f"  ELBO, amortized guide      {gaps['elbo_amortized']:.3f}",
        f"  ELBO, best guide for x     {gaps['elbo_optimal']:.3f}",
        f"  approximation gap          {gaps['approximation_gap']:.3f}   (log p(x) - best ELBO)",
        f"  amortization gap           {gaps['amortization_gap']:.3f}   (best ELBO - amortized ELBO)",
    ]
    return {
        "text": "\n".join(lines),
        "nuts": nuts,
        "guide": guide,
        "idata": idata,
        "sites": sites,
        "labels": labels,
        "kl_per_dim": kl,
        "pair_dims": pair_dims,
        "r_hat_max": r_hat_max,
        "psis_khat": khat,
        "gaps": gaps,
        "active_units": active,
        "backend": backend,
        "x": x[0].detach().cpu(),
    }
