"""A small digit classifier per image data set, trained once with a fixed seed and cached on disk,
whose penultimate-layer features define the sample-quality metrics of :mod:`ppgen.metrics` ("FD-digits").

The cache lives in ``$PPGEN_CACHE`` or ``~/.cache/ppgen/``, one file per data set name; training is
deterministic (seed 0), so a deleted cache is rebuilt to the same network on the same machine.

References:
    | GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium (Heusel et al., 2017)
    | https://arxiv.org/abs/1706.08500 -- FID: the same idea with Inception features
"""

import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from ppgen.data import DataSpec, load
from ppgen.errors import PPGenError

__all__ = ["DigitClassifier", "has_classifier", "classifier", "train_classifier", "extract", "cache_dir"]

FORMAT_VERSION = 1
KNOWN = {"digits": 40, "digits-gray": 40, "mnist": 2, "mnist-gray": 2}  # data set -> training epochs
MNIST_TRAIN = 20_000  # examples of the MNIST train split used to train its classifier
_MEMORY: dict[str, "DigitClassifier"] = {}


class DigitClassifier(nn.Module):
    r"""Two (or three, from 16x16 up) stride-2 convolutions, a 64-unit feature layer, 10 logits.

    Arguments:
        spec: the image data spec, (1, H, W); inputs are scaled to [0, 1] by the number of levels.
        features: the width of the feature layer.
    """

    def __init__(self, spec: DataSpec, features: int = 64, classes: int = 10):
        super().__init__()
        c, h, w = spec.event_shape
        levels = spec.num_categories
        self.scale = float(levels - 1) if levels else 1.0
        convs = [
            nn.Conv2d(c, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
        ]
        if min(h, w) >= 16:
            convs += [nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU()]
        self.convs = nn.Sequential(*convs, nn.AdaptiveAvgPool2d(4), nn.Flatten())  # (B, 64 * 16)
        self.features = nn.Sequential(nn.Linear(64 * 16, features), nn.ReLU())
        self.head = nn.Linear(features, classes)

    def embed(self, x: Tensor) -> Tensor:
        r"""The penultimate-layer features. x: (B, C, H, W) in data units -> (B, features)."""
        return self.features(self.convs(x / self.scale))

    def forward(self, x: Tensor) -> Tensor:
        r"""Class logits. x: (B, C, H, W) -> (B, classes)."""
        return self.head(self.embed(x))


def cache_dir() -> Path:
    r"""$PPGEN_CACHE, else ~/.cache/ppgen (created)."""
    path = Path(os.environ.get("PPGEN_CACHE", Path.home() / ".cache" / "ppgen"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def has_classifier(name: str, spec: DataSpec) -> bool:
    r"""Whether ``name`` is a labelled image data set with a classifier (digits, mnist and their -gray)."""
    return name in KNOWN and spec.is_image


def train_classifier(
    train, test=None, epochs: int = 40, batch_size: int = 64, seed: int = 0
) -> tuple[DigitClassifier, float | None]:
    r"""Trains a :class:`DigitClassifier` (Adam, fixed seed); returns it in eval mode and its accuracy."""
    if train.y is None:
        raise PPGenError(f"the feature classifier of {train.name!r} needs labels y")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DigitClassifier(train.spec)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, epochs * ((len(train) + batch_size - 1) // batch_size)
        )
        for _ in range(epochs):
            order = torch.randperm(len(train), generator=gen)
            for start in range(0, len(train), batch_size):
                idx = order[start : start + batch_size]
                loss = nn.functional.cross_entropy(net(train.x[idx]), train.y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    net.eval()
    accuracy = None
    if test is not None and test.y is not None:
        with torch.no_grad():
            accuracy = float((net(test.x).argmax(1) == test.y).float().mean())
    return net, accuracy


def classifier(name: str, spec: DataSpec, root=None) -> DigitClassifier:
    r"""The cached classifier of ``name``: from memory, else from disk, else trained (seed 0) and saved.

    Arguments:
        name: "digits", "digits-gray", "mnist" or "mnist-gray".
        spec: the data spec the classifier must accept.
        root: the folder of the MNIST files, needed to train the MNIST classifiers the first time.
    """
    if not has_classifier(name, spec):
        raise PPGenError(f"no feature classifier for data set {name!r}; expected one of: {', '.join(KNOWN)}")
    if name in _MEMORY:
        return _MEMORY[name]
    path = cache_dir() / f"classifier-{name}-v{FORMAT_VERSION}.pt"
    net = DigitClassifier(spec)
    if path.exists():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            matches = state.get("format_version") == FORMAT_VERSION and tuple(state["event_shape"]) == tuple(
                spec.event_shape
            )
            if matches:
                net.load_state_dict(state["state_dict"])
        except Exception as e:  # a damaged or foreign file: torch, pickle and dict access raise many types
            raise PPGenError(
                f"cached classifier {path} is corrupt or unreadable ({type(e).__name__}); "
                "delete it to retrain"
            ) from None
        if not matches:
            raise PPGenError(
                f"cached classifier {path} does not match {name} {spec.event_shape}; delete it to retrain"
            )
        net.eval()
    else:
        train, test = load(name, "train", root=root), load(name, "test", root=root)
        if name.startswith("mnist"):
            train = train.subset(MNIST_TRAIN)
        net, accuracy = train_classifier(train, test, epochs=KNOWN[name])
        state = {
            "format_version": FORMAT_VERSION,
            "event_shape": list(spec.event_shape),
            "state_dict": net.state_dict(),
            "test_accuracy": accuracy,
        }
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
            torch.save(state, f)
        os.replace(f.name, path)
    for p in net.parameters():
        p.requires_grad_(False)
    _MEMORY[name] = net
    return net


@torch.no_grad()
def extract(net: DigitClassifier, x: Tensor, batch_size: int = 1000) -> Tensor:
    r"""Features of x: (N, C, H, W) -> (N, F), in batches, on the classifier's device."""
    device = next(net.parameters()).device
    return torch.cat(
        [net.embed(x[i : i + batch_size].to(device).float()) for i in range(0, len(x), batch_size)]
    ).cpu()
