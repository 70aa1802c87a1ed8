"""The registered `bayesnet` model: exact densities on tiny images, counting, save/load, the compare path."""

import itertools

import pytest
import torch

import ppgen
from ppgen.data import DataSpec, from_tensor

STRUCTURES = [
    dict(structure="independent"),
    dict(structure="markov", order=1),
    dict(structure="markov", order=3),
    dict(structure="chain"),
    dict(structure="chain", max_table=8),
]


def all_states(spec: DataSpec) -> torch.Tensor:
    k = spec.num_categories
    return torch.tensor(list(itertools.product(range(k), repeat=spec.dim)), dtype=torch.float32).reshape(
        -1, *spec.event_shape
    )


@pytest.mark.parametrize(
    "spec",
    [DataSpec("binary", (1, 3, 3)), DataSpec("categorical:3", (1, 2, 2))],
    ids=["binary", "categorical"],
)
@pytest.mark.parametrize("config", STRUCTURES, ids=lambda c: "-".join(map(str, c.values())))
def test_fitted_model_sums_to_one_over_every_state(spec, config):
    states = all_states(spec)
    data = from_tensor(states[torch.randint(len(states), (200,))], kind=spec.kind)
    m = ppgen.create("bayesnet", data, **config)
    ppgen.fit(m, data, progress=False)
    with torch.no_grad():
        total = m.log_prob(states).double().exp().sum()
    assert float(total) == pytest.approx(1.0, abs=1e-5)
    assert m.sample(7).shape == (7, *spec.event_shape)


def test_counting_is_the_mle_and_smoothing_is_laplace():
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    data = from_tensor(x, kind="binary")
    m = ppgen.create("bayesnet", data, structure="markov", order=1, smoothing=0.0)
    ppgen.fit(m, data, progress=False)
    # p(x0=1) = 3/4, p(x1=1 | x0=1) = 2/3, p(x1=1 | x0=0) = 1
    expected = torch.tensor([0.25 * 1.0, 0.75 * 1 / 3, 0.75 * 2 / 3])
    got = m.log_prob(torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])).exp()
    assert torch.allclose(got, expected, atol=1e-6)
    laplace = ppgen.create("bayesnet", data, structure="independent", smoothing=1.0)
    ppgen.fit(laplace, data, progress=False)
    assert float(laplace.log_prob(torch.tensor([[1.0, 1.0]])).exp()) == pytest.approx(4 / 6 * 4 / 6, abs=1e-6)


def test_pyro_program_observes_x_and_matches_log_prob():
    spec = DataSpec("binary", (1, 3, 3))
    m = ppgen.create("bayesnet", spec, structure="markov", order=2)
    m.net.randomize()
    x = m.sample(5)
    trace = ppgen.base.pyro.poutine.trace(m.model).get_trace(x)
    assert "x" in trace.observation_nodes
    assert torch.allclose(m.pyro_log_prob(x), m.log_prob(x).sum(), atol=1e-5)


def test_graph_counts_and_names():
    spec = DataSpec("binary", (1, 8, 8))
    m = ppgen.create("bayesnet", spec, structure="markov", order=2)
    g = m.graph()
    assert list(g.nodes)[:3] == ["x0", "x1", "x2"] and set(g.predecessors("x10")) == {"x8", "x9"}
    assert m.num_parameters == 1 + 2 + 62 * 4
    assert ppgen.create("bayesnet", spec, structure="chain").num_parameters == 2**64 - 1


def test_bad_config_and_data_are_rejected():
    spec = DataSpec("binary", (1, 2, 2))
    with pytest.raises(ppgen.PPGenError, match="unknown structure"):
        ppgen.create("bayesnet", spec, structure="tree")
    with pytest.raises(ppgen.PPGenError):
        ppgen.create("bayesnet", DataSpec("continuous", (2,)))
    m = ppgen.create("bayesnet", spec)
    with pytest.raises(ppgen.PPGenError, match="integers"):
        m.log_prob(torch.full((1, 1, 2, 2), 0.5))


def test_state_dict_round_trip_keeps_sparse_counts():
    spec = DataSpec("binary", (1, 3, 3))
    data = from_tensor(torch.randint(0, 2, (100, 1, 3, 3)).float(), kind="binary")
    m = ppgen.create("bayesnet", data, structure="chain", max_table=8)
    ppgen.fit(m, data, progress=False)
    fresh = ppgen.create("bayesnet", spec, structure="chain", max_table=8)
    fresh.load_state_dict(m.state_dict())
    states = all_states(spec)
    assert torch.allclose(fresh.log_prob(states), m.log_prob(states))


@pytest.mark.parametrize("structure", ["markov", "chain"])
def test_compare_path_on_digits_is_quick(structure):
    train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
    m = ppgen.create("bayesnet", train, structure=structure)
    result = ppgen.fit(m, train, epochs=1, progress=False)
    metrics = ppgen.evaluate(m, test, num_samples=100)
    assert result.epochs == 1 and metrics["test_nll_kind"] == "exact"
    assert 10 < metrics["test_nll_nats"] < 64 * 0.6932  # better than uniform, honestly above 10 nats
    assert m.sample(64).shape == (64, 1, 8, 8)
