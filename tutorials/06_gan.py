# %% [markdown]
# # 06 — GANs: implicit models and the minimax game
#
# A generative adversarial network has no density at all. Its generator is a sampler:
# z ~ N(0, I), x = G(z). In ppgen that is a Pyro program with one latent sample site "z" and a
# deterministic site "x"; there is nothing to score, so `log_prob` raises and evaluation uses
# samples only (mode coverage on 2-D data; FD-digits, precision/recall and MMD on images).
#
# The generator is trained against a discriminator D in the game
#
# $$\min_G \max_D V(D, G) = \mathbb{E}_{p_{data}} \log D(x) + \mathbb{E}_{p_g} \log (1 - D(x)).$$
#
# For a fixed G the best discriminator is $D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))$, and plugging
# it in gives $V(D^*, G) = -\log 4 + 2\,\mathrm{JSD}(p_{data} \| p_g)$: the game's value is $-\log 4$
# exactly when $p_g = p_{data}$ (Goodfellow et al., 2014, arXiv:1406.2661).

# %%
import math

import matplotlib.pyplot as plt
import torch

import ppgen
from ppgen.app.plots.core import image_grid, scatter_over_density
from ppgen.app.plots.gan import discriminator_map, optimal_discriminator, training_diagnostics
from ppgen.app.tutorial import QUICK, savefig
from ppgen.inference.adversarial import discriminator_losses
from ppgen.metrics import image_sample_quality, mode_coverage
from ppgen.models.gan import fixed_affine_gan

torch.set_num_threads(1)
ppgen.seed_everything(0)
model = ppgen.create("gan", ppgen.data.DataSpec("continuous", (2,)))
trace = __import__("pyro").poutine.trace(model.model).get_trace(n=3)
print(
    "z:",
    tuple(trace.nodes["z"]["value"].shape),
    "latent;",
    "x:",
    tuple(trace.nodes["x"]["value"].shape),
    "deterministic:",
    trace.nodes["x"]["infer"].get("_deterministic"),
)
try:
    model.log_prob(torch.zeros(3, 2))
except ppgen.PPGenError as e:
    print("log_prob:", e)

# %% [markdown]
# ## The optimal discriminator, measured
#
# Fix p_data = N(0, 1) and p_g = N(1, 1.5²) (the generator G(z) = 1.5 z + 1 is frozen) and train only
# D. The trained D(x) should land on D*(x), and the value it reaches on fresh samples should be
# $-\log 4 + 2\,\mathrm{JSD}$. With p_g = p_data the value is $-\log 4 \approx -1.386$.


# %%
def normal_log_prob(x, mu, sd):
    return (-0.5 * ((x - mu) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)).squeeze(-1)


def frozen_generator_game(mu, sd, steps):
    data = ppgen.data.from_tensor(torch.randn(20_000, 1), kind="continuous")
    gan = fixed_affine_gan(data, mu, sd, latent_dim=1, hidden=64, layers=2)
    ppgen.fit(
        gan,
        data,
        steps=steps,
        batch_size=512,
        lr=1e-3,
        lr_decay=0.9,
        train_generator=False,
        check_every=0,
        progress=False,
    )
    real, fake = torch.randn(100_000, 1), mu + sd * torch.randn(100_000, 1)
    with torch.no_grad():
        _, value = discriminator_losses("minimax", gan.discriminate(real), gan.discriminate(fake))
    x = torch.linspace(-20, 20, 200_001, dtype=torch.float64).unsqueeze(1)
    lpd, lpg = normal_log_prob(x, 0, 1), normal_log_prob(x, mu, sd)
    lm = torch.logaddexp(lpd, lpg) - math.log(2)
    jsd = 0.5 * torch.trapezoid(lpd.exp() * (lpd - lm), x[:, 0]) + 0.5 * torch.trapezoid(
        lpg.exp() * (lpg - lm), x[:, 0]
    )
    return gan, float(value), -math.log(4) + 2 * float(jsd)


steps = 400 if QUICK else 2000
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for ax, (mu, sd) in zip(axes, [(1.0, 1.5), (0.0, 1.0)]):
    gan, value, theory = frozen_generator_game(mu, sd, steps)
    optimal_discriminator(
        ax, gan, lambda x: normal_log_prob(x, 0, 1), lambda x, mu=mu, sd=sd: normal_log_prob(x, mu, sd)
    )
    ax.text(
        0.02,
        0.95,
        f"V = {value:.4f}\n-log4 + 2JSD = {theory:.4f}",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
    )
    print(f"p_g = N({mu}, {sd}^2): V(D, G) = {value:.4f}, theory {theory:.4f} (-log 4 = {-math.log(4):.4f})")
