"""What a person would rather look at than read, in the W&B run (rank 0 only).

- after every ``video_every``-th evaluation: ``video_steps`` rendered steps of each task (an
  MP4 written into the W&B run's folder, then logged as ``media/<task>``);
- after every evaluation: a table of each task's score, its teacher's and the % of teacher
  (``eval/scores``; teacher columns when ``lightning_distill.callbacks.TeacherComparison`` runs too);
- while training (distillation with H-PR): each partition's share of the replay memory,
  ``replay/<task>/partition_<j>`` (the occupancy the paper's partitions are meant to balance),
  logged to every logger.

REPAINT's kept-sample fraction is logged by the module itself every iteration
(``transfer/kept_fraction``), so it is in every logger, W&B's included.
Without an active ``WandbLogger`` among the trainer's loggers, videos and tables are skipped.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_only

from lightning_distill.callbacks.teacher_score import TeacherComparison, percent_of_teacher
from lightning_distill.checks import AT_LEAST_1, NON_NEGATIVE, Range, check_ranges
from lightning_distill.contracts import ReplaySource, require
from lightning_distill.modules.base import RLModule
from lightning_distill.replay.memory import TaskMemory
from lightning_distill.upstream import callbacks_of, datamodule_of


def wandb_logger(trainer: pl.Trainer):
    """The trainer's ``WandbLogger``, or None (also when W&B is switched off: ``WANDB_MODE=disabled``)."""
    from lightning.pytorch.loggers import WandbLogger

    logger = next((logger for logger in trainer.loggers if isinstance(logger, WandbLogger)), None)
    if logger is None or getattr(logger.experiment.settings, "mode", None) == "disabled":
        return None
    return logger


def partition_shares(memory: TaskMemory) -> list[float] | None:
    """Each partition's share of the experiences stored in a task's memory (None for one partition)."""
    sizes = memory.partition_sizes
    if len(sizes) < 2:
        return None
    total = max(int(sizes.sum()), 1)
    return [int(n) / total for n in sizes]


class WandbMedia(pl.Callback):
    """Evaluation videos, the per-task score table and the replay's partition occupancy, in W&B.

    Args:
        video_every: record videos after every this many evaluations (0: never).
        video_steps: at most this many agent steps per video.
        fps: frames per second of the videos.
    """

    RANGES: ClassVar[dict[str, Range]] = {"video_every": NON_NEGATIVE, "video_steps": AT_LEAST_1, "fps": AT_LEAST_1}

    def __init__(self, video_every: int = 1, video_steps: int = 1000, fps: int = 30) -> None:
        check_ranges("WandbMedia", self.RANGES, locals())
        self.video_every, self.video_steps, self.fps = video_every, video_steps, fps
        self.evaluations = 0

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = wandb_logger(trainer)
        module = require(pl_module, RLModule, "WandbMedia")
        if logger is None or trainer.sanity_checking or not module.last_evaluation:
            return
        self.evaluations += 1
        media = {"eval/scores": self.score_table(trainer, module)}
        if self.video_every and self.evaluations % self.video_every == 0:
            media.update(self.videos(trainer, module, Path(logger.experiment.dir)))
        logger.experiment.log(media | {"trainer/global_step": trainer.global_step})

    def score_table(self, trainer: pl.Trainer, pl_module: RLModule) -> Any:
        import wandb

        comparison = next((c for c in callbacks_of(trainer) if isinstance(c, TeacherComparison)), None)
        teachers = comparison.teacher_scores if comparison is not None else None
        rows = []
        for i, task in enumerate(pl_module.tasks):
            result = pl_module.last_evaluation.get(task.id)
            if result is None:
                continue
            teacher = teachers[i] if teachers else math.nan
            rows.append([task.id, result.mean, result.count, teacher, percent_of_teacher(result.mean, teacher)])
        return wandb.Table(columns=["task", "return", "episodes", "teacher", "% of teacher"], data=rows)

    def videos(self, trainer: pl.Trainer, pl_module: RLModule, folder: Path) -> dict:
        """``video_steps`` agent steps of each task, played with the evaluation protocol, rendered."""
        import wandb

        from lightning_distill.evaluation import evaluate
        from lightning_distill.play import write_video

        out = {}
        for i, task in enumerate(pl_module.tasks):
            frames: list = []
            evaluate(
                pl_module.policy(i),
                task,
                steps=self.video_steps,
                num_envs=1,
                seed=trainer.global_step,
                device=pl_module.device,
                on_frame=frames.append,
            )
            if not frames:
                continue
            path = folder / "videos" / f"{task.id.replace('/', '_')}_{trainer.global_step}.mp4"
            write_video(str(path), frames, self.fps)
            out[f"media/{task.id}"] = wandb.Video(str(path), format="mp4")
        return out

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        datamodule = datamodule_of(trainer)
        module = require(pl_module, RLModule, "WandbMedia")
        # a documented skip: partition shares exist only where there is replay (distillation)
        if not isinstance(datamodule, ReplaySource) or not module.should_log(after_update=True):
            return
        metrics = {}
        for task, memory in zip(module.tasks, datamodule.memories, strict=True):
            shares = partition_shares(memory)
            for j, share in enumerate(shares or []):
                metrics[f"replay/{task.id}/partition_{j}"] = share
        if metrics:
            pl_module.log_dict(metrics, batch_size=1, rank_zero_only=True)
