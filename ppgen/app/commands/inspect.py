"""`ppgen inspect RUN_DIR --index i [--out DIR]`: the true latent posterior of one test point (NUTS) next to
the trained guide, with ArviZ summaries, PSIS k-hat, the inference gaps and posterior-collapse diagnostics."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import arviz as az  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ppgen.app import runs
from ppgen.app.commands.options import load_split  # noqa: E402
from ppgen.errors import PPGenError  # noqa: E402
from ppgen.inference import posterior  # noqa: E402
from ppgen.seed import seed_everything  # noqa: E402

__all__ = ["HELP", "add_arguments", "run", "inspect_point"]

HELP = "inspect one test point's latent posterior: NUTS vs the guide (ArviZ), PSIS k-hat, inference gaps"


def add_arguments(p):
    p.add_argument("run_dir")
    p.add_argument("--index", type=int, default=0, help="the test example to inspect")
    p.add_argument("--out", default=None, help="folder for the figures (default RUN_DIR/inspect)")
    p.add_argument(
        "--data", default=None, help="another data set of the same kind and shape (default: the run's)"
    )
    p.add_argument("--data-root", default=None)
    p.add_argument("--kind", default=None)
    p.add_argument("--num-samples", type=int, default=1000, help="NUTS draws per chain, and guide draws")
    p.add_argument("--warmup", type=int, default=500, help="NUTS adaptation steps per chain")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument(
        "--gap-samples", type=int, default=5000, help="K of the IWAE estimate of log p(x) for the gaps"
    )
    p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    model, config = runs.load_run(args.run_dir)
    if args.data is None:
        args.data, args.data_root, args.kind = (
            config["data"],
            args.data_root or config.get("data_root"),
            config.get("kind"),
        )
    test = load_split(args, "test")
    out = Path(args.out) if args.out else Path(args.run_dir) / "inspect"
    report = inspect_point(
        model,
        test,
        args.index,
        out,
        num_samples=args.num_samples,
        warmup_steps=args.warmup,
        num_chains=args.chains,
        gap_samples=args.gap_samples,
        seed=args.seed,
    )
    print(report["text"])
    return 0


def inspect_point(
    model,
    data,
    index: int,
    out_dir=None,
    num_samples: int = 1000,
    warmup_steps: int = 500,
    num_chains: int = 2,
    gap_samples: int = 5000,
    gap_steps: int = 500,
    seed: int = 0,
) -> dict:
    r"""The core of `ppgen inspect`: posteriors, diagnostics and figures for ``data.x[index]``.

    Arguments:
        model: a trained latent-variable model (VAE protocol, see :mod:`ppgen.inference.posterior`).
        data: the split to take the point from (and to compute the collapse diagnostics on).
        index: the example's index in ``data``.
        out_dir: where ``pair.png`` and ``posterior.png`` go (None: no figures).

    Returns:
        A dict: ``text`` (the printed report), ``nuts`` and ``guide`` (InferenceData), ``r_hat_max``,
        ``psis_khat``, ``gaps`` (floats, nats), ``kl_per_dim``, ``active_units``, ``figures`` (paths).
    """
    if model.latent_site is None:
        raise PPGenError(
            f"{model.name} has no latent posterior to inspect (inspect needs a VAE-family model)"
        )
    if not 0 <= index < len(data):
        raise PPGenError(f"--index must be in [0, {len(data)}), got {index}")
    model.check_data(data)
    seed_everything(seed)
    device = model.device
    x = data.x[index : index + 1].to(device)
    y = data.y[index : index + 1].to(device) if model.conditional else None
    nuts = posterior.nuts_posterior(
        model,
        x,
        y,
        num_samples=num_samples,
        warmup_steps=warmup_steps,
        num_chains=num_chains,
        seed=seed,
        point_ids=[index],
    )
    guide = posterior.guide_posterior(model, x, y, num_samples=num_samples, point_ids=[index])
    gaps = {
        k: float(v[0])
        for k, v in posterior.inference_gaps(model, x, y, num_samples=gap_samples, steps=gap_steps).items()
    }
    n = min(len(data), 1000)
    xs = data.x[:n].to(device)
    ys = data.y[:n].to(device) if model.conditional else None
    kl = posterior.kl_per_dim(model, xs, ys)
    active, _ = posterior.active_units(model, xs, ys)

    nuts_summary = az.summary(nuts, var_names=["z"])
    guide_summary = az.summary(guide, var_names=["z"], kind="stats")
    r_hat_max = float(az.rhat(nuts, var_names=["z"])["z"].max())  # unrounded (the summary shows 2 decimals)
    khat = float(guide.sample_stats["psis_khat"].values[0])
    w = guide.sample_stats["weight"].values[0, :, 0]
    ess = float(1.0 / np.sum(w**2))
    divergences = int(nuts.sample_stats["diverging"].values.sum())
    order = torch.argsort(kl, descending=True)
    lines = [
        f"{model.name} on {data.name}[{index}]: latent dim {model.latent_dim}, "
        f"{active} active units (Cov_x E_q[z_u] > 0.01 over {n} test points)",
        "KL(q || p) per latent dim, nats (largest first): "
        + ", ".join(f"z{int(u)}={float(kl[u]):.2f}" for u in order),
        "",
        f"true posterior p(z | x) by NUTS ({num_chains} chains x {num_samples} draws, "
        f"{warmup_steps} warmup, {divergences} divergences):",
        nuts_summary.to_string(),
        f"max R-hat {r_hat_max:.4f}",
        "",
        f"guide q(z | x) ({num_samples} draws):",
        guide_summary.to_string(),
        f"PSIS k-hat of the importance weights p(x, z) / q(z | x): {khat:.3f} ({_khat_verdict(khat)}); "
        f"importance ESS {ess:.0f} of {num_samples}",
        "",
        "gaps (nats):",
        f"  {'log p(x) (IWAE-' + str(gap_samples) + ')':<26} {gaps['log_px']:.3f}",
        f"  ELBO, amortized guide      {gaps['elbo_amortized']:.3f}",
        f"  ELBO, best guide for x     {gaps['elbo_optimal']:.3f}",
        f"  approximation gap          {gaps['approximation_gap']:.3f}   (log p(x) - best ELBO)",
        f"  amortization gap           {gaps['amortization_gap']:.3f}   (best ELBO - amortized ELBO)",
    ]
    figures = []
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        dims = [int(u) for u in order[: min(2, model.latent_dim)]]
        figures = [
            _pair_figure(nuts, guide, index, dims, out_dir / "pair.png"),
            _posterior_figure(nuts, index, [int(u) for u in order[:4]], out_dir / "posterior.png"),
        ]
        lines += ["", "figures: " + ", ".join(str(f) for f in figures)]
    return {
        "text": "\n".join(lines),
        "nuts": nuts,
        "guide": guide,
        "r_hat_max": r_hat_max,
        "psis_khat": khat,
        "gaps": gaps,
        "kl_per_dim": kl,
        "active_units": active,
        "figures": figures,
    }


def _khat_verdict(k: float) -> str:
    return "good" if k < 0.5 else "ok" if k < 0.7 else "the guide is an unreliable proposal"


def _pair_figure(nuts, guide, index: int, dims: list, path: Path) -> Path:
    coords = {"point": [index], "latent": dims}
    if len(dims) < 2:
        ax = az.plot_posterior(nuts, var_names=["z"], coords=coords)
    else:
        ax = az.plot_pair(
            guide,
            var_names=["z"],
            coords=coords,
            scatter_kwargs={"color": "tab:orange", "alpha": 0.3, "label": "guide q(z | x)"},
        )
        az.plot_pair(
            nuts,
            var_names=["z"],
            coords=coords,
            ax=ax,
            scatter_kwargs={"color": "tab:blue", "alpha": 0.3, "label": "NUTS p(z | x)"},
        )
        ax.legend(loc="best", fontsize=8)
        ax.set_title(f"latent posterior of point {index}: NUTS (blue) vs guide (orange)", fontsize=9)
    fig = np.ravel(ax)[0].figure
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _posterior_figure(nuts, index: int, dims: list, path: Path) -> Path:
    axes = az.plot_posterior(nuts, var_names=["z"], coords={"point": [index], "latent": dims}, hdi_prob=0.94)
    fig = np.ravel(axes)[0].figure
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
