"""GANs: the optimal-discriminator theory, the Pyro program, the losses, every variant, no density."""

import math
import warnings

import pyro
import pytest
import torch

import ppgen
from ppgen.data import DataSpec, from_tensor
from ppgen.errors import PPGenError
from ppgen.inference.adversarial import (
    AdversarialObjective,
    ModeCollapseWarning,
    discriminator_losses,
    generator_loss,
    gradient_penalty,
)
from ppgen.models.gan import fixed_affine_gan


def normal_log_prob(x, mu, sd):
    return -0.5 * ((x - mu) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)


def fit_discriminator_to_fixed_generator(mu: float, sd: float, steps: int = 2000):
    r"""p_data = N(0, 1) (20,000 draws), p_g = N(mu, sd^2) fixed: G(z) = sd z + mu; only D learns."""
    data = from_tensor(torch.randn(20_000, 1, generator=torch.Generator().manual_seed(1)), kind="continuous")
    model = fixed_affine_gan(data, mu, sd, latent_dim=1, hidden=64, layers=2)
    ppgen.fit(
        model,
        data,
        steps=steps,
        batch_size=512,
        lr=1e-3,
        lr_decay=0.9,
        train_generator=False,
        check_every=0,
        progress=False,
    )
    return model


def game_value(model, mu, sd, n=200_000):
    r"""V(D, G) = E_data log D(x) + E_g log(1 - D(x)) on fresh draws from the true p_data and p_g."""
    g = torch.Generator().manual_seed(2)
    real, fake = torch.randn(n, 1, generator=g), mu + sd * torch.randn(n, 1, generator=g)
    with torch.no_grad():
        _, value = discriminator_losses("minimax", model.discriminate(real), model.discriminate(fake))
    return float(value)


def jensen_shannon(mu, sd):
    x = torch.linspace(-20, 20, 400_001, dtype=torch.float64)
    lpd, lpg = normal_log_prob(x, 0.0, 1.0), normal_log_prob(x, mu, sd)
    lm = torch.logaddexp(lpd, lpg) - math.log(2)
    return float(
        0.5 * torch.trapezoid(lpd.exp() * (lpd - lm), x) + 0.5 * torch.trapezoid(lpg.exp() * (lpg - lm), x)
    )


def test_trained_discriminator_approaches_the_optimal_discriminator():
    mu, sd = 1.0, 1.5
    model = fit_discriminator_to_fixed_generator(mu, sd)
    x = torch.linspace(-2.5, 2.5, 201).unsqueeze(1)  # where both densities are above 0.01
    with torch.no_grad():
        d = torch.sigmoid(model.discriminate(x))
    d_star = torch.sigmoid(normal_log_prob(x, 0.0, 1.0) - normal_log_prob(x, mu, sd)).squeeze(1)
    assert d.shape == d_star.shape
    assert (d - d_star).abs().max() <= 0.05
    # at D*, V(D*, G) = -log 4 + 2 JSD(p_data || p_g)
    assert game_value(model, mu, sd) == pytest.approx(-math.log(4) + 2 * jensen_shannon(mu, sd), abs=0.02)


def test_game_value_at_p_g_equal_p_data_is_minus_log_4():
    model = fit_discriminator_to_fixed_generator(0.0, 1.0)
    assert game_value(model, 0.0, 1.0) == pytest.approx(-math.log(4), abs=0.02)


# --- the losses ----------------------------------------------------------------------------------------
def test_losses_at_known_logits():
    zero = torch.zeros(4)
    loss, value = discriminator_losses("minimax", zero, zero)
    assert float(value) == pytest.approx(-math.log(4)) and float(loss) == pytest.approx(math.log(4))
    fake = torch.tensor([2.0])  # D = sigmoid(2)
    d = torch.sigmoid(fake)
    assert float(generator_loss("minimax", fake)) == pytest.approx(float(torch.log(1 - d)), rel=1e-5)
    assert float(generator_loss("non-saturating", fake)) == pytest.approx(float(-torch.log(d)), rel=1e-5)
    loss, value = discriminator_losses("wasserstein-gp", torch.tensor([3.0, 1.0]), torch.tensor([0.5]))
    assert float(value) == pytest.approx(1.5) and float(loss) == pytest.approx(-1.5)


