"""PixelCNN / Gated PixelCNN specifics (the shared density driver is tests/test_autoregressive.py):
masks, receptive fields by autograd (the blind spot and its absence), the cached sampler against the
parallel pass and the naive sampler, validation, and (slow) the quality targets on digits."""

import math

import pytest
import torch
from scipy import stats

import ppgen
from ppgen.data import DataSpec
from ppgen.errors import PPGenError
from ppgen.nn.masked_conv import MaskedConv2d, RasterGrid, conv_mask, point_sources

PIXEL_MODELS = ["pixelcnn", "gated-pixelcnn", "pixelrnn"]
TINY = {"channels": 8, "first_kernel": 3, "head": 16, "embed_dim": 4}


def perturbed(name, spec, **config):
    m = ppgen.create(name, spec, **{**TINY, **config}).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.eval()


def gradient_dependencies(m, x, y=None):
    r"""Flat pixel -> the set of pixels whose value reaches its conditional's logits by autograd."""
    x = x.clone().requires_grad_(True)
    logits = m.conditionals(x, y).reshape(x.shape[0], m.spec.dim, -1)
    found = {}
    for i in range(m.spec.dim):
        (grad,) = torch.autograd.grad(logits[:, i].sum(), x, retain_graph=True)
        found[i] = set(torch.nonzero(grad.reshape(x.shape[0], -1).abs().sum(0)).flatten().tolist())
    return found


