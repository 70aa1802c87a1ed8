"""Completion (inpainting): sample the hidden pixels of an input given the observed ones, x_h ~ p(x_h | x_o).

Each family gets the best sampler it allows, and every completion says which it used:

- Bayes nets: exact conditional samples by evidence (forward filtering, backward sampling in
  ``ppgen.graph``).
- finite mixtures: exact: the component from p(k | x_o) ∝ pi_k p(x_o | k), then x_h ~ p(x_h | k).
- autoregressive models: exact when the observed pixels come first in the model's ordering (for MADE,
  in any of its mask sets' orderings); otherwise sampling-importance-resampling with K particles whose
  proposal is the chain rule run with the observed pixels clamped, q(x_h) = prod_{i hidden}
  p(x_i | x_<i), and weights w = prod_{i observed} p(x_i | x_<i) (so that q w = p(x_h, x_o)).
- VAEs: Metropolis-within-Gibbs (Mattei & Frellsen, 2018): z is moved by an independence
  Metropolis-Hastings step targeting p(z | x_o, x_h) with the encoder's q(z | x_o, x_h) as proposal,
  then x_h ~ p(x_h | z).
- GANs: z is optimized so that G(z) matches the observed pixels; x_h is read off G(z) (not a sample
  of any conditional: the model has no density).
- DDPM: RePaint (Lugmayr et al., 2022): at every reverse step the observed pixels are replaced by a
  forward-noised copy of their values, x_{t-1} = m * q(x_{t-1} | x_0 = x_o) + (1 - m) * p(x_{t-1} | x_t),
  and each step is resampled (x_t drawn again from q(x_t | x_{t-1}), then the step repeated) a few times
  so that the hidden part harmonizes with the observed one. Approximate: replacement is not exact
  conditioning.
- score models (SMLD) and energy-based models: Langevin dynamics on the hidden pixels with the observed
  ones clamped (``ppgen.estimators.langevin``): annealed Langevin with the learned score, the clamped
  pixels noised at each level (Song & Ermon, 2019), or SGLD on the energy. The chain runs on a copy whose
  observed entries are replaced by the clamped values before every score or energy call, so the hidden
  entries follow the conditional p(x_h | x_o) and the observed ones never move.
- any other model with an exact or unnormalized density on discrete data: Gibbs sampling, each hidden
  pixel in turn from p(x_i | x_-i) ∝ p(x).

References:
    MIWAE: Deep Generative Modelling and Imputation of Incomplete Data Sets (Mattei & Frellsen, 2019),
    arXiv:1812.02633; Leveraging the Exact Likelihood of Deep Latent Variable Models (Mattei &
    Frellsen, 2018), arXiv:1802.04826; RePaint: Inpainting using Denoising Diffusion Probabilistic
    Models (Lugmayr et al., 2022), arXiv:2201.09865; Generative Modeling by Estimating Gradients of the
    Data Distribution (Song & Ermon, 2019), arXiv:1907.05600.
"""

import math
from pathlib import Path

import numpy as np
import pyro.distributions as dist
import torch
from torch import Tensor

from ppgen.errors import PPGenError
from ppgen.estimators.langevin import annealed_langevin, sgld
from ppgen.inference.tasks.anomaly import model_log_density

__all__ = ["MASKS", "hidden_mask", "complete", "completion_metrics"]

MASKS = ("top", "bottom", "left", "right", "random:P", "FILE (.npy/.pt, True = hidden)")


