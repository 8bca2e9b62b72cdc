"""Checkpoints that survive a crash or an interrupt: written atomically, written when a run is
stopped, and found again to resume.

Lightning's own writer stages a checkpoint in the system's temp folder and moves it into
place; when that folder is on another filesystem the move is a copy, and a run killed during
it leaves a truncated ``last.ckpt`` behind. ``AtomicCheckpointIO`` writes next to the target,
syncs the file to disk and renames it over the old one (``os.replace``, atomic on POSIX), so
a checkpoint on disk is always a whole one: the previous, or the new.

``SaveOnInterrupt`` turns Ctrl-C (SIGINT) and SIGTERM (what SLURM sends before a kill) into a
``last.ckpt`` at the update reached, written between two updates, never in the middle of one.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightning_distill.errors import CheckpointError
from lightning_distill.loggers import as_logged
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

    def write_last_now(self, trainer: pl.Trainer) -> Path | None:
        """``last.ckpt`` at the current update (an interrupted run's resume point); ``None``
        when this callback keeps no ``last`` or no update was made."""
        if not self.save_last or trainer.global_step == 0 or trainer.state.fn != "fit":
            return None
        self._write_last(trainer)
        return Path(self.last_model_path) if self.last_model_path else None


def kept_checkpoints_line(callbacks: list[Any]) -> str | None:
    """``best checkpoint (eval/return 323.5): <path>; latest: <path>``: the checkpoint to play or
    distil from and the one to resume, over every ``ModelCheckpoint`` of the run (a config may
    keep the best and the last with two)."""
    checkpoints = [c for c in callbacks if isinstance(c, LightningModelCheckpoint)]
    parts = []
    for c in checkpoints:
        if c.monitor and c.best_model_path and c.best_model_score is not None:
            parts.append(f"best checkpoint ({c.monitor} {as_logged(float(c.best_model_score))}): {c.best_model_path}")
            break
    for c in checkpoints:
        if c.save_last and c.last_model_path:
            parts.append(f"latest: {c.last_model_path}")
            break
    return "; ".join(parts) or None


@dataclass
class Interruption:
    """How a run was stopped: the signal, the update reached and the checkpoints written then."""

    signal_name: str
    step: int
    saved: list[Path]

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + int(getattr(signal, self.signal_name, signal.SIGINT))


class SaveOnInterrupt(pl.Callback):
    """On Ctrl-C or SIGTERM, write ``last.ckpt`` at the update reached and stop.

    The first Ctrl-C asks the run to stop after the update in progress (its checkpoint is then
    a whole update, replay writes included); during an evaluation, or before the first update,
    the run stops at once (the weights do not change there). A second Ctrl-C stops at once.
    SIGTERM is Lightning's (it stops between two updates); this writes the checkpoint. Every
    ``ModelCheckpoint`` of this project with ``save_last`` writes its ``last.ckpt``; the CLI
    then prints one line from ``interruption``. Under DDP the stop is decided for all ranks at
    once (one collective a step), so they write the same update."""

    def __init__(self) -> None:
        self.interruption: Interruption | None = None
        self._requested: int | None = None  # the signal received, not acted on yet
        self._previous_handler: Any = None
        self._installed = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.interruption, self._requested = None, None
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint(trainer))
            self._installed = True

    def _on_sigint(self, trainer: pl.Trainer) -> Any:
        def handler(signum: int, frame: Any) -> None:
            alone = trainer.world_size == 1
            if self._requested is not None or (alone and (trainer.global_step == 0 or trainer.validating)):
                self._restore()
                raise KeyboardInterrupt
            self._requested = signum

        return handler

    def _restore(self) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._installed = False

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        requested = self._requested is not None
        if trainer.world_size > 1:
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:
            self._restore()
            self._save(trainer, "SIGINT")
            raise KeyboardInterrupt

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()
        if self.interruption is not None:
            return
        if isinstance(exception, SIGTERMException):
            self._save(trainer, "SIGTERM")
        elif isinstance(exception, KeyboardInterrupt):
            self._save(trainer, "SIGINT")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def _save(self, trainer: pl.Trainer, signal_name: str) -> None:
        saved = [
            path
            for callback in trainer.checkpoint_callbacks
            if isinstance(callback, ModelCheckpoint) and (path := callback.write_last_now(trainer)) is not None
        ]
        self.interruption = Interruption(signal_name, trainer.global_step, saved)


def find_last_checkpoint(save_dir: str | Path, name: str) -> Path:
    """The ``last.ckpt`` of the newest run in ``save_dir/name/version_*`` (the highest version):
    what ``--ckpt_path last`` resumes (Lightning's own ``last`` looks only in the *new* run's
    folder). When the newest run has none, this says so and names the newest checkpoint found
    instead, to be given by path: an older run is never resumed silently."""
    runs = sorted(
        (p for p in Path(save_dir, name).glob("version_*") if p.is_dir() and p.name[8:].isdigit()),
        key=lambda p: int(p.name[8:]),
    )
    newest = _last_checkpoints(runs[-1]) if runs else []
    if newest:
        return newest[-1]
    older = [ckpt for run in runs[:-1] for ckpt in _last_checkpoints(run)]
    if not older:
        raise CheckpointError(
            f"--ckpt_path last: no last.ckpt in {Path(save_dir, name, 'version_*', 'checkpoints')}; "
            "give the checkpoint's path, or add ModelCheckpoint(save_last: true) to the run's callbacks"
        )
    found = max(older, key=lambda p: p.stat().st_mtime_ns)
    raise CheckpointError(
        f"--ckpt_path last: the newest run {runs[-1]} has no checkpoint (it stopped before writing one); "
        f"the newest checkpoint is {found} (update {checkpoint_step(found)}) of an older run: resume that "
        f"one with --ckpt_path {found}, or start afresh without --ckpt_path"
    )


def _last_checkpoints(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("last*.ckpt"), key=lambda p: p.stat().st_mtime_ns)


def checkpoint_step(path: Path) -> int:
    """The update a checkpoint was written at (-1 for a file that is not a readable checkpoint)."""
    try:
        return int(torch.load(path, weights_only=True, map_location="cpu", mmap=True).get("global_step", 0))
    except Exception:  # an unreadable file is no state to resume
        return -1
