"""Colour pixel models: PixelCNN, Gated PixelCNN and both PixelRNN layers on (3, H, W) images, generated
pixel by pixel and R -> G -> B within a pixel. Exact normalization over every state of a 2 x 2 x 3 binary
image, the channel-wise autoregressive property by autograd, the cached sampler and completion against
the enumerated density, and the channel-group masks themselves."""

import itertools

import pytest
import torch
from scipy import stats
from test_pixelcnn import gradient_dependencies  # flat index -> the flat indices reaching its logits

import ppgen
from ppgen.data import DataSpec
from ppgen.errors import PPGenError
from ppgen.nn.masked_conv import MaskedConv2d, channel_groups, point_sources

VARIANTS = {
    "pixelcnn": ("pixelcnn", {}),
    "gated-pixelcnn": ("gated-pixelcnn", {}),
    "row-lstm": ("pixelrnn", {}),
    "diagonal-bilstm": ("pixelrnn", {"layer": "diagonal-bilstm"}),
}
NO_BLIND_SPOT = ("gated-pixelcnn", "diagonal-bilstm")
TINY = {"channels": 9, "layers": 2, "first_kernel": 3, "head": 12, "embed_dim": 4}


def build(variant, spec, conditional=False, scale=0.5, **options):
    ppgen.seed_everything(0)
    name, config = VARIANTS[variant]
    m = ppgen.create(name, spec, **{**TINY, **options}, **config, conditional=conditional).double()
    with torch.no_grad():  # away from the initialisation, so that the conditionals are far from uniform
        for p in m.parameters():
            spread = float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 1.0
            p.add_(scale * spread * torch.randn_like(p))
    return m.eval()


def all_states(spec):
    k = spec.num_categories
    states = itertools.product(range(k), repeat=spec.dim)
    return torch.tensor(list(states), dtype=torch.float64).reshape(-1, *spec.event_shape)


def state_index(x, spec):
    weights = spec.num_categories ** torch.arange(spec.dim - 1, -1, -1)
    return (x.reshape(x.shape[0], -1).long() * weights).sum(1)


def pvalue(counts, probs):
    r"""Pearson's chi-square of counts against probabilities, cells expected below 5 pooled."""
    expected = probs / probs.sum() * counts.sum()
    small = expected < 5
    obs = torch.cat([counts[~small], counts[small].sum().reshape(1)])
    exp = torch.cat([expected[~small], expected[small].sum().reshape(1)])
    keep = exp > 0
    assert counts[probs <= 0].sum() == 0
    return stats.chisquare(
        obs[keep].numpy(), exp[keep].numpy() * float(obs[keep].sum() / exp[keep].sum())
    ).pvalue


def earlier(spec):
    r"""Flat index -> every value before it in the colour order: earlier pixels, earlier channels here."""
    colours, height, width = spec.event_shape
    pixels = height * width
    return {
        c * pixels + p: {c2 * pixels + p2 for c2 in range(colours) for p2 in range(p)}
        | {c2 * pixels + p for c2 in range(c)}
        for c in range(colours)
        for p in range(pixels)
    }


