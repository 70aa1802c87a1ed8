"""Latent posteriors against closed forms: the linear-Gaussian VAE is probabilistic PCA, where log p(x),
p(z | x), the best mean-field guide and the maximum-likelihood fit are all known exactly."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

import ppgen
from ppgen.data import DataSpec
from ppgen.inference.posterior import (
    active_units,
    guide_posterior,
    inference_gaps,
    kl_per_dim,
    nuts_posterior,
)

D, L = 5, 2


def ppca_data(n=400, angle=None, seed=0):
    r"""Data from a PPCA model with noise sd 0.3; with ``angle``, W = Q diag(2, 1.2) R(angle) (Q orthonormal,
    R a rotation): at angle 0 the columns are orthogonal and the true posterior covariance is diagonal."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(D, L, generator=g, dtype=torch.float64)
    if angle is not None:
        c, s = math.cos(angle), math.sin(angle)
        rotation = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
        w = torch.linalg.qr(w)[0] * torch.tensor([2.0, 1.2], dtype=torch.float64) @ rotation
    mu = torch.randn(D, generator=g, dtype=torch.float64)
    x = (
        torch.randn(n, L, generator=g, dtype=torch.float64) @ w.T
        + mu
        + 0.3 * torch.randn(n, D, generator=g, dtype=torch.float64)
    )
    return w, mu, x


def linear_vae(w=None, mu=None, sigma=0.3):
    m = ppgen.create(
        "vae",
        DataSpec("continuous", (D,)),
        latent_dim=L,
        hidden=(),
        decoder_scale="isotropic",
        prior="standard",
    ).double()
    if w is not None:
        with torch.no_grad():
            m.decoder[0].weight.copy_(w)
            m.decoder[0].bias.copy_(mu)
            m.log_scale.fill_(math.log(sigma))
    return m


def decoder_of(m):
    w, b = m.decoder[0].weight, m.decoder[0].bias
    return w, b, (2 * m.log_scale).exp().squeeze()


@torch.no_grad()
def exact_log_prob(m, x):
    w, b, s2 = decoder_of(m)
    return MultivariateNormal(b, w @ w.T + s2 * torch.eye(D, dtype=x.dtype)).log_prob(x)


@torch.no_grad()
def exact_posterior(m, x):
    r"""p(z | x) = N(M^-1 W^T (x - b), s2 M^-1) with M = W^T W + s2 I: means (B, L) and covariance (L, L)."""
    w, b, s2 = decoder_of(m)
    minv = torch.linalg.inv(w.T @ w + s2 * torch.eye(L, dtype=x.dtype))
    return (x - b) @ w @ minv.T, s2 * minv


@torch.no_grad()
def analytic_elbo(m, x):
    r"""E_q[log p(x | z)] - KL(q || p) for the amortized Normal guide, in closed form."""
    w, b, s2 = decoder_of(m)
    q = m.posterior_params(x)
    mean, var = q["loc"], q["scale"] ** 2
    recon = Normal(mean @ w.T + b, s2.sqrt()).log_prob(x).sum(-1) - 0.5 / s2 * (var @ (w**2).T).sum(-1)
    kl = 0.5 * (mean**2 + var - 1 - var.log()).sum(-1)
    return recon - kl


def set_encoder(m, loc_weight, loc_bias, scale):
    r"""q(z | x) = N(loc_weight x + loc_bias, diag scale^2) (a linear encoder)."""
    with torch.no_grad():
        m.to_posterior.weight.zero_()
        m.to_posterior.weight[:L] = loc_weight
        m.to_posterior.bias[:L] = loc_bias
        m.to_posterior.bias[L:] = torch.log(torch.expm1(scale - 1e-5))  # softplus^-1


def exact_encoder(m, perturb=0.0):
    r"""The encoder of the true posterior mean and marginal standard deviations, its mean shifted by
    ``perturb`` marginal standard deviations and its scales widened by a factor 1 + ``perturb``."""
    w, b, s2 = decoder_of(m)
    minv = torch.linalg.inv(w.T @ w + s2 * torch.eye(L, dtype=w.dtype))
    a, sd = minv @ w.T, (s2 * minv).diagonal().sqrt()
    set_encoder(m, a, -(a @ b) + perturb * sd, sd * (1 + perturb))


