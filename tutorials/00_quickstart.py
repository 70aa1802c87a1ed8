# %% [markdown]
# # ppgen in ten minutes: data, models as Pyro programs, fitting, evaluation, runs and comparison
#
# This tutorial is a script and a notebook (jupytext percent format). Run it with
# `python tutorials/00_quickstart.py`; `PPGEN_QUICK=1` makes it short (that is how `make test` runs it).
#
# ppgen sorts generative models by what they can say about log p(x): **exact** (graphical,
# autoregressive, flows), a **lower bound** (VAEs, diffusion), **unnormalized** (energy-based) or
# nothing at all, **implicit** (GANs). Here we meet the two simplest exact models.

# %%
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import ppgen
from ppgen.app.compare import compare, format_table
from ppgen.app.plots import draw_samples, training_curve
from ppgen.app.tutorial import QUICK, out_dir, savefig
from ppgen.errors import PPGenError

ppgen.seed_everything(0)

# %% [markdown]
# ## Data
# `ppgen.data.load(name, split)` gives a `Dataset` with `x` (N, *event_shape), labels `y`, a `kind`
# (binary, categorical:K or continuous) and, for the synthetic 2-D sets, the true density.

# %%
train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
print(train.kind, train.event_shape, len(train), "train /", len(test), "test")
rings = ppgen.data.load("rings8", "test")
print(
    "rings8 true entropy:",
    round(rings.entropy, 4),
    "nats; log p of the first point:",
    float(rings.log_prob(rings.x[:1])),
)

# %% [markdown]
# ## Two exact models
# `independent` is the notes' "structure through independence": one Bernoulli per pixel, 64
# parameters, fitted in closed form. `mixture` lets a discrete z choose one of K such products; its
# Pyro program samples z and Pyro enumerates it away, so the training loss is the exact −log p(x).

# %%
independent = ppgen.create("independent", train)
ppgen.fit(independent, train, progress=False)
mixture = ppgen.create("mixture", train, components=24)
fitted = ppgen.fit(mixture, train, epochs=20 if QUICK else 150, progress=False)
for model in (independent, mixture):
    m = ppgen.evaluate(model, test, n_image_samples=0)
    print(
        f"{model.name:<12} {m['n_params']:>5} params  "
        f"test NLL {m['test_nll_nats']:.2f} nats ({m['test_nll_kind']}), {m['test_bpd']:.3f} bits/dim"
    )

# %% [markdown]
# The Pyro program is the model: a trace of it scores the data exactly as `log_prob` does.

# %%
x = test.x[:5]
loss = mixture.elbo().differentiable_loss(mixture.model, mixture.guide, x, None)
print("Pyro's -loss:", float(-loss), " sum of log_prob:", float(mixture.log_prob(x).sum()))

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.5))
draw_samples(axes[0], independent.sample(36), test, "independent")
draw_samples(axes[1], mixture.sample(36), test, "mixture of 24")
training_curve(axes[2], fitted.log)
axes[2].set_title("mixture: training loss (nats)", fontsize=9)
savefig(fig, "quickstart_samples.png")

# %% [markdown]
# ## Your own data
# `from_tensor` validates shape, finiteness and the kind's support, and says what it expected.

# %%
own = ppgen.data.from_tensor(torch.bernoulli(torch.full((200, 10), 0.3)), kind="binary")
try:
    ppgen.data.from_tensor(torch.tensor([[0.0, 2.0]]), kind="binary")
except ppgen.PPGenError as e:
    print("rejected:", e)

# %% [markdown]
# ## Runs and the command line
# `ppgen train` writes a run directory (config, checkpoint, metrics, training log, samples);
# `ppgen eval` and `ppgen sample` read it back. The same seed gives the same metrics.

# %%
work = Path(tempfile.mkdtemp())
ppgen_cli = [sys.executable, "-m", "ppgen"]
subprocess.run(
    [*ppgen_cli, "train", "independent", "--data", "digits", "--out", str(work / "run"), "--quiet"],
    check=True,
)
print(sorted(p.name for p in (work / "run").iterdir()))
print(subprocess.run([*ppgen_cli, "eval", str(work / "run")], capture_output=True, text=True).stdout)
bad = subprocess.run(
    [*ppgen_cli, "train", "independent", "--data", "digits", "--out", str(work / "run")],
    capture_output=True,
    text=True,
)
print("exit", bad.returncode, "-", bad.stderr.strip())

# %% [markdown]
# ## Comparing models on the same data
# `ppgen compare` (here through Python) trains every model with the same budget and writes a report.

# %%
rings_train = ppgen.data.load("rings8", "train")
rows = compare(
    rings_train,
    rings,
    ["independent", "mixture"],
    out_dir() / "compare-rings8",
    budget_seconds=2 if QUICK else 20,
    jobs=1,
    progress=False,
)
print(format_table(rows))

# %% [markdown]
# ## Threads, processes and clusters
# Every `ppgen` command runs torch on **one thread** unless told otherwise (`--threads N`, or the
# environment variable `PPGEN_THREADS`; 0 keeps torch's default): small networks on a shared machine
# ran 8–45× slower on torch's default of two threads (`benchmarks/threads.py`). The Python API leaves
# the thread count to you; `ppgen.app.threads.set_threads` is what the CLI calls.
#
# One model can train on several processes (`--nproc N`, or `torchrun -m ppgen train ...`): each rank
# takes its shard of every global batch and the gradients (here the counts) are summed across ranks,
# so two processes fit the same model as one.

# %%
subprocess.run(
    [*ppgen_cli, "train", "independent", "--data", "digits", "--nproc", "2", "--out", str(work / "run2"),
     "--quiet", "--threads", "1"],
    check=True,
)  # fmt: skip
one, two = (json.loads((work / r / "metrics.json").read_text()) for r in ("run", "run2"))
print(f"test NLL, 1 process: {one['test_nll_nats']:.4f} nats; 2 processes: {two['test_nll_nats']:.4f} nats")

# %% [markdown]
# A comparison grid runs its cells on a local process pool (`--jobs`), as Ray tasks
# (`--executor ray --address auto`, `pip install 'ppgen[ray]'`) or as a Slurm array job (`--executor
# slurm --slurm-partition gpu --slurm-time 120`, `pip install 'ppgen[slurm]'`), through the same cache.
# submitit's `debug` cluster runs the Slurm path in this process, so it works without a cluster:

# %%
try:
    from ppgen.app.executors import SlurmExecutor, SlurmOptions

    slurm = SlurmExecutor(work / "slurm", SlurmOptions(cluster="debug"))
except PPGenError as e:  # submitit is an optional extra
    print(e)
else:
    rows = compare(
        rings_train,
        rings,
        ["independent", "mixture"],
        out_dir() / "compare-rings8-slurm",
        budget_seconds=1 if QUICK else 20,
        progress=False,
        use_cache=False,
        executor=slurm,
    )
    print(format_table(rows))
