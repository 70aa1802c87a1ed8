"""Data sets: the IDX reader, MNIST from local files, synthetic densities, splits and validation."""

import gzip
import math

import numpy as np
import pytest
import torch

from ppgen import data
from ppgen.errors import PPGenError
from ppgen.idx import read_idx


def write_idx(path, array: np.ndarray) -> None:
    r"""Writes an unsigned-byte IDX file (gzipped if the name ends in ``.gz``), for the reader's tests."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def write_mnist(folder, n_train=20, n_test=10, gz=True):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n))


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, array)
    np.testing.assert_array_equal(read_idx(path), array)


def test_idx_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "t.idx"
    write_idx(path, np.zeros((4, 5), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(PPGenError, match="truncated"):
        read_idx(path)


def test_idx_wrong_magic_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x12\x34\x56\x78" + bytes(16))
    with pytest.raises(PPGenError, match="not an IDX file"):
        read_idx(path)


def test_idx_missing_file(tmp_path):
    with pytest.raises(PPGenError, match="not found"):
        read_idx(tmp_path / "nope")


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_root(tmp_path, gz):
    write_mnist(tmp_path, gz=gz)
    train = data.load("mnist", "train", root=tmp_path)
    test = data.load("mnist", "test", root=tmp_path)
    assert train.x.shape == (20, 1, 28, 28) and test.x.shape == (10, 1, 28, 28)
    assert set(train.x.unique().tolist()) <= {0.0, 1.0} and train.kind == "binary"
    # The test set is binarized once with a fixed seed; the training set is redrawn every epoch.
    assert torch.equal(test.x, data.load("mnist", "test", root=tmp_path).x)
    epoch1 = torch.cat([x for x, _ in data.batches(train, 5, shuffle=False)])
    epoch2 = torch.cat([x for x, _ in data.batches(train, 5, shuffle=False)])
    assert not torch.equal(epoch1, epoch2)
    gray = data.load("mnist-gray", "train", root=tmp_path)
    assert gray.kind == "categorical:256" and gray.x.max() <= 255


def test_mnist_from_env(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    write_mnist(tmp_path / "mnist")
    monkeypatch.setenv("PPGEN_DATA", str(tmp_path))
    assert len(data.load("mnist", "test")) == 10


def test_mnist_missing_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setenv("PPGEN_NO_DOWNLOAD", "1")
    monkeypatch.delenv("PPGEN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(PPGenError, match="put the four IDX files in"):
        data.load("mnist", "train", root=tmp_path / "empty")


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(PPGenError, match="rings8"):
        data.load("ringz")
    with pytest.raises(PPGenError, match="'train' or 'test'"):
        data.load("digits", "valid")


def test_digits_split_and_kinds():
    train, test = data.load("digits", "train"), data.load("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    assert train.event_shape == (1, 8, 8) and train.kind == "binary"
    assert set(train.x.unique().tolist()) == {0.0, 1.0}
    gray = data.load("digits-gray", "test")
    assert gray.kind == "categorical:17" and gray.x.max() == 16
    assert torch.equal((gray.x >= 8).float(), test.x)  # the same 360 images, binarized at >= 8


@pytest.mark.parametrize("name", ["rings8", "grid25", "checkerboard"])
def test_synthetic_density_integrates_to_one(name):
    truth = data.load(name, "test").truth
    lim, n = (5.0, 1201) if name == "grid25" else (2.5, 1001)
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    p = truth.log_prob(torch.stack([xx, yy], -1)).exp()
    cell = (g[1] - g[0]) ** 2
    assert float(p.sum() * cell) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("name", ["rings8", "grid25", "checkerboard"])
def test_monte_carlo_nll_of_samples_matches_entropy(name):
    d = data.load(name, "train", n=200_000)
    nll = -d.log_prob(d.x.double()).mean()
    assert float(nll) == pytest.approx(d.entropy, abs=0.02)


def test_synthetic_splits_differ_and_are_reproducible():
    a, b = data.load("rings8", "train"), data.load("rings8", "test")
    assert not torch.equal(a.x[:100], b.x[:100])
    assert torch.equal(a.x, data.load("rings8", "train").x)
    for name in ("moons", "spirals"):
        d = data.load(name, "train")
        assert d.x.shape == (10_000, 2) and d.truth is None and d.x.abs().max() < 3


def test_checkerboard_entropy_is_log_8():
    assert data.load("checkerboard").entropy == pytest.approx(math.log(8))


@pytest.mark.parametrize(
    "x, kind, message",
    [
        (torch.tensor([[0.0, 2.0]]), "binary", "values in"),
        (torch.tensor([[0.0, float("nan")]]), "continuous", "NaN"),
        (torch.tensor([[0.0, 3.0]]), "categorical:3", "integers in"),
        (torch.tensor([1.0, 0.0]), "binary", "shape"),
        (torch.tensor([[0.5]]), "gaussian", "unknown kind"),
        (torch.tensor([[0.5]]), "categorical", "categorical:K"),
    ],
)
def test_from_tensor_rejects_bad_input(x, kind, message):
    with pytest.raises(PPGenError, match=message):
        data.from_tensor(x, kind)


def test_from_tensor_accepts_good_input():
    d = data.from_tensor(torch.tensor([[0, 1, 2], [2, 1, 0]]), "categorical:3", y=[0, 1])
    assert d.kind == "categorical:3" and d.x.dtype == torch.float32 and d.num_classes == 2
    with pytest.raises(PPGenError, match="labels"):
        data.from_tensor(torch.zeros(2, 3), "binary", y=[0, -1])


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt", ".csv"])
def test_data_files_are_split_deterministically(tmp_path, suffix):
    x = np.random.default_rng(0).integers(0, 2, (50, 6)).astype(np.float32)
    path = tmp_path / f"own{suffix}"
    if suffix == ".npy":
        np.save(path, x)
    elif suffix == ".npz":
        np.savez(path, x=x)
    elif suffix == ".pt":
        torch.save(torch.as_tensor(x), path)
    else:
        np.savetxt(path, x, delimiter=",")
    train, test = data.load_file(path, "train"), data.load_file(path, "test")
    assert (len(train), len(test)) == (40, 10) and train.kind == "binary"
    assert torch.equal(
        torch.sort(torch.cat([train.x, test.x]), 0).values, torch.sort(torch.as_tensor(x), 0).values
    )


def test_data_file_with_nan_is_rejected(tmp_path):
    x = np.zeros((10, 2), dtype=np.float32)
    x[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(PPGenError, match="NaN"):
        data.load_file(tmp_path / "nan.npy")
