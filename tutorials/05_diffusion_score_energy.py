# %% [markdown]
# # 05 — Diffusion, score and energy models
#
# The last approximate-density methods of the taxonomy. A **diffusion model** approximates the
# density by learning to denoise; a **score model** learns $\nabla_x \log p(x)$ and samples with
# Langevin dynamics; an **energy-based model** learns $p(x) \propto e^{-E(x)}$ and samples with a
# Markov chain.
#
# ## DDPM is a Pyro program
#
# The reverse process is the model,
# $p_\theta(x_{0:T}) = \mathcal N(x_T; 0, I) \prod_t \mathcal N(x_{t-1}; \mu_\theta(x_t, t), \sigma_t^2 I)$,
# with $\mu_\theta$ computed from a noise-prediction network $\epsilon_\theta(x_t, t)$ and a last
# factor $p(x_0 \mid x_1)$ that fits the data kind (Bernoulli, discretized Gaussian or Gaussian).
# The forward process $q(x_{1:T} \mid x_0) = \prod_t \mathcal N(x_t; \sqrt{1-\beta_t}\, x_{t-1}, \beta_t I)$
# is the guide: fixed, no parameters. Pyro's ELBO of this pair **is** the DDPM variational bound
# (Ho et al., 2020, arXiv:2006.11239); `log_prob` computes the same bound with closed-form KLs
# per step. Training uses the simplified loss $\lVert \epsilon - \epsilon_\theta(x_t, t) \rVert^2$
# at one random step per example.

# %%
import time

import matplotlib.pyplot as plt
import pyro
import torch

import ppgen
from ppgen.app.plots.core import image_grid, scatter_over_density
from ppgen.app.plots.diffusion import denoising_trajectory
from ppgen.app.tutorial import QUICK, savefig
from ppgen.metrics import mode_coverage

torch.set_num_threads(1)
ppgen.seed_everything(0)

small = ppgen.create("ddpm", ppgen.data.DataSpec("continuous", (2,)), timesteps=30, hidden=16)
x = torch.randn(1, 2).repeat(4000, 1)  # one point, 4,000 draws of the guide
guide = pyro.poutine.trace(small.guide).get_trace(x)
model = pyro.poutine.trace(pyro.poutine.replay(small.model, trace=guide)).get_trace(x)
print("guide sites:", [n for n, s in guide.nodes.items() if s["type"] == "sample"][:4], "...")
print("model sites: ...", [n for n, s in model.nodes.items() if s["type"] == "sample"][-4:])
with torch.no_grad():
    model.compute_log_prob()
    guide.compute_log_prob()
    pyro_elbo = sum(s["log_prob"] for s in model.nodes.values() if s["type"] == "sample") - sum(
        s["log_prob"] for s in guide.nodes.values() if s["type"] == "sample"
    )
    closed = small.log_prob(x)
for label, v in (
    ("Pyro's ELBO (log p - log q of one trace)", pyro_elbo),
    ("closed-form bound (KL per step)", closed),
):
    print(f"{label:42s} {v.mean():8.3f} +- {v.std() / len(v) ** 0.5:.3f} nats (untrained model)")

# %% [markdown]
# ## rings8: 8 Gaussians of std 0.02 on a circle
#
# The modes are tight: a sample counts as high quality when it lies within 3σ = 0.06 of a mode
# (the VEEGAN/PacGAN protocol). The model standardizes the data inside itself, and its bound counts
# the Jacobian of that map, so the bound is in the data's own nats.

# %%
rings, rings_test = ppgen.data.load("rings8"), ppgen.data.load("rings8", "test")
if QUICK:
    ddpm = ppgen.create("ddpm", rings, timesteps=100, hidden=64, blocks=2)
    result = ppgen.fit(ddpm, rings, budget_seconds=5, progress=False)
else:
    ddpm = ppgen.create("ddpm", rings)  # the default config: T = 200, a residual MLP
    result = ppgen.fit(ddpm, rings, progress=False)
print(f"trained {result.epochs} epochs, {result.steps} steps in {result.seconds:.0f} s")
n_test = 200 if QUICK else len(rings_test)
with torch.no_grad():
    bound = ddpm.log_prob(rings_test.x[:n_test])
print(
    f"test bound: {-bound.mean():.3f} nats/example (true entropy {rings.entropy:.3f}; "
    "the gap is the bound's slack plus the model's KL)"
)

# %% [markdown]
# ## DDIM: the same network, 20x fewer steps
#
# DDIM (Song et al., 2021, arXiv:2010.02502) runs a deterministic, non-Markovian reverse process
# whose marginals match the forward process, so the trained $\epsilon_\theta$ can jump over steps.
# `benchmarks/diffusion_sampling.py` measures T = 1000 against S = 50, 20, 10 properly.

