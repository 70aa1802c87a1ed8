"""DDPM: schedules, the discretized Gaussian, the bound (closed form = Pyro's ELBO, <= the exact
log-likelihood), the samplers, the objective, and (slow) the quality targets."""

import math

import pyro
import pytest
import torch
from torch import nn

import ppgen
from ppgen.data import DataSpec, from_tensor
from ppgen.errors import PPGenError
from ppgen.likelihoods import DiscretizedGaussian
from ppgen.metrics import mode_coverage
from ppgen.models.diffusion import Schedule, cosine_betas, extract, linear_betas
from ppgen.nn.denoiser import ConvDenoiser, MLPDenoiser

TINY = [
    ("continuous", (2,)),
    ("binary", (1, 3, 3)),
    ("categorical:5", (1, 2, 2)),
]


def tiny_data(kind, shape, n=64, generator=None):
    g = generator or torch.Generator().manual_seed(1)
    if kind == "continuous":
        x = torch.randn(n, *shape, generator=g) * torch.tensor([1.5, 0.5]) + torch.tensor([1.0, -2.0])
    elif kind == "binary":
        x = torch.bernoulli(torch.full((n, *shape), 0.3), generator=g)
    else:
        x = torch.randint(0, int(kind.split(":")[1]), (n, *shape), generator=g).float()
    return from_tensor(x, kind)


def perturb(model, scale=0.3):
    r"""Random weights everywhere (the output layer starts at zero)."""
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


# --- schedules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [linear_betas, cosine_betas])
def test_schedule_is_float64_and_valid(make):
    b = make(1000)
    assert b.dtype == torch.float64 and b.shape == (1000,)
    assert (b > 0).all() and (b < 1).all()
    abar = torch.cumprod(1 - b, 0)
    assert (abar[1:] < abar[:-1]).all() and abar[-1] < 1e-3


def test_linear_schedule_is_ho_et_al_at_T_1000_and_cosine_follows_its_formula():
    b = linear_betas(1000)
    assert float(b[0]) == pytest.approx(1e-4) and float(b[-1]) == pytest.approx(0.02)
    t = torch.tensor([100, 500, 900], dtype=torch.float64)
    f = lambda t: torch.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    abar = torch.cumprod(1 - cosine_betas(1000), 0)
    assert torch.allclose(abar[t.long() - 1], f(t) / f(torch.zeros(1, dtype=torch.float64)), rtol=1e-10)


def test_schedule_buffers_are_float32_and_match_float64_formulas():
    betas = linear_betas(50)
    s = Schedule(betas, variance="posterior")
    assert all(buf.dtype == torch.float32 and buf.shape == (51,) for buf in s.buffers())
    abar = torch.cumprod(1 - betas, 0)
    assert float(s.alphas_cumprod[0]) == 1.0
    assert torch.allclose(s.alphas_cumprod[1:].double(), abar, rtol=1e-6)
    post = betas[1:] * (1 - abar[:-1]) / (1 - abar[1:])  # beta~_t for t = 2..T
    assert torch.allclose(s.sigmas[2:].double() ** 2, post, rtol=1e-5)
    assert torch.allclose(Schedule(betas, "beta").sigmas[1:].double() ** 2, betas, rtol=1e-6)
    with pytest.raises(PPGenError, match="variance"):
        Schedule(betas, "learned")


def test_extract_indexes_by_time_step_and_broadcasts():
    a = torch.arange(11.0)
    t = torch.tensor([0, 3, 10])
    out = extract(a, t, torch.Size([3, 1, 4, 4]))
    assert out.shape == (3, 1, 1, 1)
    assert out.flatten().tolist() == [0.0, 3.0, 10.0]


# --- the discretized Gaussian -------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 17, 256])
def test_discretized_gaussian_sums_to_one_over_the_levels(k):
    loc = torch.tensor([-3.0, -1.0, -0.2, 0.0, 0.37, 1.0, 4.0], dtype=torch.float64)
    scale = torch.tensor([1e-4, 0.01, 0.3, 2.0, 0.05, 1e-3, 0.5], dtype=torch.float64)
    d = DiscretizedGaussian(loc, scale, k)
    levels = d.enumerate_support()  # (K, 7)
    lp = d.log_prob(levels)
    assert torch.isfinite(lp).all()
    assert torch.allclose(lp.exp().sum(0), torch.ones(7, dtype=torch.float64), atol=1e-10)
    # float32 stays finite and normalised, far out in the tails too
    d32 = DiscretizedGaussian(loc.float(), scale.float(), k)
    lp32 = d32.log_prob(levels.float())
    assert torch.isfinite(lp32).all() and torch.allclose(lp32.exp().sum(0), torch.ones(7), atol=1e-5)


