"""The one exception type that users see for bad input."""

__all__ = ["PPGenError", "NonFiniteLossError"]


class PPGenError(ValueError):
    r"""Bad input from a user: an unknown name, a missing file, a wrong shape or value.

    The message is one line that says what was expected. The CLI prints it and exits with code 2.
    """


class NonFiniteLossError(RuntimeError):
    r"""Training produced a NaN or infinite loss; the model was restored to its last good state."""
