# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 04 · Variational autoencoders: a bound, its gap, and the posterior behind it
#
# A VAE is a latent-variable model p(x) = ∫ p(z) p(x | z) dz whose integral has no closed form. It is
# fit by maximizing the **evidence lower bound**
#
# ELBO(x) = E_q(z|x)[log p(x, z) − log q(z | x)] = log p(x) − KL(q(z | x) ‖ p(z | x)) ≤ log p(x),
#
# with an amortized guide q(z | x) (the encoder) and the **reparameterization** z = μ(x) + σ(x) ε,
# ε ~ N(0, I), which lets gradients flow through the sample. In ppgen a VAE is a Pyro model and guide;
# training drives `Trace_ELBO` / `TraceMeanField_ELBO` (`differentiable_loss`) with a torch optimizer.
#
# This tutorial: (1) the reparameterization trick's payoff, (2) ELBO vs IWAE vs the exact log p(x) on
# probabilistic PCA, where everything is closed form, (3) VAEs on `digits`, (4) the true posterior
# p(z | x) by NUTS next to the guide, with ArviZ, and the inference gaps, (5) the latent space, (6) the
# deterministic autoencoder the VAE grew from: better reconstructions, no generative model.

# %%

import arviz as az
import matplotlib.pyplot as plt
import torch
from torch.distributions import MultivariateNormal

import ppgen
from ppgen.app.plots.latent import attribute_arithmetic, interpolation, latent_map
from ppgen.app.tutorial import QUICK, savefig
from ppgen.inference import posterior
from ppgen.metrics import image_sample_quality

ppgen.seed_everything(0)
torch.set_num_threads(1)

# %% [markdown]
# ## 1 · Reparameterization: the same gradient, far less noise
# d/dμ E_{z~N(μ,1)}[z²] = 2μ. The score-function estimator f(z) ∇ log q(z) and the reparameterized
# estimator ∇ f(μ + ε) are both unbiased; their variances differ by orders of magnitude.

# %%
mu = torch.tensor(1.5)
eps = torch.randn(100_000)
z = mu + eps
score = z**2 * (z - mu)  # f(z) d/dmu log N(z; mu, 1)
reparam = 2 * z  # d/dmu f(mu + eps)
print(
    f"true gradient 3.0 | score function: mean {score.mean():.3f}, var {score.var():.1f} | "
    f"reparameterized: mean {reparam.mean():.3f}, var {reparam.var():.1f}"
)

# %% [markdown]
# ## 2 · ELBO vs IWAE vs exact, on probabilistic PCA
# With linear encoder and decoder and an isotropic Gaussian decoder (`hidden=()`,
# `decoder_scale="isotropic"`), the VAE is PPCA: p(x) = N(b, W Wᵀ + σ² I) in closed form. The
# importance-weighted estimate log (1/K) Σ_k p(x, z_k) / q(z_k | x) (IWAE-K, `estimate_log_prob`)
# tightens as K grows and reaches log p(x); the ELBO (`log_prob`) stays below it.

# %%
D, L = 5, 2
g = torch.Generator().manual_seed(0)
W = torch.randn(D, L, generator=g)
x_ppca = (
    torch.randn(500, L, generator=g) @ W.T
    + torch.randn(D, generator=g)
    + 0.3 * torch.randn(500, D, generator=g)
)
ppca_data = ppgen.data.from_tensor(x_ppca, kind="continuous")
linear = ppgen.create("vae", ppca_data, latent_dim=L, hidden=(), decoder_scale="isotropic", prior="standard")
ppgen.fit(linear, ppca_data, steps=40 if QUICK else 400, batch_size=500, lr=0.03, progress=False)


def ppca_log_prob(m, x):
    w, b = m.decoder[0].weight.detach(), m.decoder[0].bias.detach()
    return MultivariateNormal(b, w @ w.T + (2 * m.log_scale.detach()).exp() * torch.eye(D)).log_prob(x)


ks = [1, 2, 5, 10, 50, 200, 1000]
with torch.no_grad():
    exact = float(ppca_log_prob(linear, x_ppca).mean())
    elbo = float(linear.log_prob(x_ppca, num_samples=100).mean())
    iwae = [float(linear.estimate_log_prob(x_ppca, k).mean()) for k in ks]
