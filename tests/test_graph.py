"""The graphical-model layer: counts, d-separation against brute-force joints, exact queries, fitting,
the compiled Pyro and NumPyro programs, from_pyro, drawing and the `ppgen graph` command."""

import itertools
import math

import matplotlib.pyplot as plt
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppgen.errors import PPGenError
from ppgen.graph import BayesNet


def random_dag(rng: torch.Generator, n: int, p_edge: float = 0.45, max_card: int = 2) -> BayesNet:
    r"""A random DAG over n variables (random order, each forward edge with p_edge), random CPTs."""
    names = [f"v{i}" for i in torch.randperm(n, generator=rng).tolist()]
    edges = [
        (names[i], names[j])
        for i in range(n)
        for j in range(i + 1, n)
        if torch.rand((), generator=rng) < p_edge
    ]
    cards = {v: int(torch.randint(2, max_card + 1, (), generator=rng)) for v in sorted(names)}
    return BayesNet(edges, cards).double().randomize()


def joint_table(bn: BayesNet) -> torch.Tensor:
    r"""The brute-force joint p(x), shaped (card of each variable in bn.ordering())."""
    states = torch.tensor(list(itertools.product(*[range(bn.cards[v]) for v in bn.variables])))
    with torch.no_grad():
        return bn.log_prob(states).exp().reshape([bn.cards[v] for v in bn.variables])


def marginal(joint: torch.Tensor, bn: BayesNet, keep: list) -> torch.Tensor:
    r"""p(keep), axes in the order of ``keep``."""
    axes = [bn.column[v] for v in keep]
    drop = tuple(i for i in range(joint.dim()) if i not in axes)
    m = joint.sum(drop) if drop else joint
    kept = sorted(axes)
    return m.permute([kept.index(a) for a in axes])


def ci_violation(joint, bn, x, y, given) -> float:
    r"""max over states of |p(x, y, z) p(z) - p(x, z) p(y, z)|: zero exactly when x ⊥ y | z."""
    z = sorted(given)
    pxyz = marginal(joint, bn, [x, y, *z])
    pz = marginal(joint, bn, z) if z else joint.sum()
    pxz = marginal(joint, bn, [x, *z]).unsqueeze(1)
    pyz = marginal(joint, bn, [y, *z]).unsqueeze(0)
    return float((pxyz * pz - pxz * pyz).abs().max())


# --- counts -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 5, 16])
def test_counts_of_the_notes(n):
    assert BayesNet.independent(n).num_parameters() == n
    assert BayesNet.chain_rule(n).num_parameters() == 2**n - 1
    assert BayesNet.markov(n, order=1).num_parameters() == 2 * n - 1


def test_counts_are_python_ints_at_mnist_size():
    assert BayesNet.chain_rule(784, tables=False).num_parameters() == 2**784 - 1
    assert BayesNet.markov(784, tables=False).num_parameters() == 1567
    assert BayesNet.independent(784, tables=False).num_parameters() == 784
    assert BayesNet([], {"rgb": 256**3}, tables=False).num_parameters() == 256**3 - 1
    assert BayesNet.independent(3, card=256).num_parameters() == 3 * 255  # three independent channels


def test_markov_order_k_count_and_structure():
    bn = BayesNet.markov(6, order=2, card=3)
    assert bn.parents("x5") == ("x3", "x4") and bn.parents("x1") == ("x0",)
    assert bn.num_parameters() == 2 * (1 + 3 + 4 * 9)
    assert bn.ordering() == [f"x{i}" for i in range(6)]


def test_cycles_and_bad_input_are_rejected():
    with pytest.raises(PPGenError, match="cycle"):
        BayesNet([("a", "b"), ("b", "c"), ("c", "a")])
    with pytest.raises(PPGenError, match="cardinality"):
        BayesNet([("a", "b")], {"a": 2})
    with pytest.raises(PPGenError, match="positive int"):
        BayesNet([("a", "b")], {"a": 2, "b": 0})
    with pytest.raises(PPGenError, match="order"):
        BayesNet.markov(4, order=-1)
    bn = BayesNet.markov(3)
    with pytest.raises(PPGenError, match="unknown variable"):
        bn.markov_blanket("y")
    with pytest.raises(PPGenError, match=r"shape \(B, 3\)"):
        bn.log_prob(torch.zeros(2, 4))
    with pytest.raises(PPGenError, match=r"\[0, card\)"):
        bn.log_prob(torch.tensor([[0, 2, 1]]))


