# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 01 · Structure: what independence buys
#
# A distribution over n binary pixels is a table of 2ⁿ probabilities. Structure, meaning which
# variables may depend on which, is what makes it small enough to write down, fit and sample.
# This tutorial counts the parameters of the three classic structures, fits each of them to the
# pixels of the `digits` data (8×8, binarized, in raster order) and measures their held-out
# likelihood. It ends with conditional-independence queries on a small Bayes net, answered by
# d-separation and checked by exact inference through Pyro.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch

import ppgen
from ppgen.app.plots import image_grid
from ppgen.app.plots.graphical import draw_dag
from ppgen.app.tutorial import QUICK, savefig
from ppgen.graph import BayesNet

torch.set_num_threads(1)
ppgen.seed_everything(0)

# %% [markdown]
# ## 1. Counting parameters
#
# With n binary variables:
# - **independent** pixels, p(x) = Πᵢ p(xᵢ), need n parameters;
# - the **chain rule** with no assumption, p(x) = Πᵢ p(xᵢ | x₁…xᵢ₋₁), needs 1 + 2 + … + 2ⁿ⁻¹ = 2ⁿ − 1;
# - the **Markov** assumption, p(xᵢ | xᵢ₋₁), needs 1 + 2(n − 1) = 2n − 1.
#
# A single RGB pixel taken as one variable with 256³ values needs 256³ − 1. `num_parameters()` counts
# Σᵥ (card(v) − 1)·Π card(parents) with Python integers, so n = 784 (an MNIST image) is no problem.

# %%
structures = {
    "independent: n": BayesNet.independent,
    "Markov (order 1): 2n − 1": BayesNet.markov,
    "chain rule: 2ⁿ − 1": BayesNet.chain_rule,
}
ns = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 784]
counts = {name: [build(n, tables=False).num_parameters() for n in ns] for name, build in structures.items()}
for i, n in enumerate(ns):
    ind, mar, cha = (counts[name][i] for name in structures)
    assert (ind, mar, cha) == (n, 2 * n - 1, 2**n - 1)
    if n in (4, 64, 784):
        print(f"n = {n:>3}: independent {ind}, markov {mar}, chain rule 2^{n} - 1 ≈ 10^{math.log10(cha):.1f}")
rgb = BayesNet([], {"rgb": 256**3}, tables=False).num_parameters()
assert rgb == 256**3 - 1
print(f"one RGB pixel as a single variable: {rgb:,} = 256^3 - 1")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for name in structures:
    axes[0].plot(ns, [math.log10(c) if c > 0 else 0 for c in counts[name]], "o-", ms=3, label=name)
axes[0].axhline(math.log10(rgb), color="gray", ls=":", lw=1)
axes[0].annotate("one RGB pixel: 256³ − 1", (400, math.log10(rgb) + 4), color="gray", fontsize=8)
axes[0].set_xlabel("n (binary variables)")
axes[0].set_ylabel("log₁₀(parameters)")
axes[0].set_title("parameters of three structures (exact counts)", fontsize=10)
axes[0].legend(fontsize=8)
draw_dag(
    BayesNet.markov(8, order=2).graph, ax=axes[1], title="Markov of order 2 over 8 pixels: 15 parameters"
)
savefig(fig, "structure_counts.png")

# %% [markdown]
# ## 2. The trade-off on real pixels
#
# Each structure is a `bayesnet` model over the 64 pixels in raster order, fit in closed form by
# counting (add-one smoothing) on the 1,437 training digits and scored by exact log-likelihood on the
# 360 test digits. A Markov net of order k conditions each pixel on the k previous ones; order 8
# reaches the pixel directly above. The chain rule conditions on everything: its tables for late
# pixels have 2⁶³ rows, stored sparse (only configurations seen in training), and almost every test
# digit hits a row never seen, where the smoothed estimate is a coin flip.

# %%
train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
configs = [("independent", {"structure": "independent"})]
configs += [(f"markov {k}", {"structure": "markov", "order": k}) for k in (1, 2, 4, 8, 12)]
configs += [
    ("chain rule", {"structure": "chain"}),
    ("chain, α=0.01", {"structure": "chain", "smoothing": 0.01}),
]
rows, fitted = [], {}
for label, config in configs:
    m = ppgen.create("bayesnet", train, **config)
    start = time.perf_counter()
    ppgen.fit(m, train, epochs=1, progress=False)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        train_nll = float(-m.log_prob(train.x).mean())
        test_nll = float(-m.log_prob(test.x).mean())
    rows.append(
        {"label": label, "params": m.num_parameters, "train": train_nll, "test": test_nll, "seconds": seconds}
    )
    fitted[label] = m
