"""Exploration schedules, driven by environment steps (not updates or epochs)."""

from __future__ import annotations

from typing import ClassVar

import lightning.pytorch as pl

from lightning_distill.checks import AT_LEAST_1, UNIT, Range, check_ranges
from lightning_distill.contracts import ExperienceSource, require
from lightning_distill.modules.base import RLModule
from lightning_distill.upstream import datamodule_of


class EpsilonSchedule(pl.Callback):
    """Linear epsilon decay from ``start`` to ``end`` over the first ``decay_steps`` agent
    steps per task (summed over a task's envs), then held (the distillation paper: 1.0 -> 0.1
    over 1M steps).

    Sets ``trainer.datamodule.epsilon``, which the data module's acting uses, before every
    update, and logs it as ``train/epsilon`` (for the project's ``RLModule`` agents).
    """

    RANGES: ClassVar[dict[str, Range]] = {"start": UNIT, "end": UNIT, "decay_steps": AT_LEAST_1}

    def __init__(self, start: float = 1.0, end: float = 0.1, decay_steps: int = 1_000_000) -> None:
        check_ranges("EpsilonSchedule", self.RANGES, locals())
        self.start, self.end, self.decay_steps = start, end, decay_steps

    def value(self, env_steps: int) -> float:
        fraction = min(env_steps / self.decay_steps, 1.0)
        return self.start + fraction * (self.end - self.start)

    def _apply(self, trainer: pl.Trainer) -> float:
        datamodule = require(datamodule_of(trainer), ExperienceSource, "EpsilonSchedule")
        datamodule.epsilon = self.value(datamodule.steps_per_task)
        return datamodule.epsilon

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._apply(trainer)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        epsilon = self._apply(trainer)
        if require(pl_module, RLModule, "EpsilonSchedule").should_log():
            pl_module.log("train/epsilon", epsilon, batch_size=1)
