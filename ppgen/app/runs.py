"""Run directories: config, checkpoint, metrics, training log and samples, written atomically.

A run directory holds ``config.json`` (what was asked), ``model.pt`` (state_dict, model config,
data spec, trainer state and a format version), ``metrics.json``, ``train_log.csv`` and
``samples.png``. Nothing in an existing run directory is overwritten unless ``force`` is given.
"""

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import torch

from ppgen.app.specs import build_model
from ppgen.data import DataSpec
from ppgen.errors import PPGenError

__all__ = [
    "FORMAT_VERSION",
    "prepare_run_dir",
    "atomic_write",
    "write_json",
    "read_json",
    "save_checkpoint",
    "load_checkpoint",
    "load_run",
    "write_train_log",
]

FORMAT_VERSION = 2  # 2: the VAEs' VampPrior parameters; ddpm's weight average moved out of the model
CHECKPOINT = "model.pt"
CONFIG = "config.json"


def atomic_write(path: Path, data: bytes) -> None:
    r"""Writes ``data`` to a temporary file beside ``path``, then renames it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n").encode())


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PPGenError(f"{path} not found") from None
    except json.JSONDecodeError as e:
        raise PPGenError(f"{path} is not valid JSON: {e}") from None


def prepare_run_dir(path, force: bool = False, resume: bool = False) -> Path:
    r"""Checks that ``path`` may be written: absent, empty, or ``force``/``resume`` given.

    Nothing is created here; call ``path.mkdir`` once every other check has passed.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PPGenError(f"{path} exists and is not a directory")
    if resume:
        if not (path / CHECKPOINT).is_file():
            raise PPGenError(f"cannot resume: {path / CHECKPOINT} does not exist")
        return path
    if path.exists() and any(path.iterdir()) and not force:
        raise PPGenError(
            f"run directory {path} already exists; pass --force to overwrite it or --resume to continue it"
        )
    return path


def save_checkpoint(path: Path, model, trainer: dict | None = None) -> None:
    r"""Saves ``model.pt``: state_dict, model name and config, data spec, trainer state, format version."""
    payload = {
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "source": getattr(model, "source", None),  # file.py:NAME of a user's program
        "config": model.config,
        "spec": model.spec.to_dict(),
        "state_dict": model.state_dict(),
        "trainer": trainer or {},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(Path(path), buffer.getvalue())


def load_checkpoint(path: Path, map_location="cpu"):
    r"""Rebuilds the model saved in ``path``.

    Returns:
        ``(model, payload)``: the model on ``map_location`` in eval mode, and the saved dict.

    Raises:
        PPGenError: the file is missing, corrupt, of another format version, or does not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise PPGenError(f"checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise PPGenError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise PPGenError(
            f"checkpoint {path} has format version "
            f"{payload.get('format_version') if isinstance(payload, dict) else '?'}; "
            f"expected {FORMAT_VERSION}"
        )
    spec = payload.get("source") or payload["model"]
    model = build_model(spec, DataSpec.from_dict(payload["spec"]), payload["config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise PPGenError(
            f"checkpoint {path} does not fit model {payload['model']}: {str(e).splitlines()[0]}"
        ) from None
    return model.to(map_location).eval(), payload


def load_run(run_dir, map_location="cpu"):
    r"""The trained model of a run directory and its ``config.json`` as a dict."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PPGenError(f"run directory {run_dir} not found")
    config = read_json(run_dir / CONFIG)
    model, _ = load_checkpoint(run_dir / CHECKPOINT, map_location)
    return model, config


def write_train_log(path: Path, rows: list[dict]) -> None:
    r"""One CSV row per epoch, with the union of the logged keys as columns."""
    keys = ["epoch"] + sorted({k for r in rows for k in r} - {"epoch"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(Path(path), out.getvalue().encode())