def test_discretized_gaussian_samples_match_its_probabilities():
    d = DiscretizedGaussian(torch.tensor(0.1), torch.tensor(0.4), 5)
    x = d.sample((20000,))
    freq = torch.bincount(x.long(), minlength=5).double() / 20000
    p = d.log_prob(torch.arange(5.0)).exp().double()
    assert torch.allclose(freq, p, atol=0.015)
    assert d.support.check(x).all() and float(d.mode) == 2.0


def test_binary_decoder_is_the_two_level_discretized_gaussian():
    m = perturb(ppgen.create("ddpm", DataSpec("binary", (1, 3, 3)), timesteps=10, hidden=16, blocks=1))
    x1 = torch.randn(6, 1, 3, 3)
    x = torch.bernoulli(torch.full((6, 1, 3, 3), 0.5))
    mean = m.p_mean(x1, torch.ones(6, dtype=torch.long))
    expected = (
        DiscretizedGaussian(mean, m.schedule.sigmas[1].expand_as(mean), 2).log_prob(x).flatten(1).sum(1)
    )
    assert torch.allclose(m.decoder(x1).log_prob(x), expected, atol=1e-5)


# --- the bound ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,shape", TINY)
def test_pyro_elbo_of_model_and_guide_equals_the_closed_form_bound(kind, shape):
    m = perturb(ppgen.create("ddpm", DataSpec(kind, shape), timesteps=30, hidden=16, blocks=1), scale=0.02)
    data = tiny_data(kind, shape)
    m.train()
    m.initialize(data)  # standardizes continuous data
    m.eval()
    x = data.x[:1].repeat(8000, *[1] * len(shape))  # one example, 8,000 draws
    with torch.no_grad():
        guide = pyro.poutine.trace(m.guide).get_trace(x)
        model = pyro.poutine.trace(pyro.poutine.replay(m.model, trace=guide)).get_trace(x)
        model.compute_log_prob()
        guide.compute_log_prob()
        pyro_elbo = sum(s["log_prob"] for s in model.nodes.values() if s["type"] == "sample") - sum(
            s["log_prob"] for s in guide.nodes.values() if s["type"] == "sample"
        )  # (20000,)
        closed = m.log_prob(x)
        loss = pyro.infer.Trace_ELBO().loss(m.model, m.guide, x[:4000]) / 4000
    se = math.sqrt(pyro_elbo.var() / len(x) + closed.var() / len(x))
    assert abs(float(pyro_elbo.mean() - closed.mean())) < 4 * se
    assert abs(-loss - float(closed.mean())) < 4 * math.sqrt(float(pyro_elbo.var()) / 4000 + se**2)


class GaussianOracle(nn.Module):
    r"""The optimal eps(x_t, t) = sqrt(1 - abar_t) Sigma_t^{-1} (x_t - sqrt(abar_t) m) for x_0 ~ N(m, S)."""

    def __init__(self, schedule, mean, cov):
        super().__init__()
        abar = schedule.alphas_cumprod.double()[:, None, None]  # (T+1, 1, 1)
        cov_t = abar * cov + (1 - abar) * torch.eye(len(mean), dtype=torch.float64)  # (T+1, D, D)
        self.gain = (1 - abar).sqrt() * torch.linalg.inv(cov_t)  # (T+1, D, D)
        self.shift = abar.squeeze(-1).sqrt() * mean  # (T+1, D)

    def forward(self, xt, t):
        resid = xt.double() - self.shift[t]  # (B, D)
        return (self.gain[t] @ resid.unsqueeze(-1)).squeeze(-1).to(xt.dtype)


def correlated_gaussian(n, generator):
    mean = torch.tensor([1.0, -0.5], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.9], [0.9, 1.2]], dtype=torch.float64)
    chol = torch.linalg.cholesky(cov)
    x = mean + torch.randn(n, 2, generator=generator, dtype=torch.float64) @ chol.T
    exact = torch.distributions.MultivariateNormal(mean, cov).log_prob(x)
    return x, exact, mean, cov


def oracle_gap(variance, x, exact, mean, cov, fit_x):
    m = ppgen.create(
        "ddpm", DataSpec("continuous", (2,)), timesteps=200, hidden=16, blocks=1, variance=variance
    ).double()
    m.train()
    m.standardize.fit(fit_x)
    m.eval()
    untrained = m.log_prob(x).detach()
    z_mean = (mean - m.standardize.shift.double()) / m.standardize.scale.double()
    z_cov = cov / m.standardize.scale.double() ** 2
    m.net = GaussianOracle(m.schedule, z_mean, z_cov)
    with torch.no_grad():
        gap = exact - m.log_prob(x)  # >= 0 in expectation
    return gap, exact - untrained


