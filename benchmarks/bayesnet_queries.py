"""Exact Bayes-net queries: ppgen's compiled variable elimination against pgmpy's VariableElimination.

For each net (asia, 8 nodes, and child, 20, from pgmpy's bundled example networks; a random DAG of 30
nodes with up to 3 parents and 2-4 states each) 20,000 rows are drawn from the true net (seed 0), a
ppgen net of the same structure is fit to them by counting (add-one smoothing) and the same fitted CPTs
are copied into a pgmpy ``DiscreteBayesianNetwork``. Both answer the same 100 queries (70 single
targets, 30 pairs; 0-3 evidence values taken from a random data row, so never impossible); every
answer must agree to 1e-9 (float64). Times are CPU seconds (``time.process_time``) for the 100 queries,
best of ``--repeats``, torch on one thread:

- ``ppgen cold``: a fresh net each repeat, so every query form is compiled (ancestors, contraction path)
  and its tables converted: the cost of 100 distinct queries;
- ``ppgen warm``: the same 100 again with the compiled forms cached on the net;
- ``enumeration``: ppgen's reference path (the Pyro program enumerated, ``method="enumeration"``), once;
- ``batch``: one query form with ``--batch`` evidence rows, one ppgen call against a loop in pgmpy.

Ratios are ppgen / pgmpy (< 1: ppgen is faster). pgmpy is a peer, not a dependency of ppgen::

    pip install -e ".[bench]"        # or: pip install pgmpy
    python benchmarks/bayesnet_queries.py
"""

import argparse
import time

import numpy as np
import torch

from ppgen.graph import BayesNet

try:
    import pgmpy
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.inference import VariableElimination
    from pgmpy.models import DiscreteBayesianNetwork
except ImportError:  # pragma: no cover - the peer is optional
    raise SystemExit('this benchmark needs pgmpy: pip install -e ".[bench]" (or pip install pgmpy)') from None


def pgmpy_example(name: str):
    r"""One of the example networks pgmpy bundles (``pgmpy/utils/example_models/<name>.bif.gz``), read
    offline; pgmpy 1.1's ``example_models.load_model`` downloads them from the Hugging Face hub instead."""
    import gzip
    from importlib.resources import files

    from pgmpy.readwrite import BIFReader

    bundled = files("pgmpy.utils").joinpath("example_models", f"{name}.bif.gz")
    if not bundled.is_file():
        raise SystemExit(f"pgmpy {pgmpy.__version__} does not bundle {name}.bif.gz; try pgmpy 0.1.26 - 1.1")
    return BIFReader(string=gzip.decompress(bundled.read_bytes()).decode("utf-8")).get_model()


def from_pgmpy(model) -> BayesNet:
    r"""The ppgen net of a pgmpy network, with its CPTs (states renamed 0 .. card - 1)."""
    cards = {str(v): int(model.get_cardinality(v)) for v in model.nodes()}
    bn = BayesNet([(str(u), str(v)) for u, v in model.edges()], cards).double()
    for cpd in model.get_cpds():
        v = str(cpd.variable)
        order = [str(u) for u in cpd.variables[1:]]  # pgmpy's evidence order, first slowest
        values = torch.as_tensor(cpd.get_values(), dtype=torch.float64).T  # (rows, card)
        table = values.reshape(*(cards[u] for u in order), cards[v])
        perm = [order.index(u) for u in bn.parents(v)] + [len(order)]
        bn.set_table(v, table.permute(perm).reshape(-1, cards[v]))
    return bn


def to_pgmpy(bn: BayesNet):
    r"""A pgmpy network with the CPTs of ``bn`` (states 0 .. card - 1)."""
    model = DiscreteBayesianNetwork(list(bn.graph.edges))
    model.add_nodes_from(bn.variables)
    cpds = []
    for v in bn.variables:
        parents = list(bn.parents(v))
        values = bn.cpt(v).detach().reshape(-1, bn.cards[v]).T.numpy()  # (card, rows), last parent fastest
        cpds.append(
            TabularCPD(
                v,
                bn.cards[v],
                values,
                evidence=parents or None,
                evidence_card=[bn.cards[u] for u in parents] or None,
            )
        )
    model.add_cpds(*cpds)
    model.check_model()
    return model


def random_net(n: int, seed: int) -> BayesNet:
    r"""n variables in a random order, each with 0-3 parents among the earlier ones, 2-4 states, CPT rows
    drawn from Dirichlet(1)."""
    rng = torch.Generator().manual_seed(seed)
    names = [f"v{i}" for i in range(n)]
    edges = []
    for i in range(1, n):
        k = int(torch.randint(0, min(3, i) + 1, (), generator=rng))
        edges += [(names[j], names[i]) for j in torch.randperm(i, generator=rng)[:k].tolist()]
    cards = {v: int(torch.randint(2, 5, (), generator=rng)) for v in names}
    torch.manual_seed(seed)
    return BayesNet(edges, cards).double().randomize()


