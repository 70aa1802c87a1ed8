# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 08 · What a density is good for: outliers, Bayes-rule classification, completion, missing data
#
# Why learn p(x) at all, when a classifier only needs p(y | x)? The lecture notes give four reasons:
#
# 1. a generative model **can reject unreasonable inputs as unlikely**, where a discriminative one "must
#    predict labels for any input";
# 2. **conditional generative models can be built from other components**: with p(x | y) and p(y),
#    p(y | x) = p(x | y) p(y) / p(x), and the Bayes rule picks argmax_y [log p(x | y) + log p(y)];
# 3. a density of x answers questions about **parts of x**: inpainting samples x_h ~ p(x_h | x_o);
# 4. it can be **trained with missing data**, by maximizing the likelihood of what was observed,
#    log p(x_o) = log sum_{x_h} p(x_o, x_h).
#
# What each model can do depends on its density kind: an exact log p(x) (Bayes nets, mixtures,
# autoregressive models), a bound (VAEs: ELBO ≤ log p(x), IWAE-K → log p(x)), an unnormalized −E(x), or
# samples alone (GANs). The functions live in `ppgen.inference.tasks`; `ppgen compare` runs them all in its
# report, and `ppgen complete RUN --mask bottom --out fig.png` completes test digits from a trained run.

# %%
import matplotlib.pyplot as plt
import torch

import ppgen
from ppgen.app.plots.uses import completion_figure, reject_figure, roc_figure
from ppgen.app.tutorial import QUICK, savefig
from ppgen.inference.tasks import anomaly, classify
from ppgen.inference.tasks.complete import complete, completion_metrics, hidden_mask

ppgen.seed_everything(0)
torch.set_num_threads(1)
EPOCHS = 5 if QUICK else 60

train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
models = {}
for name, config, fit in [
    ("independent", {}, {}),
    ("bayesnet", {"structure": "markov", "order": 2}, {}),
    ("mixture", {"components": 30}, {"epochs": EPOCHS}),
    ("made", {"hidden_sizes": [128], "num_masks": 1}, {"epochs": EPOCHS}),
]:
    models[name] = ppgen.create(name, train, **config)
    ppgen.fit(models[name], train, progress=False, **fit)
    models[name].eval()

# %% [markdown]
# ## 1 · Outlier rejection
#
# Score an input by how unlikely the model finds it, s(x) = −log p(x), and measure how well the score
# separates test digits (inliers) from outliers by the **AUROC**: the probability that a random outlier
# scores above a random inlier, AUROC = P(s(x_out) > s(x_in)) (1 perfect, ½ chance). The outlier sets:
# uniform binary noise, digits with 10 % of their pixels flipped, digits shifted by one pixel.
# A bound gives −IWAE-K instead, an energy model E(x) (log Z is one constant: the ranking is unchanged),
# and a GAN only its discriminator's logit, which is *not a density*.

# %%
outliers = anomaly.image_outliers(test)
table = anomaly.anomaly_table(models, test.x, outliers)
for name, row in table.items():
    print(f"{name:12s} {row['score']:20s}", "  ".join(f"{s} {a:.3f}" for s, a in row["auroc"].items()))
savefig(roc_figure(table, "digits: ROC of -log p(x) per outlier set"), "08_roc.png")
plt.close("all")

# %% [markdown]
# The pixel-independent model already rejects noise perfectly: noise is far from every digit. Flipped pixels
# break the correlations between neighbours, which only models with dependencies (the Bayes net, the
# autoregressive MADE) see; a shift by one pixel keeps a digit's local statistics, and is the hardest.
#
# ## 2 · Bayes-rule classification and the reject option
#
# Fit one unconditional model per class (here a Markov Bayes net, fitted by counting), and classify by
#
# ŷ(x) = argmax_y [log p(x | y) + log p(y)],  p(x) = Σ_y p(x | y) p(y).
#
# Beside it, logistic regression and an MLP on the same split. Then the reject option: mix the test set with
# outliers, answer inputs in order of decreasing confidence — log p(x) for the generative classifier, the
# max-softmax max_y p(y | x) for the discriminative ones — and plot accuracy against coverage.

