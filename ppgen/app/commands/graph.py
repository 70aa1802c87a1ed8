"""`ppgen graph`: the parameter count of a Bayes-net structure over n variables, and a drawing of its DAG."""

from pathlib import Path

from ppgen.errors import PPGenError

MAX_DRAWN_EDGES = 2000


def add_arguments(p):
    p.add_argument(
        "structure",
        choices=["independent", "chain", "markov"],
        help="independent: no edges; chain: the full chain rule; "
        "markov: each variable depends on the --order previous ones",
    )
    p.add_argument("--n", type=int, default=8, help="number of variables (default 8)")
    p.add_argument("--order", type=int, default=1, help="k of the Markov structure (default 1)")
    p.add_argument("--card", type=int, default=2, help="states per variable (default 2, binary)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write a drawing of the DAG to this image file (.png, .pdf, .svg)",
    )
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def describe_count(count: int) -> str:
    r"""An exact integer, with its order of magnitude when it is long (Python ints never overflow)."""
    digits = str(count)
    if len(digits) <= 15:
        return f"{count:,}"
    return f"{digits[0]}.{digits[1:4]}e+{len(digits) - 1} ({len(digits)} digits: {digits})"


def build(structure: str, n: int, order: int, card: int):
    from ppgen.graph import BayesNet

    if not isinstance(card, int) or card < 2:
        raise PPGenError(f"--card must be an int >= 2, got {card}")
    if n < 1:
        raise PPGenError(f"--n must be >= 1, got {n}")
    # the structure is all the count needs: no tables (they would not fit for the chain rule at large n)
    if structure == "independent":
        return BayesNet.independent(n, card, tables=False)
    if structure == "chain":
        return BayesNet.chain_rule(n, card, tables=False)
    if order < 0:
        raise PPGenError(f"--order must be >= 0, got {order}")
    return BayesNet.markov(n, order=order, card=card, tables=False)


def run(args) -> int:
    bn = build(args.structure, args.n, args.order, args.card)
    label = f"markov(order={args.order})" if args.structure == "markov" else args.structure
    count = bn.num_parameters()
    print(f"structure:  {label} over {args.n} variables with {args.card} states each")
    print(f"edges:      {bn.graph.number_of_edges():,}")
    print(f"parameters: {describe_count(count)}")
    if args.out is not None:
        if args.out.exists() and not args.force:
            raise PPGenError(f"{args.out} exists; pass --force to overwrite it")
        edges = bn.graph.number_of_edges()
        if edges > MAX_DRAWN_EDGES:
            raise PPGenError(
                f"{edges} edges are too many to draw (at most {MAX_DRAWN_EDGES}); use a smaller --n"
            )
        import matplotlib.pyplot as plt

        from ppgen.app.plots.graphical import draw_dag

        fig, ax = plt.subplots(
            figsize=(min(14, 2 + 0.5 * args.n), 3 if args.structure != "independent" else 5)
        )
        draw_dag(bn.graph, ax=ax, title=f"{label}, n = {args.n}: {describe_count(count)} parameters")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        try:
            fig.savefig(args.out, dpi=120, bbox_inches="tight")
        except (OSError, ValueError) as e:
            raise PPGenError(f"could not write {args.out}: {e}") from None
        finally:
            plt.close(fig)
        print(f"drawing:    {args.out}")
    return 0
