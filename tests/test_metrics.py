"""Sample-quality metrics on constructed cases: mode coverage, Fréchet distance, precision/recall, MMD."""

import math

import pytest
import torch

import ppgen
from ppgen import features
from ppgen.errors import PPGenError
from ppgen.metrics import frechet_distance, image_sample_quality, knn_precision_recall, mmd, mode_coverage


# --- mode coverage (VEEGAN / PacGAN protocol) --------------------------------------------------------
def test_mode_coverage_on_constructed_samples():
    truth = ppgen.data.load("rings8", "test", n=10).truth
    means, std = truth.means, truth.std
    g = torch.Generator().manual_seed(0)
    on_modes = means[:5].repeat_interleave(100, 0) + std * torch.randn(
        500, 2, generator=g, dtype=torch.float64
    )
    off = torch.zeros(125, 2, dtype=torch.float64)  # the centre: 2 away from every mode, never high quality
    m = mode_coverage(torch.cat([on_modes, off]), means, std)
    assert m["modes_covered"] == 5 and m["modes_total"] == 8
    expected_hq = (
        float(
            (
                torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64).norm(
                    dim=1
                )
                < 3
            ).sum()
        )
        / 625
    )
    assert m["hq_fraction"] == pytest.approx(expected_hq)
    assert m["mode_reverse_kl"] == pytest.approx(math.log(8 / 5), abs=0.01)  # uniform over 5 of 8 modes
    one = mode_coverage(means[:1].repeat(50, 1), means, std)
    assert (one["modes_covered"], one["hq_fraction"]) == (1, 1.0) and one["mode_reverse_kl"] == pytest.approx(
        math.log(8)
    )
    # a sample 4 std away is nearest to a mode but not high quality: it does not cover it
    far = mode_coverage(means[:1] + torch.tensor([[4 * std, 0.0]], dtype=torch.float64), means, std)
    assert far["modes_covered"] == 0 and far["hq_fraction"] == 0.0


# --- Fréchet distance ----------------------------------------------------------------------------------
def test_frechet_distance_matches_closed_form_and_scipy():
    from scipy.linalg import sqrtm

    g = torch.Generator().manual_seed(0)
    a, b = (
        torch.randn(500, 4, generator=g, dtype=torch.float64),
        torch.randn(300, 4, generator=g, dtype=torch.float64)
        @ torch.randn(4, 4, generator=g, dtype=torch.float64)
        + 1.0,
    )
    sa, sb = torch.cov(a.T).numpy(), torch.cov(b.T).numpy()
    expected = float(((a.mean(0) - b.mean(0)) ** 2).sum()) + float(
        sa.trace() + sb.trace() - 2 * sqrtm(sa @ sb).real.trace()
    )
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, a + torch.tensor([3.0, 0, 0, 4.0], dtype=torch.float64)) == pytest.approx(
        25.0, rel=1e-6
    )
    with pytest.raises(PPGenError):
        frechet_distance(a[:1], b)


# --- k-NN precision and recall ---------------------------------------------------------------------
def test_knn_precision_recall_on_constructed_cases():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(1000, 2, generator=g)
    same = knn_precision_recall(real, torch.randn(1000, 2, generator=g))
    assert same["precision"] > 0.9 and same["recall"] > 0.9
    collapsed = knn_precision_recall(real, 0.05 * torch.randn(1000, 2, generator=g))  # one mode of the data
    assert collapsed["precision"] > 0.95 and collapsed["recall"] < 0.1
    far = knn_precision_recall(real, torch.randn(1000, 2, generator=g) + 20.0)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    spread = knn_precision_recall(
        real, 4 * torch.randn(1000, 2, generator=g)
    )  # covers the data, mostly off it
    assert spread["recall"] > 0.9 and spread["precision"] < 0.5


def test_mmd_is_near_zero_for_the_same_distribution():
    g = torch.Generator().manual_seed(0)
    x, y, z = (
        torch.randn(500, 2, generator=g),
        torch.randn(500, 2, generator=g),
        torch.randn(500, 2, generator=g) + 1.0,
    )
    same, different = mmd(x, y), mmd(x, z)
    assert abs(same) < 0.01 and different > 20 * abs(same) and different > 0.1


# --- FD-digits and the classifier --------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_cache(tmp_path_factory):
    import os

    old = os.environ.get("PPGEN_CACHE")
    os.environ["PPGEN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    features._MEMORY.clear()
    yield ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
    features._MEMORY.clear()
    if old is None:
        os.environ.pop("PPGEN_CACHE")
    else:
        os.environ["PPGEN_CACHE"] = old


def test_fd_digits_sanity_train_vs_test_much_lower_than_noise(digits_cache):
    train, test = digits_cache
    real = image_sample_quality(train.x, test)
    assert set(real) == {"fd_digits", "precision", "recall", "mmd"}
    noise = image_sample_quality(torch.bernoulli(torch.full((1000, 1, 8, 8), 0.5)), test)
    independent = ppgen.create("independent", train)
    ppgen.fit(independent, train, progress=False)
    pixels = image_sample_quality(independent.sample(1000), test)  # right pixel marginals, no digits
    assert real["fd_digits"] * 10 < noise["fd_digits"]
    assert real["fd_digits"] * 5 < pixels["fd_digits"] < noise["fd_digits"]
    assert real["precision"] > 0.8 and real["recall"] > 0.8 and real["precision"] > pixels["precision"]
    assert abs(real["mmd"]) < 0.01 < noise["mmd"]
    # the classifier was cached on disk and is reloaded to the same features
    assert list(features.cache_dir().glob("classifier-digits-*.pt"))
    net = features.classifier("digits", test.spec)
    features._MEMORY.clear()
    again = features.classifier("digits", test.spec)
    assert again is not net and torch.equal(
        features.extract(again, test.x[:50]), features.extract(net, test.x[:50])
    )


def test_classifier_training_is_deterministic_and_learns():
    train, test = ppgen.data.load("digits", "train").subset(400), ppgen.data.load("digits", "test")
    a, acc = features.train_classifier(train, test, epochs=3)
    b, _ = features.train_classifier(train, test, epochs=3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert acc > 0.5  # ten classes: chance is 0.1


def test_image_sample_quality_validates_and_skips_unknown_data():
    test = ppgen.data.load("digits", "test")
    with pytest.raises(PPGenError, match="shape"):
        image_sample_quality(torch.zeros(10, 64), test)
    own = ppgen.data.from_tensor(test.x, kind="binary", name="mine")
    out = image_sample_quality(test.x[:100], own)
    assert out["fd_digits"] is None and out["precision"] is None and out["mmd"] is not None