def test_bound_is_below_the_exact_log_likelihood_and_tight_with_the_optimal_denoiser():
    g = torch.Generator().manual_seed(3)
    x, exact, mean, cov = correlated_gaussian(3000, g)
    fit_x = correlated_gaussian(10000, g)[0]
    gap, untrained_gap = oracle_gap("beta", x, exact, mean, cov, fit_x)
    se = float(gap.std()) / math.sqrt(
        len(x)
    )  # about 0.03; the true gap is about 0.013 (measured with 20,000 examples)
    assert float(gap.mean()) > -3 * se
    assert float(gap.mean()) < 0.1
    assert float(untrained_gap.mean()) > 0.5  # a model that predicts no noise is far below
    # sigma_t^2 = beta~_t is too small for spread-out data: a looser bound (why "beta" is the continuous
    # default)
    posterior_gap, _ = oracle_gap("posterior", x, exact, mean, cov, fit_x)
    assert float(posterior_gap.mean()) > 0.5


@pytest.mark.slow
def test_trained_ddpm_gets_within_a_tenth_of_a_nat_of_a_gaussian():
    g = torch.Generator().manual_seed(4)
    x, _, _, _ = correlated_gaussian(10000, g)
    xt, exact, _, _ = correlated_gaussian(4000, g)
    train = from_tensor(x.float(), "continuous")
    m = ppgen.create("ddpm", train, timesteps=200, hidden=64, blocks=2, variance="beta")
    ppgen.fit(m, train, epochs=60, batch_size=256, lr=2e-3, progress=False)
    with torch.no_grad():
        bound = m.log_prob(xt.float()).double()
    gap = exact - bound
    se = float(gap.std()) / math.sqrt(len(gap))
    print(f"trained ddpm on N(m, S): exact - bound = {float(gap.mean()):.4f} +- {se:.4f} nats")
    assert float(gap.mean()) > -3 * se
    assert float(gap.mean()) < 0.1


# --- samplers, objective, protocol ---------------------------------------------------------------------


@pytest.mark.parametrize("kind,shape", TINY)
def test_fit_bound_and_samples_on_tiny_data(kind, shape):
    data = tiny_data(kind, shape)
    m = ppgen.create("ddpm", data, timesteps=20, hidden=16, blocks=1)
    last = {}
    for loss in ("simple", "bound"):
        result = ppgen.fit(
            m,
            data,
            steps=3,
            batch_size=32,
            progress=False,
            loss=loss,
            on_epoch_end=lambda e, r, obj, loss=loss: last.update({loss: obj.state_dict()}),
        )
        assert math.isfinite(result.log[-1]["loss"])
    assert [last[k]["weight_average"]["steps"] for k in ("simple", "bound")] == [
        3,
        3,
    ]  # the ddpm default keeps a weight average
    lp = m.log_prob(data.x[:8])
    assert lp.shape == (8,) and torch.isfinite(lp).all()
    for method, steps in (("ancestral", None), ("ddim", 5)):
        x = m.sample(7, method=method, steps=steps)
        assert x.shape == (7, *shape) and torch.isfinite(x).all()
        if kind != "continuous":
            m.check_input(x)  # samples lie in the data's support


def test_every_parameter_gets_a_gradient_from_both_losses():
    from ppgen.inference.denoising import bound_loss, simple_loss

    for shape, kind in (((2,), "continuous"), ((1, 8, 8), "binary")):
        m = perturb(
            ppgen.create("ddpm", DataSpec(kind, shape), timesteps=20, hidden=16, blocks=1, width=8), 0.05
        )
        data = (
            tiny_data(kind, shape)
            if shape == (2,)
            else from_tensor(torch.bernoulli(torch.full((16, *shape), 0.5)), kind)
        )
        m.train()
        for loss_fn in (simple_loss, bound_loss):
            m.zero_grad()
            loss_fn(m, data.x).backward()
            missing = [
                n
                for n, p in m.named_parameters()
                if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
            ]
            assert not missing, missing


def test_ddim_is_deterministic_given_the_start_and_ancestral_is_not():
    m = perturb(ppgen.create("ddpm", DataSpec("continuous", (2,)), timesteps=30, hidden=16, blocks=1), 0.05)
    m.eval()
    torch.manual_seed(5)
    a = m.sample(50, method="ddim", steps=10)
    torch.manual_seed(5)
    b = m.sample(50, method="ddim", steps=10)
    assert torch.equal(a, b)
    torch.manual_seed(5)
    c = m.sample(50)
    assert not torch.allclose(a, c)
    steps = [t for t, _ in m.trajectory(3, steps=10, method="ddim")]
    assert steps[0] == 30 and steps[-1] == 0 and len(steps) == 11 and steps == sorted(steps, reverse=True)
    assert len(list(m.trajectory(3))) == 31


