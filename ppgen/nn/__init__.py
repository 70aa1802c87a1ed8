"""Shared network layers (one file per idea): import them from their module, e.g. ``ppgen.nn.masked``."""
