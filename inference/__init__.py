"""How models are fit and scored: one objective per family, one training loop, one evaluator.

Objective modules register themselves on import: one import per line, each family adds its own.
"""

from ppgen.inference import (
    adversarial,  # noqa: F401
    annealed_elbo,  # noqa: F401
    contrastive,  # noqa: F401
    counting,  # noqa: F401
    denoising,  # noqa: F401
    elbo,  # noqa: F401
    reconstruction,  # noqa: F401
    score_matching,  # noqa: F401
)
from ppgen.inference.evaluate import evaluate
from ppgen.inference.objective import OBJECTIVES, Objective, register_objective
from ppgen.inference.trainer import FitResult, fit

__all__ = ["fit", "evaluate", "FitResult", "Objective", "register_objective", "OBJECTIVES"]