# %%
per_class = classify.fit_per_class("bayesnet", train, {"structure": "markov", "order": 2})
log_prior = classify.class_log_prior(train.y, 10)
half = len(test) // 2
mixed = torch.cat([test.x, outliers["noise"][:half], outliers["flip10"][half : 2 * half]])
truth = torch.cat([test.y, torch.full((2 * half,), -1)])  # outliers have no right answer

loglik, kind = classify.class_log_likelihoods(per_class, mixed)
pred, _, log_px = classify.bayes_classify(loglik, log_prior)
curves = {"bayesnet per class (log p(x))": classify.reject_curve(pred == truth, log_px)}
print(
    f"Bayes rule from per-class Bayes nets: test accuracy {(pred[: len(test)] == test.y).double().mean():.3f}"
)
for name, clf in classify.discriminative_baselines(train).items():
    proba = torch.as_tensor(clf.predict_proba(mixed.flatten(1).numpy()))
    print(f"{name}: test accuracy {(proba[: len(test)].argmax(1) == test.y).double().mean():.3f}")
    curves[f"{name} (max-softmax)"] = classify.reject_curve(proba.argmax(1) == truth, proba.max(1).values)
savefig(reject_figure(curves, "test digits + 50% outliers"), "08_reject.png")
plt.close("all")

# %% [markdown]
# At full coverage every classifier answers the outliers too, and is wrong on half the inputs. Refusing the
# inputs of lowest p(x) first removes the outliers; the max-softmax of a discriminative classifier was never
# trained to be low on inputs unlike its training data, so its curve stays low until much later.
#
# ## 3 · Completion
#
# Sample the hidden pixels given the observed ones, x_h ~ p(x_h | x_o) = p(x_o, x_h) / p(x_o). Exact where
# the family allows it: a Bayes net by evidence; a mixture by the component's posterior
# p(k | x_o) ∝ π_k p(x_o | k); an autoregressive model when the observed pixels come first in its ordering
# (hide the bottom half of a raster-order model). For other masks, **importance resampling**: run the chain
# rule with the observed pixels clamped (proposal q(x_h) = Π_{i hidden} p(x_i | x_<i)) and resample K
# particles by w = Π_{i observed} p(x_i | x_<i), whose mean also estimates p(x_o). VAEs use
# Metropolis-within-Gibbs (Mattei & Frellsen, 2018).
#
# Models without a tractable p(x_o) still complete, approximately. A **diffusion model** (DDPM) by RePaint
# (Lugmayr et al., 2022): at each reverse step t the observed pixels are replaced by a forward-noised copy
# of their values, x_{t-1} = m ⊙ (√ᾱ_{t-1} x_o + √(1 − ᾱ_{t-1}) ε) + (1 − m) ⊙ x_{t-1}^{model}, and the step
# is resampled (x_t drawn again from q(x_t | x_{t-1})) so that the hidden part agrees with the observed one.
# An **energy model** by Langevin dynamics on the hidden pixels alone, x_h ← x_h − a ∇_{x_h} E(x_h, x_o) +
# √(2a) ξ, with x_o clamped; a score model the same way, with its learned score at each noise level. Neither
# gives log p(x_o), so their rows have no conditional NLL.

# %%
chains = {}
for name, config, fit in [
    ("ddpm", {"timesteps": 50, "width": 8} if QUICK else {}, {"epochs": 3 if QUICK else 100}),
    ("ebm", {"hidden": 32} if QUICK else {}, {"epochs": 2 if QUICK else 10}),
]:
    chains[name] = ppgen.create(name, train, **config)
    ppgen.fit(chains[name], train, progress=False, **fit)
    chains[name].eval()

