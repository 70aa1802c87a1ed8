"""Data sets, their kinds and splits, and the validation of a user's own tensors.

Every data set holds ``x`` as float32, shaped ``(N, *event_shape)``: binary values in {0, 1},
categorical values in {0, ..., K-1}, continuous values anywhere. Images are ``(N, 1, H, W)``.
"""

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ppgen import images
from ppgen.errors import PPGenError
from ppgen.idx import find_mnist, read_idx
from ppgen.synthetic import SYNTHETIC, sample_moons, sample_spirals

__all__ = [
    "DataSpec",
    "Dataset",
    "load",
    "load_file",
    "from_tensor",
    "names",
    "binarize",
    "dequantize",
    "batches",
]

SYNTHETIC_SIZES = {"train": 10_000, "test": 5_000}
SYNTHETIC_SEEDS = {"train": 0, "test": 1}
FILE_SUFFIXES = (".npy", ".npz", ".pt", ".csv")
FILE_TEST_FRACTION = 0.2
DIGITS_TEST = 360


@dataclass(frozen=True)
class DataSpec:
    r"""What a model needs to know of its data to size itself.

    Arguments:
        kind: "binary", "categorical:K" or "continuous".
        event_shape: the shape of one example, e.g. (1, 8, 8) or (2,).
        num_classes: the number of labels for conditional models, or None.
    """

    kind: str
    event_shape: tuple
    num_classes: int | None = None

    @property
    def base_kind(self) -> str:
        return self.kind.split(":")[0]

    @property
    def num_categories(self) -> int:
        r"""2 for binary, K for categorical:K, 0 for continuous."""
        if self.base_kind == "categorical":
            return int(self.kind.split(":")[1])
        return 2 if self.kind == "binary" else 0

    @property
    def dim(self) -> int:
        return math.prod(self.event_shape)

    @property
    def is_image(self) -> bool:
        return len(self.event_shape) == 3

    def to_dict(self) -> dict:
        return {"kind": self.kind, "event_shape": list(self.event_shape), "num_classes": self.num_classes}

    @classmethod
    def from_dict(cls, d: dict) -> "DataSpec":
        return cls(d["kind"], tuple(d["event_shape"]), d.get("num_classes"))


@dataclass
class Dataset:
    r"""A split of a data set.

    Arguments:
        x: examples, (N, *event_shape), float32.
        y: integer labels, (N,), or None.
        kind: "binary", "categorical:K" or "continuous".
        name: the data set's registry name.
        truth: the true distribution (synthetic sets), with ``log_prob``, ``entropy``, ``modes``.
        grey: for dynamically binarized data, the grey levels in [0, 1] that ``x`` was drawn from.
    """

    x: Tensor
    y: Tensor | None
    kind: str
    name: str = "tensor"
    truth: object = None
    grey: Tensor | None = field(default=None, repr=False)
    num_classes: int | None = None
    root: str | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def event_shape(self) -> tuple:
        return tuple(self.x.shape[1:])

    @property
    def spec(self) -> DataSpec:
        return DataSpec(self.kind, self.event_shape, self.num_classes)

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def entropy(self) -> float | None:
        return None if self.truth is None else self.truth.entropy

    def log_prob(self, x: Tensor) -> Tensor:
        r"""The true log density of the synthetic sets. x: (B, 2) -> (B,)."""
        if self.truth is None:
            raise PPGenError(f"data set {self.name!r} has no closed-form density")
        return self.truth.log_prob(x)

    def subset(self, n: int) -> "Dataset":
        r"""The first n examples, e.g. for a quick run."""
        grey = None if self.grey is None else self.grey[:n]
        y = None if self.y is None else self.y[:n]
        return Dataset(self.x[:n], y, self.kind, self.name, self.truth, grey, self.num_classes, self.root)

    def select(self, index: Tensor) -> "Dataset":
        r"""The examples at ``index`` (a (n,) long tensor), with their labels and grey levels."""
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return Dataset(pick(self.x), pick(self.y), self.kind, self.name, self.truth, pick(self.grey),
                       self.num_classes, self.root)  # fmt: skip

    def holdout(self, fraction: float = 0.15, seed: int = 0) -> tuple["Dataset", "Dataset"]:
        r"""(train, validation): a random ``fraction`` held out, for tuning without the test split.

        Example:
            >>> fit_part, valid = load("digits", "train").holdout(0.2)
            >>> len(fit_part), len(valid)
            (1150, 287)
        """
        if not 0 < fraction < 1:
            raise PPGenError(f"the validation fraction must be in (0, 1), got {fraction!r}")
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(self)))
        n_valid = max(1, round(fraction * len(self)))
        return self.select(order[n_valid:]), self.select(order[:n_valid])