print(f"exact {exact:.4f} | ELBO {elbo:.4f} | IWAE-K " + ", ".join(f"{k}: {v:.4f}" for k, v in zip(ks, iwae)))
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.semilogx(ks, iwae, "o-", label="IWAE-K")
ax.axhline(exact, color="k", ls="--", label="exact log p(x)")
ax.axhline(elbo, color="tab:red", ls=":", label="ELBO")
ax.set_xlabel("K")
ax.set_ylabel("mean log-likelihood (nats)")
ax.legend()
savefig(fig, "04_ppca_bounds.png")

# %% [markdown]
# ## 3 · VAEs on digits: the prior matters
# `vae` trains the ELBO; `iwae` trains the K-sample importance-weighted bound (`RenyiELBO` with
# α = 0), a tighter objective. The reported test NLL is the IWAE estimate with K = 1000
# (`ppgen.evaluate`), and the ELBO is shown beside it.
#
# Both use the **VampPrior** by default: p(z) = (1/K) Σ_k q(z | u_k), the encoder's own posteriors at
# K = 50 learned pseudo-inputs u_k (`prior="vamp"`, `pseudo_inputs=50`), which start at random
# training examples. A N(0, I) prior pulls every encoding toward one blob; the VampPrior follows the
# aggregate posterior instead. Its KL has no closed form, so the ELBO is sampled (`Trace_ELBO`);
# `prior="standard"` gives back N(0, I) with the analytic KL (`TraceMeanField_ELBO`). On digits
# (default configs, seed 0) the VampPrior and the weight average below together took `vae` from 16.71
# to 16.40 nats. The weights that `ppgen.fit` returns are an exponential moving average of the
# iterates (`ema_decay=0.998` in the model's `fit_defaults`; `ema_decay=0` keeps the last iterate),
# which on a data set this small is worth about 0.1 nats more.

# %%
train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
models = {}
for label, name, config in [
    ("vae", "vae", {}),
    ("vae, N(0, I) prior", "vae", {"prior": "standard"}),
    ("iwae", "iwae", {}),
]:
    m = ppgen.create(name, train, **config)
    result = ppgen.fit(m, train, epochs=15 if QUICK else None, progress=False)
    with torch.no_grad():
        nelbo = -float(m.log_prob(test.x).mean())
        nll = -float(m.estimate_log_prob(test.x, 100 if QUICK else 1000).mean())
    print(
        f"{label}: {result.epochs} epochs in {result.seconds:.1f} s | test -ELBO {nelbo:.2f} | "
        f"test NLL (IWAE-{100 if QUICK else 1000}) {nll:.2f} nats"
    )
    models[label] = m
vae = models["vae"]
fig, ax = plt.subplots(figsize=(4, 4))
ppgen.app.plots.image_grid(ax, vae.sample(64), title="vae samples")
savefig(fig, "04_vae_samples.png")

# %% [markdown]
# ## 4 · The posterior behind the bound, with ArviZ
# For one test digit, NUTS on the trained decoder draws from the true posterior p(z | x) (two chains,
# so R-hat means something); the guide gives q(z | x) as draws with importance weights, whose PSIS
# k-hat says whether q is a usable proposal for p (k < 0.7). `inference_gaps` splits
# log p(x) − ELBO into the approximation gap (even the best Gaussian for this x misses p(z | x)) and
# the amortization gap (the encoder misses that best Gaussian).

# %%
index = 3
x0 = test.x[index : index + 1]
nuts = posterior.nuts_posterior(
    vae, x0, num_samples=150 if QUICK else 1000, warmup_steps=100 if QUICK else 500, point_ids=[index]
)
guide = posterior.guide_posterior(vae, x0, num_samples=1000, point_ids=[index])
print(az.summary(nuts, var_names=["z"]).head(6))
print("PSIS k-hat:", float(guide.sample_stats["psis_khat"].values[0]))
gaps = posterior.inference_gaps(vae, x0, num_samples=1000 if QUICK else 5000, steps=50 if QUICK else 500)
print({k: round(float(v[0]), 3) for k, v in gaps.items()})
kl = posterior.kl_per_dim(vae, test.x)
active, _ = posterior.active_units(vae, test.x)
print(f"active units: {active} of {vae.latent_dim}; KL per dim:", [round(float(v), 2) for v in kl])

