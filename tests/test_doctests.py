"""The ``>>>`` examples in the package's docstrings run, each module imported under its real name.

``pytest --doctest-modules models/`` would import ``models/vae.py`` a second time as ``vae`` (and register
its model twice); here every module is imported as ``ppgen.models.vae`` etc. (the setuptools mapping,
``module_files``) and its examples run with :mod:`doctest`, seeded before each docstring. As in zuko,
``torch`` is in every example's namespace.
"""

import doctest
import importlib

import pytest
import torch
from test_architecture import module_files

from ppgen.seed import seed_everything

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
WITH_EXAMPLES = sorted(
    name for name, path in module_files().items() if name != "ppgen.__main__" and ">>>" in path.read_text()
)


def test_examples_are_found():
    assert len(WITH_EXAMPLES) >= 30  # a broken module scan would otherwise skip every example


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module, name, extraglobs={"torch": torch}) if t.examples]
    assert tests, f"{name} has '>>>' in its text but no example doctest can find"
    report = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    for test in sorted(tests, key=lambda t: t.name):
        seed_everything(0)
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
