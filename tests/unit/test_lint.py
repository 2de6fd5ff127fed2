"""The code base stays ruff-clean and ruff-formatted (the `test` workflow runs the same commands)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(root, command):
    if command[0] == "format" and not (root / "cookiecutter.json").exists():
        pytest.skip("a generated project: renaming changes line lengths; run `ruff format` once yourself")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