print(f"{'structure':<12} {'parameters':>22} {'train NLL':>10} {'test NLL':>9}  (nats / digit, exact)")
for r in rows:
    print(f"{r['label']:<12} {r['params']:>22,} {r['train']:>10.2f} {r['test']:>9.2f}")
best = min(rows, key=lambda r: r["test"])
assert best["label"].startswith("markov"), "the middle of the trade-off should win"
print(f"memorizing the training set would score ln(1437) = {math.log(len(train)):.2f} nats on it")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
x = [math.log10(r["params"]) for r in rows]
axes[0].plot(x, [r["train"] for r in rows], "o--", label="train")
axes[0].plot(x, [r["test"] for r in rows], "o-", label="test")
for xi, r in zip(x, rows):
    axes[0].annotate(r["label"], (xi, r["test"]), textcoords="offset points", xytext=(-10, 6), fontsize=7)
axes[0].set_xlabel("log₁₀(parameters)")
axes[0].set_ylabel("NLL (nats / digit)")
axes[0].set_title("more structure, fewer parameters: the test NLL has a sweet spot", fontsize=10)
axes[0].legend(fontsize=8)
image_grid(
    axes[1], fitted[best["label"]].sample(36), title=f"samples, {best['label']} (test NLL {best['test']:.1f})"
)
savefig(fig, "structure_digits.png")

# %% [markdown]
# A fitted net also answers questions about pixels. Given only the bottom half of a test digit,
# `sample(n, evidence=...)` draws the top half from its exact posterior under the Markov-8 net
# (Pyro's `infer_discrete`: forward filtering over the raster order, backward sampling), and `query`
# gives each hidden pixel's exact posterior marginal.

# %%
net = fitted["markov 8"].net
digit = test.x[7].reshape(-1).long()
evidence = {f"x{i}": int(digit[i]) for i in range(32, 64)}
completions = net.sample(7, evidence=evidence).float().reshape(7, 1, 8, 8)
marginals = torch.stack([net.query(f"x{i}", evidence)[1] for i in range(32)]).reshape(4, 8)
fig, axes = plt.subplots(1, 3, figsize=(11, 2.8), gridspec_kw={"width_ratios": [1, 1, 7]})
image_grid(axes[0], test.x[7:8], title="test digit")
axes[1].imshow(torch.cat([marginals, digit[32:].reshape(4, 8).float()]), cmap="gray_r", vmin=0, vmax=1)
axes[1].set_axis_off()
axes[1].set_title("p(top pixel on | bottom)", fontsize=8)
image_grid(axes[2], completions, nrow=7, title="top halves drawn given the bottom half (markov 8)")
savefig(fig, "structure_completion.png")

# %% [markdown]
# The independent model underfits (every pixel alone). The chain rule generalizes worst: it has a
# parameter for every configuration but has seen only 1,437 of them. Its training NLL is set by the
# smoothing alone: with α = 0.01 it nearly memorizes the training set (ln 1437 ≈ 7.3 nats would be
# exact memorization), with add-one smoothing every row seen once says 2/3. Conditioning on a few
# neighbours in between is best, up to the pixel above (order 8); order 12 starts to overfit. Deep
# autoregressive models (later
# tutorials) keep the chain rule's generality but share parameters across the tables with a network.
#
# ## 3. Conditional independence, read off the graph
#
# The classic sprinkler net: the season's cloudiness drives both the sprinkler and the rain, and
# either wets the grass. d-separation answers "is X independent of Y given Z?" from the graph alone;
# `query` answers "what is p(X | evidence)?" exactly by enumerating the compiled Pyro program.

# %%
bn = BayesNet(
    [("cloudy", "sprinkler"), ("cloudy", "rain"), ("sprinkler", "wet"), ("rain", "wet")],
    {"cloudy": 2, "sprinkler": 2, "rain": 2, "wet": 2},
).double()
for name, table in {  # the textbook tables (Russell and Norvig), rows: parent configurations
    "cloudy": [[0.5, 0.5]],
    "sprinkler": [[0.5, 0.5], [0.9, 0.1]],
    "rain": [[0.8, 0.2], [0.2, 0.8]],
    "wet": [[1.0, 0.0], [0.1, 0.9], [0.1, 0.9], [0.01, 0.99]],
}.items():
    bn.set_table(name, torch.tensor(table, dtype=torch.float64))
