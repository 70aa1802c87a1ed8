"""The flow family: one driver over every transform (round trip, log-det, triangularity, gradients)
and one over every flow model (density integrates to 1, validation, dequantized bounds)."""

import math

import pytest
import torch
from torch.distributions import ComposeTransform

import ppgen
from ppgen.data import DataSpec
from ppgen.errors import PPGenError
from ppgen.flows import (
    ActNorm,
    AffineCoupling2d,
    InvertibleConv1x1,
    InvertiblePlanar,
    Split,
    Squeeze,
    VariationalDequantizer,
    conditional_invertible_planar,
)

VECTOR_FLOWS = ["realnvp", "maf", "nsf", "planar"]
VEC = DataSpec("continuous", (2,))
VEC3 = DataSpec("continuous", (3,), num_classes=3)
IMG = DataSpec("categorical:3", (1, 4, 4))


def randomize(module: torch.nn.Module, scale: float = 0.3) -> torch.nn.Module:
    r"""Moves every parameter off its (often identity) initial value, so that tests see a non-trivial map."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


def _model(name, spec=VEC, **config):
    m = randomize(ppgen.create(name, spec, **config).double(), 0.05)
    m.eval()
    return m


# --- the transforms ------------------------------------------------------------------------------
# Each case: (transform, modules owning its parameters, event shape, triangular structure claimed).
# "lower": the Jacobian of the flattened map is lower triangular; ("block", n): its first n outputs
# depend on the first n inputs only, as the identity, and the rest is diagonal in the rest.


def _cases():
    actnorm_v = ActNorm(3)
    actnorm_i = ActNorm(4, event_dim=3)
    conv = InvertibleConv1x1(4)
    coupling = AffineCoupling2d(4, hidden=8)
    split_inner = AffineCoupling2d(8, hidden=8)
    split = Split(ComposeTransform([Squeeze(), split_inner]), keep=2)
    planar = InvertiblePlanar(3)
    cplanar = conditional_invertible_planar(3, 2)
    glow = ppgen.create("glow", IMG, levels=2, steps_per_level=1, hidden=8)
    cases = {
        "actnorm-vector": (actnorm_v, [actnorm_v], (3,), None),
        "actnorm-image": (actnorm_i, [actnorm_i], (4, 2, 2), None),
        "squeeze": (Squeeze(), [], (2, 4, 4), None),
        "conv1x1": (conv, [conv], (4, 2, 2), None),
        "coupling2d": (coupling, [coupling], (4, 2, 2), ("block", 8)),
        "split": (split, [split_inner], (4, 4, 4), None),
        "planar": (planar, [planar], (3,), None),
        "planar-conditional": (cplanar.condition(torch.randn(2, dtype=torch.float64)), [cplanar], (3,), None),
        "glow-flow": (glow.normalizing_transform(), [glow.steps], (1, 4, 4), None),
    }
    for name in VECTOR_FLOWS:
        m = ppgen.create(name, DataSpec("continuous", (3,)))
        step = m.steps[1]
        tri = "lower" if name in ("maf", "nsf") else ("block", 1) if name == "realnvp" else None
        cases[f"{name}-step"] = (step, [step], (3,), tri)
        cases[f"{name}-flow"] = (m.normalizing_transform(), [m], (3,), None)
        cm = ppgen.create(name, VEC3, conditional=True)
        cases[f"{name}-conditional-flow"] = (cm.normalizing_transform(torch.eye(3)[[1]]), [cm], (3,), None)
    return cases


CASES = list(_cases())


@pytest.fixture
def float64():
    r"""float64 as the default dtype: Pyro's autoregressive inverses allocate with the default dtype."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(params=CASES)
def case(request, float64):
    transform, modules, shape, tri = _cases()[request.param]
    for m in modules:
        randomize(m.double(), 0.05 if request.param.endswith("flow") else 0.3)
    if isinstance(transform, torch.nn.Module):
        transform.double()
    x = torch.randn(4, *shape, dtype=torch.float64)
    if "glow" in request.param:
        x = torch.rand(4, *shape, dtype=torch.float64) * 3  # dequantized levels in [0, K)
    return request.param, transform, modules, x, tri