def test_gradient_penalty_of_a_linear_critic_is_exact():
    w = torch.tensor([3.0, 4.0])  # ||grad|| = 5 everywhere
    gp = gradient_penalty(lambda x, y: x @ w, torch.randn(16, 2), torch.randn(16, 2))
    assert float(gp) == pytest.approx(16.0)


# --- the model --------------------------------------------------------------------------------------
VARIANTS = [
    ("gan", DataSpec("continuous", (2,)), {"loss": "minimax"}),
    ("gan", DataSpec("binary", (1, 3, 3)), {}),
    ("wgan-gp", DataSpec("continuous", (2,)), {"hidden": 32}),
    ("wgan-gp", DataSpec("categorical:3", (1, 3, 3)), {"arch": "conv", "channels": 4}),
    ("dcgan", DataSpec("binary", (1, 8, 8), num_classes=10), {"channels": 8, "conditional": True}),
    ("dcgan", DataSpec("categorical:17", (1, 7, 5)), {"channels": 4}),
]
IDS = [
    f"{n}-{s.kind}-{'x'.join(map(str, s.event_shape))}-{'-'.join(f'{k}{v}' for k, v in c.items())}"
    for n, s, c in VARIANTS
]


def fake_data(spec, n=64):
    k = spec.num_categories
    x = torch.randint(0, k, (n, *spec.event_shape)).float() if k else torch.randn(n, *spec.event_shape)
    y = torch.randint(0, spec.num_classes, (n,)) if spec.num_classes else None
    if y is not None:
        y[: spec.num_classes] = torch.arange(spec.num_classes)
    return from_tensor(x, kind=spec.kind, y=y)


