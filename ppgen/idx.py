"""The IDX file format of MNIST: a reader for gzipped or raw files, and the standard download.

References:
    | The MNIST database of handwritten digits (LeCun, Cortes and Burges)
"""

import gzip
import os
import shutil
import urllib.request
from pathlib import Path

import numpy as np

from ppgen.errors import PPGenError

__all__ = ["read_idx", "find_mnist", "download", "MNIST_FILES"]

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

MNIST_FILES = {
    ("train", "x"): "train-images-idx3-ubyte",
    ("train", "y"): "train-labels-idx1-ubyte",
    ("test", "x"): "t10k-images-idx3-ubyte",
    ("test", "y"): "t10k-labels-idx1-ubyte",
}
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    r"""Reads an IDX file, gzipped (``.gz``) or raw.

    Returns:
        The array, with the shape and dtype the header gives.

    Raises:
        PPGenError: the file is missing, has a wrong magic number or is truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise PPGenError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise PPGenError(f"cannot read IDX file {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise PPGenError(
            f"{path} is not an IDX file (expected magic 0x0000TTNN, got {data[:4].hex() or 'nothing'})"
        )
    dtype, ndim = np.dtype(_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise PPGenError(f"{path} is truncated: header needs {header} bytes, file has {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise PPGenError(
            f"{path} is truncated or padded: shape {shape} needs {expected} bytes, file has {len(data)}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def download(url: str, target: Path, timeout: float = 10) -> bool:
    r"""Downloads ``url`` to ``target`` atomically (via a ``.part`` file); False on a network error."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(part, "wb") as f:
            shutil.copyfileobj(r, f)
    except OSError:
        part.unlink(missing_ok=True)
        return False
    os.replace(part, target)
    return True


def _download(name: str, folder: Path) -> Path | None:
    target = folder / f"{name}.gz"
    for mirror in MNIST_MIRRORS:
        if download(mirror + name + ".gz", target):
            return target
    return None


def find_mnist(
    split: str, part: str, root: str | os.PathLike | None = None, download: bool | None = None
) -> Path:
    r"""The path of one MNIST file, looked up in ``root``, then ``$PPGEN_DATA/mnist``, downloading if allowed.

    Arguments:
        split: "train" or "test".
        part: "x" (images) or "y" (labels).
        root: a folder holding the files (gzipped or raw).
        download: try the standard mirrors when the file is missing (default: unless $PPGEN_NO_DOWNLOAD is
            set).
    """
    name = MNIST_FILES[(split, part)]
    folders = []
    if root is not None:
        folders.append(Path(root))
    if os.environ.get("PPGEN_DATA"):
        folders.append(Path(os.environ["PPGEN_DATA"]) / "mnist")
    folders.append(Path.home() / ".cache" / "ppgen" / "mnist")
    for folder in folders:
        for candidate in (
            folder / name,
            folder / f"{name}.gz",
            folder / "mnist" / name,
            folder / "mnist" / f"{name}.gz",
        ):
            if candidate.is_file():
                return candidate
    if download is None:
        download = not os.environ.get("PPGEN_NO_DOWNLOAD")
    if download and (path := _download(name, folders[0])) is not None:
        return path
    where = " or ".join(str(f) for f in folders[:2])
    raise PPGenError(
        f"MNIST file {name}[.gz] not found and could not be downloaded; put the four IDX files in {where} "
        "(--data-root DIR or $PPGEN_DATA/mnist)"
    )
