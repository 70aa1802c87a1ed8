# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 02 · Autoregressive models: the chain rule with shared parameters
#
# Any distribution factorizes by the chain rule, p(x) = Πᵢ p(xᵢ | x₁…xᵢ₋₁). Written as tables the
# conditionals cost 2ⁿ − 1 numbers (tutorial 01); autoregressive models instead give every
# conditional a small parametric form and share parameters between them. The density stays
# **exact** (a product of normalized conditionals is normalized), training is plain maximum
# likelihood, and sampling goes one dimension at a time.
#
# This tutorial fits, on the 8×8 binarized `digits`, in increasing order of sharing:
# **FVSBN** (a logistic regression per pixel), **NADE** (one hidden layer shared by all conditionals),
# **MADE** (a masked MLP, with an ensemble over masks) and **PixelCNN** (masked convolutions). It then
# shows the effect of the ordering, samples, and completions of the lower half of test digits, then
# PixelRNN's two layers (Row LSTM and Diagonal BiLSTM) and the chain rule over colour channels.

# %%
import itertools
import time

import matplotlib.pyplot as plt
import torch

import ppgen
from ppgen.app.plots import image_grid
from ppgen.app.tutorial import QUICK, savefig
from ppgen.data import DataSpec
from ppgen.models.autoregressive import AutoregressiveModel

torch.set_num_threads(1)
ppgen.seed_everything(0)
train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
BUDGET = 2 if QUICK else None  # seconds per model in quick mode; the default config otherwise
print(f"digits: {len(train)} train, {len(test)} test, event shape {train.event_shape}, kind {train.kind}")

# %% [markdown]
# ## 1. The chain rule is exact
#
# Every model here is an `AutoregressiveModel`: it computes the parameters of all D conditionals in
# one parallel ("teacher-forced") pass, and `log_prob` adds their log-likelihoods. Summing
# exp(log_prob) over all 2⁹ states of a 3×3 image gives 1 for any parameters, trained or not.

# %%
tiny = DataSpec("binary", (1, 3, 3))
states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9))).reshape(-1, 1, 3, 3)
for name in ["fvsbn", "nade", "made"]:
    m = ppgen.create(name, tiny).double().eval()
    with torch.no_grad():
        total = m.log_prob(states.double()).exp().sum().item()
    print(f"{name:6s}: sum over 512 states of p(x) = {total:.12f}")

# %% [markdown]
# ## 2. FVSBN, NADE, MADE and PixelCNN on digits
#
# - **FVSBN**: p(xᵢ = 1 | x<ᵢ) = σ(bᵢ + Σⱼ<ᵢ Wᵢⱼ xⱼ), D(D+1)/2 parameters.
# - **NADE**: hᵢ = σ(c + W<ᵢ x<ᵢ), p(xᵢ = 1 | x<ᵢ) = σ(bᵢ + Vᵢ hᵢ). The pre-activation grows by one column
#   per dimension, aᵢ₊₁ = aᵢ + Wᵢ xᵢ, so both `log_prob` and sampling cost O(DH), not O(D²H).
# - **MADE**: an MLP whose weight masks let output i see only inputs before i. Training cycles through
#   several orderings/connectivities; the reported test NLL averages the masks' densities (an exact mixture).
# - **PixelCNN**: masked convolutions (type A, then B), so each pixel sees a receptive field above/left of it.
#
# Test NLL is exact, in nats per digit (lower is better); `independent` is the no-structure baseline.


# %%
def fit_and_score(name, **config):
    m = ppgen.create(name, train, **config)
    start = time.perf_counter()
    result = ppgen.fit(m, train, budget_seconds=BUDGET, progress=False)
    seconds = time.perf_counter() - start
    m.eval()
    with torch.no_grad():
        lp, kind = m.evaluation_log_prob(test.x, test.y if m.conditional else None)
    nll = float(-lp.mean())
    print(
        f"{name:15s} {m.num_parameters:>8,d} params  {result.epochs:>4d} epochs {seconds:6.1f} s   "
        f"test NLL {nll:6.2f} nats ({kind})"
    )
    return m, nll


models, nlls = {}, {}
for name in ["independent", "fvsbn", "nade", "made", "pixelcnn"]:
    if name not in ppgen.model_names():
        print(f"{name} is not registered in this checkout; skipped")
        continue
    models[name], nlls[name] = fit_and_score(name)

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(list(nlls), list(nlls.values()), color="tab:blue")
for i, v in enumerate(nlls.values()):
    ax.text(v, i, f" {v:.2f}", va="center", fontsize=8)