def _region(name: str, event_shape: tuple) -> Tensor:
    hidden = torch.zeros(event_shape, dtype=torch.bool)
    if len(event_shape) == 3:
        h, w = event_shape[1:]
        view = {
            "top": (slice(None), slice(None, h // 2)),
            "bottom": (slice(None), slice(h // 2, None)),
            "left": (slice(None), slice(None), slice(None, w // 2)),
            "right": (slice(None), slice(None), slice(w // 2, None)),
        }[name]
    else:
        d = math.prod(event_shape)
        half = {"top": slice(None, d // 2), "left": slice(None, d // 2)}.get(name, slice(d // 2, None))
        return hidden.flatten().index_fill_(0, torch.arange(d)[half], True).reshape(event_shape)
    hidden[view] = True
    return hidden


def hidden_mask(mask, event_shape: tuple, n: int, seed: int = 0) -> Tensor:
    r"""The pixels to fill in, (n, *event_shape) bool, True = hidden.

    Arguments:
        mask: "top", "bottom", "left" or "right" (that half hidden; for flat data the first or second
            half of the dimensions); "random:P" (each pixel hidden with probability P, independently per
            example); a path to a .npy/.pt file, or a tensor, of shape event_shape or (n, *event_shape),
            True or 1 = hidden.
        event_shape: the shape of one example.
        n: the number of examples.
        seed: the seed of random masks.
    """
    event_shape = tuple(event_shape)
    if isinstance(mask, str) and mask in ("top", "bottom", "left", "right"):
        out = _region(mask, event_shape).expand(n, *event_shape)
    elif isinstance(mask, str) and mask.startswith("random:"):
        try:
            p = float(mask.split(":", 1)[1])
        except ValueError:
            p = -1.0
        if not 0 < p < 1:
            raise PPGenError(f"mask {mask!r}: expected random:P with 0 < P < 1")
        out = torch.rand((n, *event_shape), generator=torch.Generator().manual_seed(seed)) < p
    else:
        if isinstance(mask, (str, Path)):
            path = Path(mask)
            if path.suffix not in (".npy", ".pt") or not path.is_file():
                raise PPGenError(
                    f"unknown mask {str(mask)!r}; expected top, bottom, left, right, random:P or a .npy/.pt"
                )
            try:
                mask = np.load(path) if path.suffix == ".npy" else torch.load(path, weights_only=True)
            except (ValueError, OSError, RuntimeError) as e:
                raise PPGenError(f"cannot read mask file {path}: {str(e).splitlines()[0]}") from None
        mask = torch.as_tensor(mask)
        if mask.dtype != torch.bool and not ((mask == 0) | (mask == 1)).all():
            raise PPGenError("a mask tensor must hold bools or 0/1 values (1 = hidden)")
        mask = mask.bool()
        if tuple(mask.shape) not in (event_shape, (n, *event_shape)):
            raise PPGenError(
                f"mask of shape {tuple(mask.shape)}; expected {event_shape} or {(n, *event_shape)}"
            )
        out = mask.expand(n, *event_shape)
    if not out.reshape(n, -1).any(1).all():
        raise PPGenError("the mask hides no pixel of some example; nothing to complete")
    return out.clone()


# --- per-dimension log densities ---------------------------------------------------------------------
def _per_dim(likelihood: dist.TorchDistribution, x: Tensor) -> Tensor | None:
    r"""log p of each dimension, (B, *event_shape), for a product of per-dimension factors (else None)."""
    if isinstance(likelihood, dist.Independent):
        return likelihood.base_dist.log_prob(x)
    return None


def _choose(log_w: Tensor, generator=None) -> Tensor:
    r"""log weights (B, K) -> one index per row, drawn in proportion to the weights."""
    return torch.multinomial((log_w - log_w.logsumexp(1, keepdim=True)).exp(), 1, generator=generator)[:, 0]


def _is_prefix(observed: Tensor, order: Tensor) -> bool:
    r"""Whether, in every row of observed (B, D), the observed dimensions come first in ``order``."""
    in_order = observed[:, order].to(torch.int8)
    return not bool((in_order[:, 1:] > in_order[:, :-1]).any())


# --- the samplers ----------------------------------------------------------------------------------------
def _autoregressive(
    model, x: Tensor, hidden: Tensor, y, num_particles: int, generator
) -> tuple[Tensor, dict]:
    n = x.shape[0]
    observed = ~hidden.reshape(n, -1)
    x = torch.where(hidden, torch.zeros_like(x), x)
    for m in range(model.num_masks):
        model.use_mask(m)
        if _is_prefix(observed, model.ordering()):
            out = model.sequential(x, observed, y)
            per_dim = _per_dim(model.likelihood_from(model.conditionals(out, y)), out)
            log_po = None if per_dim is None else (per_dim.reshape(n, -1) * observed).sum(1).double()
            how = (
                "exact (observed pixels first in the ordering"
                + ("" if model.num_masks == 1 else f" of mask set {m}")
                + ")"
            )
            model.use_mask(0)
            return out, {"method": how, "log_p_observed": log_po, "log_p_observed_kind": "exact"}
    model.use_mask(0)
    k = num_particles
    xr = x.repeat_interleave(k, 0)
    obs_r = observed.repeat_interleave(k, 0)
    yr = None if y is None else y.repeat_interleave(k, 0)
    draws = model.sequential(xr, obs_r, yr)  # (B K, *event): hidden pixels from the clamped chain rule
    per_dim = _per_dim(model.likelihood_from(model.conditionals(draws, yr)), draws)
    if per_dim is None:
        raise PPGenError(f"{model.name}: importance resampling needs per-dimension conditionals")
    log_w = (per_dim.reshape(n * k, -1) * obs_r).sum(1).reshape(n, k)  # prod over observed p(x_i | x_<i)
    pick = _choose(log_w, generator)
    out = draws.reshape(n, k, *x.shape[1:])[torch.arange(n), pick]
    info = {
        "method": f"importance resampling, {k} particles (proposal: the chain rule, observed pixels clamped)",
        "log_p_observed": (log_w.logsumexp(1) - math.log(k)).double(),
        "log_p_observed_kind": f"is-{k} estimate",
    }
    return out, info


def _vae(model, x: Tensor, hidden: Tensor, y, steps: int, num_particles: int) -> tuple[Tensor, dict]:
    observed = ~hidden
    prior = model.prior()

    def log_joint(z, xc):  # log p(x, z) with the current completion
        return model.likelihood(z, y).log_prob(xc) + prior.log_prob(z)

    q = model.posterior(torch.where(hidden, torch.zeros_like(x), x), y)
    z = q.sample()
    xc = torch.where(hidden, model.likelihood(z, y).sample().to(x.dtype), x)
    accepted = 0.0
    for _ in range(steps):
        q = model.posterior(xc, y)
        z_new = q.sample()
        log_alpha = (log_joint(z_new, xc) - q.log_prob(z_new)) - (log_joint(z, xc) - q.log_prob(z))
        accept = torch.rand_like(log_alpha).log() < log_alpha
        accepted += float(accept.float().mean())
        z = torch.where(accept[:, None], z_new, z)
        xc = torch.where(hidden, model.likelihood(z, y).sample().to(x.dtype), x)
    # log p(x_o) by importance sampling with the masked likelihood and the last encoder as proposal
    q = model.posterior(xc, y)
    zs = q.sample((num_particles,))  # (K, B, L)
    lik = model.likelihood(zs, None if y is None else y.expand(num_particles, -1))
    per_dim = _per_dim(lik, x.expand(num_particles, *x.shape))
    log_po = None
    if per_dim is not None:
        log_obs = (per_dim * observed).flatten(2).sum(-1)  # (K, B)
        log_w = log_obs + prior.log_prob(zs) - q.log_prob(zs)
        log_po = (log_w.logsumexp(0) - math.log(num_particles)).double()
    info = {
        "method": f"Metropolis-within-Gibbs, {steps} steps (acceptance {accepted / max(steps, 1):.2f})",
        "log_p_observed": log_po,
        "log_p_observed_kind": f"iwae-{num_particles} (masked likelihood)",
    }
    return xc, info


def _gan(model, x: Tensor, hidden: Tensor, y, steps: int) -> tuple[Tensor, dict]:
    observed = (~hidden).to(x.dtype)
    levels = model.levels
    target = x / (levels - 1) if levels else model.standardize(x)  # what the generator's output is fit to
    z = torch.zeros(x.shape[0], model.latent_dim, device=x.device, requires_grad=True)
    opt = torch.optim.Adam([z], lr=0.05)
    with torch.enable_grad():
        for _ in range(steps):
            raw = model.generator(z, y if model.conditional else None)
            pred = torch.sigmoid(raw) if levels else raw
            loss = (((pred - target) ** 2) * observed).sum() + 0.01 * (z**2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    out = model.generate(z.detach(), y).detach()
    info = {
        "method": f"z optimized to the observed pixels, {steps} Adam steps (not a conditional sample)",
        "log_p_observed": None,
        "log_p_observed_kind": None,
    }
    return torch.where(hidden, out.to(x.dtype), x), info


def _repaint(model, x: Tensor, hidden: Tensor, resample: int) -> tuple[Tensor, dict]:
    s = model.schedule
    x0 = model.to_model_space(x)  # (B, *event): the observed values in the diffusion's space
    z = torch.randn_like(x0)
    for t in model.timesteps_for(None).tolist():  # T, ..., 1: RePaint runs the ancestral sampler
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        for r in range(resample):
            unknown = s.reverse_mean(z, tt, model.eps(z, tt))  # x_{t-1} ~ p(x_{t-1} | x_t), no noise at t = 1
            known = x0
            if t > 1:
                unknown = unknown + s.sigmas[t] * torch.randn_like(z)
                known = s.q_sample(x0, tt - 1, torch.randn_like(x0))  # x_{t-1} ~ q(x_{t-1} | x_0)
            prev = torch.where(hidden, unknown, known)
            if r + 1 < resample and t > 1:  # jump back: x_t ~ q(x_t | x_{t-1}), then the step again
                z = (1 - s.betas[t]).sqrt() * prev + s.betas[t].sqrt() * torch.randn_like(prev)
        z = prev
    out = model.finish(z)
    info = {
        "method": f"RePaint replacement, {model.T} steps x {resample} resamplings (approximate)",
        "log_p_observed": None,
        "log_p_observed_kind": None,
    }
    return torch.where(hidden, out.to(x.dtype), x), info


def _langevin(model, x: Tensor, hidden: Tensor) -> tuple[Tensor, dict]:
    u_obs = model.prepare(x)  # the clamped values in the model's working space

    def clamp(v: Tensor, observed_values: Tensor = u_obs) -> Tensor:
        return torch.where(hidden, v, observed_values)

    if model.density == "unnormalized":  # SGLD on E(x_h, x_o) as a function of x_h
        cfg = model.sampler
        start = model.noise_u(x.shape[0])
        v = sgld(
            lambda v: model.energy_u(clamp(v)),
            start,
            model.sample_steps,
            cfg["step_size"],
            cfg["noise_scale"],
            cfg["grad_clip"],
        )
        how = f"SGLD on the energy, observed pixels clamped, {model.sample_steps} steps (no mode jumps)"
    else:  # annealed Langevin; at each level the clamped pixels carry noise of that level
        level = {"sigma": None, "noisy": u_obs}

        def score(v: Tensor, sigma: Tensor) -> Tensor:
            if level["sigma"] is None or not torch.equal(level["sigma"], sigma):
                level["sigma"] = sigma
                noise = torch.randn_like(u_obs) * sigma.reshape(-1, *([1] * (u_obs.ndim - 1)))
                level["noisy"] = u_obs + noise
            return torch.where(hidden, model.score_u(clamp(v, level["noisy"]), sigma), 0.0)

        start = model.sigmas[0] * torch.randn_like(u_obs)
        v = annealed_langevin(
            score, start, model.sigmas, model.steps_per_sigma, model.step_ratio, model.denoise
        )
        how = (
            f"annealed Langevin, observed pixels clamped (noised per level), {model.num_sampling_steps} steps"
        )
    out = model.standardize.inverse(clamp(v))
    info = {"method": how, "log_p_observed": None, "log_p_observed_kind": None}
    return torch.where(hidden, out.to(x.dtype), x), info


def _gibbs(model, x: Tensor, hidden: Tensor, y, sweeps: int, generator) -> tuple[Tensor, dict]:
    k = model.spec.num_categories
    n = x.shape[0]
    flat_hidden = hidden.reshape(n, -1)
    xc = torch.where(hidden, torch.randint_like(x, k), x)
    values = torch.arange(k, dtype=x.dtype, device=x.device)
    for _ in range(sweeps):
        for d in torch.nonzero(flat_hidden.any(0)).flatten().tolist():
            cands = xc.reshape(n, -1).repeat(k, 1)  # (K B, D)
            cands[:, d] = values.repeat_interleave(n)
            lp = model.log_prob(cands.reshape(k * n, *x.shape[1:]), None if y is None else y.repeat(k))
            pick = _choose(lp.reshape(k, n).T, generator)
            flat = xc.reshape(n, -1)
            flat[:, d] = torch.where(flat_hidden[:, d], values[pick], flat[:, d])
    info = {"method": f"Gibbs sampling on log p(x), {sweeps} sweeps"}
    return xc, info | {"log_p_observed": None, "log_p_observed_kind": None}


@torch.no_grad()
def complete(
    model,
    x: Tensor,
    hidden: Tensor,
    y: Tensor | None = None,
    num_particles: int = 64,
    steps: int = 100,
    seed: int | None = None,
    resample: int = 2,
) -> tuple[Tensor, dict]:
    r"""Fills the hidden pixels of x with a draw given the observed ones.

    Arguments:
        model: a fitted model, put in eval mode.
        x: (B, *event_shape); the values of hidden pixels are ignored.
        hidden: bool, (B, *event_shape) or (*event_shape); True = to fill in (see :func:`hidden_mask`).
        y: (B,) labels for conditional models (required by them).
        num_particles: K of importance resampling and of the log p(x_o) estimates.
        steps: Metropolis-within-Gibbs steps (VAEs), Adam steps (GANs); Gibbs sweeps are steps // 20 + 1.
        seed: seeds torch's generator for the draw (None: the global state).
        resample: RePaint's passes per reverse step (ddpm; 1 = plain replacement, each extra pass one
            jump back and one more network call per step).

    Returns:
        the completed (B, *event_shape) tensor (observed pixels unchanged), and
        {"method": how it was drawn, "log_p_observed": log p(x_o) (B,) or None, "log_p_observed_kind"}.
    """
    if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
        raise PPGenError(f"resample must be a positive integer, got {resample!r}")
    if seed is not None:
        torch.manual_seed(seed)
    model.eval()
    shape = tuple(model.spec.event_shape)
    if not isinstance(x, Tensor) or tuple(x.shape[1:]) != shape:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise PPGenError(f"{model.name}: expected x of shape (B, {', '.join(map(str, shape))}), got {got}")
    hidden = torch.as_tensor(hidden, device=x.device)
    if hidden.dtype != torch.bool or tuple(hidden.shape[-len(shape) :]) != shape:
        raise PPGenError(f"{model.name}: expected a bool hidden mask of shape {shape} or (B, *{shape})")
    hidden = hidden.expand_as(x).to(model.device)
    x = x.to(model.device).float()
    x = torch.where(hidden, torch.zeros_like(x), x)
    if model.conditional:
        if y is None:
            raise PPGenError(f"{model.name} is conditional: completion needs the labels y")
        y = torch.as_tensor(y, device=model.device).long()
    else:
        y = None
    exact = model.conditional_sample(x, hidden, y)
    if exact is not None:
        return exact
    if model.completion == "chain-rule":
        return _autoregressive(model, x, hidden, y, num_particles, None)
    if model.completion == "latent-mcmc":
        return _vae(model, x, hidden, y, steps, num_particles)
    if model.completion == "latent-fit":
        return _gan(model, x, hidden, y, steps)
    if model.completion == "replacement":
        return _repaint(model, x, hidden, resample)
    if model.completion == "langevin":
        return _langevin(model, x, hidden)
    if model.density in ("exact", "unnormalized") and model.spec.num_categories:
        return _gibbs(model, x, hidden, y, steps // 20 + 1, None)
    raise PPGenError(f"{model.name}: no completion method for a {model.density} {model.family} model")


@torch.no_grad()
def completion_metrics(
    model, truth: Tensor, completed: Tensor, hidden: Tensor, info: dict, y=None, num_samples: int = 100
) -> dict:
    r"""How good a completion is.

    Returns:
        {"pixel_accuracy": the fraction of hidden pixels equal to the truth (discrete data) or None,
        "rmse": the root mean squared error over hidden pixels, "conditional_nll": the mean of
        -log p(x_h | x_o) = log p(x_o) - log p(x) over the examples, in nats, where the model gives both
        terms (else None), "conditional_nll_kind": "exact" or what estimates entered}.
    """
    truth, completed = truth.to(completed.device).float(), completed.float()
    hidden = hidden.to(completed.device).expand_as(truth)
    diff = (completed - truth)[hidden]
    out = {
        "pixel_accuracy": float((diff == 0).float().mean()) if model.spec.num_categories else None,
        "rmse": float(diff.pow(2).mean().sqrt()),
        "conditional_nll": None,
        "conditional_nll_kind": None,
    }
    log_po = info.get("log_p_observed")
    if log_po is not None and model.density in ("exact", "lower-bound"):
        y = None if not model.conditional else torch.as_tensor(y, device=model.device)
        log_px, kind = model_log_density(model, truth.to(model.device), y, num_samples=num_samples)
        out["conditional_nll"] = float((log_po.cpu() - log_px.double().cpu()).mean())
        both = {info["log_p_observed_kind"], kind}
        out["conditional_nll_kind"] = (
            "exact"
            if both == {"exact"}
            else " - ".join([f"log p(x_o): {info['log_p_observed_kind']}", f"log p(x): {kind}"])
        )
    return out
