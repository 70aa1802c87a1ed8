"""Colour data: the patches-rgb set (shape, levels, the region split) and the CIFAR-10 loader on small
batch files the tests write (folder and tar.gz layouts, channel order, the offline error, bad files)."""

import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from ppgen.data import load
from ppgen.errors import PPGenError


def test_patches_rgb_shapes_levels_and_kind():
    train, test = load("patches-rgb", "train"), load("patches-rgb", "test")
    assert (len(train), len(test)) == (6360, 2120)
    assert train.kind == "categorical:8" and train.event_shape == (3, 8, 8) and train.y is None
    for d in (train, test):
        assert torch.equal(d.x, d.x.round()) and d.x.min() == 0 and d.x.max() == 7


def test_patches_rgb_test_split_is_the_right_region_of_each_photograph():
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    train, test = load("patches-rgb", "train"), load("patches-rgb", "test")
    # tiles are row-major within each region: the first test tile is china's rows 0-7, columns 480-487
    first = torch.as_tensor(china[0:8, 480:488] // 32, dtype=torch.float32).permute(2, 0, 1)
    assert torch.equal(test.x[0], first)
    # the test region has 20 tile columns per row; its second row of tiles starts at pixel row 8
    assert torch.equal(
        test.x[20], torch.as_tensor(china[8:16, 480:488] // 32, dtype=torch.float32).permute(2, 0, 1)
    )
    # flower's first training tile comes after china's 53 x 60 training tiles
    assert torch.equal(
        train.x[53 * 60], torch.as_tensor(flower[0:8, 0:8] // 32, dtype=torch.float32).permute(2, 0, 1)
    )


def fake_batches(rng, sizes):
    r"""Small CIFAR-10 python batches: name -> (pickled bytes, data (N, 3072) uint8, labels (N,))."""
    out = {}
    for name, n in sizes.items():
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        out[name] = (pickle.dumps({b"data": data, b"labels": labels, b"batch_label": b"x"}), data, labels)
    return out


SIZES = {**{f"data_batch_{i}": 3 for i in range(1, 6)}, "test_batch": 4}


@pytest.fixture
def no_download(monkeypatch, tmp_path):
    monkeypatch.setenv("PPGEN_NO_DOWNLOAD", "1")
    monkeypatch.delenv("PPGEN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_cifar10_reads_the_extracted_batches_in_channel_order(tmp_path, no_download):
    batches = fake_batches(np.random.default_rng(0), SIZES)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, (blob, _, _) in batches.items():
        (folder / name).write_bytes(blob)
    train, test = load("cifar10", "train", root=tmp_path), load("cifar10", "test", root=tmp_path)
    assert train.x.shape == (15, 3, 32, 32) and test.x.shape == (4, 3, 32, 32)
    assert train.kind == "categorical:256" and train.num_classes == 10
    _, data, labels = batches["test_batch"]
    assert test.y.tolist() == labels
    # each row holds the 1,024 red values, then green, then blue, each row-major
    assert test.x[1, 0, 0, 5] == data[1, 5] and test.x[1, 1, 2, 3] == data[1, 1024 + 2 * 32 + 3]
    assert train.x[3, 2, 31, 31] == batches["data_batch_2"][1][0, 3071]


def test_cifar10_reads_the_downloaded_archive(tmp_path, no_download):
    batches = fake_batches(np.random.default_rng(1), SIZES)
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as archive:
        for name, (blob, _, _) in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
    test = load("cifar10", "test", root=tmp_path)
    assert test.y.tolist() == batches["test_batch"][2]
    assert torch.equal(test.x.reshape(4, -1), torch.as_tensor(batches["test_batch"][1], dtype=torch.float32))


def test_cifar10_offline_error_says_where_to_put_the_files(tmp_path, no_download):
    with pytest.raises(PPGenError, match="cifar-10-python.tar.gz.*cifar-10-batches-py.*" + str(tmp_path)):
        load("cifar10", "train", root=tmp_path)


def test_cifar10_refuses_a_pickle_with_other_objects(tmp_path, no_download):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled code ran",))

    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(PPGenError, match="not a CIFAR-10 python batch"):
        load("cifar10", "test", root=tmp_path)
