"""Row LSTM / PixelRNN specifics: the layer's recurrence, its triangular receptive field, its cached step.

The density, sampling, completion and graph checks are in tests/test_autoregressive.py; the cached
sampler checks shared with PixelCNN are parametrized in tests/test_pixelcnn.py; save/load, devices and
validation in tests/test_contract.py.
"""

import torch

import ppgen
from ppgen.data import DataSpec
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