# --- d-separation --------------------------------------------------------------------------------------
def test_v_structure_chain_and_fork():
    bn = BayesNet([("a", "c"), ("b", "c"), ("c", "d"), ("e", "a"), ("e", "f")], 2)
    assert bn.is_independent("a", "b") and not bn.is_independent("a", "b", given="c")
    assert not bn.is_independent("a", "b", given="d")  # a descendant of the collider opens it too
    assert bn.is_independent("e", "d", given="c") and not bn.is_independent("e", "d")
    assert bn.is_independent("a", "f", given="e") and not bn.is_independent("a", "f")
    assert bn.markov_blanket("a") == {"e", "c", "b"}
    assert bn.markov_blanket("c") == {"a", "b", "d"}
    marginal_pairs = {frozenset((s.x, s.y)) for s in bn.independencies(max_given=0)}
    assert marginal_pairs == {frozenset(p) for p in [("a", "b"), ("b", "e"), ("b", "f")]}
    assert str(next(s for s in bn.independencies() if s.given == {"c"} and {s.x, s.y} == {"d", "e"})) in (
        "e ⊥ d | c",
        "d ⊥ e | c",
    )


@pytest.mark.parametrize("seed", range(8))
def test_d_separation_matches_the_brute_force_joint(seed):
    rng = torch.Generator().manual_seed(seed)
    bn = random_dag(rng, n=4 + seed % 3)
    joint = joint_table(bn)
    holds = set(bn.independencies())
    assert holds, "expected at least one statement"
    for x, y in itertools.combinations(bn.variables, 2):
        rest = [v for v in bn.variables if v not in (x, y)]
        for k in range(len(rest) + 1):
            for z in itertools.combinations(rest, k):
                gap = ci_violation(joint, bn, x, y, z)
                statement = (x, y, frozenset(z))
                if statement in holds:
                    assert gap < 1e-9, f"{x} ⊥ {y} | {z} is d-separated but dependent ({gap})"
                else:
                    assert gap > 1e-9, f"{x}, {y} | {z} are d-connected but independent"


# --- the compiled Pyro program ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_log_prob_sums_to_one_and_equals_the_pyro_trace(seed):
    bn = random_dag(torch.Generator().manual_seed(seed), n=5, max_card=3)
    joint = joint_table(bn)
    assert float(joint.sum()) == pytest.approx(1.0, abs=1e-12)
    x = bn.sample(50)
    trace = pyro.poutine.trace(bn.model).get_trace(x)
    assert float(trace.log_prob_sum().detach()) == pytest.approx(
        float(bn.log_prob(x).sum().detach()), abs=1e-9
    )
    assert set(trace.observation_nodes) == set(bn.variables)


@pytest.mark.parametrize("seed", range(8))
def test_query_matches_brute_force_enumeration(seed):
    rng = torch.Generator().manual_seed(100 + seed)
    bn = random_dag(rng, n=6, max_card=3)
    joint = joint_table(bn)
    order = torch.randperm(6, generator=rng).tolist()
    targets = [bn.variables[i] for i in order[: 1 + seed % 2]]
    evidence = {
        bn.variables[i]: int(torch.randint(bn.cards[bn.variables[i]], (), generator=rng))
        for i in order[2 : 2 + seed % 3]
    }
    index = [slice(None)] * len(bn.variables)
    for v, value in evidence.items():
        index[bn.column[v]] = slice(value, value + 1)
    conditioned = joint[tuple(index)]
    expected = marginal(conditioned, bn, targets)
    expected = expected / expected.sum()
    got = bn.query(targets, evidence)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-6, rtol=0)


def test_query_on_a_long_chain_recycles_enumeration_dims():
    # 100 variables: more than torch's 64 tensor dims unless pyro.markov recycles them
    bn = BayesNet.markov(100, order=1).double().randomize()
    belief = torch.tensor([0.0, 1.0], dtype=torch.float64)  # x0 = 1
    for i in range(1, 100):
        belief = belief @ bn.cpt(f"x{i}")  # forward pass of the chain: p(x_i | x0 = 1)
    assert torch.allclose(bn.query("x99", {"x0": 1}), belief, atol=1e-9)


