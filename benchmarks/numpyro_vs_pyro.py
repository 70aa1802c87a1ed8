"""NUTS in NumPyro against NUTS in Pyro, end to end (imports and JIT compilation included), in one run.

Two posteriors, each sampled by both with the same settings (target acceptance 0.8, diagonal mass
matrix, ``--warmup`` adaptation steps and ``--num-samples`` draws per chain, chains one after another):

- ``vae``: one test point's latent posterior p(z | x) under ppgen's default ``vae`` fit to digits for
  ``--epochs`` epochs (seed 0), as ``ppgen inspect`` samples it: ``nuts_posterior(..., backend=...)``,
  Pyro on the model's program, NumPyro on its JAX twin (``ppgen.models.vae_numpyro``);
- ``bn-cpt``: the Dirichlet(1) posterior of every CPT of a 5-variable Bayes net given 400 fully observed
  rows: ``ppgen.graph.nuts.fit_cpts_nuts`` (NumPyro) against the same program written in Pyro below.

Every NumPyro run compiles its sampler; the first one in the process (the VAE's, as in a fresh
``ppgen inspect``) also pays for importing jax, which nothing imports before.
Agreement: the largest |difference of posterior means| / its Monte Carlo standard error (from ArviZ's
bulk ESS of each run) over the coordinates; for the CPTs also the largest distance of each run's mean
from the exact conjugate posterior mean. Ratios are Pyro / NumPyro (> 1: NumPyro is faster).

    python benchmarks/numpyro_vs_pyro.py                  # about 3-5 CPU minutes on one thread
"""

import argparse
import time

import numpy as np
import pyro
import pyro.distributions as dist
import torch

import ppgen
from ppgen.graph import BayesNet


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, out


def z_scores(a: dict, b: dict) -> float:
    r"""max over coordinates of |mean_a - mean_b| / sqrt(se_a^2 + se_b^2), draws as (chain, draw, ...)."""
    import arviz as az

    worst = 0.0
    for name in a:
        means, variances = [], []
        for d in (a[name], b[name]):
            d = np.asarray(d, dtype=np.float64)
            ess = az.ess(az.convert_to_dataset({"v": d}))["v"].values
            means.append(d.mean((0, 1)))
            variances.append(d.var((0, 1)) / ess)
        worst = max(worst, float((np.abs(means[0] - means[1]) / np.sqrt(variances[0] + variances[1])).max()))
    return worst


def vae_rows(args) -> list:
    from ppgen.inference.posterior import nuts_posterior

    train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
    ppgen.seed_everything(0)
    model = ppgen.create("vae", train)
    ppgen.fit(model, train, epochs=args.epochs, progress=False)
    model.eval()
    rows = []
    for index in range(args.points):
        x = test.x[index : index + 1]
        runs = {}
        for backend in ("numpyro", "pyro"):
            runs[backend] = timed(
                lambda b=backend, x=x: nuts_posterior(
                    model,
                    x,
                    num_samples=args.num_samples,
                    warmup_steps=args.warmup,
                    num_chains=args.chains,
                    seed=0,
                    backend=b,
                )
            )
        draws = {b: {"z": r[2].posterior["z"].values} for b, r in runs.items()}
        rows.append(
            (
                f"vae digits[{index}]",
                runs["pyro"],
                runs["numpyro"],
                z_scores(draws["pyro"], draws["numpyro"]),
                None,
            )
        )
    return rows