savefig(fig, "gan_optimal_discriminator.png")

# %% [markdown]
# ## Mode collapse: `gan` against `wgan-gp` on the ring of 8 Gaussians
#
# The VEEGAN/PacGAN protocol: draw 2,500 samples; a sample is high quality (HQ) within 3σ of its
# nearest mode (σ = 0.02 on `rings8`, 0.05 on `grid25`); a mode is covered when at least one HQ sample
# is nearest to it. The non-saturating `gan` tends to chase a few modes at a time; the Wasserstein
# critic with gradient penalty (Gulrajani et al., 2017, arXiv:1704.00028) gives the generator
# gradients towards every mode. The objective checks coverage every few epochs and warns when it drops.

# %%
name = "rings8"
train = ppgen.data.load(name, "train")
epochs = 4 if QUICK else None  # None: the models' defaults (200 epochs for gan, 300 for wgan-gp)
fig, axes = plt.subplots(2, 2, figsize=(8, 8))
logs = {}
for col, model_name in enumerate(["gan", "wgan-gp"]):
    ppgen.seed_everything(0)
    m = ppgen.create(model_name, train)
    result = ppgen.fit(
        m, train, epochs=epochs, progress=False, modes=train.truth.means, mode_std=train.truth.std
    )
    logs[model_name] = result.log
    samples = m.sample(2500)
    cov = mode_coverage(samples, train.truth.means, train.truth.std)
    title = (
        f"{model_name}: {cov['modes_covered']}/8 modes, {100 * cov['hq_fraction']:.1f}% HQ "
        f"({result.seconds:.0f} s)"
    )
    print(title)
    scatter_over_density(axes[0, col], samples, train, title=title)
    discriminator_map(axes[1, col], m, train, samples)
savefig(fig, "gan_mode_collapse.png")
savefig(training_diagnostics(logs["gan"], title="gan (non-saturating) on rings8"), "gan_diagnostics.png")
savefig(training_diagnostics(logs["wgan-gp"], title="wgan-gp on rings8"), "wgan_diagnostics.png")

# %% [markdown]
# ## DCGAN on 8×8 digits
#
# `dcgan` (Radford et al., 2015, arXiv:1511.06434) generates binary digits: the generator outputs a
# level that is rounded with a straight-through gradient, so the discriminator sees images in the
# data's own support. We score samples with FD-digits (the Fréchet distance in the features of a small
# digit classifier trained once and cached), k-NN precision/recall and MMD, against the pixel-independent
# baseline, whose marginals are exact but whose pixels do not form digits.

# %%
digits, digits_test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
ppgen.seed_everything(0)
dcgan = ppgen.create("dcgan", digits)
result = ppgen.fit(dcgan, digits, epochs=3 if QUICK else None, progress=False)
independent = ppgen.create("independent", digits)
ppgen.fit(independent, digits, progress=False)
n = 1000
rows = {
    "test vs train": image_sample_quality(digits.x[:n], digits_test),
    "dcgan": image_sample_quality(dcgan.sample(n), digits_test),
    "independent": image_sample_quality(independent.sample(n), digits_test),
}
print(f"{'':15s} {'FD-digits':>10s} {'precision':>10s} {'recall':>8s} {'MMD':>8s}")
for k, q in rows.items():
    print(f"{k:15s} {q['fd_digits']:10.2f} {q['precision']:10.3f} {q['recall']:8.3f} {q['mmd']:8.4f}")
fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
image_grid(axes[0], digits_test.x[:64], title="test data")
image_grid(axes[1], dcgan.sample(64), title=f"dcgan, FD-digits {rows['dcgan']['fd_digits']:.1f}")
image_grid(
    axes[2], independent.sample(64), title=f"independent, FD-digits {rows['independent']['fd_digits']:.1f}"
)
savefig(fig, "dcgan_digits.png")

# %% [markdown]
# Conditional variants model p(x | y): the generator reads a label embedding beside z and the
# discriminator adds the projection term <embed(y), features> (Miyato & Koyama, 2018, arXiv:1802.05637).

# %%
ppgen.seed_everything(0)
cdcgan = ppgen.create("dcgan", digits, conditional=True)
ppgen.fit(cdcgan, digits, epochs=2 if QUICK else None, progress=False)
fig, ax = plt.subplots(figsize=(5, 5))
image_grid(
    ax,
    cdcgan.sample(100, y=torch.arange(10).repeat_interleave(10)),
    nrow=10,
    title="conditional dcgan: one row per label",
)
savefig(fig, "dcgan_conditional.png")