def binarize(grey: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""Dynamic binarization: one Bernoulli draw per grey level in [0, 1]."""
    return torch.bernoulli(grey, generator=generator)


def dequantize(x: Tensor, num_categories: int, generator: torch.Generator | None = None) -> Tensor:
    r"""Uniform dequantization of K-level data to [0, 1): (x + u) / K, u ~ U[0, 1)."""
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (x + u) / num_categories


def batches(data: Dataset, batch_size: int, shuffle: bool = True, generator: torch.Generator | None = None):
    r"""Yields ``(x, y)`` mini-batches for one epoch; dynamically binarized sets are redrawn here."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x = binarize(data.grey[idx], generator) if data.grey is not None else data.x[idx]
        yield x, (None if data.y is None else data.y[idx])


def _synthetic(name: str, split: str, n: int | None) -> Dataset:
    rng = np.random.default_rng(SYNTHETIC_SEEDS[split])
    n = n or SYNTHETIC_SIZES[split]
    if name in SYNTHETIC:
        truth = SYNTHETIC[name]
        return Dataset(truth.sample(n, rng), None, "continuous", name, truth)
    sampler = {"moons": sample_moons, "spirals": sample_spirals}[name]
    return Dataset(sampler(n, rng), None, "continuous", name)


def _digits(name: str, split: str) -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    idx = order[:DIGITS_TEST] if split == "test" else order[DIGITS_TEST:]
    grey = torch.as_tensor(digits.images[idx], dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8), levels 0..16
    y = torch.as_tensor(digits.target[idx], dtype=torch.long)
    if name == "digits":
        return Dataset((grey >= 8).float(), y, "binary", name, num_classes=10)
    return Dataset(grey, y, "categorical:17", name, num_classes=10)


def _mnist(name: str, split: str, root) -> Dataset:
    images = read_idx(find_mnist(split, "x", root))
    labels = read_idx(find_mnist(split, "y", root))
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise PPGenError(
            f"MNIST files disagree: images {images.shape}, labels {labels.shape}; expected (N, H, W) and (N,)"
        )
    x = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1)  # (N, 1, 28, 28), levels 0..255
    y = torch.as_tensor(labels, dtype=torch.long)
    if name == "mnist-gray":
        return Dataset(x, y, "categorical:256", name, num_classes=10, root=root)
    grey = x / 255.0
    if split == "test":  # binarized once, with a fixed seed, so that every model sees the same test set
        return Dataset(
            binarize(grey, torch.Generator().manual_seed(0)), y, "binary", name, num_classes=10, root=root
        )
    first = binarize(grey, torch.Generator().manual_seed(1))
    return Dataset(first, y, "binary", name, grey=grey, num_classes=10, root=root)


def _images(name: str, split: str, root) -> Dataset:
    x, y, kind, num_classes = images.LOADERS[name](split, root)
    return Dataset(x, y, kind, name, num_classes=num_classes, root=root)


LOADERS = {
    **{k: "synthetic" for k in ("rings8", "grid25", "checkerboard", "moons", "spirals")},
    "digits": "digits",
    "digits-gray": "digits",
    "mnist": "mnist",
    "mnist-gray": "mnist",
    "patches-rgb": "images",
    "cifar10": "images",
}


def names() -> list[str]:
    return list(LOADERS)


def load(name: str, split: str = "train", root=None, n: int | None = None) -> Dataset:
    r"""Loads a split of a named data set.

    Arguments:
        name: one of :func:`names`.
        split: "train" or "test".
        root: a folder with the MNIST files (else $PPGEN_DATA/mnist).
        n: the number of synthetic examples (default 10,000 train, 5,000 test).
    """
    if name not in LOADERS:
        raise PPGenError(f"unknown data set {name!r}; expected one of: {', '.join(LOADERS)}")
    if split not in ("train", "test"):
        raise PPGenError(f"unknown split {split!r}; expected 'train' or 'test'")
    source = LOADERS[name]
    if source == "synthetic":
        return _synthetic(name, split, n)
    if source == "digits":
        return _digits(name, split)
    if source == "images":
        return _images(name, split, root)
    return _mnist(name, split, root)


def _as_real_tensor(value, what: str) -> Tensor:
    r"""``value`` (array, tensor, nested lists) as a real-valued tensor, or a PPGenError saying why not."""
    if isinstance(value, np.ndarray) and value.dtype.kind not in "biuf":
        kind = {"c": "complex numbers", "U": "strings", "S": "bytes", "O": "Python objects"}.get(
            value.dtype.kind, f"dtype {value.dtype}"
        )
        raise PPGenError(f"{what} holds {kind}; expected real numbers")
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as e:
        raise PPGenError(f"{what} is not an array of numbers ({str(e).splitlines()[0][:80]})") from None
    if t.is_complex():
        raise PPGenError(f"{what} holds complex numbers; expected real numbers")
    return t


