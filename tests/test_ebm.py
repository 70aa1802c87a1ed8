"""The energy-based model: its quadrature normalizer, contrastive divergence and the replay buffer."""

import math

import pyro
import pytest
import torch

import ppgen
from ppgen.data import DataSpec
from ppgen.errors import PPGenError
from ppgen.estimators.langevin import kde_jump, sgld
from ppgen.inference.contrastive import ContrastiveDivergence, ReplayBuffer
from ppgen.metrics import mode_coverage

TINY = {"hidden": 16, "layers": 2, "train_steps": 3, "sample_steps": 5, "quadrature_points": 128}


def continuous(n=128):
    return ppgen.data.from_tensor(torch.randn(n, 2) * torch.tensor([1.0, 0.5]) + 1, kind="continuous")


def fitted(data, **config):
    m = ppgen.create("ebm", data, **{**TINY, **config})
    ppgen.fit(m, data, steps=3, batch_size=64, progress=False)
    return m


# --- the partition function ---------------------------------------------------------------------


def test_quadrature_density_integrates_to_one_on_an_independent_grid():
    m = fitted(continuous(), quadrature_points=400)
    grid, cell = m.quadrature_grid()
    lo, hi = grid.min(0).values, grid.max(0).values
    # a finer trapezoid grid over the same box, evaluated through the public evaluation_log_prob
    n = 500
    xs = [
        torch.linspace(float(lo[i]) - cell**0.5 / 2, float(hi[i]) + cell**0.5 / 2, n, dtype=torch.float64)
        for i in range(2)
    ]
    xx, yy = torch.meshgrid(*xs, indexing="xy")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1).float()
    lp, kind = m.evaluation_log_prob(pts)
    assert kind == "quadrature"
    p = lp.double().exp().reshape(n, n)
    total = torch.trapezoid(torch.trapezoid(p, xs[0], dim=1), xs[1])
    assert abs(float(total) - 1) < 2e-3


def test_quadrature_log_z_matches_the_analytic_gaussian_integral_over_the_box():
    # with the network's last layer zeroed, E(u) = |u|^2 / (2 tau^2): the integral of exp(-E) over the
    # box is a product of erf differences (times scale^2, the Jacobian of u = (x - shift) / scale).
    m = fitted(continuous(), tau=0.7, quadrature_points=400)
    last = m.net.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    lo, hi = (t.double() for t in m.standardize.box(m.margin))
    tau = 0.7
    per_axis = (
        tau
        * math.sqrt(math.pi / 2)
        * (torch.erf(hi / (tau * math.sqrt(2))) - torch.erf(lo / (tau * math.sqrt(2))))
    )
    want = float(per_axis.log().sum() + 2 * m.standardize.scale.double().log())
    assert abs(m.log_partition() - want) < 1e-4


def test_log_partition_cache_follows_the_parameters():
    m = fitted(continuous())
    z = m.log_partition()
    with torch.no_grad():
        m.net.net[-1].bias.add_(1.0)  # E + scale: log Z - scale
    assert abs(m.log_partition() - (z - m.net.scale)) < 1e-4


def test_evaluation_log_prob_only_where_z_is_computable():
    spec = DataSpec("binary", (1, 3, 3))
    m = ppgen.create("ebm", spec, **TINY)
    x = torch.bernoulli(torch.full((4, 1, 3, 3), 0.5))
    assert m.evaluation_log_prob(x) is None
    assert m.log_prob(x).shape == (4,)
    unfitted = ppgen.create("ebm", DataSpec("continuous", (2,)), **TINY)
    assert unfitted.evaluation_log_prob(torch.zeros(3, 2)) is None
    with pytest.raises(PPGenError, match="quadrature"):
        unfitted.log_partition()


# --- energies, scores and the Pyro program -------------------------------------------------------


def test_log_prob_is_minus_energy_and_the_program_scores_it():
    data = continuous()
    m = fitted(data)
    x = data.x[:6]
    assert torch.allclose(m.log_prob(x), -m.energy(x))
    trace = pyro.poutine.trace(m.model).get_trace(x)
    assert torch.allclose(trace.log_prob_sum(), -m.energy(x).sum(), atol=1e-5)
    assert pyro.poutine.trace(m.model).get_trace().nodes["x"]["value"].shape == (1, 2)


def test_score_is_minus_the_energy_gradient():
    m = fitted(continuous()).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    s = m.score(x)
    eps = 1e-6
    for i in range(2):
        e = torch.zeros(2, dtype=torch.float64)
        e[i] = eps
        fd = -(m.energy(x + e) - m.energy(x - e)) / (2 * eps)
        assert torch.allclose(s[:, i], fd, atol=1e-6)


def test_ebm_validates_input():
    m = ppgen.create("ebm", DataSpec("continuous", (2,)), **TINY)
    with pytest.raises(PPGenError, match="shape"):
        m.log_prob(torch.zeros(2, 3))
    with pytest.raises(PPGenError, match="NaN"):
        m.log_prob(torch.tensor([[0.0, float("nan")]]))