@pytest.mark.parametrize("name,spec,config", VARIANTS, ids=IDS)
def test_variant_program_samples_and_training_step(name, spec, config):
    model = ppgen.create(name, spec, **config)
    assert model.density == "implicit" and model.family == "adversarial"
    # the Pyro program: z is a latent sample site inside the data plate, x a deterministic site
    trace = pyro.poutine.trace(model.model).get_trace(n=5)
    assert trace.nodes["z"]["type"] == "sample" and not trace.nodes["z"]["is_observed"]
    assert trace.nodes["z"]["value"].shape == (5, model.latent_dim)
    assert trace.nodes["x"]["infer"].get("_deterministic") and trace.nodes["x"]["value"].shape == (
        5,
        *spec.event_shape,
    )
    # samples lie in the data's support
    x = model.sample(7)
    assert x.shape == (7, *spec.event_shape) and torch.isfinite(x).all()
    if spec.num_categories:
        assert ((x >= 0) & (x < spec.num_categories) & (x == x.round())).all()
    # one game round moves both players: every parameter receives a gradient
    data = fake_data(spec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    d_steps = type(model).fit_defaults["d_steps"]
    result = ppgen.fit(model, data, steps=d_steps, batch_size=64, progress=False)
    assert result.steps == d_steps and math.isfinite(result.log[-1]["loss"])
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    params = {k for k, _ in model.named_parameters()}
    if model.loss == "wasserstein-gp":  # E f(x) - E f(G(z)) and the penalty are blind to the critic's bias
        params.discard("discriminator.head.bias")
    assert params <= changed, f"not updated: {sorted(params - changed)}"
    assert {"d_acc", "d_grad_norm", "g_grad_norm", "value"} <= set(result.log[-1])


@pytest.mark.parametrize("name", ["gan", "wgan-gp", "dcgan"])
def test_no_density(name):
    spec = DataSpec("binary", (1, 4, 4))
    model = ppgen.create(name, spec)
    x = torch.zeros(3, 1, 4, 4)
    with pytest.raises(PPGenError, match="implicit"):
        model.log_prob(x)
    assert model.evaluation_log_prob(x) is None


def test_conditional_samples_follow_labels_and_validate():
    spec = DataSpec("binary", (1, 8, 8), num_classes=10)
    with pytest.raises(PPGenError, match="labels"):
        ppgen.create("dcgan", DataSpec("binary", (1, 8, 8)), conditional=True)
    model = ppgen.create("dcgan", spec, conditional=True, channels=8)
    assert model.conditional and not ppgen.create("dcgan", spec).conditional
    assert model.sample(4, y=torch.tensor([0, 1, 2, 3])).shape == (4, 1, 8, 8)
    assert model.sample(3, y=7).shape == (3, 1, 8, 8)
    trace = pyro.poutine.trace(model.model).get_trace(n=6)  # unlabelled: y is sampled
    assert trace.nodes["y"]["value"].shape == (6,)
    torch.manual_seed(0)
    a = model.sample(4, y=torch.zeros(4, dtype=torch.long))
    torch.manual_seed(0)
    assert not torch.equal(a, model.sample(4, y=torch.full((4,), 9)))  # the label changes the image
    with pytest.raises(PPGenError, match="labels y"):
        model.sample(2, y=torch.tensor([0, 10]))


def test_bad_configs_raise():
    with pytest.raises(PPGenError, match="loss"):
        ppgen.create("gan", DataSpec("continuous", (2,)), loss="hinge")
    with pytest.raises(PPGenError, match="loss"):
        ppgen.create("wgan-gp", DataSpec("continuous", (2,)), loss="minimax")
    with pytest.raises(PPGenError, match="images"):
        ppgen.create("gan", DataSpec("continuous", (2,)), arch="conv")
    with pytest.raises(PPGenError, match="images"):
        ppgen.create("dcgan", DataSpec("continuous", (2,)))


def test_wgan_gp_critic_reads_fourier_features_of_low_dimensional_data():
    from ppgen.nn.fourier import FourierFeatures

    model = ppgen.create("wgan-gp", DataSpec("continuous", (2,)))
    layers = list(model.discriminator.body)
    assert model.fourier == 6 and isinstance(layers[1], FourierFeatures)
    assert layers[2].in_features == 2 * (1 + 2 * 6) and layers[2].out_features == 128  # d_hidden
    assert model.generator.body[0].out_features == 256 and model.latent_dim == 2
    h = torch.randn(5, 2)
    a = (h.unsqueeze(-1) * layers[1].frequencies).flatten(1)  # (5, 2 * 6): 2^k pi h
    expected = torch.cat([h, torch.sin(a), torch.cos(a)], 1)
    assert torch.allclose(model.discriminator.body[:2](h), expected)
    # the input gradient the penalty constrains flows through the features
    h.requires_grad_(True)
    (grad,) = torch.autograd.grad(model.critic(h).sum(), h)
    assert grad.shape == (5, 2) and (grad.abs() > 0).all()
    # no features for higher-dimensional data or for the other variants, unless asked for
    assert ppgen.create("wgan-gp", DataSpec("binary", (1, 4, 4))).fourier == 0
    assert ppgen.create("gan", DataSpec("continuous", (2,))).fourier == 0
    gan = ppgen.create("gan", DataSpec("continuous", (2,)), fourier=2, hidden=16, d_hidden=8)
    assert gan.discriminator.body[2].in_features == 10 and gan.discriminator.body[2].out_features == 8


def test_straight_through_rounding_keeps_gradients():
    model = ppgen.create("gan", DataSpec("categorical:5", (3,)))
    raw = torch.randn(8, 3, requires_grad=True)
    x = model.to_data(raw)
    assert ((x >= 0) & (x <= 4) & (x == x.round())).all()
    x.sum().backward()
    assert (raw.grad.abs() > 0).all()


def test_mode_collapse_warning_when_coverage_drops():
    data = ppgen.data.load("rings8", "train", n=512)
    model = ppgen.create("gan", data, hidden=16)
    model.initialize(data)
    objective = AdversarialObjective(
        model, 1e-3, modes=data.truth.means, mode_std=data.truth.std, check_every=1, n_check=500
    )
    objective.step(data.x[:256], None)
    objective.best_coverage = 1.0  # as if all 8 modes had been covered before
    with torch.no_grad():  # collapse G onto the first mode
        last = model.generator.body[-2]
        last.weight.zero_()
        last.bias.copy_(model.standardize(data.truth.means[:1].float())[0])
    with pytest.warns(ModeCollapseWarning, match="1 of 8 modes"):
        logs = objective.end_epoch()
    assert logs["modes_covered"] == 1 and logs["collapse_warning"] == 1.0
    with warnings.catch_warnings():  # the k-NN recall check, without known modes, sees it too
        warnings.simplefilter("ignore")
        objective.modes = objective.mode_std = None
        assert objective.coverage()["coverage"] < 0.2


def test_evaluate_and_quick_compare_path_on_rings8():
    train, test = ppgen.data.load("rings8", "train", n=1000), ppgen.data.load("rings8", "test", n=500)
    for name in ("gan", "wgan-gp"):
        model = ppgen.create(name, train)
        ppgen.fit(model, train, budget_seconds=1, progress=False)
        metrics = ppgen.evaluate(model, test, num_samples=100)
        assert metrics["test_nll_nats"] is None and metrics["density"] == "implicit"
        assert metrics["modes_total"] == 8 and 0 <= metrics["hq_fraction"] <= 1
        assert model.sample(64).shape == (64, 2)


# --- quality targets (slow: minutes of training; numbers reported from benchmarks/gan_quality.py) ---------
def coverage_over_seeds(model_name, data_name, seeds=(0, 1, 2)):
    from ppgen.metrics import mode_coverage

    train = ppgen.data.load(data_name, "train")
    rows = []
    for seed in seeds:
        ppgen.seed_everything(seed)
        model = ppgen.create(model_name, train)
        result = ppgen.fit(model, train, progress=False)
        rows.append(mode_coverage(model.sample(2500), train.truth.means, train.truth.std))
        print(
            f"{model_name} {data_name} seed {seed}: "
            f"{rows[-1]['modes_covered']}/{rows[-1]['modes_total']} modes, "
            f"{100 * rows[-1]['hq_fraction']:.1f}% HQ, {result.epochs} epochs, {result.seconds:.0f} s"
        )  # shown with pytest -s
    return sum(r["modes_covered"] for r in rows) / len(rows), sum(r["hq_fraction"] for r in rows) / len(rows)


@pytest.mark.slow
def test_wgan_gp_covers_every_mode_of_rings8():
    modes, hq = coverage_over_seeds("wgan-gp", "rings8")
    assert modes == 8 and hq >= 0.9


@pytest.mark.slow
def test_wgan_gp_covers_grid25():
    modes, hq = coverage_over_seeds("wgan-gp", "grid25")
    assert modes >= 24 and hq >= 0.9


@pytest.mark.slow
def test_dcgan_digits_beat_independent_pixels_on_fd_digits():
    from ppgen.metrics import image_sample_quality

    train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
    dcgan, independent = ppgen.create("dcgan", train), ppgen.create("independent", train)
    ppgen.fit(dcgan, train, progress=False)
    ppgen.fit(independent, train, progress=False)
    fd_gan = image_sample_quality(dcgan.sample(1000), test)["fd_digits"]
    fd_ind = image_sample_quality(independent.sample(1000), test)["fd_digits"]
    assert fd_gan < fd_ind
