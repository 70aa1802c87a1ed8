"""The model zoo: one file per family; importing this package registers every model."""

from ppgen.models import independent, mixture  # noqa: F401
