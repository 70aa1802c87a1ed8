"""One seeding helper for torch, numpy, Python's random and Pyro, and the RNG state a resumed run restores."""

import random

import numpy as np
import pyro
import torch

from ppgen.errors import PPGenError

__all__ = ["seed_everything", "check_seed", "get_rng_state", "set_rng_state"]

MAX_SEED = 2**63 - 1  # torch.manual_seed takes a signed 64-bit integer


def check_seed(seed) -> int:
    r"""``seed`` if it is an integer in [0, 2**63 - 1], else a :class:`PPGenError` that says so."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise PPGenError(f"the seed must be an integer in [0, 2**63 - 1], got {seed!r}")
    return int(seed)


def seed_everything(seed: int) -> None:
    r"""Seeds every random number generator that ppgen uses.

    Arguments:
        seed: an integer in [0, 2**63 - 1].
    """
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed % 2**32)  # Pyro seeds numpy too, which takes 32 bits


def get_rng_state(generator: torch.Generator | None = None) -> dict:
    r"""The state of every generator ppgen draws from: torch (and CUDA where present), numpy, random,
    and ``generator`` (a data-order generator) if given. Tensors and plain Python values only, so that
    ``torch.load(..., weights_only=True)`` reads it back."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "random": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    r"""Restores what :func:`get_rng_state` returned (the CUDA part only where CUDA is present)."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    r = state["random"]
    random.setstate((r["version"], tuple(r["internal"]), r["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])