def _flat_jacobian(t, x1):
    f = lambda v: t(v.reshape(1, *x1.shape)).reshape(-1)  # noqa: E731
    return torch.autograd.functional.jacobian(f, x1.reshape(-1).clone())


def test_transform_inverse_round_trip(case):
    _, t, _, x, _ = case
    z = t(x)
    assert z.shape[0] == x.shape[0] and z[0].numel() == x[0].numel()
    back = t.inv(z.clone())  # a fresh tensor, so no transform answers from its cache
    assert (back - x).abs().max() < 1e-5
    again = t(back.clone())
    assert (again - z).abs().max() < 1e-5


def test_transform_log_det_matches_autograd(case):
    _, t, _, x, _ = case
    for i in range(2):
        xi = x[i : i + 1]
        ladj = t.log_abs_det_jacobian(xi, t(xi)).reshape(-1)[0]
        jac = _flat_jacobian(t, xi[0])
        assert torch.allclose(ladj, torch.linalg.slogdet(jac)[1], atol=1e-6, rtol=1e-6)


def test_transform_jacobian_triangular_where_claimed(case):
    name, t, _, x, tri = case
    if tri is None:
        pytest.skip(f"{name} claims no triangular structure")
    jac = _flat_jacobian(t, x[0])
    if tri == "lower":
        assert jac.triu(1).abs().max() == 0 and jac.diagonal().abs().min() > 0
    else:
        n = tri[1]
        assert jac[:n, n:].abs().max() == 0
        assert torch.allclose(jac[:n, :n], torch.eye(n, dtype=jac.dtype))
        rest = jac[n:, n:]
        assert (rest - torch.diag(rest.diagonal())).abs().max() == 0


def test_transform_every_parameter_gets_a_gradient(case):
    name, t, modules, x, _ = case
    params = [p for m in modules for p in m.parameters()]
    if not params:
        pytest.skip(f"{name} has no parameters")
    train = [m for m in modules if isinstance(m, torch.nn.Module)]
    for m in train:
        m.train()  # actnorm initialises from this batch; the gradient check follows
    z = t(x)
    loss = (z**2).sum() + t.log_abs_det_jacobian(x, z).sum()
    loss.backward()
    for p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_actnorm_initialises_from_first_batch():
    t = ActNorm(2)
    t.train()
    x = torch.randn(500, 2) * torch.tensor([0.02, 5.0]) + torch.tensor([3.0, -1.0])
    z = t(x)
    assert torch.allclose(z.mean(0), torch.zeros(2), atol=1e-4)
    assert torch.allclose(z.std(0), torch.ones(2), atol=1e-3)
    assert bool(t.initialized)
    t2 = ActNorm(2)
    t2.load_state_dict(t.state_dict())
    t2.train()
    assert torch.allclose(t2(x * 2), t(x * 2))  # a loaded ActNorm does not re-initialise


# --- the models ------------------------------------------------------------------------------------
def _grid_mass(log_prob, lim, n):
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    with torch.no_grad():
        p = torch.cat([log_prob(c).exp() for c in pts.split(20_000)])
    return float(p.sum() * (g[1] - g[0]) ** 2)


@pytest.mark.parametrize("name", VECTOR_FLOWS)
def test_flow_density_integrates_to_one(name):
    m = _model(name)
    m.train()
    m.log_prob(torch.randn(256, 2, dtype=torch.float64) * 1.5)  # data-dependent init of the standardisation
    m.eval()
    assert abs(_grid_mass(m.log_prob, 20.0, 600) - 1) < 0.02  # 16 random steps spread mass past +-10


