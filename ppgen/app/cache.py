"""The run cache of ``ppgen compare``: a finished run, found again by what determined it.

An entry is a directory named by the SHA-256 of its key (model, data and its fingerprint, config,
fit options, seed, budget, evaluation protocol, ppgen version and a fingerprint of its code, cache
format). It holds ``model.pt``, ``row.json`` (metrics, training curve, sampler timings),
``samples.pt`` and ``manifest.json`` with the SHA-256 of each file. It is written into a temporary
directory and renamed into place, so a reader sees all of it or nothing; on load every file is
checked against the manifest, and an entry that fails is removed and reported as a miss (the run is
redone, never trusted).

The cache lives in ``$PPGEN_CACHE``, else the platform's user cache directory (``~/.cache/ppgen``,
``~/Library/Caches/ppgen`` on macOS, ``%LOCALAPPDATA%\\ppgen\\Cache`` on Windows).
"""

import functools
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

import ppgen
from ppgen.app.runs import save_checkpoint
from ppgen.data import Dataset

__all__ = ["CACHE_FORMAT", "cache_dir", "data_fingerprint", "cache_key", "save_entry", "load_entry"]

CACHE_FORMAT = 1
FILES = ("model.pt", "row.json", "samples.pt")


def cache_dir() -> Path:
    r"""``$PPGEN_CACHE``, else the platform's user cache directory for ppgen."""
    if os.environ.get("PPGEN_CACHE"):
        return Path(os.environ["PPGEN_CACHE"]).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "ppgen" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ppgen"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ppgen"


def data_fingerprint(*splits: Dataset) -> str:
    r"""SHA-256 over the kind, shape and bytes of x (and y) of each split."""
    h = hashlib.sha256()
    for d in splits:
        h.update(f"{d.name}|{d.kind}|{tuple(d.x.shape)}|{d.x.dtype}".encode())
        h.update(d.x.detach().cpu().contiguous().numpy().tobytes())
        if d.y is not None:
            h.update(d.y.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    r"""SHA-256 of ppgen's own Python sources (ppgen, its models and inference), so that a changed model
    or trainer never reuses a run of the old code, even without a new version number."""
    import ppgen.inference
    import ppgen.models

    h = hashlib.sha256()
    for package in (ppgen, ppgen.models, ppgen.inference):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def cache_key(**fields) -> str:
    r"""The entry name: SHA-256 of the canonical JSON of ``fields``, the ppgen version, a fingerprint of
    its code and the cache format."""
    fields = {
        **fields,
        "ppgen_version": ppgen.__version__,
        "code": code_fingerprint(),
        "cache_format": CACHE_FORMAT,
    }
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_entry(key: str, model, row: dict, samples: torch.Tensor, root: Path | None = None) -> Path:
    r"""Writes the entry ``key`` atomically; an entry already there (a concurrent writer) is kept."""
    root = Path(root or cache_dir())
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key[:16]}.", suffix=".tmp"))
    try:
        save_checkpoint(tmp / "model.pt", model)
        (tmp / "row.json").write_text(json.dumps(row, default=_jsonable))
        buffer = io.BytesIO()
        torch.save(samples.detach().cpu(), buffer)
        (tmp / "samples.pt").write_bytes(buffer.getvalue())
        manifest = {"key": key, "files": {f: _sha256(tmp / f) for f in FILES}}
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def load_entry(key: str, root: Path | None = None) -> tuple[dict, torch.Tensor] | None:
    r"""``(row, samples)`` of a valid entry, or None. A damaged or partial entry is removed."""
    entry = Path(root or cache_dir()) / key
    if not entry.is_dir():
        return None
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
        if manifest.get("key") != key or set(manifest.get("files", {})) != set(FILES):
            raise ValueError("manifest does not match")
        for f, digest in manifest["files"].items():
            if _sha256(entry / f) != digest:
                raise ValueError(f"{f} changed")
        row = json.loads((entry / "row.json").read_text())
        samples = torch.load(entry / "samples.pt", map_location="cpu", weights_only=True)
        payload = torch.load(entry / "model.pt", map_location="cpu", weights_only=True)
        if not isinstance(row, dict) or not isinstance(samples, torch.Tensor) or "state_dict" not in payload:
            raise ValueError("unexpected contents")
    except Exception:  # any damage: the entry is redone, never trusted
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return row, samples