print("sprinkler ⊥ rain?            ", bn.is_independent("sprinkler", "rain"))
print("sprinkler ⊥ rain | cloudy?   ", bn.is_independent("sprinkler", "rain", given="cloudy"))
print("sprinkler ⊥ rain | cloudy, wet?", bn.is_independent("sprinkler", "rain", given=["cloudy", "wet"]))
print("cloudy ⊥ wet | sprinkler, rain?", bn.is_independent("cloudy", "wet", given=["sprinkler", "rain"]))
print("Markov blanket of rain:", sorted(bn.markov_blanket("rain")))
print("every pairwise statement that holds:", "; ".join(str(s) for s in bn.independencies()))

# %%
p_rain = bn.query("rain")[1]
p_rain_wet = bn.query("rain", {"wet": 1})[1]
p_rain_wet_sprinkler = bn.query("rain", {"wet": 1, "sprinkler": 1})[1]
print(
    f"p(rain) = {p_rain:.3f};  p(rain | wet) = {p_rain_wet:.3f};  "
    f"p(rain | wet, sprinkler on) = {p_rain_wet_sprinkler:.3f}  (explaining away)"
)
samples = bn.sample(20_000 if not QUICK else 4_000, evidence={"wet": 1})
print(f"conditional samples given wet: rain frequency {samples[:, bn.column['rain']].double().mean():.3f}")

# brute force, to check the enumeration: the whole joint table has 16 entries
import itertools  # noqa: E402

states = torch.tensor(list(itertools.product(range(2), repeat=4)))
joint = bn.log_prob(states).exp().detach()
wet, rain = states[:, bn.column["wet"]] == 1, states[:, bn.column["rain"]] == 1
assert abs(float(joint[wet & rain].sum() / joint[wet].sum()) - float(p_rain_wet)) < 1e-12

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
draw_dag(bn.graph, ax=axes[0], title="sprinkler net: sprinkler ⊥ rain | cloudy, but not given wet too")
labels = ["p(rain)", "p(rain | wet)", "p(rain | wet,\nsprinkler)"]
axes[1].bar(
    labels,
    [float(p_rain), float(p_rain_wet), float(p_rain_wet_sprinkler)],
    color=["#9fc5e8", "#3d85c6", "#e69138"],
)
axes[1].set_ylim(0, 1)
axes[1].set_title("exact queries by enumeration (Pyro)", fontsize=10)
savefig(fig, "structure_queries.png")

# %% [markdown]
# ## 4. Any Pyro program has a graph
#
# `BayesNet.from_pyro` reads the dependency structure of a Pyro program with
# `pyro.infer.inspect.get_dependencies`: here, a program written by hand, with a plate.

# %%
import pyro  # noqa: E402
import pyro.distributions as dist  # noqa: E402


def lawns(n=3):
    cloudy = pyro.sample("cloudy", dist.Bernoulli(0.5))
    rain = pyro.sample("rain", dist.Bernoulli(0.2 + 0.6 * cloudy))
    with pyro.plate("lawn", n):
        sprinkler = pyro.sample("sprinkler", dist.Bernoulli(0.5 - 0.4 * cloudy))
        pyro.sample("wet", dist.Bernoulli(0.01 + 0.5 * rain + 0.4 * sprinkler))


structure = BayesNet.from_pyro(lawns)
print("edges read from the program:", sorted(structure.graph.edges))
print("plates:", {v: structure.graph.nodes[v]["plates"] for v in structure.variables})

# %% [markdown]
# ## 5. Bayesian tables (full mode)
#
# Maximum likelihood gives one table; a Dirichlet prior on every row gives a posterior. NUTS in
# NumPyro samples it from 500 sprinkler-net draws, and ArviZ summarises it. (Skipped in quick mode:
# compiling NUTS takes longer than the quick budget.)

# %%
if not QUICK:
    import arviz as az

    from ppgen.graph.nuts import fit_cpts_nuts

    idata = fit_cpts_nuts(bn, bn.sample(500), concentration=1.0, num_warmup=500, num_samples=1000)
    print(
        az.summary(idata, var_names=["cpt_rain", "cpt_wet"])[["mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk"]]
    )
