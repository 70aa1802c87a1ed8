"""Whether models check the values they are handed, or only their shapes.

Every public entry point of a model (``log_prob``, ``check_input``, a Bayes net's ``check_values``)
checks its input: shape and device always, and the values (finite, inside the data kind's support) while
value checks are on, which is the default. :func:`ppgen.fit` checks the training data once
(``check_data``) and the first step with every check, then runs the other steps with value checks off,
like ``pyro.validation_enabled(False)``: re-reading every batch for NaNs cost the counting Bayes net a
third of its step.
"""

from contextlib import contextmanager

__all__ = ["values_checked", "value_checks"]

_CHECK_VALUES = True


def values_checked() -> bool:
    r"""True unless inside ``value_checks(False)``."""
    return _CHECK_VALUES


@contextmanager
def value_checks(enabled: bool):
    r"""Turns value checks on or off inside the block (the previous setting comes back after it).

    Example:
        >>> with value_checks(False):
        ...     values_checked()
        False
        >>> values_checked()
        True
    """
    global _CHECK_VALUES
    previous, _CHECK_VALUES = _CHECK_VALUES, bool(enabled)
    try:
        yield
    finally:
        _CHECK_VALUES = previous
