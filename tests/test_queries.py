"""Compiled Bayes-net queries (ppgen.graph.elimination) against the reference: the enumerated Pyro program."""

import pytest
import torch

from ppgen.errors import PPGenError
from ppgen.graph import BayesNet
from ppgen.graph.elimination import contraction_steps
from ppgen.seed import seed_everything


def random_net(seed: int, n: int = 10, max_parents: int = 3) -> BayesNet:
    r"""n variables in a random order, each with up to ``max_parents`` earlier parents, 2-4 states, CPT rows
    from Dirichlet(1), float64."""
    seed_everything(seed)
    names = [f"v{i}" for i in torch.randperm(n).tolist()]
    edges = []
    for i in range(1, n):
        k = int(torch.randint(0, min(max_parents, i) + 1, ()))
        edges += [(names[j], names[i]) for j in torch.randperm(i)[:k].tolist()]
    cards = {v: int(torch.randint(2, 5, ())) for v in sorted(names)}
    return BayesNet(edges, cards).double().randomize()


def random_queries(bn: BayesNet, x: torch.Tensor, n: int):
    r"""n (targets, evidence) pairs: 1 or 2 targets, 0-3 evidence values from a row of ``x``."""
    for i in range(n):
        order = torch.randperm(len(bn.variables)).tolist()
        k, m = 1 + i % 2, i % 4
        row = x[i % len(x)]
        yield [bn.variables[j] for j in order[:k]], {bn.variables[j]: int(row[j]) for j in order[k : k + m]}


@pytest.mark.parametrize("seed", range(6))
def test_compiled_queries_equal_enumeration(seed):
    bn = random_net(seed, n=12)
    x = bn.sample(50)
    for targets, evidence in random_queries(bn, x, 12):
        got = bn.query(targets, evidence)
        want = bn.query(targets, evidence, method="enumeration")
        assert got.shape == want.shape == tuple(bn.cards[v] for v in targets)
        assert torch.allclose(got, want, atol=1e-9, rtol=0), (targets, evidence)
        assert float(got.sum()) == pytest.approx(1.0, abs=1e-12)


def test_batched_evidence_equals_one_query_per_row():
    bn = random_net(7, n=10)
    x = bn.sample(40)
    observed = [bn.variables[0], bn.variables[5], bn.variables[9]]
    targets = [bn.variables[3], bn.variables[7]]
    got = bn.query(targets, {v: x[:, bn.column[v]] for v in observed})
    want = torch.stack(
        [
            bn.query(targets, {v: int(x[r, bn.column[v]]) for v in observed}, method="enumeration")
            for r in range(len(x))
        ]
    )
    assert got.shape == (40, bn.cards[targets[0]], bn.cards[targets[1]])
    assert torch.allclose(got, want, atol=1e-9, rtol=0)


def test_batched_evidence_unrelated_to_the_target_broadcasts():
    bn = BayesNet([("a", "b")], {"a": 2, "b": 3, "c": 2}).double().randomize()
    got = bn.query("b", {"c": torch.tensor([0, 1, 1])})  # c is independent of b
    assert got.shape == (3, 3) and torch.allclose(got, bn.query("b").expand(3, 3), atol=1e-12)


def test_the_cache_follows_the_tables():
    bn = random_net(3, n=8)
    target, evidence = bn.variables[-1], {bn.variables[0]: 1}
    before = bn.query(target, evidence)
    bn.fit(bn.sample(500), smoothing=1.0)  # counting
    after = bn.query(target, evidence)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, bn.query(target, evidence, method="enumeration"), atol=1e-9, rtol=0)
    v = bn.variables[0]
    bn.set_table(v, torch.full_like(bn.table_log_probs(v).exp(), 1.0 / bn.cards[v]))
    assert torch.allclose(bn.query(target, evidence), bn.query(target, evidence, method="enumeration"))
    with torch.no_grad():  # any in-place change, e.g. an optimizer's step, is seen
        for p in bn.parameters():
            p.add_(torch.randn_like(p))
    assert torch.allclose(bn.query(target, evidence), bn.query(target, evidence, method="enumeration"))


def test_sparse_tables_fall_back_to_enumeration():
    seed_everything(0)
    bn = BayesNet.markov(6, order=3, max_table=8).double()  # tables of 16 entries are kept sparse
    bn.fit(BayesNet.markov(6, order=3).double().randomize().sample(300), smoothing=0.5)
    got = bn.query("x5", {"x1": 1})
    assert torch.allclose(got, bn.query("x5", {"x1": 1}, method="enumeration"), atol=1e-9, rtol=0)


def test_long_chain_compiles():
    bn = BayesNet.markov(120, order=2).double().randomize()  # more variables than einsum has letters
    got = bn.query(["x119", "x60"], {"x0": 1, "x100": 0})
    want = bn.query(["x119", "x60"], {"x0": 1, "x100": 0}, method="enumeration")
    assert torch.allclose(got, want, atol=1e-9, rtol=0)


def test_bad_queries_are_one_clear_error():
    bn = BayesNet([("a", "b")], {"a": 2, "b": 2}).double()
    with pytest.raises(PPGenError, match="unknown variable"):
        bn.query("z")
    with pytest.raises(PPGenError, match="outside"):
        bn.query("a", {"b": 1.5})
    with pytest.raises(PPGenError, match="one length B"):
        bn.query("a", {"b": torch.zeros(2, 2, dtype=torch.long)})
    with pytest.raises(PPGenError, match="unknown query method"):
        bn.query("a", method="magic")
    bn.set_table("b", torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(PPGenError, match="probability zero"):
        bn.query("a", {"b": torch.tensor([0, 1])})


def test_contraction_steps_eliminate_every_hidden_variable():
    # a - b - c - d chain as pairwise factors; output d: three pairwise steps, no reorder
    steps = contraction_steps([("a",), ("a", "b"), ("b", "c"), ("c", "d")], dict.fromkeys("abcd", 2), ("d",))
    factors = [torch.rand(2), torch.rand(2, 2), torch.rand(2, 2), torch.rand(2, 2)]
    operands = list(factors)
    for positions, equation in steps:
        operands.append(torch.einsum(equation, *[operands.pop(i) for i in positions]))
    assert len(steps) == 3 and len(operands) == 1
    assert torch.allclose(operands[0], torch.einsum("a,ab,bc,cd->d", *factors))
