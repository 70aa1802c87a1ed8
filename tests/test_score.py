"""Score matching and Langevin samplers against Gaussians whose scores are known; the smld model."""

import pyro
import pytest
import torch

import ppgen
from ppgen.data import DataSpec
from ppgen.errors import PPGenError
from ppgen.estimators.langevin import annealed_langevin, langevin, sgld
from ppgen.inference.score_matching import dsm_loss
from ppgen.metrics import mode_coverage
from ppgen.models.score import geometric_sigmas

TINY = {"hidden": 16, "layers": 2, "num_sigmas": 4, "steps_per_sigma": 3}


def continuous(n=64, d=2):
    return ppgen.data.from_tensor(torch.randn(n, d) * 2 + 1, kind="continuous")


# --- samplers and the objective, with exact Gaussian scores -------------------------------------


def test_dsm_recovers_the_smoothed_gaussian_score():
    # data N(m, s^2) in 2-D; smoothed at sigma the score is -(x - m) / (s^2 + sigma^2): linear, so a
    # per-level linear score model trained by DSM must find exactly those coefficients.
    torch.set_default_dtype(torch.float64)
    try:
        m, s = torch.tensor([1.0, -2.0]), 0.5
        sigmas = torch.tensor([1.0, 0.5, 0.2])
        slope = torch.zeros(3, requires_grad=True)
        offset = torch.zeros(3, 2, requires_grad=True)

        def score(x, sigma):
            i = (sigma.unsqueeze(1) == sigmas).double().argmax(1)
            return slope[i].unsqueeze(1) * x + offset[i]

        gen = torch.Generator().manual_seed(0)
        x = m + s * torch.randn(40_000, 2, generator=gen)

        def closure():  # the same noise draws at every evaluation: a deterministic empirical loss
            opt.zero_grad()
            loss = dsm_loss(score, x, sigmas, generator=gen.manual_seed(1)).mean()
            loss.backward()
            return loss

        opt = torch.optim.LBFGS([slope, offset], lr=1, max_iter=40, line_search_fn="strong_wolfe")
        opt.step(closure)
        want = -1 / (s**2 + sigmas**2)
        assert torch.allclose(slope.detach(), want, rtol=0.05)
        assert torch.allclose(offset.detach(), -want.unsqueeze(1) * m, rtol=0.05, atol=0.15)
    finally:
        torch.set_default_dtype(torch.float32)


def test_dsm_loss_is_zero_mean_residual_for_the_exact_score_of_a_point():
    # a point mass at 0 smoothed at sigma has score -x / sigma^2: the residual sigma*score + z is 0
    x = torch.zeros(256, 3, dtype=torch.float64)
    loss = dsm_loss(
        lambda u, sigma: -u / sigma.unsqueeze(1) ** 2, x, torch.tensor([2.0, 0.5], dtype=torch.float64)
    )
    assert loss.shape == (256,)
    assert loss.abs().max() < 1e-20


