"""What a trained density is good for: outlier rejection, Bayes-rule classification and completion.

One module each: :mod:`~ppgen.inference.tasks.anomaly` (outlier scores, AUROC, outlier sets),
:mod:`~ppgen.inference.tasks.classify` (the Bayes rule, discriminative baselines, the reject option),
:mod:`~ppgen.inference.tasks.complete` (masks, completion samplers, their metrics),
:mod:`~ppgen.inference.tasks.missing` (fitting the models that marginalize missing entries -- independent,
mixture, Bayes nets, VAEs -- to data with NaN entries).
"""

from ppgen.inference.tasks.anomaly import anomaly_table, auroc, outlier_score
from ppgen.inference.tasks.classify import bayes_classify, class_log_likelihoods, reject_curve
from ppgen.inference.tasks.complete import complete, completion_metrics, hidden_mask
from ppgen.inference.tasks.missing import fit_missing, observed_log_prob

__all__ = [
    "outlier_score",
    "auroc",
    "anomaly_table",
    "class_log_likelihoods",
    "bayes_classify",
    "reject_curve",
    "complete",
    "completion_metrics",
    "hidden_mask",
    "fit_missing",
    "observed_log_prob",
]