def pyro_cpt_nuts(bn: BayesNet, x: torch.Tensor, args) -> dict:
    r"""The Dirichlet(1) posterior of every CPT by Pyro's NUTS: the twin of ``fit_cpts_nuts``."""
    from pyro.infer.mcmc import MCMC, NUTS

    variables = list(bn.variables)
    parents = {v: [bn.column[u] for u in bn.parents(v)] for v in variables}
    steps = {v: torch.tensor(_strides(bn, v), dtype=torch.long) for v in variables}

    def model(x):
        tables = {}
        for v in variables:
            rows = int(np.prod([bn.cards[u] for u in bn.parents(v)]))
            tables[v] = pyro.sample(f"cpt_{v}", dist.Dirichlet(torch.ones(rows, bn.cards[v])).to_event(1))
        with pyro.plate("data", x.shape[0]):
            for i, v in enumerate(variables):
                row = (x[:, parents[v]] * steps[v]).sum(-1) if parents[v] else torch.zeros_like(x[:, 0])
                pyro.sample(v, dist.Categorical(probs=tables[v][row]), obs=x[:, i])

    samples = []
    for c in range(args.chains):
        pyro.set_rng_seed(c)
        mcmc = MCMC(NUTS(model), num_samples=args.num_samples, warmup_steps=args.warmup, disable_progbar=True)
        mcmc.run(x)
        samples.append({k: v.double().numpy() for k, v in mcmc.get_samples().items()})
    return {k: np.stack([s[k] for s in samples]) for k in samples[0]}


def _strides(bn, v) -> list:
    from ppgen.graph.tables import strides

    return strides([bn.cards[u] for u in bn.parents(v)])


def cpt_rows(args) -> list:
    from ppgen.graph.nuts import fit_cpts_nuts

    ppgen.seed_everything(0)
    cards = {"a": 2, "b": 3, "c": 2, "d": 2, "e": 3}
    truth = BayesNet([("a", "c"), ("b", "c"), ("c", "d"), ("b", "e")], cards).double().randomize()
    x = truth.sample(400)
    exact = BayesNet(list(truth.graph.edges), cards).double().fit(x, smoothing=1.0)  # Dirichlet(1 + counts)
    numpyro_run = timed(
        lambda: fit_cpts_nuts(
            truth, x, num_warmup=args.warmup, num_samples=args.num_samples, num_chains=args.chains, seed=0
        )
    )
    pyro_run = timed(lambda: pyro_cpt_nuts(truth, x, args))
    a = {k: pyro_run[2][k] for k in pyro_run[2]}
    b = {k: numpyro_run[2].posterior[k].values for k in a}
    truth_gap = max(
        float(np.abs(d[k].mean((0, 1)) - exact.table_log_probs(k[4:]).detach().exp().numpy()).max())
        for d in (a, b)
        for k in a
    )
    return [("bn-cpt 5 vars, 400 rows", pyro_run, numpyro_run, z_scores(a, b), truth_gap)]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=20, help="VAE training epochs on digits (default 20)")
    parser.add_argument("--points", type=int, default=1, help="test points whose posterior is sampled")
    parser.add_argument("--num-samples", type=int, default=1000, help="draws per chain (default 1000)")
    parser.add_argument("--warmup", type=int, default=500, help="adaptation steps per chain (default 500)")
    parser.add_argument("--chains", type=int, default=2, help="chains (default 2, as ppgen inspect)")
    parser.add_argument("--skip", default="", help="comma-separated rows to skip: vae, bn-cpt")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    skip = set(filter(None, args.skip.split(",")))
    print(
        f"NUTS, {args.chains} chains x {args.num_samples} draws, {args.warmup} warmup; end to end (the first "
        "NumPyro run includes importing jax and JIT); torch on 1 thread"
    )
    print(
        f"{'posterior':<26} {'Pyro CPU s':>10} {'NumPyro CPU s':>13} {'ratio':>6} {'Pyro wall s':>11} "
        f"{'NumPyro wall s':>14} {'ratio':>6} {'max |dmean|/se':>14} {'max |mean - exact|':>18}",
        flush=True,
    )
    for key, rows in (("vae", vae_rows), ("bn-cpt", cpt_rows)):  # each row printed once measured
        if key in skip:
            continue
        for name, p, n, z, gap in rows(args):
            print(
                f"{name:<26} {p[0]:>10.2f} {n[0]:>13.2f} {p[0] / n[0]:>6.2f} {p[1]:>11.2f} {n[1]:>14.2f} "
                f"{p[1] / n[1]:>6.2f} {z:>14.2f} {'' if gap is None else f'{gap:.4f}':>18}",
                flush=True,
            )


if __name__ == "__main__":
    main()