@pytest.mark.parametrize("name", VECTOR_FLOWS)
def test_conditional_flow_density_integrates_to_one_per_label(name):
    m = _model(name, DataSpec("continuous", (2,), num_classes=2), conditional=True)
    for label in (0, 1):
        mass = _grid_mass(lambda x, label=label: m.log_prob(x, torch.full((len(x),), label)), 20.0, 400)
        assert abs(mass - 1) < 0.02
    x = torch.randn(5, 2, dtype=torch.float64)
    assert not torch.allclose(m.log_prob(x, torch.zeros(5)), m.log_prob(x, torch.ones(5)))


@pytest.mark.parametrize("name", VECTOR_FLOWS)
def test_flow_pyro_program_scores_log_prob(name):
    m = _model(name)
    x = torch.randn(6, 2, dtype=torch.float64)
    assert torch.allclose(m.pyro_log_prob(x), m.log_prob(x).sum())


@pytest.mark.parametrize("name", VECTOR_FLOWS)
def test_flow_validates_inputs(name):
    m = ppgen.create(name, VEC)
    with pytest.raises(PPGenError, match="shape"):
        m.log_prob(torch.randn(4, 3))
    with pytest.raises(PPGenError, match="NaN"):
        m.log_prob(torch.tensor([[0.0, float("nan")]]))
    cm = ppgen.create(name, VEC3, conditional=True)
    with pytest.raises(PPGenError, match="labels"):
        cm.log_prob(torch.randn(4, 3))
    with pytest.raises(PPGenError, match="labels"):
        cm.log_prob(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(PPGenError, match="conditional"):
        ppgen.create(name, VEC, conditional=True)
    with pytest.raises(PPGenError):
        ppgen.create(name, DataSpec("binary", (1, 2, 2)))


def test_glow_validates_inputs():
    with pytest.raises(PPGenError, match="divisible"):
        ppgen.create("glow", DataSpec("categorical:3", (1, 6, 6)), levels=2)
    with pytest.raises(PPGenError, match="dequantization"):
        ppgen.create("glow", IMG, dequantization="gaussian")
    m = ppgen.create("glow", IMG, hidden=8)
    with pytest.raises(PPGenError, match="integers"):
        m.log_prob(torch.full((2, 1, 4, 4), 0.5))


@pytest.mark.parametrize("name", VECTOR_FLOWS + ["glow"])
def test_flow_trains_a_few_steps(name):
    if name == "glow":
        data = ppgen.data.from_tensor(torch.randint(0, 3, (64, 1, 4, 4)), kind="categorical:3")
        m = ppgen.create(name, data, hidden=8, steps_per_level=1)
    else:
        data = ppgen.data.load("rings8", "train", n=256)
        m = ppgen.create(name, data)
    result = ppgen.fit(m, data, steps=6, batch_size=32, progress=False)
    assert result.steps == 6 and all(math.isfinite(r["loss"]) for r in result.log)
    assert bool(m.steps[0].initialized)


# --- dequantization: the bound on the discrete likelihood -------------------------------------------
def _all_states(k, d):
    return torch.cartesian_prod(*[torch.arange(k, dtype=torch.float64)] * d)


@pytest.mark.parametrize("dequantization", ["uniform", "variational"])
def test_glow_dequantized_bound_below_discrete_likelihood(dequantization):
    spec = DataSpec("categorical:3", (1, 2, 2))
    m = ppgen.create(
        "glow", spec, levels=1, steps_per_level=2, hidden=8, dequantization=dequantization
    ).double()
    randomize(m, 0.1)
    m.eval()
    x = _all_states(3, 4).reshape(-1, 1, 2, 2)  # all 81 images
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        # P(x) = E_{u ~ U[0,1)^D} p(x + u): an unbiased Monte Carlo estimate from 4000 draws per image
        u = torch.rand(4000, *x.shape, generator=gen, dtype=torch.float64)
        p = m.continuous_log_prob((x + u).reshape(-1, 1, 2, 2)).reshape(4000, -1).exp()
        prob = p.mean(0)
        stderr = p.std(0) / math.sqrt(4000)
        bound = m._bound_terms(x, 200).mean(0)
        reported, kind = m.evaluation_log_prob(x.float().double())
    total = float(prob.sum())
    assert 0.9 < total < 1.0 + 4 * float(stderr.pow(2).sum().sqrt())  # the flow's mass on [0, K)^D
    assert kind == "dequantized"
    assert (bound <= (prob + 4 * stderr).log()).all()
    assert reported.shape == (81,) and torch.isfinite(reported).all()


def test_variational_dequantizer_is_a_density_on_the_unit_interval():
    q = VariationalDequantizer(1, 3)
    randomize(q)
    x = torch.tensor([[[[2.0]]]])
    grid = torch.linspace(1e-4, 1 - 1e-4, 20_001).reshape(-1, 1, 1, 1)
    lp = q(x.expand(len(grid), 1, 1, 1)).log_prob(grid)
    assert abs(float(lp.detach().exp().sum() * (grid[1] - grid[0])) - 1) < 0.01


def test_glow_compare_path_on_digits():
    train = ppgen.data.load("digits", "train").subset(128)
    test = ppgen.data.load("digits", "test").subset(64)
    m = ppgen.create("glow", train)
    ppgen.fit(m, train, steps=3, progress=False)
    metrics = ppgen.evaluate(m, test, num_samples=10)
    assert metrics["test_nll_kind"] == "dequantized" and math.isfinite(metrics["test_nll_nats"])
    assert m.sample(4).shape == (4, 1, 8, 8)


# --- quality targets (slow: minutes of training each; run by `make test-all`) ------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "name,data,max_gap",
    [
        ("nsf", "checkerboard", 0.10),
        ("nsf", "rings8", 0.10),
        ("realnvp", "checkerboard", 0.3),
        ("maf", "checkerboard", 0.3),
        ("realnvp", "rings8", 0.3),
        ("maf", "rings8", 0.3),
    ],
)
def test_flow_kl_gap_target(name, data, max_gap):
    train, test = ppgen.data.load(data, "train"), ppgen.data.load(data, "test")
    m = ppgen.create(name, train)
    ppgen.fit(m, train, progress=False)
    metrics = ppgen.evaluate(m, test)
    assert metrics["test_nll_kind"] == "exact"
    assert metrics["test_kl_gap_nats"] <= max_gap


