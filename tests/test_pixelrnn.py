"""PixelRNN specifics: each layer's recurrence (Row LSTM, Diagonal BiLSTM), receptive field and cached step.

The density, sampling, completion and graph checks are in tests/test_autoregressive.py; the cached
sampler checks shared with PixelCNN are parametrized in tests/test_pixelcnn.py; save/load, devices and
validation in tests/test_contract.py.
"""

import pytest
import torch
from scipy import stats

import ppgen
from ppgen.data import DataSpec
from ppgen.errors import PPGenError
from ppgen.nn.diagonal_lstm import DiagonalBiLSTM, skew, unskew
from ppgen.nn.masked_conv import point_sources
from ppgen.nn.row_lstm import RowLSTM, RowLSTMStack


def test_row_lstm_matches_a_hand_written_recurrence():
    layer = RowLSTM(2, 3).double()
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64)
    w, b = layer.state_to_state.weight, layer.state_to_state.bias
    gates_in = layer.input_to_state(x)
    h = c = torch.zeros(2, 3, 5, dtype=torch.float64)
    expected = []
    for r in range(4):
        g = gates_in[..., r, :] + torch.nn.functional.conv1d(h, w, b, padding=1)
        o, f, i, gg = g.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        h = torch.sigmoid(o) * torch.tanh(c)
        expected.append(h)
    assert torch.allclose(layer(x), torch.stack(expected, dim=-2), atol=1e-12)


def test_row_lstm_state_sees_a_triangle_above():
    # with a 3-wide state-to-state kernel, h at (r, j) sees row r - d up to d + 1 columns right
    # (input-to-state adds one more row's reach)
    layer = RowLSTM(1, 4).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(1, 1, 6, 9, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(layer(x)[0, :, 5, 4].sum(), x)
    seen = grad[0, 0].abs() > 0
    expected = torch.zeros(6, 9, dtype=torch.bool)
    for r in range(6):
        d = 5 - r
        expected[r, max(0, 4 - d - 1) : min(9, 4 + d + 1)] = (
            True  # the input-to-state kernel reads (r, j - 1), (r, j)
        )
    assert torch.equal(seen, expected)
    assert torch.equal(layer.reach(point_sources(6, 9, x))[:, 0, 5, 4].reshape(6, 9) > 0, expected)


def test_row_lstm_stack_cache_equals_the_full_pass():
    stack = RowLSTMStack(3, 6, layers=2, first_kernel=3, embed_dim=2).double().eval()
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    e = torch.randn(2, 2, dtype=torch.float64)
    full = stack(x, e)
    cache = stack.cache(torch.zeros_like(x), e)
    for i in range(4):
        for j in range(6):
            assert torch.allclose(cache.at(i, j), full[..., i, j], atol=1e-12)
            cache.set(i, j, x[..., i, j])


def test_pixelrnn_receptive_field_is_the_row_lstm_triangle_on_8x8():
    m = ppgen.create("pixelrnn", DataSpec("binary", (1, 8, 8)), first_kernel=3, layers=2).double().eval()
    deps = m.dependencies()
    assert all(deps[i] <= set(range(i)) for i in range(64))
    # bottom-left (7, 0): row r is seen up to column 7 - r (the triangle widens one column per row up)
    assert deps[56] == {8 * r + c for r in range(7) for c in range(8 - r)}
    # bottom-right (7, 7): only 3 pixels to its left in its own row (the first kernel and one per
    # Row LSTM layer): the Row LSTM does not see the whole available context
    assert deps[63] == {60, 61, 62} | {8 * r + c for r in range(7) for c in range(max(0, r - 3), 8)}
    x = torch.bernoulli(torch.full((32, 1, 8, 8), 0.5, dtype=torch.float64)).requires_grad_(True)
    logits = m.conditionals(x).reshape(32, 64)
    for i in (56, 63):
        (grad,) = torch.autograd.grad(logits[:, i].sum(), x, retain_graph=True)
        assert set(torch.nonzero(grad.reshape(32, 64).abs().sum(0)).flatten().tolist()) == deps[i]


def test_forget_gates_start_open():
    layer = RowLSTM(2, 5)
    assert (layer.state_to_state.bias[5:10] > 0.5).all()


# --- Diagonal BiLSTM ----------------------------------------------------------------------------------
def diagonal_by_hand(lstm, x, reverse):
    r"""One diagonal LSTM written pixel by pixel in image coordinates (mirrored when ``reverse``)."""
    b, _, height, width = x.shape
    c_size = lstm.channels
    w_ss, b_ss = lstm.state_to_state.weight, lstm.state_to_state.bias  # taps [above, left]
    gates_in = lstm.input_to_state(x)
    h = torch.zeros(b, c_size, height + 1, width + 2, dtype=x.dtype)  # (i, j) at [i + 1, j + 1]
    c = torch.zeros_like(h)
    step = -1 if reverse else 1
    for i in range(height):
        for j in range(width)[::step]:
            above, before = h[..., i, j + 1], h[..., i + 1, j + 1 - step]
            g = gates_in[..., i, j] + above @ w_ss[..., 0].T + before @ w_ss[..., 1].T + b_ss
            o, f, ig, gg = g.chunk(4, dim=1)
            c[..., i + 1, j + 1] = torch.sigmoid(f) * c[..., i + 1, j + 1 - step] + torch.sigmoid(
                ig
            ) * torch.tanh(gg)
            h[..., i + 1, j + 1] = torch.sigmoid(o) * torch.tanh(c[..., i + 1, j + 1])
    return h[..., 1:, 1:-1]


def test_diagonal_bilstm_matches_a_hand_written_recurrence():
    layer = DiagonalBiLSTM(2, 3, image_channels=1).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64)
    image = torch.randn(2, 1, 4, 5, dtype=torch.float64)
    left = diagonal_by_hand(layer.left, x, reverse=False)
    right = diagonal_by_hand(layer.right, torch.cat([x, image], 1), reverse=True)
    expected = left + torch.nn.functional.pad(right, (0, 0, 1, 0))[..., :-1, :]  # right-to-left shifted down
    assert torch.allclose(layer(x, image=image), expected, atol=1e-12)