def ppca_mle_log_prob(x):
    r"""Tipping & Bishop's closed-form maximum likelihood of PPCA with L components, per point."""
    mean = x.mean(0)
    s = (x - mean).T @ (x - mean) / len(x)
    ev, u = torch.linalg.eigh(s)
    ev, u = ev.flip(0), u.flip(1)
    s2 = ev[L:].mean()
    w = u[:, :L] * (ev[:L] - s2).sqrt()
    return MultivariateNormal(mean, w @ w.T + s2 * torch.eye(D, dtype=x.dtype)).log_prob(x)


def test_elbo_is_below_exact_log_prob_for_every_point():
    w, mu, x = ppca_data(100)
    m = linear_vae(w, mu)
    for perturb in (0.0, 0.3, 1.0):  # from the best guide of the family to a poor one
        exact_encoder(m, perturb)
        exact, elbo = exact_log_prob(m, x), analytic_elbo(m, x)
        assert (elbo < exact).all()
    # the model's Monte Carlo ELBO (log_prob) estimates the closed-form one
    exact_encoder(m, 0.3)
    mc = m.log_prob(x, num_samples=2000)
    assert torch.allclose(mc, analytic_elbo(m, x), atol=0.1)


def test_iwae_increases_with_k_and_approaches_exact():
    w, mu, x = ppca_data(200)
    m = linear_vae(w, mu)
    exact_encoder(m, perturb=1.0)  # a guide that is off, but overlaps p(z | x)
    exact = float(exact_log_prob(m, x).mean())
    estimates = [float(m.estimate_log_prob(x, k).mean()) for k in (1, 2, 5, 20, 5000)]
    assert all(a < b for a, b in zip(estimates, estimates[1:])), estimates
    assert all(e < exact + 0.01 for e in estimates)
    assert exact - estimates[0] > 1.0  # the ELBO gap is real ...
    assert exact - estimates[-1] < 0.02  # ... and IWAE-5000 closes it


def test_optimal_linear_vae_matches_ppca_maximum_likelihood():
    _, _, x = ppca_data(300)
    mle = float(ppca_mle_log_prob(x).mean())
    data = ppgen.data.from_tensor(x.float(), kind="continuous")
    m = ppgen.create("vae", data, latent_dim=L, hidden=(), decoder_scale="isotropic", prior="standard")
    ppgen.fit(m, data, steps=250, batch_size=len(x), lr=0.03, progress=False)
    ppgen.fit(m, data, steps=150, batch_size=len(x), lr=0.003, progress=False)
    m = m.double()
    with torch.no_grad():
        exact = float(exact_log_prob(m, x).mean())
        elbo = float(analytic_elbo(m, x).mean())
    assert exact <= mle + 1e-6  # the MLE is the maximum
    assert mle - exact < 0.01  # the VAE reached it
    assert elbo <= exact and exact - elbo < 0.03  # and its ELBO is tight there (Lucas et al., 2019)


def test_nuts_matches_the_exact_posterior():
    w, mu, x = ppca_data(3)
    m = linear_vae(w, mu)
    idata = nuts_posterior(m, x, num_samples=200, warmup_steps=150, num_chains=2, point_ids=[7, 8, 9])
    z = idata.posterior["z"]
    assert z.shape == (2, 200, 3, L)
    assert list(idata.posterior.point.values) == [7, 8, 9]
    mean, cov = exact_posterior(m, x)
    sd = cov.diagonal().sqrt()
    draws = torch.as_tensor(z.values).reshape(-1, 3, L)
    assert ((draws.mean(0) - mean).abs() < 4 * sd / math.sqrt(100)).all()  # ESS >= 100 per chain pair
    assert ((draws.std(0) / sd - 1).abs() < 0.25).all()
    import arviz as az

    assert float(az.rhat(idata).z.max()) < 1.05


