"""Every tutorial runs end to end in quick mode and writes its figures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).parent.parent / "tutorials").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_in_quick_mode(path, tmp_path):
    env = {**os.environ, "PPGEN_QUICK": "1", "PPGEN_TUTORIAL_OUT": str(tmp_path), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(tmp_path.glob("*.png")), "the tutorial wrote no figure"
