"""NADE and RNADE specifics: the incremental O(DH) sampler against the naive one, the running
activation, the mixture-of-Gaussians conditionals, label conditioning and config validation.
(Normalization, sampling, structure and completion are in the shared driver, test_autoregressive.py.)"""

import itertools

import pytest
import torch
from scipy import stats

import ppgen
from ppgen.data import DataSpec
from ppgen.errors import PPGenError
from ppgen.models.autoregressive import AutoregressiveModel

BINARY = DataSpec("binary", (1, 3, 3), 3)
CATEGORICAL = DataSpec("categorical:3", (1, 2, 2), 3)


def build(spec, **config):
    m = ppgen.create("nade", spec, hidden=16, order="random", **config).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return m.eval()


def record_factor_params(m):
    r"""Wraps ``m.factor`` to record the parameters it is called with (the fast sampler's conditionals)."""
    calls, original = [], m.factor

    def factor(params):
        calls.append(params.clone())
        return original(params)

    m.factor = factor
    return calls


@pytest.mark.parametrize("spec", [BINARY, CATEGORICAL], ids=["binary", "categorical"])
def test_incremental_sampler_carries_the_parallel_activations(spec):
    # At every step the running activation gives exactly the conditional that the parallel pass
    # computes for the finished sample: the incremental sampler is the naive one, without recomputation.
    m = build(spec)
    calls = record_factor_params(m)
    x = m.sample(50)
    del m.factor
    params = m.conditionals(x).reshape(50, spec.dim, -1)
    assert len(calls) == spec.dim
    for t, d in enumerate(m.ordering().tolist()):
        assert torch.allclose(calls[t].reshape(50, -1), params[:, d], atol=1e-12)


def test_incremental_sampler_never_runs_the_parallel_pass():
    m = build(BINARY)
    counts = {"n": 0}
    original = m.conditionals

    def counting(x, y=None):
        counts["n"] += 1
        return original(x, y)

    m.conditionals = counting
    m.sample(10)
    assert counts["n"] == 0
    AutoregressiveModel.sample(m, 10)  # the naive sampler: one parallel pass per dimension
    assert counts["n"] == BINARY.dim


def test_incremental_and_naive_samplers_draw_the_same_distribution():
    m = build(BINARY)
    n = 4000
    states = torch.tensor(list(itertools.product(range(2), repeat=9)), dtype=torch.float64)
    code = 2 ** torch.arange(8, -1, -1)
    fast = torch.bincount((m.sample(n).reshape(n, -1).long() * code).sum(1), minlength=512)
    naive = torch.bincount(
        (AutoregressiveModel.sample(m, n).reshape(n, -1).long() * code).sum(1), minlength=512
    )
    seen = (fast + naive) > 0
    table = torch.stack([fast[seen], naive[seen]]).numpy()
    assert stats.chi2_contingency(table).pvalue > 1e-3
    with torch.no_grad():
        probs = m.log_prob(states.reshape(-1, 1, 3, 3)).exp()
    assert abs(float(probs.sum()) - 1) < 1e-10


def test_log_prob_is_the_sum_of_explicit_conditionals():
    # h_i = sigmoid(c + sum_{j before i} W_j x_j), p(x_i = 1) = sigmoid(b_i + V_i h_i), written out with a
    # loop.
    m = build(DataSpec("binary", (5,)))
    x = torch.bernoulli(torch.full((7, 5), 0.5, dtype=torch.float64))
    expected = torch.zeros(7, dtype=torch.float64)
    for t, d in enumerate(m.order.tolist()):
        prior = m.order[:t]
        a = m.c + (x[:, prior].unsqueeze(-1) * m.W[:t, 0]).sum(1)
        logit = torch.sigmoid(a) @ m.V[t, 0] + m.b[t, 0]
        expected += torch.distributions.Bernoulli(logits=logit).log_prob(x[:, d])
    assert torch.allclose(m.log_prob(x), expected, atol=1e-10)


def test_label_changes_the_distribution():
    m = build(BINARY, conditional=True)
    x = m.sample(20, torch.zeros(20, dtype=torch.long))
    lp0 = m.log_prob(x, torch.zeros(20, dtype=torch.long))
    lp1 = m.log_prob(x, torch.ones(20, dtype=torch.long))
    assert not torch.allclose(lp0, lp1)


def test_rnade_conditionals_are_gaussian_mixtures():
    m = ppgen.create("rnade", DataSpec("continuous", (3,)), hidden=8, components=4).double().eval()
    x = torch.randn(6, 3, dtype=torch.float64)
    params = m.conditionals(x)  # (B, D, 3C)
    assert params.shape == (6, 3, 12)
    logits, loc, log_scale = params.reshape(6, 3, 3, 4).unbind(2)
    normal = torch.distributions.Normal(loc, log_scale.clamp(m.LOG_SCALE_MIN, m.LOG_SCALE_MAX).exp())
    by_hand = torch.logsumexp(logits.log_softmax(-1) + normal.log_prob(x.unsqueeze(-1)), -1).sum(-1)
    assert torch.allclose(m.log_prob(x), by_hand, atol=1e-10)


def test_rnade_fits_a_two_dimensional_mixture():
    # 160 steps of training on rings8 already beat the best single Gaussian by more than a nat.
    train = ppgen.data.load("rings8", "train", n=1000)
    test = ppgen.data.load("rings8", "test", n=1000)
    m = ppgen.create("rnade", train, hidden=32, components=8)
    ppgen.fit(m, train, epochs=8, batch_size=50, lr=1e-2, progress=False)
    with torch.no_grad():
        nll = float(-m.log_prob(test.x).mean())
    gaussian_nll = float(
        -torch.distributions.MultivariateNormal(train.x.mean(0), torch.cov(train.x.T)).log_prob(test.x).mean()
    )
    assert nll < gaussian_nll - 1.0


@pytest.mark.parametrize(
    "config", [{"hidden": 0}, {"activation": "softsign"}, {"order": "spiral"}, {"dropout": 1.0}]
)
def test_bad_config_raises(config):
    with pytest.raises(PPGenError):
        ppgen.create("nade", BINARY, **config)


def test_conditional_needs_labelled_data():
    with pytest.raises(PPGenError):
        ppgen.create("nade", DataSpec("binary", (4,)), conditional=True)