@pytest.mark.slow
def test_glow_beats_independent_on_digits_gray():
    train, test = ppgen.data.load("digits-gray", "train"), ppgen.data.load("digits-gray", "test")
    baseline = ppgen.create("independent", train)
    ppgen.fit(baseline, train, progress=False)
    glow = ppgen.create("glow", train)
    ppgen.fit(glow, train, progress=False)
    ours, theirs = ppgen.evaluate(glow, test, num_samples=10), ppgen.evaluate(baseline, test)
    assert ours["test_nll_kind"] == "dequantized" and ours["test_bpd"] is not None
    assert ours["test_nll_nats"] < theirs["test_nll_nats"]


@pytest.mark.parametrize("name", ["realnvp", "maf"])
def test_affine_flow_scales_are_bounded(name):
    m = randomize(ppgen.create(name, DataSpec("continuous", (3,))), 3.0)  # wild weights, huge inputs
    step = m.steps[1]
    x = 1e4 * torch.randn(64, 3)
    ladj = step.log_abs_det_jacobian(x, step(x))
    assert torch.isfinite(ladj).all() and (ladj.abs() <= 3 * 2.5 + 1e-4).all()


# --- the spline step: Pyro's density, computed in one pass ------------------------------------------
def test_spline_step_equals_pyros_spline_autoregressive(float64):
    import pyro.distributions.transforms as T
    from pyro.nn import AutoRegressiveNN

    from ppgen.flows import AutoregressiveSpline

    torch.manual_seed(0)
    k = 6
    arn = randomize(AutoRegressiveNN(3, [16], param_dims=[k, k, k - 1], permutation=torch.arange(3)))
    ours = AutoregressiveSpline(3, arn, count_bins=k, bound=2.0)
    pyros = T.SplineAutoregressive(3, arn, count_bins=k, bound=2.0, order="quadratic")
    x = torch.randn(200, 3) * 1.5  # inside and outside the interval
    y, ladj = ours.call_and_ladj(x)
    assert torch.allclose(y, pyros(x), atol=1e-12)
    assert torch.allclose(ladj, pyros.log_abs_det_jacobian(x, pyros(x)), atol=1e-12)
    loaded = AutoregressiveSpline(
        3, AutoRegressiveNN(3, [16], param_dims=[k, k, k - 1]), count_bins=k, bound=2.0
    )
    loaded.load_state_dict(pyros.state_dict())  # a checkpoint of the former nsf (Pyro's step) still loads
    assert torch.allclose(loaded(x), y, atol=1e-12)