def test_ddim_with_every_step_matches_the_probability_flow_of_ancestral_means():
    # With S = T, DDIM's update from x_T visits every step; its first step agrees with the closed form.
    m = perturb(ppgen.create("ddpm", DataSpec("continuous", (2,)), timesteps=10, hidden=16, blocks=1), 0.05)
    m.eval()
    chain = list(m.trajectory(4, steps=10, method="ddim"))
    (_, z10), (_, z9) = chain[0], chain[1]
    s = m.schedule
    t = torch.full((4,), 10)
    eps = m.eps(z10, t)
    x0 = (z10 - s.sqrt_one_minus_alphas_cumprod[10] * eps) / s.sqrt_alphas_cumprod[10]
    assert torch.allclose(
        z9, s.sqrt_alphas_cumprod[9] * x0 + s.sqrt_one_minus_alphas_cumprod[9] * eps, atol=1e-6
    )


def test_bad_input_and_arguments_raise_ppgen_errors():
    m = ppgen.create("ddpm", DataSpec("categorical:5", (1, 2, 2)), timesteps=10, hidden=16, blocks=1)
    with pytest.raises(PPGenError, match="shape"):
        m.log_prob(torch.zeros(3, 4))
    with pytest.raises(PPGenError, match="integers"):
        m.log_prob(torch.full((3, 1, 2, 2), 0.5))
    with pytest.raises(PPGenError, match="ancestral"):
        m.sample(3, steps=5)
    with pytest.raises(PPGenError, match="steps"):
        m.sample(3, method="ddim", steps=11)
    with pytest.raises(PPGenError, match="sampler"):
        m.sample(3, method="euler")
    with pytest.raises(PPGenError, match="schedule"):
        ppgen.create("ddpm", DataSpec("continuous", (2,)), schedule="quadratic")
    with pytest.raises(PPGenError, match="architecture"):
        ppgen.create("ddpm", DataSpec("continuous", (2,)), architecture="conv")
    with pytest.raises(PPGenError, match="loss"):
        ppgen.fit(m, tiny_data("categorical:5", (1, 2, 2)), steps=1, progress=False, loss="hybrid")


def test_pyro_elbo_objective_trains_the_same_program():
    data = tiny_data("binary", (1, 3, 3))
    m = ppgen.create("ddpm", data, timesteps=5, hidden=16, blocks=1)
    result = ppgen.fit(m, data, steps=2, batch_size=32, progress=False, objective="elbo")
    assert math.isfinite(result.log[-1]["loss"])


def test_evaluate_reports_the_bound_as_elbo_and_the_graph_is_a_chain():
    data = tiny_data("categorical:5", (1, 2, 2))
    m = ppgen.create("ddpm", data, timesteps=10, hidden=16, blocks=1)
    ppgen.fit(m, data, steps=2, progress=False)
    metrics = ppgen.evaluate(m, data, num_samples=10)
    assert metrics["test_nll_kind"] == "elbo" and metrics["density"] == "lower-bound"
    assert math.isfinite(metrics["test_nll_nats"]) and metrics["test_bpd"] > 0
    g = m.graph()
    assert g.number_of_nodes() == 11 and list(g.successors("x_1")) == ["x"]


def test_image_data_can_use_the_flat_mlp_denoiser():
    m = ppgen.create(
        "ddpm", DataSpec("binary", (1, 8, 8)), timesteps=10, hidden=16, blocks=1, architecture="mlp"
    )
    assert not any(isinstance(x, ConvDenoiser) for x in m.modules())
    assert m.sample(3).shape == (3, 1, 8, 8)


@pytest.mark.parametrize("net", [MLPDenoiser(3, hidden=16, blocks=2, fourier=3), ConvDenoiser(1, width=8)])
def test_denoisers_start_as_zero_and_broadcast_one_time_step(net):
    x = torch.randn(4, 3) if isinstance(net, MLPDenoiser) else torch.randn(4, 1, 6, 6)
    assert torch.equal(net(x, torch.tensor([1, 5, 9, 2])), torch.zeros_like(x))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    same = net(x, torch.full((4,), 7))
    assert torch.allclose(
        same, torch.cat([net(x[i : i + 1], torch.tensor([7])) for i in range(4)]), atol=1e-5
    )


# --- quality targets (slow) ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rings8", "grid25"])
def test_ddpm_covers_every_mode_with_90_percent_high_quality_samples_and_ddim_keeps_them(name):
    train = ppgen.data.load(name)
    m = ppgen.create("ddpm", train)
    ppgen.fit(m, train, progress=False)
    ancestral = mode_coverage(m.sample(2500), train.truth.means, train.truth.std)
    assert ancestral["modes_covered"] == ancestral["modes_total"] and ancestral["hq_fraction"] >= 0.9, (
        ancestral
    )
    ddim = mode_coverage(m.sample(2500, method="ddim", steps=50), train.truth.means, train.truth.std)
    assert ddim["modes_covered"] == ddim["modes_total"], ddim  # DDIM keeps every mode