def test_langevin_with_the_exact_score_reproduces_gaussian_moments():
    gen = torch.Generator().manual_seed(1)
    mean = torch.tensor([1.0, -1.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    prec = torch.linalg.inv(cov)
    x0 = torch.zeros(4000, 2, dtype=torch.float64)
    x = langevin(lambda x: -(x - mean) @ prec, x0, steps=600, step_size=0.02, generator=gen)
    assert torch.allclose(x.mean(0), mean, atol=0.06)
    assert torch.allclose(torch.cov(x.T), cov, atol=0.06)


def test_sgld_with_langevin_noise_samples_exp_minus_energy():
    gen = torch.Generator().manual_seed(2)
    var = 0.25
    x = sgld(
        lambda x: 0.5 * (x - 3.0).pow(2).sum(-1) / var,
        torch.zeros(4000, 1, dtype=torch.float64),
        steps=400,
        step_size=0.01,
        generator=gen,
    )
    assert abs(float(x.mean()) - 3.0) < 0.03
    # the unadjusted chain's stationary variance is var / (1 - a / (2 var)) for a Gaussian
    assert abs(float(x.var()) - var / (1 - 0.01 / (2 * var))) < 0.02


def test_annealed_langevin_with_exact_smoothed_scores_keeps_the_mixture_weights():
    # a 1-D mixture 0.3 N(-2, s^2) + 0.7 N(2, s^2): the smoothed score is that of the mixture with
    # variance s^2 + sigma^2. Annealing from sigma_1 = 8 must reach both modes with their weights
    # (up to the sampler's own bias, about 0.01 here: Langevin at each level is not run to equilibrium).
    w = torch.tensor([0.3, 0.7], dtype=torch.float64)
    mu = torch.tensor([-2.0, 2.0], dtype=torch.float64)
    s2 = 0.05**2

    def score(x, sigma):
        v = s2 + sigma.unsqueeze(1) ** 2  # (B, 1)
        logits = w.log() - 0.5 * (x - mu) ** 2 / v  # (B, 2)
        r = torch.softmax(logits, 1)
        return (r * -(x - mu) / v).sum(1, keepdim=True)

    sigmas = geometric_sigmas(8.0, 0.01, 10).double()
    gen = torch.Generator().manual_seed(3)
    x = annealed_langevin(
        score, 8 * torch.randn(4000, 1, generator=gen, dtype=torch.float64), sigmas, 100, 0.2, generator=gen
    )
    right = (x > 0).double().mean()
    assert abs(float(right) - 0.7) < 0.035  # 4000 draws: standard error 0.007
    near = (x - torch.where(x > 0, 2.0, -2.0)).abs() < 3 * 0.05
    assert near.double().mean() > 0.97


def test_samplers_record_every_step_and_reject_bad_steps():
    seen = []
    annealed_langevin(
        lambda x, s: -x, torch.zeros(3, 2), [1.0, 0.5], 4, 0.1, on_step=lambda t, x: seen.append(t)
    )
    assert seen == list(range(0, 2 * 4 + 2))
    with pytest.raises(PPGenError, match="step_size"):
        langevin(lambda x: -x, torch.zeros(2, 1), 3, step_size=0.0)


def test_geometric_ladder():
    s = geometric_sigmas(4.0, 0.01, 5)
    assert s.dtype == torch.float32 and torch.allclose(s[[0, -1]], torch.tensor([4.0, 0.01]))
    ratios = s[1:] / s[:-1]
    assert torch.allclose(ratios, ratios[0].expand(4), rtol=1e-5)
    with pytest.raises(PPGenError):
        geometric_sigmas(0.1, 1.0, 5)


# --- the smld model ---------------------------------------------------------------------------


def test_smld_has_no_density():
    data = continuous()
    m = ppgen.create("smld", data, **TINY)
    assert m.density == "implicit" and m.family == "diffusion"
    with pytest.raises(PPGenError, match="score"):
        m.log_prob(data.x[:4])
    assert m.evaluation_log_prob(data.x[:4]) is None
    # the Pyro program: site "x" samples by annealed Langevin; scoring an observation raises
    trace = pyro.poutine.trace(m.model).get_trace()
    assert trace.nodes["x"]["value"].shape == (1, 2)
    observed = pyro.poutine.trace(m.model).get_trace(data.x[:5])
    with pytest.raises(ValueError, match="not a density"):  # Pyro re-raises it with the site name
        observed.log_prob_sum()


def test_smld_fits_standardization_and_every_parameter_learns():
    data = continuous()
    m = ppgen.create("smld", data, **TINY)
    ppgen.fit(m, data, steps=1, batch_size=64, progress=False)
    assert torch.allclose(m.standardize.shift, data.x.mean(0), atol=1e-5)
    assert bool(m.standardize.ready)
    m.train()
    m.zero_grad()
    dsm_loss(m.score_u, m.prepare(data.x), m.sigmas).mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "kind,shape", [("binary", (1, 3, 3)), ("categorical:3", (1, 2, 2)), ("continuous", (2,))]
)
def test_smld_samples_lie_in_the_support(kind, shape):
    spec = DataSpec(kind, shape)
    m = ppgen.create("smld", spec, **TINY)
    x = m.sample(7)
    assert x.shape == (7, *shape) and x.dtype == torch.float32
    if spec.num_categories:
        assert ((x >= 0) & (x < spec.num_categories) & (x == x.round())).all()


def test_smld_validates_input_and_snapshot_steps():
    m = ppgen.create("smld", continuous(), **TINY)
    with pytest.raises(PPGenError, match="shape"):
        m.log_prob(torch.zeros(3, 5))
    with pytest.raises(PPGenError, match="steps"):
        m.sample_chain(4, [0, m.num_sampling_steps + 1])
    shots = m.sample_chain(4, [0, m.num_sampling_steps])
    assert set(shots) == {0, m.num_sampling_steps}
    assert shots[0].shape == (4, 2)


def test_smld_quick_compare_path_on_rings8():
    train, test = ppgen.data.load("rings8", "train", n=2000), ppgen.data.load("rings8", "test", n=500)
    m = ppgen.create("smld", train, num_sigmas=10, steps_per_sigma=5)
    ppgen.fit(m, train, budget_seconds=1, progress=False)
    metrics = ppgen.evaluate(m, test, num_samples=10, n_mode_samples=500)
    assert metrics["test_nll_nats"] is None and metrics["test_nll_kind"] is None
    assert metrics["modes_total"] == 8 and 0 <= metrics["hq_fraction"] <= 1
    assert m.sample(64).shape == (64, 2)


@pytest.mark.parametrize("name", ["smld", "ebm"])
def test_score_figures(name, tmp_path):
    from ppgen.app.plots.score import langevin_snapshots, score_field

    data = ppgen.data.load("rings8", "train", n=256)
    tiny = (
        TINY
        if name == "smld"
        else {"hidden": 16, "layers": 2, "train_steps": 2, "sample_steps": 6, "quadrature_points": 64}
    )
    m = ppgen.create(name, data, **tiny)
    ppgen.fit(m, data, steps=2, progress=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    score_field(ax, m, data, n=7)
    fig.savefig(tmp_path / "field.png")
    fig = langevin_snapshots(m, 50, [0, 2, m.num_sampling_steps])
    assert len(fig.axes) == 3
    fig.savefig(tmp_path / "chain.png")
    image = ppgen.create(name, DataSpec("binary", (1, 3, 3)), **tiny)
    langevin_snapshots(image, 4, [0, image.num_sampling_steps])
    with pytest.raises(PPGenError, match="2-D"):
        score_field(ax, image, data)
    plt.close("all")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rings8", "grid25"])
def test_smld_covers_every_mode(name):
    train = ppgen.data.load(name, "train")
    m = ppgen.create("smld", train)
    ppgen.fit(m, train, progress=False)
    cover = mode_coverage(m.sample(2500), train.truth.means, train.truth.std)
    assert cover["modes_covered"] == cover["modes_total"]
    assert cover["hq_fraction"] >= 0.9, cover
