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

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lightning_distill.errors import CheckpointError
from lightning_distill.upstream import defers_save_until_validation, every_n_train_steps, fast_dev_run


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a hidden temporary file beside the target, ``fsync``, then rename."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path):  # remote storage: fsspec's transaction is the atomic path there
            return super().save_checkpoint(checkpoint, str(path), storage_options)
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


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` is always the latest state.

    Lightning (2.6) rewrites ``last.ckpt`` only when a top-k checkpoint is written at the same
    step, so with a ``monitor`` it holds the *best* state, and a resume goes back to it. This
    class keeps Lightning's top-k logic and, with ``save_last: true``, also writes ``last.ckpt``
    at every point where it considers saving (each evaluation; each ``every_n_train_steps``;
    each iteration's end with ``save_on_train_epoch_end: true``) and when training ends,
    whether or not the monitored metric improved. Every argument is Lightning's.
    """

    _last_step_written: int = -1

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_step_written = trainer.global_step

    def _write_last(self, trainer: pl.Trainer) -> None:
        """``last.ckpt`` at this step, unless it is already written or this is no training step."""
        if (
            not self.save_last
            or trainer.sanity_checking
            or fast_dev_run(trainer)
            or trainer.state.fn != "fit"
            or self._last_step_written == trainer.global_step
        ):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        every = every_n_train_steps(self)
        if every >= 1 and trainer.global_step % every == 0 and not defers_save_until_validation(self):
            self._write_last(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._write_last(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._write_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._write_last(trainer)


def find_last_checkpoint(save_dir: str | Path, name: str) -> Path:
    """The newest ``last.ckpt`` of the runs in ``save_dir/name/version_*/checkpoints``: what
    ``--ckpt_path last`` resumes (Lightning's own ``last`` looks only in the *new* run's folder)."""
    candidates = sorted(Path(save_dir, name).glob("version_*/checkpoints/last*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise CheckpointError(
            f"--ckpt_path last: no last.ckpt in {Path(save_dir, name, 'version_*', 'checkpoints')}; "
            "give the checkpoint's path, or add ModelCheckpoint(save_last: true) to the run's callbacks"
        )
    return candidates[-1]
