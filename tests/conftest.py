"""Shared fixtures: every test starts from the same seed; GPU tests skip cleanly without CUDA."""

import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
os.environ.setdefault("PPGEN_NO_DOWNLOAD", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread per worker: `make test` runs one worker per core
    torch.set_num_threads(1)

from ppgen.seed import seed_everything  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    seed_everything(0)
    yield


@pytest.fixture(autouse=True)
def _run_cache(tmp_path_factory, monkeypatch):
    r"""Tests never read or fill the user's run cache of `ppgen compare`."""
    monkeypatch.setenv("PPGEN_CACHE", str(tmp_path_factory.getbasetemp() / "ppgen-cache"))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
