"""The `independent` and `mixture` models: exact densities, Pyro programs, fitting and quality on digits."""

import itertools

import pytest
import torch

import ppgen
from ppgen.data import DataSpec
from ppgen.errors import PPGenError

TINY_SPECS = [DataSpec("binary", (1, 3, 3)), DataSpec("categorical:3", (1, 2, 2)), DataSpec("binary", (10,))]


def all_states(spec):
    k = spec.num_categories
    states = torch.tensor(list(itertools.product(range(k), repeat=spec.dim)), dtype=torch.float64)
    return states.reshape(-1, *spec.event_shape)


def random_params(model):
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model.double()


@pytest.mark.parametrize("name", ["independent", "mixture"])
@pytest.mark.parametrize("spec", TINY_SPECS, ids=lambda s: f"{s.kind}{s.event_shape}")
def test_exact_density_sums_to_one(name, spec):
    model = random_params(ppgen.create(name, spec))
    total = model.log_prob(all_states(spec)).exp().sum()
    assert float(total) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", ["independent", "mixture"])
def test_continuous_density_integrates_to_one(name):
    model = random_params(ppgen.create(name, DataSpec("continuous", (2,))))
    g = torch.linspace(-12, 12, 801, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    p = model.log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).exp()
    assert float(p.sum() * (g[1] - g[0]) ** 2) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("name", ["independent", "mixture"])
@pytest.mark.parametrize("spec", TINY_SPECS[:2], ids=lambda s: s.kind)
def test_pyro_program_scores_what_log_prob_says(name, spec):
    model = random_params(ppgen.create(name, spec))
    x = model.sample(7)
    elbo = model.elbo().differentiable_loss(model.model, model.guide, x, None)
    assert float(-elbo) == pytest.approx(float(model.log_prob(x).sum()), rel=1e-6)


@pytest.mark.parametrize("name", ["independent", "mixture"])
def test_samples_match_the_density(name):
    spec = DataSpec("binary", (3,))
    model = random_params(ppgen.create(name, spec))
    x = model.sample(40_000)
    codes = (x * torch.tensor([4.0, 2.0, 1.0], dtype=x.dtype)).sum(1).long()
    freq = torch.bincount(codes, minlength=8).double() / len(x)
    p = model.log_prob(all_states(spec)).exp()
    chi2 = float((len(x) * (freq - p) ** 2 / p).sum())
    assert chi2 < 24.3  # chi-square with 7 dof, p = 0.001


def test_counting_mle_equals_gradient_mle():
    x = torch.bernoulli(torch.full((500, 6), 0.3))
    data = ppgen.data.from_tensor(x, "binary")
    closed = ppgen.create("independent", data, smoothing=0.0)
    ppgen.fit(closed, data, progress=False)
    assert torch.allclose(closed.params.sigmoid(), x.mean(0), atol=1e-6)
    grad = ppgen.create("independent", data, smoothing=0.0)
    ppgen.fit(grad, data, objective="elbo", epochs=300, batch_size=500, lr=0.05, progress=False)
    assert torch.allclose(grad.params.sigmoid(), x.mean(0), atol=2e-3)


def test_add_one_smoothing_keeps_unseen_values_possible():
    data = ppgen.data.from_tensor(torch.zeros(10, 3), "binary")
    m = ppgen.create("independent", data)
    ppgen.fit(m, data, progress=False)
    assert torch.allclose(m.params.sigmoid(), torch.full((3,), 1 / 12))
    assert torch.isfinite(m.log_prob(torch.ones(1, 3))).all()


def test_graphs():
    spec = DataSpec("binary", (1, 2, 2))
    assert sorted(ppgen.create("independent", spec).graph().nodes) == ["x0", "x1", "x2", "x3"]
    assert ppgen.create("independent", spec).graph().number_of_edges() == 0
    g = ppgen.create("mixture", spec).graph()
    assert set(g.edges) == {("z", f"x{i}") for i in range(4)}


def test_log_prob_validates_its_input():
    m = ppgen.create("independent", DataSpec("binary", (4,)))
    with pytest.raises(PPGenError, match=r"shape \(B, 4\)"):
        m.log_prob(torch.zeros(2, 5))
    with pytest.raises(PPGenError, match="NaN"):
        m.log_prob(torch.tensor([[0.0, float("nan"), 0, 0]]))
    c = ppgen.create("independent", DataSpec("categorical:3", (2,)))
    with pytest.raises(PPGenError, match=r"\[0, 3\)"):
        c.log_prob(torch.tensor([[0.0, 3.0]]))


def test_create_rejects_unknown_names_and_options():
    spec = DataSpec("binary", (4,))
    with pytest.raises(PPGenError, match="independent"):
        ppgen.create("nope", spec)
    with pytest.raises(PPGenError, match="bad config"):
        ppgen.create("mixture", spec, colours=3)


def test_digits_quality():
    train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
    ind = ppgen.create("independent", train)
    ppgen.fit(ind, train, progress=False)
    nll_ind = ppgen.evaluate(ind, test)["test_nll_nats"]
    assert nll_ind <= 25.3
    mix = ppgen.create("mixture", train)
    ppgen.fit(mix, train, progress=False)
    nll_mix = ppgen.evaluate(mix, test)["test_nll_nats"]
    assert nll_mix <= nll_ind - 4.0
