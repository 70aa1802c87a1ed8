"""The deterministic autoencoder: it trains (reconstruction error falls), samples lie in the support, the
code Gaussian comes from the codes (set by fit, never by sampling), it has no density, and (slow) the
contrast with the VAE measured: better reconstructions, samples off the data more often."""

import io

import pytest
import torch

import ppgen
from ppgen.data import DataSpec, load
from ppgen.errors import PPGenError
from ppgen.metrics import image_sample_quality

SPECS = {
    "binary": DataSpec("binary", (1, 3, 3)),
    "categorical": DataSpec("categorical:5", (1, 2, 2)),
    "continuous": DataSpec("continuous", (2,)),
}


def tiny(spec, **config):
    return ppgen.create("autoencoder", spec, **{"latent_dim": 2, "hidden": (8,), **config}).double()


@pytest.mark.parametrize("kind", list(SPECS))
def test_samples_lie_in_the_support(kind):
    ppgen.seed_everything(0)
    spec = SPECS[kind]
    m = tiny(spec)
    x = m.sample(50)
    assert x.shape == (50, *spec.event_shape)
    m.check_input(x)  # raises outside the support
    if spec.num_categories:
        assert torch.equal(x, x.round()) and x.min() >= 0 and x.max() <= spec.num_categories - 1


def test_log_prob_is_a_clear_error_and_there_is_no_reported_density():
    m = tiny(SPECS["binary"])
    with pytest.raises(PPGenError, match="implicit"):
        m.log_prob(torch.zeros(2, 1, 3, 3))
    assert m.evaluation_log_prob(torch.zeros(2, 1, 3, 3)) is None
    assert (m.family, m.density) == ("latent-variable", "implicit")


def test_bad_loss_is_a_clear_error():
    with pytest.raises(PPGenError, match="loss"):
        tiny(SPECS["binary"], loss="hinge")
    with pytest.raises(PPGenError, match="cross-entropy"):
        tiny(SPECS["continuous"], loss="cross-entropy")


def test_fit_codes_is_the_mean_and_covariance_of_the_codes():
    ppgen.seed_everything(0)
    m = tiny(DataSpec("continuous", (3,)), latent_dim=2).eval()
    x = torch.randn(500, 3, dtype=torch.float64)
    m.fit_codes(x)
    z = m.encode(x)
    cov = m.code_scale_tril @ m.code_scale_tril.T
    assert torch.allclose(m.code_loc, z.mean(0), atol=1e-10)
    assert torch.allclose(cov, torch.cov(z.T, correction=0), atol=1e-5)


def test_sampling_and_reconstruction_leave_the_model_unchanged():
    ppgen.seed_everything(0)
    m = tiny(SPECS["binary"])
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.sample(20)
    m.reconstruction_error(torch.ones(3, 1, 3, 3, dtype=torch.float64))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


@pytest.mark.parametrize("loss", ["cross-entropy", "squared"])
def test_trains_on_digits_and_reconstruction_error_falls(loss):
    ppgen.seed_everything(0)
    train, test = load("digits", "train"), load("digits", "test")
    m = ppgen.create("autoencoder", train, latent_dim=8, hidden=(64,), loss=loss)
    before = m.reconstruction_error(test.x).mean().item()
    ppgen.fit(m, train, epochs=15, progress=False)
    after = m.reconstruction_error(test.x).mean().item()
    assert after < 0.5 * before
    # the objective refitted the code Gaussian to this epoch's codes: close to the codes of the final encoder
    z = m.encode(train.x)
    assert torch.allclose(m.code_loc, z.mean(0), atol=0.25 * z.std(0).mean().item())
    x = m.sample(100)
    assert set(x.unique().tolist()) <= {0.0, 1.0}


def test_save_load_round_trip():
    ppgen.seed_everything(0)
    m = tiny(SPECS["categorical"])
    m.fit_codes(torch.randint(5, (40, 1, 2, 2)).double())
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    other = tiny(SPECS["categorical"])
    other.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    x = torch.randint(5, (6, 1, 2, 2)).double()
    assert torch.equal(other.reconstruction_error(x), m.reconstruction_error(x))
    assert torch.equal(other.code_scale_tril, m.code_scale_tril)


@pytest.mark.slow
def test_autoencoder_reconstructs_better_but_its_samples_leave_the_data_more_often_than_the_vaes():
    # the lecture notes' contrast, measured on digits (seed 0, default configs and epochs: autoencoder 80,
    # vae 350): the autoencoder's test ||x - x_hat||^2 is lower, but fewer of its samples (decoded draws
    # of the Gaussian of its codes) lie on the data manifold (k-NN precision in the digits classifier's
    # features); see the README row for the numbers
    train, test = load("digits", "train"), load("digits", "test")
    results = {}
    for name in ("autoencoder", "vae"):
        ppgen.seed_everything(0)
        m = ppgen.create(name, train)
        ppgen.fit(m, train, progress=False)
        m.eval()
        with torch.no_grad():
            rec = ((test.x - m.decode(m.encode(test.x))) ** 2).flatten(1).sum(1).mean().item()
            precision = image_sample_quality(m.sample(2000), test)["precision"]
        results[name] = (rec, precision)
    assert results["autoencoder"][0] < results["vae"][0]
    assert results["autoencoder"][1] < results["vae"][1] - 0.1
