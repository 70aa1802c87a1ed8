"""Model specs as the command line takes them: a registered name (``nade``) or a user's own program
(``path/to/file.py:NAME``), resolved in one place for train, compare, eval, sample and inspect.

``NAME`` in the file may be
- a model made by :func:`ppgen.program` (or any :class:`~ppgen.base.GenerativeModel` instance),
- a :class:`~ppgen.base.GenerativeModel` subclass (built like a registered model, ``--config`` applies),
- a plain Pyro model function without continuous latent sites (wrapped by :func:`ppgen.program`).
The file is imported afresh each time (a new model, its parameters then loaded from a checkpoint).
"""

import importlib.util
import sys
from pathlib import Path

from ppgen.base import GenerativeModel, create, get, supports
from ppgen.data import Dataset, DataSpec
from ppgen.errors import PPGenError
from ppgen.models.program import Program, program

__all__ = ["is_program_spec", "display_name", "canonical", "lookup", "build_model"]

EXPECTED = (
    "expected path/to/file.py:NAME where NAME is a ppgen.program(...) model, a GenerativeModel subclass "
    "or a Pyro model function"
)


def is_program_spec(spec: str) -> bool:
    r"""Whether ``spec`` names a user's file (``file.py:NAME``) rather than a registered model."""
    return ":" in spec and spec.rsplit(":", 1)[0].endswith(".py")


def _split(spec: str) -> tuple[Path, str]:
    path, name = spec.rsplit(":", 1)
    if not name.isidentifier():
        raise PPGenError(f"model spec {spec!r}: {name!r} is not a Python name; {EXPECTED}")
    return Path(path).expanduser().resolve(), name


def display_name(spec: str) -> str:
    r"""How reports name a model: NAME for a user's ``file.py:NAME``, else the registered name."""
    return spec.rpartition(":")[2] if is_program_spec(spec) else spec


def canonical(spec: str) -> str:
    r"""The spec with an absolute file path (what ``config.json`` and checkpoints record), or the name."""
    if not is_program_spec(spec):
        return spec
    path, name = _split(spec)
    return f"{path}:{name}"


def _load_object(spec: str):
    path, name = _split(spec)
    if not path.is_file():
        raise PPGenError(f"model spec {spec!r}: file {path} not found; {EXPECTED}")
    module_name = f"ppgen_user_program_{abs(hash(str(path)))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.path.insert(0, str(path.parent))  # the file may import its neighbours
    try:
        loader_spec.loader.exec_module(module)
    except Exception as e:
        raise PPGenError(f"model spec {spec!r}: importing {path} failed: {type(e).__name__}: {e}") from None
    finally:
        sys.path.remove(str(path.parent))
    if not hasattr(module, name):
        public = [n for n in vars(module) if not n.startswith("_")]
        raise PPGenError(
            f"model spec {spec!r}: {path.name} defines no {name!r} (it has: {', '.join(public)})"
        )
    return getattr(module, name), name


def lookup(spec: str):
    r"""What the spec names, for its class-level facts (``fit_defaults``, ``family``, ``density``, ...):
    a registered class, or a user's model (instance or class).

    Raises:
        PPGenError: an unknown name, a file that cannot be imported, or an object that is not a model.
    """
    if not is_program_spec(spec):
        return get(spec)
    obj, name = _load_object(spec)
    if isinstance(obj, GenerativeModel) or (isinstance(obj, type) and issubclass(obj, GenerativeModel)):
        return obj
    if callable(obj) and not isinstance(obj, type):
        return program(obj, name=name)
    raise PPGenError(f"model spec {spec!r}: {name} is a {type(obj).__name__}; {EXPECTED}")


def build_model(spec: str, data: Dataset | DataSpec, config: dict | None = None) -> GenerativeModel:
    r"""The model a spec names, sized for ``data``: ``create`` for registered names, the user's model
    (bound to the data, its ``source`` set to :func:`canonical` ``(spec)``) for ``file.py:NAME``."""
    config = dict(config or {})
    if not is_program_spec(spec):
        return create(spec, data, **config)
    data_spec = data.spec if isinstance(data, Dataset) else data
    obj = lookup(spec)
    if isinstance(obj, type):
        if (reason := supports(obj, data_spec)) is not None:
            raise PPGenError(reason)
        try:
            model = obj(data_spec, **config)
        except TypeError as e:
            raise PPGenError(f"bad config for {spec}: {e}") from None
        model.config = config
    else:
        if config:
            raise PPGenError(
                f"--config applies to GenerativeModel classes; {spec} is a model already built "
                "(set its options in the file)"
            )
        model = obj
        if isinstance(model, Program):
            model.bind(data)
        elif (reason := supports(type(model), data_spec)) is not None:
            raise PPGenError(reason)
    model.source = canonical(spec)
    return model
