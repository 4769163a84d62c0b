"""The README's Python snippets run as pasted: each block, in order, in a fresh interpreter in a
folder beside the shared data (as `../shared`), with a `photo.jpg` there as the predict snippet
expects."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_has_python_snippets():
    assert len(BLOCKS) >= 4


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_each_readme_snippet_runs_as_pasted(number, shared_data, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(shared_data.parent, target_is_directory=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(work / "photo.jpg")
    out = subprocess.run([sys.executable, "-c", BLOCKS[number]], cwd=work, capture_output=True, text=True, timeout=600,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2",
                              "SEGLAB_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 0, f"README snippet {number + 1}:\n{BLOCKS[number]}\n{out.stderr[-3000:]}"
