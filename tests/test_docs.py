"""Every Python snippet in the README and the guides in docs/ runs as pasted: each page's blocks in
order in one fresh interpreter, as a reader pastes a page into one session, each block with
nothing but what it imports itself (a fresh namespace), in one folder beside the shared data (as
`../shared`), with a `photo.jpg` there as the predict snippet expects. A later block may use what
an earlier one wrote (the README opens the run its first block trained)."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = {page.relative_to(ROOT).as_posix(): re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
          for page in PAGES}
WITH_SNIPPETS = [name for name, blocks in BLOCKS.items() if blocks]


def test_the_docs_have_python_snippets():
    assert len(BLOCKS["README.md"]) >= 2 and sum(map(len, BLOCKS.values())) >= 5


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize("page", WITH_SNIPPETS)
def test_each_snippet_runs_as_pasted(page, shared_data, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(shared_data.parent, target_is_directory=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(work / "photo.jpg")
    out = subprocess.run([sys.executable, "-c", RUN_BLOCKS, *BLOCKS[page]], cwd=work, capture_output=True, text=True,
                         timeout=600, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2",
                                           "SEGLAB_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 0, f"{page}:\n{out.stderr[-3000:]}"


# One interpreter a page: TensorFlow's import (seconds) once, not once a block.
RUN_BLOCKS = """
import sys, traceback
for number, block in enumerate(sys.argv[1:], 1):
    try:
        exec(compile(block, f"snippet {number}", "exec"), {"__name__": "__main__"})
    except BaseException:
        sys.exit(f"snippet {number}:\\n{block}\\n{traceback.format_exc()}")
"""


def test_a_block_sees_only_what_it_imports_and_a_failure_names_its_block(tmp_path):
    out = subprocess.run([sys.executable, "-c", RUN_BLOCKS, "import json\nx = 1", "import json\nprint(json.dumps(2))",
                          "print(x)"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stdout == "2\n"
    assert "snippet 3:\nprint(x)" in out.stderr and "NameError: name 'x' is not defined" in out.stderr
