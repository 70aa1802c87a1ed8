"""The package list in pyproject.toml names every subpackage, so a non-editable install is complete."""

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_subpackage_is_packaged():
    text = (ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'"(ppgen[\w.]*)"', re.search(r"packages = \[(.*?)\]", text, re.S).group(1)))
    found = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in (ROOT / "ppgen").rglob("__init__.py")}
    for package, folder in [("ppgen.models", "models"), ("ppgen.inference", "inference")]:  # mapped folders
        found |= {
            ".".join([package, *p.parent.relative_to(ROOT / folder).parts])
            for p in (ROOT / folder).rglob("__init__.py")
        }
    assert found | {"ppgen.models", "ppgen.inference"} == listed
