"""How models are fit and scored: one objective per family, one training loop, one evaluator."""

from ppgen.inference import counting, elbo  # noqa: F401  (registers the objectives)
from ppgen.inference.evaluate import evaluate
from ppgen.inference.objective import OBJECTIVES, Objective, register_objective
from ppgen.inference.trainer import FitResult, fit

__all__ = ["fit", "evaluate", "FitResult", "Objective", "register_objective", "OBJECTIVES"]
