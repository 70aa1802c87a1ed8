"""Run directories: config, checkpoint, metrics, training log and samples, written atomically.

A run directory holds ``config.json`` (what was asked), ``model.pt`` (state_dict, model name and config,
their hash, data spec, trainer state and a format version), ``metrics.json``, ``train_log.csv`` and
``samples.png``. Nothing in an existing run directory is overwritten unless ``force`` is given; one
writer at a time holds its lock (:class:`RunLock`); every file is written to a temporary file, synced
to disk and renamed, so that a crash leaves the old file or the new one, never half of one. Readers
(:func:`load_run`) refuse a directory whose parts disagree.
"""

import csv
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from ppgen.app.specs import build_model
from ppgen.data import DataSpec
from ppgen.errors import PPGenError

__all__ = [
    "FORMAT_VERSION",
    "RUN_FILES",
    "RunLock",
    "prepare_run_dir",
    "make_run_dir",
    "clear_outputs",
    "clear_temporary",
    "atomic_write",
    "write_json",
    "read_json",
    "read_config",
    "config_hash",
    "save_checkpoint",
    "load_checkpoint",
    "build_model",
    "check_consistency",
    "load_run",
    "write_train_log",
    "metrics_record",
]

FORMAT_VERSION = 2  # 2: the VAEs' VampPrior parameters; ddpm's weight average moved out of the model
CHECKPOINT = "model.pt"
CONFIG = "config.json"
METRICS = "metrics.json"
LOCK = ".ppgen.lock"
RUN_FILES = (CONFIG, CHECKPOINT, METRICS, "train_log.csv", "samples.png")
DERIVED_DIRS = ("inspect",)  # written by other commands from the run's model; stale once it is replaced
CHECKPOINT_KEYS = ("model", "config", "spec", "state_dict")


# --- atomic files ----------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: 0o666 less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, data: bytes) -> None:
    r"""Writes ``data`` to a temporary file beside ``path``, syncs it to disk, then renames it over ``path``.

    Raises:
        PPGenError: the file cannot be written (no such folder, no permission, disk full); the old
            ``path``, if any, is left as it was and no temporary file is left behind.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise PPGenError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _file_mode())  # mkstemp makes files 0600: reports are for sharing
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            hint = " (disk full)" if e.errno == errno.ENOSPC else ""
            raise PPGenError(f"cannot write {path}{hint}: {e.strerror or e}") from None
        raise
    _fsync_dir(path.parent)


def write_json(path: Path, obj) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n").encode())


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PPGenError(f"{path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PPGenError(f"{path} is not valid JSON: {str(e).splitlines()[0]}") from None
    except OSError as e:
        raise PPGenError(f"cannot read {path}: {e.strerror or e}") from None


# --- the lock ----------------------------------------------------------------------------------------
class RunLock:
    r"""The exclusive lock of one run directory, held by one writer (``ppgen train``) at a time.

    The lock is an ``flock`` on ``RUN_DIR/.ppgen.lock``, which holds the writer's pid. The kernel drops
    it when its process dies, so a lock file left by a killed process is simply taken over; the file is
    removed on release.

    Example:
        >>> with RunLock(run_dir):  # doctest: +SKIP
        ...     write_json(run_dir / "config.json", {...})

    Raises:
        PPGenError: another process holds the lock (the message names its pid).
    """

    def __init__(self, run_dir):
        self.path = Path(run_dir) / LOCK
        self.fd = None

    def acquire(self) -> "RunLock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise PPGenError(f"cannot lock run directory {self.path.parent}: {e.strerror or e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise PPGenError(
                    f"run directory {self.path.parent} is in use by process {holder} (another ppgen train); "
                    "wait for it to finish"
                ) from None
            try:  # the file may have been released and removed between open and flock: retry on the new one
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)  # before unlocking, so that no one locks a removed file
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# --- preparing a directory ---------------------------------------------------------------------------
def _entries(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.name != LOCK]


def prepare_run_dir(path, force: bool = False, resume: bool = False) -> Path:
    r"""Checks that ``path`` may be written: absent, empty, or ``force``/``resume`` given, and inside a
    writable folder.

    Nothing is created here; create the folder once every other check has passed.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PPGenError(f"{path} exists and is not a directory")
    if resume:
        if not (path / CHECKPOINT).is_file():
            raise PPGenError(f"cannot resume: {path / CHECKPOINT} does not exist")
    elif path.exists() and _entries(path) and not force:
        raise PPGenError(
            f"run directory {path} already exists; pass --force to overwrite it or --resume to continue it"
        )
    _check_writable(path)
    return path