# %%
part = test.subset(40 if QUICK else len(test))  # a Bayes net's random masks: one evidence set each
for mask in ["bottom", "random:0.5"]:
    hidden = hidden_mask(mask, part.event_shape, len(part), seed=0)
    shown = {}
    for name, model in [*models.items(), *chains.items()]:
        if name == "independent":
            continue
        filled, info = complete(model, part.x, hidden, num_particles=32, seed=0)
        m = completion_metrics(model, part.x, filled, hidden, info)
        nll = (
            "–"
            if m["conditional_nll"] is None
            else f"{m['conditional_nll']:.2f} ({m['conditional_nll_kind']})"
        )
        print(
            f"{mask:10s} {name:9s} pixel acc. {m['pixel_accuracy']:.3f}  -log p(x_h | x_o) {nll}",
            f"[{info['method']}]",
        )
        shown[name] = filled[:8]
    if mask == "bottom":
        savefig(completion_figure(part.x[:8], hidden[:8], shown), "08_completion.png")
        plt.close("all")

# %% [markdown]
# ## 4 · Missing data
#
# With entries missing at random, the likelihood of an example is that of what was observed,
#
# log p(x_o) = log Σ_{x_h} p(x_o, x_h),
#
# and a model can be trained on incomplete data exactly when it can compute (or bound) this marginal. For a
# mixture of products it is exact and cheap — the missing factors sum to one and drop out of
# p(x_o | k) = Π_{i observed} p(x_i | k) —; for a VAE the same masking of the likelihood gives a bound on
# log p(x_o) (MIWAE); for an autoregressive model only importance sampling estimates it, one ordering at a
# time, so MADE and NADE refuse to train on missing data. The completion above already returns log p(x_o):
# here it is for the mixture, next to log p(x) of the complete digits.

# %%
hidden = hidden_mask("random:0.3", part.event_shape, len(part), seed=1)
_, info = complete(models["mixture"], part.x, hidden, seed=0)
full = models["mixture"].log_prob(part.x).detach().double()
print(f"mixture: mean log p(x_o) with 30% missing {info['log_p_observed'].mean():.2f} nats; "
      f"complete log p(x) {full.mean():.2f} nats")  # fmt: skip

# %% [markdown]
# A Bayes net marginalizes exactly too: Pyro's `obs_mask` turns each missing entry into a latent site, which
# enumeration sums out (variable elimination along the Markov chain), so `observed_log_prob` is the exact
# log p(x_o) and its gradient in the CPTs is the EM direction. Fit a Markov net on the digits with 30 % of
# the pixels missing, and score both fits on the *complete* test digits:

# %%
from ppgen.inference.tasks import missing  # noqa: E402

holed = train.x.clone()
holed[torch.rand(holed.shape, generator=torch.Generator().manual_seed(0)) < 0.3] = float("nan")
holed = ppgen.data.from_tensor(holed, "binary", missing=True)
net = ppgen.create("bayesnet", train, structure="markov", order=2, smoothing=0.0)
missing.fit_missing(net, holed, epochs=5 if QUICK else 50, batch_size=512, lr=0.1)
with torch.no_grad():
    error = torch.cat(  # P(x_v = 1 | parents) against the complete-data fit, every row of every CPT
        [(net.net.cpt(v) - models["bayesnet"].net.cpt(v))[..., 1].abs().flatten() for v in net.net.variables]
    )
    print(f"bayesnet, 30% missing: test NLL {-net.log_prob(test.x).mean():.2f} nats "
          f"(complete data: {-models['bayesnet'].log_prob(test.x).mean():.2f}); "
          f"CPT difference: mean {error.mean():.3f}, max {error.max():.3f}")  # fmt: skip

# %% [markdown]
# From the command line, data with NaN entries are refused unless `--missing` says that NaN marks a
# missing value; then `ppgen train` fits log p(x_o) and reports the test split's −log p(x_o):
#
# ```
# ppgen train mixture --data holes.npy --missing --epochs 30 --out runs/holes
# ```

# %%
import numpy as np  # noqa: E402

from ppgen.app.cli import main  # noqa: E402
from ppgen.app.tutorial import out_dir  # noqa: E402

np.save(out_dir() / "holes.npy", holed.x.flatten(1).numpy())
command = ["train", "mixture", "--data", str(out_dir() / "holes.npy"), "--missing", "--quiet", "--force"]
assert main([*command, "--epochs", "3" if QUICK else "30", "--out", str(out_dir() / "holes_run")]) == 0