ax.set_xlabel("test NLL (nats per digit, exact)")
ax.invert_yaxis()
ax.set_title("digits, binarized 8×8" + (" (quick mode: a few seconds each)" if QUICK else ""))
savefig(fig, "02_nll.png")

# %% [markdown]
# ## 3. The effect of the ordering
#
# The chain rule is exact in every order, so a model that can represent each conditional exactly is
# indifferent to it; real models are not, but how much it matters depends on the model. FVSBN gives
# every pixel a logistic regression on *all* earlier pixels, so its three orders below end close
# together (in full mode on our machine: raster 18.28, reverse 18.24, random 18.25 nats).
# MADE, trained on 16 orderings at once, shows the other side: each single ordering overfits
# these 1,437 images, and the ensemble over orderings, an exact mixture density, is much better
# than its raster-order member alone (full mode: 16.32 against 18.41 nats).
# The ordering also decides what `complete` can condition on (section 5).

# %%
order_nll = {}
for order in ["raster", "reverse", "random"]:
    _, order_nll[f"fvsbn, {order}"] = fit_and_score("fvsbn", order=order)
made = models["made"]
with torch.no_grad():
    made.use_mask(0)  # the first mask set: raster order
    order_nll["made, raster mask only"] = float(-made.log_prob(test.x).mean())
    order_nll[f"made, ensemble of {made.num_masks} orders"] = float(-made.ensemble_log_prob(test.x).mean())
for key, value in order_nll.items():
    print(f"{key:28s} test NLL {value:6.2f} nats")
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.barh(list(order_nll), list(order_nll.values()), color="tab:orange")
ax.set_xlim(min(order_nll.values()) - 1.0, max(order_nll.values()) + 0.5)
ax.set_xlabel("test NLL (nats, exact)")
ax.invert_yaxis()
savefig(fig, "02_ordering.png")

# %% [markdown]
# ## 4. Sampling: sequential, and fast where the model allows it
#
# Sampling draws x₁, then x₂ given x₁, and so on. The generic sampler runs the full parallel pass once
# per dimension (O(D²H) for NADE); NADE's own sampler carries the running activation (O(DH)).
# `benchmarks/ar_sampling.py` measures the ratio at D = 784.

# %%
nade, n = models["nade"], 20 if QUICK else 200
with torch.no_grad():
    t0 = time.perf_counter()
    nade.sample(n)
    fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    AutoregressiveModel.sample(nade, n)
    naive = time.perf_counter() - t0
print(f"NADE, {n} samples at D = 64: incremental {fast:.3f} s, naive {naive:.3f} s ({naive / fast:.0f}x)")

fig, axes = plt.subplots(1, len(models), figsize=(2.4 * len(models), 2.8))
for ax, (name, m) in zip(axes, models.items()):
    with torch.no_grad():
        image_grid(ax, m.sample(25), nrow=5, title=name)
savefig(fig, "02_samples.png")

# %% [markdown]
# ## 5. Completion: inpainting the lower half
#
# `complete(x, observed_mask)` samples the unobserved pixels given the observed ones, in the model's
# ordering. With the top four rows observed, raster order conditions every missing pixel on all of
# them, so the draws come from the exact conditional p(lower half | upper half). (A mask whose
# observed pixels do not come first in the ordering is refused.)

# %%
digits = test.x[:6]
observed = torch.zeros(1, 8, 8, dtype=torch.bool)
observed[:, :4] = True
completers = [name for name in ["nade", "made", "pixelcnn"] if name in models]
fig, axes = plt.subplots(2 + len(completers), 1, figsize=(4.2, 1.3 * (2 + len(completers))))
image_grid(axes[0], digits, nrow=6, title="test digits")
image_grid(axes[1], digits * observed, nrow=6, title="observed (top half)")
for ax, name in zip(axes[2:], completers):
    with torch.no_grad():
        image_grid(ax, models[name].complete(digits, observed), nrow=6, title=f"{name}: a completion")
savefig(fig, "02_completions.png")

# %% [markdown]
# ## 6. The graph
#
# `graph()` returns the dependency DAG: the complete DAG of the chain rule for FVSBN, NADE and MADE
# (D(D−1)/2 edges), and the receptive field for PixelCNN, whose plain masked convolutions leave a
# blind spot (pixels up and to the right that no layer reaches), which Gated PixelCNN removes.

# %%
for name, m in models.items():
    if isinstance(m, AutoregressiveModel):
        print(f"{name:10s}: {m.graph().number_of_edges():5d} edges of the {64 * 63 // 2} of the complete DAG")