# --- the masks ----------------------------------------------------------------------------------------
def test_channel_groups_split_each_chunk_in_order():
    assert channel_groups(6, 3).tolist() == [0, 0, 1, 1, 2, 2]  # one-hot R, G, B at 2 levels
    assert channel_groups(8, 3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert channel_groups(12, 3, chunks=2).tolist() == [0, 0, 1, 1, 2, 2] * 2  # the halves of a gate
    with pytest.raises(ValueError):
        channel_groups(4, 3, chunks=2)  # 2 channels per chunk cannot hold 3 groups


@pytest.mark.parametrize("mask,centre", [("A", [[0, 0, 0], [1, 0, 0], [1, 1, 0]]), ("B", None), ("V", None)])
def test_colour_masks_read_earlier_channels_at_the_centre(mask, centre):
    # R, G, B in and out (one feature each): the centre tap of type A reads strictly earlier channels,
    # type B also the channel itself, V (shifted down before use) all of them; other taps read every channel
    conv = MaskedConv2d(3, 3, 3, mask, groups=3).double()
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    expected = {"A": centre, "B": [[1, 0, 0], [1, 1, 0], [1, 1, 1]], "V": [[1] * 3] * 3}[mask]
    for c in range(3):
        (grad,) = torch.autograd.grad(conv(x)[0, c, 2, 2], x)
        seen = grad[0].abs() > 0  # (3, 5, 5)
        assert seen[:, 2, 2].int().tolist() == expected[c]
        assert seen[:, 1, 1:4].all() and seen[:, 2, 1].all()  # the row above and the pixel to the left
        assert not seen[:, 3].any() and seen[:, 2, 3].any() == (mask == "V")  # nothing later (V: its row)
        sources = conv.reach(point_sources(5, 5, x, channels=3))[:, c, 2, 2]  # (75,) source c'HW + p
        assert torch.equal(sources > 0, seen.flatten())


# --- densities ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_sums_to_one_over_every_2x2x3_binary_image(variant):
    spec = DataSpec("binary", (3, 2, 2), 2)
    for conditional in (False, True):
        m = build(variant, spec, conditional)
        x = all_states(spec)  # 4,096 images
        y = torch.ones(len(x), dtype=torch.long) if conditional else None
        with torch.no_grad():
            logp = m.log_prob(x, y)
        assert abs(float(logp.exp().sum()) - 1.0) < 1e-9
        assert float(logp.max() - logp.min()) > 1.0  # far from uniform: the test has power


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_at_a_pixel_and_channel_read_only_what_comes_before(variant):
    spec = DataSpec("categorical:3", (3, 3, 4))
    m = build(variant, spec, layers=4)  # deep enough that gated layers' stacks reach every earlier pixel
    found = gradient_dependencies(m, torch.randint(3, (32, *spec.event_shape)).double())
    before = earlier(spec)
    assert all(found[i] <= before[i] for i in found)  # nothing later, nothing of the channel itself
    for i in range(12):  # G and B read R (and B reads G) of their own pixel; R reads none of them
        assert {i + 12 * c for c in range(3)} & found[i] == set()
        assert i in found[i + 12] and {i, i + 12} <= found[i + 24]
    if variant in NO_BLIND_SPOT:
        assert found == before
    assert m.dependencies() == found  # the declared receptive field is the true one


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_channel_images_keep_plain_raster_masks(variant):
    m = build(variant, DataSpec("categorical:3", (1, 3, 3)))
    assert m.ordering().tolist() == list(range(9))
    assert all(b.ndim == 2 for n, b in m.named_buffers() if n.endswith(".mask"))  # no channel masks
    assert not any(n.endswith("group_mask") for n in m.state_dict())


# --- sampling and completion ------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_cache_reproduces_the_parallel_conditionals(variant):
    spec = DataSpec("categorical:4", (3, 3, 4), 3)
    m = build(variant, spec, conditional=True, scale=0.3)
    x, y = torch.randint(4, (5, *spec.event_shape)).double(), torch.randint(3, (5,))
    with torch.no_grad():
        expected = m.conditionals(x, y)  # (B, 3, H, W, K)
        cache = m.body.cache(x.new_zeros(5, 12, 3, 4), m.embed(y))
        for i, j in itertools.product(range(3), range(4)):
            for c in range(3):  # channel c's logits with the channels before it set, the rest unset
                partial = x[:, :, i : i + 1, j : j + 1].clone()
                partial[:, c:] = 0
                cache.set(i, j, m.features(partial)[..., 0, 0])
                got = m.head(cache.at(i, j)[..., None, None])[..., 0, 0].unflatten(1, (3, 4))[:, c]
                assert torch.allclose(got, expected[:, c, i, j], atol=1e-10)
            cache.set(i, j, m.features(x[:, :, i : i + 1, j : j + 1])[..., 0, 0])


@pytest.mark.parametrize("variant", VARIANTS)
def test_samples_follow_the_density(variant):
    spec = DataSpec("binary", (3, 1, 2))  # 64 states
    m = build(variant, spec)
    with torch.no_grad():
        probs = m.log_prob(all_states(spec)).exp()
    n = 3000
    for cached in (True, False):
        x = m.sample(n, cached=cached)
        counts = torch.bincount(state_index(x, spec), minlength=64).double()
        assert pvalue(counts, probs) > 1e-3


@pytest.mark.parametrize("variant", VARIANTS)
def test_completion_samples_the_exact_conditional(variant):
    spec = DataSpec("binary", (3, 2, 2))
    m = build(variant, spec)
    states = all_states(spec)
    with torch.no_grad():
        joint = m.log_prob(states).exp()
    x = states[1234:1235].expand(2000, *spec.event_shape)
    for mask in (  # the top row; the top row and R of the third pixel (a prefix of the colour order)
        torch.tensor([[1, 1], [0, 0]], dtype=torch.bool).expand(3, 2, 2),
        torch.tensor([[[1, 1], [1, 0]], [[1, 1], [0, 0]], [[1, 1], [0, 0]]], dtype=torch.bool),
    ):
        out = m.complete(x, mask)
        assert torch.equal(out[:, mask], x[:, mask])
        match = (states[:, mask] == x[0, mask]).all(1)
        counts = torch.bincount(state_index(out, spec), minlength=len(states)).double()
        assert pvalue(counts[match], joint[match]) > 1e-3 and counts[~match].sum() == 0
    with pytest.raises(PPGenError, match="prefix"):  # G observed without R: not a prefix of the order
        m.complete(x, torch.tensor([[[0, 0], [0, 0]], [[1, 0], [0, 0]], [[0, 0], [0, 0]]], dtype=torch.bool))


@pytest.mark.parametrize("variant", VARIANTS)
def test_too_few_features_for_the_colour_groups_is_one_clear_error(variant):
    name, config = VARIANTS[variant]
    with pytest.raises(PPGenError, match="at least the image's 3 channels"):
        ppgen.create(name, DataSpec("binary", (3, 4, 4)), channels=2, **config)


# --- figures -----------------------------------------------------------------------------------------------
def test_image_grids_draw_rgb_images_in_colour():
    import matplotlib.pyplot as plt

    from ppgen.app.plots import image_grid

    x = torch.zeros(4, 3, 2, 2)
    x[:, 0] = 7  # pure red at 8 levels
    fig, ax = plt.subplots()
    image_grid(ax, x, levels=8)
    canvas = ax.images[0].get_array()
    plt.close(fig)
    assert canvas.shape == (7, 7, 3) and canvas[1, 1].tolist() == [1.0, 0.0, 0.0]


# --- patches-rgb: the quick presets -----------------------------------------------------------------------
PATCH_MODELS = ["independent", "mixture", "pixelcnn", "gated-pixelcnn", "pixelrnn"]


def test_compare_quick_on_patches_rgb_plans_the_models_with_a_preset():
    from ppgen.app.compare import plan

    train = ppgen.data.load("patches-rgb", "train")
    cells, left_out = plan(ppgen.model_names(), train, quick=True, seeds=[0])
    assert [c.model for c in cells] == [n for n in ppgen.model_names() if n in PATCH_MODELS]
    assert set(PATCH_MODELS) <= {c.model for c in cells} and "nade" in left_out


@pytest.mark.parametrize("name", PATCH_MODELS)
def test_patches_rgb_presets_build_and_take_a_step(name):
    preset = ppgen.get(name).quick_preset("patches-rgb")
    ppgen.seed_everything(0)
    train = ppgen.data.load("patches-rgb", "train").subset(64)
    model = ppgen.create(name, train, **preset["config"])
    options = {k: v for k, v in preset["fit"].items() if k != "epochs"}
    assert ppgen.fit(model, train, steps=1, progress=False, **options).steps == 1
    assert model.sample(2).shape == (2, 3, 8, 8)


@pytest.mark.parametrize("variant", ["pixelcnn", "diagonal-bilstm"])
def test_the_completion_task_is_exact_for_a_hidden_lower_half_of_rgb_patches(variant):
    from ppgen.inference.tasks.complete import complete, hidden_mask

    spec = DataSpec("binary", (3, 2, 2))
    m = build(variant, spec).float()  # the task works in float32
    x = all_states(spec)[1234:1235].expand(2000, *spec.event_shape).float()
    hidden = hidden_mask("bottom", tuple(spec.event_shape), 2000)
    out, info = complete(m, x, hidden, seed=0)
    assert info["method"].startswith("exact") and torch.equal(out[~hidden], x[~hidden])
    states = all_states(spec).float()
    with torch.no_grad():
        joint = m.log_prob(states).double().exp()
    match = (states[:, ~hidden[0]] == x[0, ~hidden[0]]).all(1)
    counts = torch.bincount(state_index(out, spec), minlength=len(states)).double()
    assert pvalue(counts[match], joint[match]) > 1e-3 and counts[~match].sum() == 0
    # log p(x_o) of the top row, exact: the marginal of the enumerated joint
    assert torch.allclose(info["log_p_observed"][0], joint[match].sum().log(), atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "kind,shape,conditional",
    [("binary", (1, 4, 5), False), ("categorical:4", (1, 3, 4), True), ("categorical:3", (3, 3, 4), True)],
)
def test_cached_sampler_conditionals_equal_the_parallel_pass(variant, kind, shape, conditional):
    # the sampler's own path (folded weights, buffers, head as matrices), teacher-forced, in float32
    spec = DataSpec(kind, shape, 3)
    m = build(variant, spec, conditional=conditional, scale=0.3).float()
    ppgen.seed_everything(1)
    x = torch.randint(spec.num_categories, (5, *shape)).float()
    y = torch.randint(3, (5,)) if conditional else None
    with torch.no_grad():
        expected = m.conditionals(x, y)
    got = m.cached_conditionals(x, y)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 1e-5