@pytest.mark.parametrize("name", VECTOR_FLOWS)
def test_flow_log_prob_matches_pyros_transformed_distribution(name):
    import pyro.distributions as dist

    m = _model(name)
    x = torch.randn(16, 2, dtype=torch.float64)
    base = dist.Normal(m.base_loc, m.base_scale).to_event(1)
    reference = dist.TransformedDistribution(base, [m.normalizing_transform().inv])
    assert torch.allclose(m.log_prob(x), reference.log_prob(x), atol=1e-10)


@pytest.mark.parametrize("packed", [True, False])
def test_spline_inverse_follows_the_networks_order(float64, packed):
    r"""Sampling inverts one coordinate per pass in the MADE's own order (here a random permutation of 4);
    a network without a ``permutation`` gets every coordinate in every pass. Both invert the map."""
    from pyro.nn import AutoRegressiveNN

    from ppgen.flows import AutoregressiveSpline

    torch.manual_seed(3)
    k, order = 5, torch.tensor([2, 0, 3, 1])
    dims = [3 * k - 1] if packed else [k, k, k - 1]
    arn = randomize(AutoRegressiveNN(4, [16], param_dims=dims, permutation=order))
    spline = AutoregressiveSpline(4, arn, count_bins=k, bound=2.0)
    x = torch.randn(50, 4) * 1.5
    y = spline(x)
    assert torch.allclose(spline.inv(y), x, atol=1e-9)

    class Unordered(torch.nn.Module):  # the same MADE, its order hidden
        def __init__(self, net):
            super().__init__()
            self.inner = net

        def forward(self, x):
            return self.inner(x)

    blind = AutoregressiveSpline(4, Unordered(arn), count_bins=k, bound=2.0)
    assert torch.allclose(blind(x), y) and torch.allclose(blind.inv(y), x, atol=1e-9)


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("dims", [[14], [5, 5, 4]])
@pytest.mark.parametrize("skip", [False, True])
def test_made_by_coordinate_is_pyros_output_transposed(float64, conditional, dims, skip):
    r"""The spline reads Pyro's MADE through its own evaluation of the output layer (rows reordered by
    coordinate, padded); it must be the network's own output, transposed, for every layout Pyro allows."""
    from pyro.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN

    from ppgen.flows.spline import _packed, made_by_coordinate

    torch.manual_seed(0)
    x = torch.randn(7, 3)
    if conditional:
        net = ConditionalAutoRegressiveNN(3, 2, [16], param_dims=dims, skip_connections=skip)
        context = torch.randn(2)
        expected = _packed(randomize(net)(x, context=context)).transpose(-1, -2)
    else:
        net, context = AutoRegressiveNN(3, [16], param_dims=dims, skip_connections=skip), None
        expected = _packed(randomize(net)(x)).transpose(-1, -2)
    got = made_by_coordinate(net, x, context)
    assert got.shape == (7, 3, 14) and (skip or got.stride(-1) == 1)  # skip connections: the general path
    assert torch.allclose(got, expected, atol=1e-12)