def from_tensor(x, kind: str, y=None, name: str = "tensor", missing: bool = False) -> Dataset:
    r"""Validates a user's own tensors and wraps them as a :class:`Dataset`.

    Arguments:
        x: examples, (N, *event_shape) with N >= 1 and at least one event dimension; real numbers.
        kind: "binary" (values in {0, 1}), "categorical:K" (integers in [0, K)) or "continuous".
        y: optional integer labels, (N,), non-negative.
        missing: accept NaN as a missing entry (see ``ppgen.inference.tasks.missing``; most models refuse it).
    """
    if not isinstance(kind, str):
        raise PPGenError(f"kind must be 'binary', 'categorical:K' or 'continuous', got {kind!r}")
    x = _as_real_tensor(x, "x")
    if x.ndim < 2 or x.shape[0] == 0:
        raise PPGenError(f"x must have shape (N, *event_shape) with N >= 1; got {tuple(x.shape)}")
    x = x.float()
    present = ~torch.isnan(x) if missing else torch.ones_like(x, dtype=torch.bool)
    if not torch.isfinite(x[present]).all():
        raise PPGenError(
            f"x contains {int((~torch.isfinite(x)).sum())} NaN or infinite values; expected finite numbers"
        )
    base = kind.split(":")[0]
    if kind == "binary":
        if not ((x == 0) | (x == 1) | ~present).all():
            raise PPGenError("kind 'binary' expects values in {0, 1}")
    elif base == "categorical":
        try:
            k = int(kind.split(":")[1])
        except (IndexError, ValueError):
            raise PPGenError(f"categorical kind must be written 'categorical:K', got {kind!r}") from None
        if k < 2 or not ((x >= 0) & (x < k) & (x == x.round()) | ~present).all():
            raise PPGenError(f"kind {kind!r} expects integers in [0, {k}) and K >= 2")
    elif kind != "continuous":
        raise PPGenError(f"unknown kind {kind!r}; expected 'binary', 'categorical:K' or 'continuous'")
    num_classes = None
    if y is not None:
        y = _as_real_tensor(y, "y (the labels)")
        if y.shape != (x.shape[0],) or y.is_floating_point() and not (y == y.round()).all() or (y < 0).any():
            raise PPGenError(
                f"y must be non-negative integer labels of shape ({x.shape[0]},); got {tuple(y.shape)}"
            )
        y = y.long()
        num_classes = int(y.max()) + 1
    return Dataset(x, y, kind, name, num_classes=num_classes)


def _read_array(path) -> tuple:
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise PPGenError(f"data file {path} not found")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        if path.suffix == ".npz":
            arrays = np.load(path, allow_pickle=False)
            return arrays["x"], arrays["y"] if "y" in arrays else None
        if path.suffix == ".csv":
            return np.loadtxt(path, delimiter=",", ndmin=2), None
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
        return (obj["x"], obj.get("y")) if isinstance(obj, dict) else (obj, None)
    except KeyError:
        raise PPGenError(f"{path} must hold an array 'x' (and optionally 'y')") from None
    except Exception as e:  # numpy, zipfile and torch raise many types for a damaged or foreign file
        why = str(e).split(". ")[0].splitlines()[0][:100] if str(e) else ""
        if path.suffix == ".pt" or "pickled" in why:
            why = "damaged, or holds Python objects, which are not loaded for safety"
        raise PPGenError(
            f"cannot read data file {path} ({type(e).__name__}: {why}); "
            f"expected a {path.suffix} file of numbers"
        ) from None


def load_file(path, split: str = "train", kind: str | None = None, missing: bool = False) -> Dataset:
    r"""A user's own data file (.npy, .npz with 'x'/'y', .pt tensor or dict, .csv rows), validated.

    The split is deterministic: a fixed permutation, the first 20% test.

    Arguments:
        kind: the data kind; by default "binary" if every value is 0 or 1, else "continuous".
        missing: accept NaN as a missing entry (see :func:`from_tensor`).
    """
    x, y = _read_array(path)
    x = _as_real_tensor(x, f"data file {path}").float()
    if kind is None:
        kind = "binary" if bool(((x == 0) | (x == 1) | missing & torch.isnan(x)).all()) else "continuous"
    data = from_tensor(x, kind, y, name=str(path), missing=missing)
    order = torch.as_tensor(np.random.default_rng(0).permutation(len(data)))
    n_test = max(1, int(round(FILE_TEST_FRACTION * len(data))))
    idx = order[:n_test] if split == "test" else order[n_test:]
    if len(idx) == 0:
        raise PPGenError(f"{path} has too few examples ({len(data)}) to split into train and test")
    return Dataset(
        data.x[idx], None if data.y is None else data.y[idx], kind, data.name, num_classes=data.num_classes
    )