def make_queries(bn: BayesNet, x: torch.Tensor, n: int, seed: int) -> list:
    r"""n queries: 70 % one target, 30 % two; 0-3 evidence values from a random row of ``x``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = 1 if i < int(0.7 * n) else 2
        chosen = rng.permutation(len(bn.variables))
        m = int(rng.integers(0, 4))
        row = x[int(rng.integers(len(x)))]
        targets = [bn.variables[j] for j in chosen[:k]]
        evidence = {bn.variables[j]: int(row[j]) for j in chosen[k : k + m]}
        out.append((targets, evidence))
    return out


def pgmpy_answer(ve, targets: list, evidence: dict) -> torch.Tensor:
    f = ve.query(targets, evidence=evidence or None, show_progress=False)
    values = torch.as_tensor(np.asarray(f.values), dtype=torch.float64)
    return values.permute([list(f.variables).index(v) for v in targets])


def cpu(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.process_time()
        out = fn()
        best = min(best, time.process_time() - start)
    return best, out


def fresh(bn: BayesNet) -> BayesNet:
    r"""A copy of ``bn`` with nothing compiled."""
    copy = BayesNet(list(bn.graph.edges), dict(bn.cards)).double()
    copy.load_state_dict(bn.state_dict())
    return copy


def bench(name: str, truth: BayesNet, args) -> dict:
    torch.manual_seed(args.seed)
    x = truth.sample(args.rows)
    fitted = BayesNet(list(truth.graph.edges), dict(truth.cards)).double().fit(x, smoothing=1.0)
    ve = VariableElimination(to_pgmpy(fitted))
    queries = make_queries(fitted, x, args.queries, args.seed)

    t_pgmpy, want = cpu(lambda: [pgmpy_answer(ve, t, e) for t, e in queries], args.repeats)
    copies = [fresh(fitted) for _ in range(args.repeats)]

    def cold():
        bn = copies.pop()
        return [bn.query(t, e) for t, e in queries]

    t_cold, got = cpu(cold, args.repeats)
    t_warm, _ = cpu(lambda: [fitted.query(t, e) for t, e in queries], args.repeats + 1)
    t_enum, ref = cpu(lambda: [fitted.query(t, e, method="enumeration") for t, e in queries], 1)
    error = max(float((a - b).abs().max()) for a, b in zip(got, want))
    error = max(error, max(float((a - b).abs().max()) for a, b in zip(ref, want)))
    if error > 1e-9:
        raise SystemExit(f"{name}: ppgen and pgmpy disagree by {error:.2e}")

    # one query form, many evidence rows: one contraction against a loop
    targets, evidence = next((t, e) for t, e in queries if e)
    rows = x[torch.randperm(len(x))[: args.batch]]
    batch = {v: rows[:, fitted.column[v]] for v in evidence}
    t_batch, got_b = cpu(lambda: fitted.query(targets, batch), args.repeats)
    t_batch_pgmpy, want_b = cpu(
        lambda: [
            pgmpy_answer(ve, targets, {v: int(b[r]) for v, b in batch.items()}) for r in range(args.batch)
        ],
        1,
    )
    error_b = float((got_b - torch.stack(want_b)).abs().max())
    if error_b > 1e-9:
        raise SystemExit(f"{name}: batched answers disagree with pgmpy by {error_b:.2e}")
    return {
        "net": name,
        "nodes": len(fitted.variables),
        "pgmpy": t_pgmpy,
        "cold": t_cold,
        "warm": t_warm,
        "enum": t_enum,
        "error": max(error, error_b),
        "batch_ppgen": t_batch,
        "batch_pgmpy": t_batch_pgmpy,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nets", default="asia,child,random30", help="asia, child, random30 (default all)")
    parser.add_argument("--rows", type=int, default=20_000, help="training rows (default 20,000)")
    parser.add_argument("--queries", type=int, default=100, help="queries per net (default 100)")
    parser.add_argument("--batch", type=int, default=1000, help="evidence rows of the batched query")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, the best is kept (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = []
    for name in args.nets.split(","):
        truth = random_net(30, args.seed) if name == "random30" else from_pgmpy(pgmpy_example(name))
        results.append(bench(name, truth, args))
    print(
        f"{args.queries} queries per net ({int(0.7 * args.queries)} single targets, the rest pairs; "
        f"0-3 evidence values), CPTs fit on {args.rows:,} rows; CPU seconds, best of {args.repeats}; "
        "torch on 1 thread"
    )
    print(
        f"{'net':<9} {'nodes':>5} {'pgmpy VE':>9} {'ppgen cold':>11} {'ratio':>6} "
        f"{'ppgen warm':>11} {'ratio':>6} "
        f"{'enumeration':>12} {'ratio':>6} {'max |diff|':>10} "
        f"{'batch ' + str(args.batch) + ' pgmpy':>17} {'ppgen':>8} {'ratio':>7}"
    )
    for r in results:
        print(
            f"{r['net']:<9} {r['nodes']:>5} {r['pgmpy']:>9.4f} "
            f"{r['cold']:>11.4f} {r['cold'] / r['pgmpy']:>6.2f} "
            f"{r['warm']:>11.4f} {r['warm'] / r['pgmpy']:>6.2f} {r['enum']:>12.4f} "
            f"{r['enum'] / r['pgmpy']:>6.2f} {r['error']:>10.1e} {r['batch_pgmpy']:>17.4f} "
            f"{r['batch_ppgen']:>8.4f} {r['batch_ppgen'] / r['batch_pgmpy']:>7.4f}"
        )


if __name__ == "__main__":
    main()
