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

from ppgen import data
from ppgen.base import GenerativeModel, create, get, model_names, register
from ppgen.errors import NonFiniteLossError, PPGenError
from ppgen.inference import evaluate, fit
from ppgen.seed import seed_everything

__all__ = [
    "data",
    "create",
    "fit",
    "evaluate",
    "get",
    "model_names",
    "register",
    "GenerativeModel",
    "PPGenError",
    "NonFiniteLossError",
    "seed_everything",
]
__version__ = "0.1.0"
