"""`ppgen inspect RUN_DIR --index i [--out DIR]`: the true latent posterior of one test point (NUTS) next to
the trained guide, with ArviZ summaries, PSIS k-hat, the inference gaps and posterior-collapse diagnostics;
writes the InferenceData (.nc), a pair plot and the marginals. Any model with a guide, built-in or not."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

from ppgen.app import runs
from ppgen.app.commands.options import load_split  # noqa: E402
from ppgen.app.plots.latent import posterior_marginals_figure, posterior_pair_figure  # noqa: E402
from ppgen.inference import posterior  # noqa: E402

__all__ = ["add_arguments", "run", "inspect_point"]


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
    p.add_argument("--gap-steps", type=int, default=500, help="Adam steps fitting the point's best guide")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--backend",
        choices=posterior.BACKENDS,
        default="auto",
        help="NUTS in pyro, or numpyro on the model's JAX twin (auto: numpyro where the model has one)",
    )


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
        gap_steps=args.gap_steps,
        seed=args.seed,
        backend=args.backend,
    )
    print(report["text"])
    return 0


def inspect_point(model, data, index: int, out_dir=None, **options) -> dict:
    r"""``ppgen inspect`` for ``data.x[index]``: :func:`ppgen.inference.posterior.inspect_point` (the
    analysis), then ``inspect_<index>.nc`` (the InferenceData), ``pair.png`` and ``posterior.png``
    in ``out_dir``.

    Returns:
        The analysis' dict, with ``figures`` and ``netcdf`` (paths; empty/None without ``out_dir``).
    """
    report = posterior.inspect_point(model, data, index, **options)
    report["figures"], report["netcdf"] = [], None
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        levels = model.spec.num_categories if model.spec.base_kind == "categorical" else None
        for name, draw in (
            ("pair.png", posterior_pair_figure),
            ("posterior.png", posterior_marginals_figure),
        ):
            fig = draw(report, levels)
            fig.savefig(out_dir / name, dpi=110, bbox_inches="tight")
            plt.close(fig)
            report["figures"].append(out_dir / name)
        report["netcdf"] = out_dir / f"inspect_{index}.nc"
        report["idata"].to_netcdf(str(report["netcdf"]))
        report["text"] += "\n\nwritten: " + ", ".join(str(f) for f in [report["netcdf"], *report["figures"]])
    return report