def _check_writable(path: Path) -> None:
    r"""The nearest existing folder at or above ``path`` must be a folder we may write into."""
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise PPGenError(f"cannot create {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PPGenError(f"cannot write into {existing}: permission denied or read-only file system")


def make_run_dir(path) -> bool:
    r"""Creates ``path`` (and its parents); returns whether this call created it."""
    path = Path(path)
    try:
        path.mkdir(parents=True)
        return True
    except FileExistsError:
        if not path.is_dir():
            raise PPGenError(f"{path} exists and is not a directory") from None
        return False
    except OSError as e:
        raise PPGenError(f"cannot create run directory {path}: {e.strerror or e}") from None


def clear_outputs(path) -> None:
    r"""Removes what an earlier run wrote into ``path`` (``--force``), before anything new is written."""
    path = Path(path)
    try:
        for name in RUN_FILES:
            (path / name).unlink(missing_ok=True)
        for name in DERIVED_DIRS:
            if (path / name).is_dir():
                shutil.rmtree(path / name)
    except OSError as e:
        raise PPGenError(f"cannot clear the old outputs of {path}: {e.strerror or e}") from None
    clear_temporary(path)


def clear_temporary(path) -> None:
    r"""Removes the temporary files a writer killed mid-write left in ``path`` (call it holding the lock)."""
    for tmp in Path(path).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


# --- the consistency record --------------------------------------------------------------------------
def config_hash(model_name: str, config: dict, spec: dict) -> str:
    r"""The SHA-256 of a model's name, constructor options and data spec (canonical JSON), 16 hex digits."""
    text = json.dumps(
        {"model": model_name, "config": config, "spec": spec}, sort_keys=True, default=_jsonable
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_config(run_dir) -> dict:
    r"""``RUN_DIR/config.json``, checked to be a record of a run: a dict with "model", "data", "config"."""
    path = Path(run_dir) / CONFIG
    config = read_json(path)
    if not isinstance(config, dict):
        raise PPGenError(
            f"{path} holds a {type(config).__name__}; expected a JSON object with model, data, config"
        )
    missing = [k for k in ("model", "data", "config") if k not in config]
    if missing:
        raise PPGenError(f"{path} lacks {', '.join(missing)}; it is not the config of a ppgen run")
    if not isinstance(config["model"], str) or not isinstance(config["config"], dict):
        raise PPGenError(f"{path}: 'model' must be a name and 'config' an object")
    if not isinstance(config["data"], str):
        raise PPGenError(f"{path}: 'data' must be a data set name or a file path")
    return config


def save_checkpoint(path: Path, model, trainer: dict | None = None) -> None:
    r"""Saves ``model.pt``: state_dict, model name, config and its hash, data spec, trainer state, version."""
    spec = model.spec.to_dict()
    payload = {
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "source": getattr(model, "source", None),  # file.py:NAME of a user's program
        "config": model.config,
        "config_hash": config_hash(model.name, model.config, spec),
        "spec": spec,
        "state_dict": model.state_dict(),
        "trainer": trainer or {},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(Path(path), buffer.getvalue())


def _check_payload(path: Path, payload) -> None:
    if not isinstance(payload, dict):
        raise PPGenError(f"checkpoint {path} holds a {type(payload).__name__}; expected a ppgen checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise PPGenError(
            f"checkpoint {path} has format version {payload.get('format_version')}; expected {FORMAT_VERSION}"
        )
    missing = [k for k in CHECKPOINT_KEYS if k not in payload]
    if missing:
        raise PPGenError(f"checkpoint {path} lacks {', '.join(missing)}; it was not written by ppgen train")
    types = {"model": str, "config": dict, "spec": dict, "state_dict": dict}
    for key, kind in types.items():
        if not isinstance(payload[key], kind):
            raise PPGenError(
                f"checkpoint {path}: {key!r} is a {type(payload[key]).__name__}, expected {kind.__name__}"
            )
    expected = config_hash(payload["model"], payload["config"], payload["spec"])
    if payload.get("config_hash", expected) != expected:
        raise PPGenError(
            f"checkpoint {path}: its config hash does not match its model and config; it was altered"
        )
    bad = [
        k
        for k, v in payload["state_dict"].items()
        if isinstance(v, torch.Tensor) and v.is_floating_point() and (v.isnan().any() or v.isposinf().any())
    ]
    if bad:
        raise PPGenError(f"checkpoint {path} holds NaN or infinite weights (in {bad[0]}); retrain the model")


def model_from_payload(payload: dict):
    r"""The (untrained) model a checkpoint's payload describes: registry name (or a user's
    ``file.py:NAME`` source), data spec and config."""
    try:
        spec = DataSpec.from_dict(payload["spec"])
    except (KeyError, TypeError, ValueError) as e:
        raise PPGenError(f"the checkpoint's data spec {payload['spec']!r} is invalid ({e})") from None
    return build_model(payload.get("source") or payload["model"], spec, payload["config"])


def load_checkpoint(path: Path, map_location="cpu"):
    r"""Rebuilds the model saved in ``path``.

    Returns:
        ``(model, payload)``: the model on ``map_location`` in eval mode, and the saved dict.

    Raises:
        PPGenError: the file is missing, corrupt, of another format version, incomplete, holds non-finite
            weights, or does not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise PPGenError(f"checkpoint {path} not found")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a damaged or foreign file
        raise PPGenError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__})") from None
    _check_payload(path, payload)
    model = model_from_payload(payload)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        raise PPGenError(
            f"checkpoint {path} does not fit model {payload['model']}: {str(e).splitlines()[0]}"
        ) from None
    return model.to(map_location).eval(), payload


def check_consistency(run_dir, config: dict, payload: dict) -> None:
    r"""Refuses a run directory whose ``config.json``, ``model.pt`` and ``metrics.json`` disagree.

    Raises:
        PPGenError: naming the two files and what differs.
    """
    run_dir = Path(run_dir)
    asked_model = config.get("source") or config["model"]  # a user's program: its file.py:NAME
    saved_model = payload.get("source") or payload["model"]
    if asked_model != saved_model:
        raise PPGenError(
            f"{run_dir} is inconsistent: config.json is for {asked_model} "
            f"but model.pt holds {saved_model}; retrain with --force"
        )
    saved = config_hash(payload["model"], payload["config"], payload["spec"])
    asked = config.get("config_hash")
    if asked is not None and asked != saved:
        raise PPGenError(
            f"{run_dir} is inconsistent: config.json and model.pt have different model configs "
            f"(hash {asked} vs {saved}); retrain with --force"
        )
    if asked is None and json.loads(json.dumps(config["config"], default=_jsonable)) != json.loads(
        json.dumps(payload["config"], default=_jsonable)
    ):
        raise PPGenError(
            f"{run_dir} is inconsistent: config.json has config {config['config']} "
            f"but model.pt {payload['config']}"
        )
    metrics_path = run_dir / METRICS
    if metrics_path.is_file():
        metrics = read_json(metrics_path)
        if not isinstance(metrics, dict) or metrics.get("model", config["model"]) != config["model"]:
            found = metrics.get("model") if isinstance(metrics, dict) else type(metrics).__name__
            raise PPGenError(
                f"{run_dir} is inconsistent: metrics.json is for {found} but model.pt holds {config['model']}"
            )


def load_run(run_dir, map_location="cpu"):
    r"""The trained model of a run directory and its ``config.json`` as a dict, checked for consistency."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PPGenError(f"run directory {run_dir} not found")
    config = read_config(run_dir)
    model, payload = load_checkpoint(run_dir / CHECKPOINT, map_location)
    check_consistency(run_dir, config, payload)
    return model, config


# --- logs and metrics --------------------------------------------------------------------------------
def write_train_log(path: Path, rows: list[dict]) -> None:
    r"""One CSV row per epoch, with the union of the logged keys as columns."""
    keys = ["epoch"] + sorted({k for r in rows for k in r} - {"epoch"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(Path(path), out.getvalue().encode())


def metrics_record(metrics: dict) -> dict:
    r"""``metrics`` as ``metrics.json`` holds them: every timing (a key with "seconds") under "timings",
    so that the rest is identical for runs with the same seed.

    Example:
        >>> metrics_record({"test_nll_nats": 2.5, "train_seconds": 3.1})
        {'test_nll_nats': 2.5, 'timings': {'train_seconds': 3.1}}
    """
    timings = {k: v for k, v in metrics.items() if "seconds" in k}
    record = {k: v for k, v in metrics.items() if k not in timings}
    record["timings"] = {**record.get("timings", {}), **timings}
    return record
