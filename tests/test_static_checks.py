"""The checks CI runs before the tests catch what they are there for: a call through a declared
Protocol with a wrong name or signature (mypy), an unused import (ruff)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

BROKEN_SEAM = """
import torch

from lightning_distill.contracts import ReplaySource


def send_priorities(source: ReplaySource, index: torch.Tensor, priority: torch.Tensor) -> None:
    source.update_priorities(0, index, priority)
    source.update_priority(index, priority)
"""


def test_mypy_rejects_a_protocol_call_with_a_wrong_name_or_signature(tmp_path):
    from mypy import api

    snippet = tmp_path / "broken_seam.py"
    snippet.write_text(BROKEN_SEAM)
    # the project's settings (pyproject.toml) and its cache, warm after CI's own mypy run
    out, _, status = api.run(
        ["--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(REPO / ".mypy_cache"), str(snippet)]
    )
    assert status == 1, out
    assert '"ReplaySource" has no attribute "update_priorities"' in out
    assert 'in call to "update_priority" of "ReplaySource"  [call-arg]' in out


def test_ruff_rejects_an_unused_import(tmp_path):
    snippet = tmp_path / "unused.py"
    snippet.write_text("import os\n")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(REPO / "pyproject.toml"), str(snippet)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "F401" in result.stdout, result.stdout