# %% [markdown]
# ## 7. PixelRNN: the Row LSTM and the Diagonal BiLSTM
#
# PixelRNN (van den Oord et al. 2016) carries LSTM state over the image instead of stacking masked
# convolutions. Its two layers differ in what each pixel sees:
#
# - the **Row LSTM** (`layer="row-lstm"`) runs down the image one row at a time, each row one 1-D
#   convolution of the row above; its state sees a *triangle* above the pixel, widening by one column
#   per row, so pixels far to the right in the rows just above are out of reach ("uses information
#   from above");
# - the **Diagonal BiLSTM** (`layer="diagonal-bilstm"`) skews the image (row i moved i columns right)
#   so that its diagonals become columns, and runs one LSTM from the left and one from the right, each
#   state reading the state above and the state beside it. The right-to-left output sees pixels right
#   of the current one in its own row, so it is shifted down one row before the two are added; then
#   every earlier pixel is seen and no later one ("uses all previous information").
#
# The pictures are the gradients of the logit of one pixel with respect to every input pixel, for
# untrained models with their default configurations: the receptive field is a property of the
# architecture, not of the weights.

# %%
spec8, probe = DataSpec("binary", (1, 8, 8)), (7, 1)
fig, axes = plt.subplots(1, 2, figsize=(5.6, 2.8))
for ax, layer in zip(axes, ["row-lstm", "diagonal-bilstm"]):
    m = ppgen.create("pixelrnn", spec8, layer=layer).double()
    x = torch.bernoulli(torch.full((16, 1, 8, 8), 0.5, dtype=torch.float64)).requires_grad_(True)
    (grad,) = torch.autograd.grad(m.conditionals(x)[:, 0, probe[0], probe[1]].sum(), x)
    seen = (grad.abs().sum(0)[0] > 0).float()
    seen[probe] = 0.5  # the pixel itself, in grey
    ax.imshow(seen, cmap="Blues", vmin=0, vmax=1)
    before = 8 * probe[0] + probe[1]
    ax.set_title(f"{layer}: sees {int((seen == 1).sum())} of {before}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
savefig(fig, "02_pixelrnn_receptive_fields.png")

# %% [markdown]
# Trained with the same recipe (the Row LSTM's `fit_defaults`: batch 64, learning rate 2e-3; seed 0;
# one CPU thread) for the same number of epochs, on our machine the Diagonal BiLSTM reached a test NLL
# of 17.90 nats after 15 epochs against 18.04 for the Row LSTM, but 20.38 against 19.77 after 8: it
# starts slower and ends ahead. It cost 11.3 CPU seconds per epoch against 3.45: its scan has
# W + H − 1 = 15 steps per direction where the Row LSTM's has H = 8, and it runs two directions.
# (The Row LSTM's 60 default epochs gave 16.67.) Below, the same comparison with this run's budget.

# %%
rnn_train = train.subset(300) if QUICK else train  # quick mode: one epoch on 300 digits
for layer in ["row-lstm", "diagonal-bilstm"]:
    m = ppgen.create("pixelrnn", rnn_train, layer=layer)
    cpu = time.process_time()
    result = ppgen.fit(m, rnn_train, epochs=1 if QUICK else None, progress=False)
    cpu = time.process_time() - cpu
    m.eval()
    with torch.no_grad():
        nll = float(-m.log_prob(test.x).mean())
    print(
        f"pixelrnn, {layer:15s}: {result.epochs:3d} epochs, {cpu / result.epochs:5.2f} CPU s/epoch, "
        f"test NLL {nll:6.2f} nats"
    )

# %% [markdown]
# ## 8. Colour: the chain rule over channels
#
# A colour pixel is three numbers, R, G and B, each with 256 levels. A table for their joint
# distribution p(R, G, B) has 256³ − 1 = 16,777,215 free parameters, for *one* pixel. PixelRNN
# writes the likelihood of an n × n RGB image with the chain rule over pixels and, within a pixel,
# over channels:
#
# p(x) = ∏ᵢ p(x_{i,R} | x_{<i}) · p(x_{i,G} | x_{<i}, x_{i,R}) · p(x_{i,B} | x_{<i}, x_{i,R}, x_{i,G}).
#
# The factorization itself saves nothing: as tables the three conditionals of one pixel cost
# 255 + 256 · 255 + 256² · 255 = 256³ − 1 numbers, exactly the joint's. The savings come, as for
# pixels, from sharing: one network gives every conditional, with masks that let R see only the
# context, G also R, and B also R and G. `patches-rgb` (8 × 8 patches of scikit-learn's two bundled
# photographs at 8 levels per channel, test patches from a separate region of each photograph) is the
# colour data set; the baseline below ignores every dependency.

# %%
for levels in (256, 8):
    chain = (levels - 1) + levels * (levels - 1) + levels**2 * (levels - 1)
    print(
        f"{levels} levels: joint table {levels**3 - 1:,d} parameters; chain-rule tables {chain:,d}; "
        f"independent channels {3 * (levels - 1)}"
    )
rgb_train, rgb_test = ppgen.data.load("patches-rgb", "train"), ppgen.data.load("patches-rgb", "test")
print(
    f"patches-rgb: {len(rgb_train)} train, {len(rgb_test)} test, "
    f"event shape {rgb_train.event_shape}, kind {rgb_train.kind}"
)
baseline = ppgen.create("independent", rgb_train)
ppgen.fit(baseline, rgb_train, progress=False)
with torch.no_grad():
    nll = float(-baseline.log_prob(rgb_test.x).mean())
print(f"independent: test NLL {nll:.1f} nats = {ppgen.metrics.bits_per_dim(nll, rgb_train.dim):.3f} bits/dim")
fig, ax = plt.subplots(figsize=(4, 4))
grid = (
    rgb_test.x[:: len(rgb_test) // 64][:64].reshape(8, 8, 3, 8, 8).permute(0, 3, 1, 4, 2).reshape(64, 64, 3)
    / 7
)
ax.imshow(grid)
ax.set_axis_off()
ax.set_title("patches-rgb: 64 test patches, evenly spaced", fontsize=9)
savefig(fig, "02_patches_rgb.png")

# %% [markdown]
# ppgen's pixel models (`pixelcnn`, `gated-pixelcnn`, `pixelrnn` with either layer) take (3, H, W)
# images and generate them in exactly this order: pixel by pixel, R, G, B within a pixel. Every feature
# map is split into three channel groups; at the centre of each kernel, group c reads the groups
# before c (the first, type-A layer) or up to c (type B), and at earlier pixels every group; the
# logits of channel c come from groups up to c (`ppgen.nn.masked_conv`). Autograd shows it: the
# logits of G at one pixel read R there but not G or B, and those of B read R and G.

# %%
m = ppgen.create("gated-pixelcnn", DataSpec("categorical:8", (3, 4, 4))).double()
x = torch.randint(8, (16, 3, 4, 4)).double().requires_grad_(True)
for c, channel in enumerate("RGB"):
    (grad,) = torch.autograd.grad(m.conditionals(x)[:, c, 2, 1].sum(), x)  # (B, 3, H, W, K) logits
    seen = grad.abs().sum(0) > 0  # (3, H, W): the values these logits read
    own = [name for k, name in enumerate("RGB") if seen[k, 2, 1]]
    seen[:, 2, 1] = False
    print(
        f"logits of {channel} at pixel (2, 1): read {int(seen.sum())} of the 27 values of the 9 earlier "
        f"pixels, and {', '.join(own) or 'nothing'} at (2, 1)"
    )

# %% [markdown]
# Trained on `patches-rgb`, a colour PixelCNN needs far fewer bits than the independent baseline (the
# full table for every model, with the presets `ppgen compare --data patches-rgb --quick` uses, comes
# from `benchmarks/patches_rgb.py`). It is fit with that preset; in quick mode on 2,000 patches for
# one epoch.

# %%
rgb_fit = rgb_train.subset(2000) if QUICK else rgb_train
preset = ppgen.get("pixelcnn").quick_preset("patches-rgb")
pixel = ppgen.create("pixelcnn", rgb_fit, **preset["config"])
ppgen.fit(pixel, rgb_fit, **({"epochs": 1} if QUICK else preset["fit"]), progress=False)
pixel.eval()
with torch.no_grad():
    pixel_nll = float(-pixel.log_prob(rgb_test.x).mean())
print(
    f"pixelcnn: test NLL {pixel_nll:.1f} nats = {ppgen.metrics.bits_per_dim(pixel_nll, rgb_train.dim):.3f} "
    f"bits/dim, against {ppgen.metrics.bits_per_dim(nll, rgb_train.dim):.3f} for independent channels"
)
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
image_grid(axes[0], pixel.sample(16), levels=8, title="pixelcnn: 16 samples")
image_grid(axes[1], baseline.sample(16), levels=8, title="independent: 16 samples")
savefig(fig, "02_colour_samples.png")