top = [int(u) for u in torch.argsort(kl, descending=True)[:2]]
coords = {"point": [index], "latent": top}
ax = az.plot_pair(guide, var_names=["z"], coords=coords, scatter_kwargs={"color": "tab:orange", "alpha": 0.3})
az.plot_pair(nuts, var_names=["z"], coords=coords, ax=ax, scatter_kwargs={"color": "tab:blue", "alpha": 0.3})
ax.set_title("p(z | x) by NUTS (blue) vs the guide q(z | x) (orange)", fontsize=9)
savefig(ax.figure, "04_posterior_pair.png")

# %% [markdown]
# ## 5 · The latent space
# Decoding the straight line between two codes, moving a digit along the difference of two class
# means, and the map of the codes (principal directions when L > 2).

# %%
savefig(interpolation(vae, test.x[0], test.x[1], steps=8), "04_interpolation.png")
savefig(attribute_arithmetic(vae, test, source=1, target=7, n=8), "04_attribute_arithmetic.png")
savefig(latent_map(vae, test), "04_latent_map.png")
plt.close("all")

# %% [markdown]
# ## 6 · The plain autoencoder: it reconstructs, but it does not generate
# A deterministic autoencoder (`autoencoder`) has the VAE's two networks without the noise:
# z = f(x), x̂ = g(z), trained on the reconstruction loss alone (here the cross-entropy of x under
# g(f(x)); `loss="squared"` gives ‖x − x̂‖²). The VAE is its "probabilistic spin": the encoder outputs
# a distribution, the ELBO's KL term ties the codes to the prior, and sampling the prior is what the
# model was trained for. The autoencoder has no density (`log_prob` raises), and nothing made its
# codes fill any particular region, so to generate at all we decode draws from a Gaussian fitted to its
# training codes (`sample`): the draws fall between and around the codes the decoder has seen.
#
# On our machine (digits, seed 0, default configurations and epochs: autoencoder 80, vae 350;
# 2,000 samples), the autoencoder's test reconstruction error ‖x − x̂‖² was 2.49 against 2.94 for
# the VAE (its decoder mean at the encoder's mean). Its samples were worse by FD-digits (26.3 against
# 23.5; test vs train 9.0) and above all by precision, the fraction of samples that lie on the data
# manifold in the classifier's features: 0.72 against 0.90, while the recall was the same (0.83).
# (With 200 epochs the autoencoder overfits: 3.04 on test, 0.08 on the examples it was fitted to.)

# %%
ae = ppgen.create("autoencoder", train)
ppgen.fit(ae, train, epochs=15 if QUICK else None, progress=False)
n_samples = 300 if QUICK else 2000
fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
for ax, (label, m) in zip(axes, [("autoencoder", ae), ("vae", vae)]):
    m.eval()
    with torch.no_grad():
        error = float(((test.x - m.decode(m.encode(test.x))) ** 2).flatten(1).sum(1).mean())
        samples = m.sample(n_samples)
    quality = image_sample_quality(samples, test)
    print(
        f"{label:11s}: test reconstruction error {error:5.2f} | {n_samples} samples: "
        f"FD-digits {quality['fd_digits']:6.2f}, precision {quality['precision']:.2f}, "
        f"recall {quality['recall']:.2f}"
    )
    ppgen.app.plots.image_grid(ax, samples[:36], nrow=6, title=f"{label} samples")
savefig(fig, "04_ae_vs_vae_samples.png")

# %% [markdown]
# Where the autoencoder's codes lie, against the Gaussian its samples come from (the two principal
# directions of the training codes): the codes form clusters and filaments with empty space between
# them, and the Gaussian puts much of its mass there.

# %%
with torch.no_grad():
    codes = ae.encode(train.x)
    draws = ae.code_distribution().sample((len(codes),))
centre = codes.mean(0)
_, _, directions = torch.linalg.svd(codes - centre, full_matrices=False)
fig, ax = plt.subplots(figsize=(4.2, 4))
for points, label, colour in [(draws, "Gaussian draws", "tab:orange"), (codes, "training codes", "tab:blue")]:
    projected = (points - centre) @ directions[:2].T
    ax.scatter(projected[:, 0], projected[:, 1], s=3, alpha=0.4, color=colour, label=label)
ax.legend(markerscale=4, fontsize=8)
ax.set_title("autoencoder codes (2 principal directions)", fontsize=9)
savefig(fig, "04_ae_codes.png")
plt.close("all")
