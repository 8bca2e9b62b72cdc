"""Which run a ``--ckpt_path`` continues, and what it keeps of it.

A run lives in ``<save_dir>/<name>/version_<n>/`` (``config.yaml``, ``metrics.csv``,
``checkpoints/``) and, with W&B, in one W&B run. Resuming from that run's latest checkpoint
continues the *same* run: the same folder (so ``ModelCheckpoint`` reloads its best score and
``best-*.ckpt`` stays the best of the whole run), the rows of ``metrics.csv`` that the
checkpoint had seen (the rest are logged again), and the same W&B run id. Resuming from an
earlier checkpoint of a run, or from one outside the config's run folder, starts a new version:
nothing already written is overwritten.
"""

from __future__ import annotations

import csv
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lightning_distill.checkpointing import checkpoint_step
from lightning_distill.errors import CheckpointError, refused_pickle_reason


@dataclass
class Checkpoint:
    """What the CLI reads of a checkpoint before Lightning restores it (through a memory map:
    a checkpoint holding the replay can be gigabytes)."""

    path: Path
    global_step: int
    hyper_parameters: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)  # loggers.run_identity when it was written


def load_checkpoint_dict(path: str | Path, flag: str = "--ckpt_path") -> dict[str, Any]:
    """A checkpoint file as a dict of plain data (``weights_only``, memory-mapped), or one line
    that says why it cannot be one (``flag``: the argument that named it, if any)."""
    path = Path(path)
    flag = f"{flag} " if flag else ""
    if not path.is_file():
        raise CheckpointError(
            f"{flag}{str(path)!r} is not a file; give a checkpoint "
            "(runs/<name>/version_<n>/checkpoints/last.ckpt) or 'last' for the newest run's"
        )
    try:
        state = torch.load(path, weights_only=True, map_location="cpu", mmap=True)
    except pickle.UnpicklingError as exc:  # a whole file, but a pickle that would run code
        reason = refused_pickle_reason(exc)
        raise CheckpointError(
            f"{flag}{str(path)!r} holds objects that are not plain data ({reason}); "
            "give a .ckpt written by lightning_distill fit"
        ) from None
    except Exception:  # torch's own message here is about its serialization internals
        raise CheckpointError(
            f"{flag}{str(path)!r} is not a readable checkpoint: it is truncated or not a file "
            "torch.save wrote; give a .ckpt written by lightning_distill fit"
        ) from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise CheckpointError(
            f"{flag}{str(path)!r} is not a Lightning checkpoint (no 'state_dict'); "
            "give a .ckpt written by lightning_distill fit"
        )
    return state


def read_checkpoint(path: str | Path, flag: str = "--ckpt_path") -> Checkpoint:
    """A checkpoint's step, hyperparameters and run identity, or one line that says why not."""
    from lightning_distill.modules.base import CHECKPOINT_KEY

    state = load_checkpoint_dict(path, flag)
    meta = state.get(CHECKPOINT_KEY) or {}
    hparams = dict(state.get("hyper_parameters") or {})
    return Checkpoint(
        path=Path(path),
        global_step=int(state.get("global_step", 0)),
        hyper_parameters=hparams,
        run=dict(meta.get("run") or {}),
    )


@dataclass
class Continuation:
    """The run a resumed ``fit`` writes to: ``version`` of ``save_dir/name`` (``None``: a new one)."""

    version: int | str | None
    metrics_rows: int | None = None
    metrics_step: int | None = None
    wandb_id: str | None = None
    note: str = ""


def run_of(checkpoint: Path, save_dir: str | Path, name: str) -> Path | None:
    """``save_dir/name/<version>`` when ``checkpoint`` is in that run's ``checkpoints/``."""
    folder = checkpoint.resolve().parent
    if folder.name != "checkpoints":
        return None
    run_dir = folder.parent
    return run_dir if run_dir.parent == Path(save_dir, name).resolve() else None


def plan_continuation(checkpoint: Checkpoint, save_dir: str | Path, name: str) -> Continuation:
    """Continue the checkpoint's run when it is that run's latest state, else start a new version."""
    run_dir = run_of(checkpoint.path, save_dir, name)
    if run_dir is None:
        return Continuation(version=None, note=f"{checkpoint.path} is not in {Path(save_dir, name)}/: a new run")
    shown = Path(save_dir, name, run_dir.name)  # as the config names it
    newer = [
        p
        for p in (run_dir / "checkpoints").glob("last*.ckpt")
        if p.resolve() != checkpoint.path.resolve() and checkpoint_step(p) > checkpoint.global_step
    ]
    if newer:
        return Continuation(
            version=None,
            note=(
                f"{checkpoint.path} (update {checkpoint.global_step}) is older than "
                f"{shown / 'checkpoints' / newer[0].name} (update {checkpoint_step(newer[0])}): "
                f"resuming into a new run, {shown} is left as it is"
            ),
        )
    match = re.fullmatch(r"version_(\d+)", run_dir.name)
    return Continuation(
        version=int(match.group(1)) if match else run_dir.name,
        metrics_rows=checkpoint.run.get("metrics_rows"),
        metrics_step=checkpoint.run.get("metrics_step"),
        wandb_id=checkpoint.run.get("wandb_id"),
        note=f"continuing {shown} from update {checkpoint.global_step}",
    )


def keep_metrics_rows(metrics_csv: Path, rows: int, last_step: int | None = None) -> None:
    """Keep what the run had logged when the checkpoint it resumes from was written: the first
    ``rows`` rows, and later rows of steps up to ``last_step`` (an iteration's summary is logged
    just after its checkpoint). The resumed run logs the rest again."""
    if not metrics_csv.is_file():
        return
    with open(metrics_csv, newline="") as f:
        header, *body = list(csv.reader(f)) or [[]]
    step = header.index("step") if "step" in header else None

    def logged_by_then(i: int, row: list[str]) -> bool:
        if i < rows:
            return True
        if step is None or last_step is None or step >= len(row):
            return False
        try:
            return int(float(row[step])) <= last_step
        except ValueError:
            return False

    with open(metrics_csv, "w", newline="") as f:
        csv.writer(f).writerows([header, *(row for i, row in enumerate(body) if logged_by_then(i, row))])


def discard_unstarted_run(trainer: Any) -> None:
    """What a run that failed before its first update leaves: nothing. Its W&B run is finished
    (quietly, so the error stays the last line printed) and an offline one's folder removed; its
    new run folder goes if no checkpoint is in it. Resumed runs are never passed here."""
    import shutil

    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    from lightning_distill.upstream import started_experiment

    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        run = started_experiment(logger)
        if isinstance(logger, WandbLogger) and run is not None:
            offline = getattr(run.settings, "mode", "") in ("offline", "dryrun")
            folder = Path(run.dir).parent if offline and getattr(run, "dir", None) else None
            run.finish(exit_code=1)
            if folder is not None and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
                for link in folder.parent.iterdir():  # latest-run, debug.log, ... pointed into it
                    if link.is_symlink() and not link.exists():
                        link.unlink()
        elif isinstance(logger, CSVLogger) and run is not None:
            log_dir = Path(logger.log_dir)
            if log_dir.is_dir() and not any(log_dir.rglob("*.ckpt")):
                shutil.rmtree(log_dir, ignore_errors=True)
                for folder in log_dir.parents:  # runs/<name>/ (and <name>'s parts) when nothing else is there
                    if folder == Path(logger.save_dir) or not folder.is_dir() or any(folder.iterdir()):
                        break
                    folder.rmdir()