def test_skew_and_unskew_are_inverse():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    s = skew(x)
    assert s.shape == (1, 1, 3, 6)
    assert s[0, 0, 2].tolist() == [0, 0, 8, 9, 10, 11]
    assert torch.equal(unskew(s, 4), x)


def test_diagonal_bilstm_sees_every_earlier_position_and_its_own():
    layer = DiagonalBiLSTM(1, 4).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(1, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(layer(x)[0, :, 3, 2].sum(), x)
    seen = grad[0, 0].abs() > 0
    expected = torch.zeros(5, 6, dtype=torch.bool)
    expected[:3] = True  # every row above (the right-to-left part, shifted down, and the left-to-right part)
    expected[3, :3] = True  # its row up to and including itself, nothing after
    assert torch.equal(seen, expected)
    assert torch.equal(layer.reach(point_sources(5, 6, x))[:, 0, 3, 2].reshape(5, 6) > 0, expected)


def diagonal(spec, **config):
    m = ppgen.create("pixelrnn", spec, layer="diagonal-bilstm", **{**TINY, **config}).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.eval()


TINY = {"channels": 6, "first_kernel": 3, "head": 8, "embed_dim": 4}


def test_diagonal_pixelrnn_has_no_blind_spot_on_5x5():
    ppgen.seed_everything(0)
    m = diagonal(DataSpec("binary", (1, 5, 5)), layers=2)
    x = torch.bernoulli(torch.full((64, 1, 5, 5), 0.5, dtype=torch.float64)).requires_grad_(True)
    logits = m.conditionals(x).reshape(64, 25)
    found = {}
    for i in range(25):
        (grad,) = torch.autograd.grad(logits[:, i].sum(), x, retain_graph=True)
        found[i] = set(torch.nonzero(grad.reshape(64, 25).abs().sum(0)).flatten().tolist())
    assert found == {i: set(range(i)) for i in range(25)}  # every earlier pixel, no later one
    assert m.dependencies() == found


def test_diagonal_pixelrnn_sums_to_one_over_every_3x3_binary_image():
    ppgen.seed_everything(0)
    m = diagonal(DataSpec("binary", (1, 3, 3)))
    codes = 2 ** torch.arange(8, -1, -1)
    states = ((torch.arange(512)[:, None] // codes) % 2).double().reshape(512, 1, 3, 3)
    with torch.no_grad():
        total = torch.logsumexp(m.log_prob(states), 0)
    assert abs(total.item()) < 1e-10


def test_diagonal_pixelrnn_sums_to_one_conditionally_on_categorical_2x2():
    ppgen.seed_everything(0)
    m = diagonal(DataSpec("categorical:3", (1, 2, 2), 2), conditional=True)
    states = torch.cartesian_prod(*[torch.arange(3)] * 4).double().reshape(81, 1, 2, 2)
    with torch.no_grad():
        for label in (0, 1):
            total = torch.logsumexp(m.log_prob(states, torch.full((81,), label)), 0)
            assert abs(total.item()) < 1e-10


@pytest.mark.parametrize("kind", ["binary", "categorical:4"])
def test_diagonal_cache_reproduces_the_parallel_conditionals(kind):
    ppgen.seed_everything(0)
    spec = DataSpec(kind, (1, 4, 5), 3)
    m = diagonal(spec, layers=3, conditional=True)
    k = spec.num_categories
    x = torch.randint(k, (6, 1, 4, 5)).double()
    y = torch.randint(3, (6,))
    with torch.no_grad():
        expected = m.conditionals(x, y).reshape(6, 20, -1)
        cache = m.body.cache(x.new_zeros(6, k, 4, 5), m.embed(y))
        for i in range(4):
            for j in range(5):
                got = m.head(cache.at(i, j)[..., None, None])[..., 0, 0]
                assert torch.allclose(got, expected[:, i * 5 + j], atol=1e-10)
                cache.set(i, j, m.features(x[:, :, i : i + 1, j : j + 1])[..., 0, 0])


def test_diagonal_cached_sampler_matches_the_exact_distribution():
    ppgen.seed_everything(0)
    m = diagonal(DataSpec("binary", (1, 2, 3)))
    n = 4000
    codes = 2 ** torch.arange(5, -1, -1)
    counts = torch.bincount((m.sample(n).reshape(n, -1).long() * codes).sum(1), minlength=64)
    states = ((torch.arange(64)[:, None] // codes) % 2).double().reshape(64, 1, 2, 3)
    with torch.no_grad():
        expected = m.log_prob(states).exp() * n
    keep = expected >= 5
    scaled = expected[keep] * counts[keep].sum() / expected[keep].sum()
    assert stats.chisquare(counts[keep].numpy(), scaled.numpy()).pvalue > 1e-3


def test_unknown_pixelrnn_layer_is_a_clear_error():
    with pytest.raises(PPGenError, match="diagonal-bilstm"):
        ppgen.create("pixelrnn", DataSpec("binary", (1, 3, 3)), layer="column-lstm")
