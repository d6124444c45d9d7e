"""The README: short, and its five-line example runs as written on this machine (offline, no dataset)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from support import REPO

README = (REPO / "README.md").read_text()


def test_readme_is_a_readme():
    assert len(README.encode()) < 12_000  # the rest lives in the documentation site
    for link in re.findall(r"\]\(((?:docs|tutorials)/[^)#]+)", README):
        assert (REPO / link).exists(), f"README links a missing file {link}"


def test_five_line_example_runs_as_written(tmp_path, demo_home):
    home, _, _ = demo_home
    block = re.search(r"^## In five lines\n.*?```python\n(.*?)```", README, re.S | re.M).group(1)
    code = [line for line in block.splitlines() if line.strip()]
    assert len(code) <= 6
    env = {k: v for k, v in os.environ.items() if k != "BRAINLID_DATA"}
    env.update(BRAINLID_HOME=str(home), CI="true")
    res = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    # one test-split row per layer of the model and its baselines, each with an interval and a normalised score
    for name in ("baseline:pixels", "cifar_resnet:20@random:0", "#shuffled", "layer3", "ci_low", "normalised"):
        assert name in out, (name, out)
    assert (tmp_path / "nsd-synthetic").is_dir()
