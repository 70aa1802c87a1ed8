"""ppgen: probabilistic programming for deep generative models.

Every model is a Pyro program; tractable (exact), approximate (bounds, unnormalized) and implicit
(samples only) density models are fit, scored and compared on the same data.

Example:
    >>> import ppgen
    >>> train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
    >>> m = ppgen.create("independent", train)
    >>> _ = ppgen.fit(m, train, progress=False)
    >>> round(ppgen.evaluate(m, test)["test_nll_nats"], 1) < 25.3
    True
"""

import importlib

# The public API, imported on first use (PEP 562): `import ppgen` stays light, and the floors below the
# facade never import it (see ARCHITECTURE.md).
_API = {
    "data": ("ppgen.data", None),
    "create": ("ppgen.base", "create"),
    "get": ("ppgen.base", "get"),
    "model_names": ("ppgen.base", "model_names"),
    "register": ("ppgen.base", "register"),
    "GenerativeModel": ("ppgen.base", "GenerativeModel"),
    "PPGenError": ("ppgen.errors", "PPGenError"),
    "NonFiniteLossError": ("ppgen.errors", "NonFiniteLossError"),
    "seed_everything": ("ppgen.seed", "seed_everything"),
    "fit": ("ppgen.inference", "fit"),
    "evaluate": ("ppgen.inference", "evaluate"),
    "program": ("ppgen.models.program", "program"),
}

__all__ = list(_API)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'ppgen' has no attribute {name!r}")
    module, attribute = _API[name]
    value = importlib.import_module(module)
    value = value if attribute is None else getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
