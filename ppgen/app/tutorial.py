"""What tutorials share: quick mode and where figures go."""

import os
from pathlib import Path

__all__ = ["QUICK", "out_dir", "savefig"]

QUICK = bool(os.environ.get("PPGEN_QUICK"))


def out_dir() -> Path:
    r"""$PPGEN_TUTORIAL_OUT, else tutorials/_out (created)."""
    path = Path(os.environ.get("PPGEN_TUTORIAL_OUT", Path.cwd() / "tutorials" / "_out"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def savefig(fig, name: str) -> Path:
    r"""Saves a matplotlib figure as ``out_dir()/name`` and returns the path."""
    path = out_dir() / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