def test_guide_posterior_weights_recover_the_exact_posterior():
    w, mu, x = ppca_data(4)
    m = linear_vae(w, mu)
    exact_encoder(m, perturb=0.2)
    idata = guide_posterior(m, x, num_samples=4000)
    stats = idata.sample_stats
    assert stats["log_weight"].shape == (1, 4000, 4)
    assert stats["psis_khat"].shape == (4,) and np.isfinite(stats["psis_khat"].values).all()
    assert np.allclose(stats["weight"].values.sum(1), 1.0)
    assert torch.allclose(torch.as_tensor(stats["log_marginal"].values), exact_log_prob(m, x), atol=0.02)
    mean, cov = exact_posterior(m, x)
    z = torch.as_tensor(idata.posterior["z"].values[0])  # (S, B, L)
    weighted = (torch.as_tensor(stats["weight"].values[0])[..., None] * z).sum(0)
    assert torch.allclose(weighted, mean, atol=0.05)


@pytest.mark.parametrize("angle", [0.0, math.pi / 4])
def test_inference_gaps_match_closed_forms(angle):
    w, mu, x = ppca_data(3, angle=angle)
    m = linear_vae(w, mu)
    exact_encoder(m, perturb=0.3)
    gaps = inference_gaps(m, x, num_samples=2000, elbo_samples=20000, steps=300, lr=0.03)
    exact = exact_log_prob(m, x)
    assert torch.allclose(gaps["log_px"], exact, atol=0.03)
    # the best diagonal Gaussian for a Gaussian posterior with precision P has KL = (sum log P_ii - log det P)
    # / 2
    _, cov = exact_posterior(m, x)
    precision = torch.linalg.inv(cov)
    best_kl = 0.5 * (precision.diagonal().log().sum() - torch.logdet(precision))
    assert (best_kl > 0.1) == (angle > 0)  # correlated posteriors are out of the diagonal family's reach
    assert torch.allclose(gaps["approximation_gap"], best_kl.expand(3), atol=0.03)
    assert (gaps["amortization_gap"] > 0.1).all()  # the perturbed encoder misses the best guide
    amortized_kl = exact - analytic_elbo(m, x)
    assert torch.allclose(gaps["approximation_gap"] + gaps["amortization_gap"], amortized_kl, atol=0.05)


def test_kl_per_dim_and_active_units_find_a_collapsed_dimension():
    w, mu, x = ppca_data(100)
    m = linear_vae(w, mu)
    loc_weight = torch.zeros(L, D, dtype=torch.float64)
    loc_weight[0] = 0.5
    set_encoder(
        m, loc_weight, torch.zeros(L, dtype=torch.float64), torch.tensor([0.3, 1.0], dtype=torch.float64)
    )
    kl = kl_per_dim(m, x)
    mean0 = x @ loc_weight[0]
    expected0 = (0.5 * (mean0**2 + 0.09 - 1) - math.log(0.3)).mean()
    assert torch.allclose(kl, torch.stack([expected0, torch.zeros((), dtype=torch.float64)]), atol=1e-4)
    count, var = active_units(m, x)
    assert count == 1 and var[1] < 1e-12 and var[0] > 0.01


def test_kl_per_dim_against_the_vamp_prior_marginals():
    torch.manual_seed(0)
    m = ppgen.create(
        "vae", DataSpec("binary", (1, 3, 3)), latent_dim=2, hidden=(8,), pseudo_inputs=3
    ).double()
    x = m.sample(4)
    kl = kl_per_dim(m, x, num_samples=20000)
    q = m.posterior(x).base_dist  # Normal, (4, 2)
    marginals = m.prior().marginals()  # batch (2,)
    z = torch.linspace(-12, 12, 20001, dtype=torch.float64)[:, None, None]  # (G, 1, 1)
    log_q = q.log_prob(z)  # (G, 4, 2)
    integrand = log_q.exp() * (log_q - marginals.log_prob(z))
    expected = torch.trapezoid(integrand, z[:, 0, 0], dim=0).mean(0)
    assert (expected > 0.01).all()
    assert torch.allclose(kl, expected, atol=0.02)