@pytest.mark.parametrize(
    "kind,shape", [("binary", (1, 3, 3)), ("categorical:3", (1, 2, 2)), ("continuous", (2,))]
)
def test_ebm_samples_lie_in_the_support(kind, shape):
    spec = DataSpec(kind, shape)
    x = ppgen.create("ebm", spec, **TINY).sample(6)
    assert x.shape == (6, *shape)
    if spec.num_categories:
        assert ((x >= 0) & (x < spec.num_categories) & (x == x.round())).all()


# --- contrastive divergence and the replay buffer -----------------------------------------------


def test_replay_buffer_fills_then_overwrites():
    buf = ReplayBuffer(5)
    with pytest.raises(PPGenError, match="empty"):
        buf.sample(1)
    buf.push(torch.arange(3.0).unsqueeze(1))
    assert len(buf) == 3
    assert set(buf.sample(50).squeeze(1).tolist()) == {0.0, 1.0, 2.0}
    buf.push(torch.full((4, 1), 9.0))
    assert len(buf) == 5
    stored = buf.states.squeeze(1).tolist()
    assert stored.count(9.0) >= 2 and all(v in (0.0, 1.0, 2.0, 9.0) for v in stored)
    with pytest.raises(PPGenError):
        ReplayBuffer(0)


def test_contrastive_step_lowers_data_energy_relative_to_negatives():
    data = continuous(256)
    m = ppgen.create("ebm", data, **TINY)
    cd = ContrastiveDivergence(m, lr=1e-2, buffer_size=100)
    logs = [cd.step(data.x[i * 64 : (i + 1) * 64], None) for i in range(4)]
    assert {"loss", "cd", "energy_pos", "energy_neg"} <= set(logs[0])
    assert len(cd.buffer) == 100
    # persistent chains: after the first step most starts come from the buffer
    before = [p.detach().clone() for p in m.parameters()]
    cd.step(data.x[:64], None)
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters()))
    assert logs[-1]["cd"] < 0  # data energies pushed below the negatives'
    resumed = ContrastiveDivergence(m, lr=1e-2, buffer_size=100)
    resumed.load_state_dict(cd.state_dict())
    assert torch.equal(resumed.buffer.states, cd.buffer.states)
    with pytest.raises(PPGenError, match="reinit"):
        ContrastiveDivergence(m, lr=1e-3, reinit=2.0)


def test_kde_jumps_move_chains_to_the_modes_weights_that_langevin_cannot_fix():
    # two wells of equal width and weights 0.2 / 0.8, 40 standard deviations apart: Langevin chains
    # started half in each stay half in each; Metropolis-Hastings jumps restore 0.2 / 0.8.
    gen = torch.Generator().manual_seed(4)
    mu, s, w = (
        torch.tensor([-2.0, 2.0], dtype=torch.float64),
        0.1,
        torch.tensor([0.2, 0.8], dtype=torch.float64),
    )

    def energy(x):
        return -torch.logsumexp(w.log() - 0.5 * (x - mu) ** 2 / s**2, dim=1)

    x = torch.cat([torch.full((600, 1), -2.0), torch.full((600, 1), 2.0)]).double()
    stuck = sgld(energy, x, 100, 1e-3, generator=gen)
    assert abs(float((stuck > 0).double().mean()) - 0.5) < 0.01
    pool = x + s * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    rates = []
    for _ in range(20):
        x, rate = kde_jump(energy, x, pool, bandwidth=0.1, generator=gen)
        rates.append(rate)
    assert abs(float((x > 0).double().mean()) - 0.8) < 0.05  # 1,200 chains: standard error 0.012
    assert 0 < rates[0] <= 1
    assert x[x > 0].std() == pytest.approx(s, rel=0.1)


def test_ebm_quick_compare_path_on_rings8():
    train, test = ppgen.data.load("rings8", "train", n=2000), ppgen.data.load("rings8", "test", n=500)
    m = ppgen.create("ebm", train, sample_steps=20, sample_jumps=2, quadrature_points=128)
    ppgen.fit(m, train, budget_seconds=1, progress=False)
    metrics = ppgen.evaluate(m, test, num_samples=10, n_mode_samples=500)
    assert metrics["test_nll_kind"] == "quadrature" and math.isfinite(metrics["test_nll_nats"])
    assert metrics["test_kl_gap_nats"] == pytest.approx(metrics["test_nll_nats"] - test.entropy)
    assert metrics["modes_total"] == 8
    assert m.sample(64).shape == (64, 2)


@pytest.mark.slow
def test_ebm_covers_the_eight_ring_modes():
    train, test = ppgen.data.load("rings8", "train"), ppgen.data.load("rings8", "test")
    m = ppgen.create("ebm", train)
    ppgen.fit(m, train, progress=False)
    cover = mode_coverage(m.sample(2500), train.truth.means, train.truth.std)
    assert cover["modes_covered"] == 8, cover
    lp, kind = m.evaluation_log_prob(test.x)
    assert kind == "quadrature" and torch.isfinite(lp).all()