# %%
n = 500 if QUICK else 2500
samplers = [("ancestral", None), ("ddim", 50), ("ddim", 10)]
fig, axes = plt.subplots(1, len(samplers), figsize=(10, 3.4))
for ax, (method, steps) in zip(axes, samplers):
    start = time.perf_counter()
    s = ddpm.sample(n, method=method, steps=steps)
    seconds = time.perf_counter() - start
    cov = mode_coverage(s, rings.truth.means, rings.truth.std)
    label = f"{method} ({steps or ddpm.T} steps)"
    print(
        f"{label:22s} {seconds:6.2f} s  modes {cov['modes_covered']}/8  high quality {cov['hq_fraction']:.1%}"
    )
    scatter_over_density(
        ax, s, rings, title=f"{label}\n{cov['modes_covered']}/8 modes, {cov['hq_fraction']:.0%} HQ"
    )
savefig(fig, "05_ddpm_rings8_samplers.png")

# %%
fig = denoising_trajectory(ddpm, n=1000, steps_to_show=6, data=rings)
savefig(fig, "05_ddpm_rings8_trajectory.png")

# %% [markdown]
# ## digits: a Bernoulli last step, and the bound against `independent`
#
# Binary pixels map to ±1; the last factor is $P(x_0 = 1 \mid x_1) = \Phi(\mu_\theta(x_1, 1) / \sigma_1)$,
# the two-level discretized Gaussian. The bound is an upper bound on the NLL, so a bound below the
# independent-pixel model's exact 25.2 nats means the diffusion model is certainly better.

# %%
digits, digits_test = ppgen.data.load("digits"), ppgen.data.load("digits", "test")
if QUICK:
    ddpm_digits = ppgen.create("ddpm", digits, timesteps=50, width=16)
    ppgen.fit(ddpm_digits, digits, budget_seconds=5, progress=False)
    test_x = digits_test.x[:40]
else:
    ddpm_digits = ppgen.create("ddpm", digits)
    ppgen.fit(ddpm_digits, digits, progress=False)
    test_x = digits_test.x
independent = ppgen.create("independent", digits)
ppgen.fit(independent, digits, progress=False)
with torch.no_grad():
    nll = -ddpm_digits.log_prob(test_x).mean().item()
print(
    f"digits test NLL: ddpm bound {nll:.2f} nats, "
    f"independent (exact) {-independent.log_prob(test_x).mean().item():.2f} nats"
)
fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
image_grid(axes[0], ddpm_digits.sample(36), title="ancestral")
image_grid(axes[1], ddpm_digits.sample(36, method="ddim", steps=20), title="DDIM, 20 steps")
savefig(fig, "05_ddpm_digits_samples.png")
savefig(denoising_trajectory(ddpm_digits, n=6, steps_to_show=8), "05_ddpm_digits_trajectory.png")

# %% [markdown]
# ## SMLD: a score network and annealed Langevin dynamics
#
# `smld` (Song & Ermon, 2019, arXiv:1907.05600) learns $s_\theta(x, \sigma) \approx \nabla_x \log p_\sigma(x)$
# by denoising score matching on a geometric ladder of noise levels and samples by Langevin dynamics
# from the largest σ down to the smallest. It has no density: it is scored by its samples.

# %%
from ppgen.app.plots.score import langevin_snapshots, score_field  # noqa: E402

smld = ppgen.create("smld", rings)
if QUICK:
    ppgen.fit(smld, rings, budget_seconds=4, progress=False)
else:
    ppgen.fit(smld, rings, progress=False)
s = smld.sample(n)
cov = mode_coverage(s, rings.truth.means, rings.truth.std)
print(f"smld: modes {cov['modes_covered']}/8, high quality {cov['hq_fraction']:.1%}")
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
score_field(axes[0], smld, rings)
scatter_over_density(axes[1], s, rings, title="smld samples")
savefig(fig, "05_smld_score_field.png")
last = smld.num_sampling_steps
savefig(langevin_snapshots(smld, 500, [0, last // 4, last // 2, 3 * last // 4, last]), "05_smld_langevin.png")

# %% [markdown]
# ## EBM: an energy, contrastive divergence and a replay buffer
#
# `ebm` learns $E_\theta(x)$ with negatives from short SGLD chains started from a replay buffer
# (Du & Mordatch, 2019, arXiv:1903.08689). `log_prob` is the unnormalized $-E(x)$; on 2-D data the
# partition function is computed by quadrature, so the EBM's exact test NLL can stand beside the
# exact models.

# %%
ebm = ppgen.create("ebm", rings)
if QUICK:
    ppgen.fit(ebm, rings, budget_seconds=4, progress=False)
else:
    ppgen.fit(ebm, rings, progress=False)
metrics = ppgen.evaluate(
    ebm, rings_test.subset(500) if QUICK else rings_test, n_mode_samples=500 if QUICK else 2500
)
print({k: metrics.get(k) for k in ("test_nll_nats", "test_nll_kind", "modes_covered", "hq_fraction")})
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
score_field(axes[0], ebm, rings)
scatter_over_density(axes[1], ebm.sample(n), rings, title="ebm samples (SGLD)")
savefig(fig, "05_ebm_energy_field.png")