def test_query_rejects_bad_requests():
    bn = BayesNet([("a", "b")], {"a": 2, "b": 2}).double()
    with pytest.raises(PPGenError, match="not also evidence"):
        bn.query("a", {"a": 1})
    with pytest.raises(PPGenError, match="outside"):
        bn.query("a", {"b": 2})
    with torch.no_grad():  # make b = 1 impossible whatever a is
        bn.set_table("b", torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(PPGenError, match="probability zero"):
        bn.query("a", {"b": 1})


def test_conditional_samples_follow_the_exact_posterior():
    bn = (
        BayesNet([("a", "c"), ("b", "c"), ("c", "d"), ("d", "e")], {"a": 2, "b": 3, "c": 2, "d": 2, "e": 2})
        .double()
        .randomize()
    )
    n = 4000
    x = bn.sample(n, evidence={"d": 1})
    assert (x[:, bn.column["d"]] == 1).all()
    for v in ("a", "b", "e"):
        p = bn.query(v, {"d": 1})
        freq = torch.bincount(x[:, bn.column[v]], minlength=bn.cards[v]).double() / n
        assert (freq - p).abs().max() < 4 * math.sqrt(0.25 / n), v


def test_fit_recovers_cpts_from_20k_samples():
    truth = random_dag(torch.Generator().manual_seed(7), n=5)
    x = truth.sample(20_000)
    fitted = BayesNet(list(truth.graph.edges), dict(truth.cards)).double().fit(x)
    for v in truth.variables:
        parents = truth.parents(v)
        p, q = truth.cpt(v).reshape(-1, 2), fitted.cpt(v).reshape(-1, 2)
        counts = torch.zeros(p.shape[0], dtype=torch.float64)
        if parents:
            row = sum(
                s * x[:, truth.column[u]]
                for s, u in zip([2 ** (len(parents) - 1 - i) for i in range(len(parents))], parents)
            )
            counts = torch.bincount(row, minlength=p.shape[0]).double()
        else:
            counts[0] = len(x)
        se = (p * (1 - p) / counts.clamp_min(1).unsqueeze(1)).sqrt()
        assert ((p - q).abs() <= 5 * se + 1e-3)[counts > 0].all(), v


@pytest.mark.parametrize("smoothing", [0.0, 1.0])
def test_svi_agrees_with_counting(smoothing):
    truth = (
        BayesNet([("a", "b"), ("a", "c"), ("b", "c")], {"a": 2, "b": 3, "c": 2})
        .double()
        .randomize(concentration=3.0)
    )
    x = truth.sample(3000)
    counted = BayesNet(list(truth.graph.edges), dict(truth.cards)).double().fit(x, smoothing=smoothing)
    svi = (
        BayesNet(list(truth.graph.edges), dict(truth.cards))
        .double()
        .fit(x, method="svi", smoothing=smoothing, steps=200, lr=0.1)
    )
    for v in truth.variables:
        assert torch.allclose(svi.cpt(v), counted.cpt(v), atol=1e-4), v
    assert float(svi.log_prob(x).mean().detach()) == pytest.approx(
        float(counted.log_prob(x).mean().detach()), abs=1e-6
    )


def test_sparse_tables_equal_dense_ones():
    x = torch.randint(0, 2, (300, 7))
    dense = BayesNet.chain_rule(7).double().fit(x, smoothing=0.5)
    sparse = BayesNet.chain_rule(7, max_table=16).double().fit(x, smoothing=0.5)
    assert any(not sparse.is_dense(v) for v in sparse.variables)
    states = torch.tensor(list(itertools.product(range(2), repeat=7)))
    assert torch.allclose(dense.log_prob(states), sparse.log_prob(states), atol=1e-12)
    assert float(sparse.log_prob(states).exp().sum()) == pytest.approx(1.0, abs=1e-12)
    # counts accumulate across batches like tensors
    halves = [sparse.sufficient_statistics(x[:150]), sparse.sufficient_statistics(x[150:])]
    sparse.set_from_statistics({k: halves[0][k] + halves[1][k] for k in halves[0]}, smoothing=0.5)
    assert torch.allclose(dense.log_prob(states), sparse.log_prob(states), atol=1e-12)


# --- from_pyro ---------------------------------------------------------------------------------------------
def test_from_pyro_reads_the_written_dag_with_plates():
    def program(n=4):
        season = pyro.sample("season", dist.Categorical(torch.ones(4) / 4))
        rain = pyro.sample("rain", dist.Bernoulli(torch.tensor([0.2, 0.5, 0.3, 0.1])[season]))
        with pyro.plate("lawns", n):
            sprinkler = pyro.sample("sprinkler", dist.Bernoulli(0.3 + 0.4 * (1 - rain)))
            wet = pyro.sample("wet", dist.Bernoulli(0.05 + 0.5 * rain + 0.4 * sprinkler))
            pyro.sample("reading", dist.Normal(wet, 0.1), obs=torch.ones(n))
        pyro.sample("unrelated", dist.Bernoulli(0.5))

    bn = BayesNet.from_pyro(program, 4)
    assert set(bn.graph.edges) == {
        ("season", "rain"),
        ("rain", "sprinkler"),
        ("rain", "wet"),
        ("sprinkler", "wet"),
        ("wet", "reading"),
    }
    assert bn.cards == {"season": 4, "rain": 2, "sprinkler": 2, "wet": 2, "reading": None, "unrelated": 2}
    assert bn.graph.nodes["wet"]["plates"] == ("lawns",) and bn.graph.nodes["reading"]["observed"]
    assert bn.is_independent("season", "wet", given="rain")
    with pytest.raises(PPGenError, match="structure only"):
        bn.log_prob(torch.zeros(1, 6))


def test_from_pyro_of_a_compiled_net_gives_back_its_structure():
    bn = BayesNet([("a", "c"), ("b", "c"), ("c", "d")], {"a": 2, "b": 3, "c": 2, "d": 4})
    again = BayesNet.from_pyro(bn.model, None, 5)
    assert set(again.graph.edges) == set(bn.graph.edges) and again.cards == bn.cards


# --- the NumPyro twin -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(2))
def test_numpyro_log_density_equals_pyro(seed):
    import jax.numpy as jnp
    from numpyro.handlers import seed as numpyro_seed
    from numpyro.handlers import trace

    from ppgen.graph.numpyro_twin import numpyro_program

    bn = random_dag(torch.Generator().manual_seed(seed), n=6, max_card=3)
    states = torch.tensor(list(itertools.product(*[range(bn.cards[v]) for v in bn.variables])))
    sites = trace(numpyro_seed(numpyro_program(bn), 0)).get_trace(jnp.asarray(states.numpy()))
    twin = sum(site["fn"].log_prob(site["value"]) for site in sites.values() if site["type"] == "sample")
    assert torch.allclose(
        torch.as_tensor(np.array(twin), dtype=torch.float64),
        bn.log_prob(states).detach().double(),
        atol=1e-5,
        rtol=0,
    )


@pytest.mark.slow
def test_nuts_posterior_of_cpts_matches_the_conjugate_dirichlet():
    from ppgen.graph.nuts import fit_cpts_nuts, set_posterior_mean

    truth = BayesNet([("a", "b")], {"a": 2, "b": 3}).double().randomize()
    x = truth.sample(400)
    idata = fit_cpts_nuts(truth, x, concentration=1.0, num_warmup=300, num_samples=600, seed=0)
    exact = (
        BayesNet([("a", "b")], {"a": 2, "b": 3}).double().fit(x, smoothing=1.0)
    )  # Dirichlet(1 + counts) mean
    assert idata.posterior["cpt_b"].shape[-2:] == (2, 3)
    bayes = BayesNet([("a", "b")], {"a": 2, "b": 3}).double()
    set_posterior_mean(bayes, idata)
    for v in ("a", "b"):
        assert torch.allclose(bayes.cpt(v), exact.cpt(v), atol=0.02), v


# --- drawing and the command ------------------------------------------------------------------------------
def test_draw_lays_out_layers(tmp_path):
    from ppgen.app.plots.graphical import draw_dag, layered_layout

    bn = BayesNet([("a", "c"), ("b", "c"), ("c", "d"), ("a", "d")], 2)
    pos = layered_layout(bn.graph)
    assert pos["a"][0] == pos["b"][0] == 0 and pos["c"][0] == 1 and pos["d"][0] == 2
    fig, ax = plt.subplots()
    draw_dag(bn.graph, ax=ax, title="t")
    fig.savefig(tmp_path / "g.png")
    plt.close(fig)
    assert (tmp_path / "g.png").stat().st_size > 0


def test_graph_command(tmp_path, capsys):
    from ppgen.app.cli import main

    out = tmp_path / "m.png"
    assert main(["graph", "markov", "--n", "5", "--order", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parameters: 15" in printed and out.exists()
    assert main(["graph", "markov", "--n", "5", "--out", str(out)]) == 2  # exists, no --force
    assert main(["graph", "chain", "--n", "200"]) == 0
    assert str(2**200 - 1) in capsys.readouterr().out
    assert main(["graph", "independent", "--n", "3", "--card", "1"]) == 2


@pytest.mark.parametrize("name", ["independent", "mixture", "bayesnet"])
def test_model_graphs_are_dags_over_the_pixel_names(name, tmp_path):
    import networkx as nx

    import ppgen
    from ppgen.app.plots.graphical import draw_dag
    from ppgen.data import DataSpec

    spec = DataSpec("binary", (1, 2, 3))
    g = ppgen.create(name, spec).graph()
    assert nx.is_directed_acyclic_graph(g)
    assert {f"x{i}" for i in range(6)} <= set(g.nodes)
    ax = draw_dag(g, title=name)
    ax.figure.savefig(tmp_path / "g.png")
    plt.close(ax.figure)