# --- masks ------------------------------------------------------------------------------------------
def test_masks_are_the_documented_footprints():
    assert conv_mask(3, "A").int().tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert conv_mask(3, "B").int().tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert conv_mask(3, "V").int().tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 0]]
    assert conv_mask(3, "HA").int().tolist() == [[0, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert conv_mask(5, "HB").int()[2].tolist() == [1, 1, 1, 0, 0]
    assert int(conv_mask(5, "A").sum()) == 12
    with pytest.raises(ValueError):
        conv_mask(1, "A")  # empty
    with pytest.raises(ValueError):
        conv_mask(4, "B")  # even


@pytest.mark.parametrize(
    "mask,stored", [("A", (3, 5)), ("B", (3, 5)), ("V", (3, 5)), ("HA", (1, 2)), ("HB", (1, 3))]
)
def test_masked_conv_stores_the_footprints_box_and_respects_it(mask, stored):
    conv = MaskedConv2d(2, 3, 5, mask).double()
    assert tuple(conv.weight.shape[-2:]) == stored
    x = torch.randn(1, 2, 7, 7, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(conv(x)[0, :, 3, 3].sum(), x)
    seen = grad[0].abs().sum(0)[1:6, 1:6] > 0  # the 5x5 neighbourhood of (3, 3)
    assert torch.equal(seen, conv_mask(5, mask))
    assert torch.equal(
        conv.reach(point_sources(7, 7, x))[:, 0, 3, 3].reshape(7, 7)[1:6, 1:6] > 0, conv_mask(5, mask)
    )


@pytest.mark.parametrize("mask", ["A", "B", "V", "HA", "HB"])
@pytest.mark.parametrize("groups", [1, 3])
def test_masked_conv_at_and_row_at_on_a_raster_grid_equal_the_full_pass(mask, groups):
    ppgen.seed_everything(0)
    conv = MaskedConv2d(6, 9, 5, mask, groups=groups).double()
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    full = conv(x)  # (B, C_out, H, W)
    grid = RasterGrid(4, 5, conv.margin + 1)
    buf, taps, rows = grid.pad(x), grid.taps(conv), grid.row_taps(conv)
    assert all(torch.equal(grid.image_row(buf, i), x[..., i, :].mT) for i in range(4))
    weight = conv.flat_weight()
    for i in range(4):
        assert torch.allclose(conv.row_at(buf, rows[i], weight) + conv.bias, full[..., i, :].mT, atol=1e-12)
        for j in range(5):
            assert torch.allclose(
                conv.at(buf, taps[i * 5 + j], weight, conv.bias), full[..., i, j], atol=1e-12
            )


# --- receptive fields ---------------------------------------------------------------------------------
def test_gated_pixelcnn_has_no_blind_spot_on_5x5():
    spec = DataSpec("binary", (1, 5, 5))
    m = perturbed("gated-pixelcnn", spec, layers=4)
    found = gradient_dependencies(m, torch.bernoulli(torch.full((64, 1, 5, 5), 0.5, dtype=torch.float64)))
    assert found == {i: set(range(i)) for i in range(25)}
    assert m.dependencies() == found


def test_plain_pixelcnn_has_the_blind_spot_and_reports_it():
    spec = DataSpec("binary", (1, 5, 5))
    m = perturbed("pixelcnn", spec, layers=4)
    found = gradient_dependencies(m, torch.bernoulli(torch.full((64, 1, 5, 5), 0.5, dtype=torch.float64)))
    assert all(found[i] <= set(range(i)) for i in range(25))
    assert 4 not in found[5]  # (0, 4) is above and right of (1, 0): in the blind spot
    assert sum(len(set(range(i)) - found[i]) for i in range(25)) > 0
    assert m.dependencies() == found


# --- cached sampling ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PIXEL_MODELS)
@pytest.mark.parametrize("kind", ["binary", "categorical:4"])
def test_cache_reproduces_the_parallel_conditionals(name, kind):
    # teacher-forced through the cache, every pixel's logits equal the one-pass conditionals
    spec = DataSpec(kind, (1, 4, 5), 3)
    m = perturbed(name, spec, layers=3, conditional=True)
    k = spec.num_categories
    x = torch.randint(k, (6, 1, 4, 5)).double()
    y = torch.randint(3, (6,))
    with torch.no_grad():
        expected = m.conditionals(x, y).reshape(6, 20, -1)
        cache = m.body.cache(x.new_zeros(6, k, 4, 5), m.embed(y))
        for i in range(4):
            for j in range(5):
                got = m.head(cache.at(i, j)[..., None, None])[..., 0, 0]  # (B, K_out)
                assert torch.allclose(got, expected[:, i * 5 + j], atol=1e-10)
                cache.set(i, j, m.features(x[:, :, i : i + 1, j : j + 1])[..., 0, 0])


@pytest.mark.parametrize("name", PIXEL_MODELS)
def test_fast_sampler_draws_the_same_distribution_as_naive(name):
    spec = DataSpec("binary", (1, 2, 3))
    m = perturbed(name, spec)
    n = 4000
    codes = 2 ** torch.arange(5, -1, -1)
    fast = torch.bincount((m.sample(n).reshape(n, -1).long() * codes).sum(1), minlength=64)
    naive = torch.bincount((m.sample(n, cached=False).reshape(n, -1).long() * codes).sum(1), minlength=64)
    keep = (fast + naive) > 0
    _, pvalue, _, _ = stats.chi2_contingency(torch.stack([fast[keep], naive[keep]]).numpy())
    assert pvalue > 1e-3
    states = ((torch.arange(64)[:, None] // codes) % 2).double().reshape(64, 1, 2, 3)
    with torch.no_grad():
        probs = m.log_prob(states).exp()
    for counts in (fast, naive):
        assert (
            stats.chisquare(
                counts[probs * n >= 5].numpy(),
                (probs * n)[probs * n >= 5].numpy()
                * counts[probs * n >= 5].sum().item()
                / (probs * n)[probs * n >= 5].sum().item(),
            ).pvalue
            > 1e-3
        )


@pytest.mark.parametrize("name", PIXEL_MODELS)
def test_cached_completion_keeps_the_observed_top_half(name):
    spec = DataSpec("categorical:3", (1, 4, 4))
    m = perturbed(name, spec)
    x = torch.randint(3, (5, 1, 4, 4)).double()
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[:, :2] = True
    out = m.complete(x, mask)
    assert torch.equal(out[:, :, :2], x[:, :, :2])
    assert ((out >= 0) & (out < 3) & (out == out.round())).all()


# --- validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PIXEL_MODELS)
def test_rejects_data_it_cannot_model(name):
    with pytest.raises(PPGenError, match="at least the image's 3 channels"):
        ppgen.create(name, DataSpec("binary", (3, 4, 4)), head=2)
    with pytest.raises(PPGenError):
        ppgen.create(name, DataSpec("binary", (16,)))
    with pytest.raises(PPGenError):
        ppgen.create(name, DataSpec("continuous", (1, 4, 4)))


@pytest.mark.parametrize("name", PIXEL_MODELS)
def test_fit_evaluate_sample_on_digits_end_to_end(name):
    train, test = ppgen.data.load("digits", "train").subset(128), ppgen.data.load("digits", "test").subset(64)
    m = ppgen.create(name, train)
    result = ppgen.fit(m, train, steps=2, progress=False)
    assert result.steps == 2
    metrics = ppgen.evaluate(m, test, num_samples=10)
    assert metrics["test_nll_kind"] == "exact" and 0 < metrics["test_nll_nats"] < 64 * 0.7 + 5
    assert m.sample(4).shape == (4, 1, 8, 8)


@pytest.mark.parametrize("name", PIXEL_MODELS)
def test_trains_on_grey_levels_digits_gray(name):
    train = ppgen.data.load("digits-gray", "train").subset(64)
    m = ppgen.create(name, train, conditional=True)
    with torch.no_grad():
        before = float(-m.log_prob(train.x, train.y).mean())
    ppgen.fit(m, train, steps=3, progress=False)
    with torch.no_grad():
        after = float(-m.log_prob(train.x, train.y).mean())
    assert after < before < 64 * math.log(17) + 30  # from about uniform (64 log 17 = 181 nats) downwards
    x = m.sample(3, torch.tensor([0, 1, 2]))
    assert x.shape == (3, 1, 8, 8) and ((x >= 0) & (x <= 16) & (x == x.round())).all()


# --- quality targets (issue 4: default config, exact test NLL on digits, <= 3 minutes on 2 cores)
# ------------
@pytest.mark.slow
@pytest.mark.parametrize("name,target", [("pixelcnn", 17.2), ("gated-pixelcnn", 17.0), ("pixelrnn", 17.2)])
def test_digits_test_nll_target(name, target):
    train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
    m = ppgen.create(name, train)
    ppgen.fit(m, train, progress=False)
    assert ppgen.evaluate(m, test)["test_nll_nats"] <= target
