"""Checkpoints that survive a crash: written atomically, and found again to resume.

Lightning's own writer stages a checkpoint in the system's temp folder and moves it into
place; when that folder is on another filesystem the move is a copy, and a run killed during
it leaves a truncated ``last.ckpt`` behind. ``AtomicCheckpointIO`` writes next to the target,
syncs the file to disk and renames it over the old one (``os.replace``, atomic on POSIX), so
a checkpoint on disk is always a whole one: the previous, or the new.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lightning_distill.errors import CheckpointError


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a hidden temporary file beside the target, ``fsync``, then rename."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # remote storage: fsspec's transaction is the atomic path there
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_save(checkpoint, Path(path))


def atomic_save(obj: Any, path: Path) -> None:
    """Write ``obj`` with ``torch.save`` so that ``path`` never holds a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a writer that was killed
        stale.unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def find_last_checkpoint(save_dir: str | Path, name: str) -> Path:
    """The newest ``last.ckpt`` of the runs in ``save_dir/name/version_*/checkpoints``: what
    ``--ckpt_path last`` resumes (Lightning's own ``last`` looks only in the *new* run's folder)."""
    candidates = sorted(Path(save_dir, name).glob("version_*/checkpoints/last*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise CheckpointError(
            f"--ckpt_path last: no last.ckpt under {str(Path(save_dir, name))!r}/version_*/checkpoints; "
            "give the checkpoint's path, or add ModelCheckpoint(save_last: true) to the run's callbacks"
        )
    return candidates[-1]
