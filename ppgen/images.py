"""Colour image data: 8 x 8 patches of scikit-learn's two bundled photographs, and CIFAR-10.

Both return arrays that :func:`ppgen.data.load` wraps into a :class:`~ppgen.data.Dataset`:
``(x, y, kind, num_classes)`` with x (N, 3, H, W) float32 levels, channels R, G, B.

References:
    | Learning Multiple Layers of Features from Tiny Images (Krizhevsky, 2009) (CIFAR-10)
"""

import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from ppgen.errors import PPGenError
from ppgen.idx import download

__all__ = [
    "patches_rgb",
    "cifar10",
    "find_cifar10",
    "PATCH",
    "PATCH_LEVELS",
    "CIFAR10_URL",
    "CIFAR10_BATCHES",
]

PATCH = 8
PATCH_LEVELS = 8
PATCH_TEST_COLUMNS = 160  # the right-most 160 of each photograph's 640 columns are the test region

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}


def _tiles(image: np.ndarray) -> np.ndarray:
    r"""Non-overlapping PATCH x PATCH tiles of an (H, W, 3) image, row-major: (N, 3, PATCH, PATCH)."""
    h, w = (image.shape[0] // PATCH) * PATCH, (image.shape[1] // PATCH) * PATCH
    t = image[:h, :w].reshape(h // PATCH, PATCH, w // PATCH, PATCH, 3)
    return t.transpose(0, 2, 4, 1, 3).reshape(-1, 3, PATCH, PATCH)


def patches_rgb(split: str, root=None) -> tuple:
    r"""8 x 8 RGB patches of ``sklearn.datasets.load_sample_images`` (china.jpg, flower.jpg), 8 levels each.

    Each 427 x 640 photograph is cut into non-overlapping 8 x 8 tiles; the tiles of its right-most
    160 columns are the test split, the rest the training split, so no test patch overlaps (or touches
    the pixels of) a training patch. Levels: floor(value / 32) in 0..7 per channel. Sizes: 6,360 train,
    2,120 test. Labels: none.

    Returns:
        (x (N, 3, 8, 8) float32, None, "categorical:8", None).
    """
    from sklearn.datasets import load_sample_images

    parts = []
    for image in load_sample_images().images:  # (427, 640, 3) uint8
        boundary = image.shape[1] - PATCH_TEST_COLUMNS
        parts.append(_tiles(image[:, boundary:] if split == "test" else image[:, :boundary]))
    levels = np.concatenate(parts) // (256 // PATCH_LEVELS)
    return torch.as_tensor(levels, dtype=torch.float32), None, f"categorical:{PATCH_LEVELS}", None


# --- CIFAR-10 ---------------------------------------------------------------------------------------
class _ArrayUnpickler(pickle.Unpickler):
    r"""Unpickles the CIFAR-10 batches' dicts of bytes, lists and numpy arrays, and nothing else."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR-10 batch")
        return super().find_class(module, name)


def _read_batch(f, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _ArrayUnpickler(f, encoding="bytes").load()
        data, labels = (
            np.asarray(batch[b"data"], dtype=np.uint8),
            np.asarray(batch[b"labels"], dtype=np.int64),
        )
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise PPGenError(f"{where} is not a CIFAR-10 python batch: {e}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != data.shape[:1]:
        raise PPGenError(
            f"{where}: expected data (N, 3072) and labels (N,), got {data.shape} and {labels.shape}"
        )
    return data, labels


def _folders(root) -> list[Path]:
    folders = [Path(root)] if root is not None else []
    if os.environ.get("PPGEN_DATA"):
        folders.append(Path(os.environ["PPGEN_DATA"]) / "cifar10")
    return folders + [Path.home() / ".cache" / "ppgen" / "cifar10"]


def find_cifar10(root=None, download_missing: bool | None = None) -> Path:
    r"""The CIFAR-10 python batches: a ``cifar-10-batches-py`` folder (or the batch files themselves, or
    ``cifar-10-python.tar.gz``) in ``root``, ``$PPGEN_DATA/cifar10`` or ~/.cache/ppgen/cifar10, downloaded
    into the first of them if allowed (default: unless $PPGEN_NO_DOWNLOAD is set).

    Returns:
        A folder holding data_batch_1..5 and test_batch, or the tar.gz archive.
    """
    folders = _folders(root)
    for folder in folders:
        for candidate in (folder / CIFAR10_FOLDER, folder):
            if (candidate / "test_batch").is_file():
                return candidate
        if (folder / Path(CIFAR10_URL).name).is_file():
            return folder / Path(CIFAR10_URL).name
    if download_missing is None:
        download_missing = not os.environ.get("PPGEN_NO_DOWNLOAD")
    target = folders[0] / Path(CIFAR10_URL).name
    if download_missing and download(CIFAR10_URL, target, timeout=60):
        return target
    where = " or ".join(str(f) for f in folders[:2])
    raise PPGenError(
        f"CIFAR-10 not found and could not be downloaded; put {Path(CIFAR10_URL).name} (from {CIFAR10_URL}) "
        f"or its extracted {CIFAR10_FOLDER}/ folder in {where} (--data-root DIR or $PPGEN_DATA/cifar10)"
    )


def cifar10(split: str, root=None) -> tuple:
    r"""CIFAR-10 at its 256 levels per channel: train 50,000, test 10,000 images of 10 classes.

    Returns:
        (x (N, 3, 32, 32) float32, y (N,) long, "categorical:256", 10).
    """
    path = find_cifar10(root)
    parts = []
    if path.is_dir():
        for name in CIFAR10_BATCHES[split]:
            if not (path / name).is_file():
                raise PPGenError(f"CIFAR-10 batch {path / name} is missing")
            with open(path / name, "rb") as f:
                parts.append(_read_batch(f, str(path / name)))
    else:
        try:
            with tarfile.open(path, "r:gz") as archive:
                for name in CIFAR10_BATCHES[split]:
                    member = archive.extractfile(f"{CIFAR10_FOLDER}/{name}")
                    parts.append(_read_batch(member, f"{path}:{name}"))
        except (tarfile.TarError, KeyError, OSError, EOFError) as e:
            raise PPGenError(f"cannot read CIFAR-10 archive {path}: {e}") from None
    data = np.concatenate([d for d, _ in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([y for _, y in parts])
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise PPGenError(f"CIFAR-10 labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    return torch.as_tensor(data, dtype=torch.float32), torch.as_tensor(labels), "categorical:256", 10


LOADERS = {"patches-rgb": patches_rgb, "cifar10": cifar10}
