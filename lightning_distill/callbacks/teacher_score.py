"""Each task's score as a percentage of its teacher's, and their geometric mean (spec section 7).

Evaluation itself is Lightning's validation loop: every ``trainer.val_check_interval``
updates the module's ``validation_step`` plays each task with the spec's protocol (the data
module's ``evaluation`` budget: epsilon 0.05, random no-op starts). This callback compares
each result with the teacher's score, measured once with the same budget and seed when
training starts (or given), logs ``eval/<task>/pct_teacher`` and ``eval/geomean_pct_teacher``
(monitor that with ``ModelCheckpoint`` to keep the best student), prints one line per
evaluation and, when fit ends, the table of the best evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info

from lightning_distill.checks import FINITE, Range, check_ranges
from lightning_distill.contracts import TeacherSource, require
from lightning_distill.errors import ConfigError
from lightning_distill.evaluation import evaluate_tasks
from lightning_distill.modules.base import RLModule
from lightning_distill.upstream import datamodule_of

#: Percentages are floored here before the geometric mean, so one zero does not erase the rest.
PCT_FLOOR = 0.1
GEOMEAN_KEY = "eval/geomean_pct_teacher"


def percent_of_teacher(student: float, teacher: float) -> float:
    """100 * student / teacher; NaN when the teacher's score is not positive."""
    return 100.0 * student / teacher if teacher > 0 else math.nan


def geometric_mean(percentages: Sequence[float]) -> float:
    """Geometric mean of percentages, each floored at ``PCT_FLOOR`` (NaNs left out)."""
    values = [max(p, PCT_FLOOR) for p in percentages if not math.isnan(p)]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def format_table(rows: list[tuple[str, float, float, float]], geomean: float) -> str:
    """task | teacher | student | % of teacher, and the geometric mean."""
    width = max(len("task"), *(len(r[0]) for r in rows))
    lines = [f"{'task':<{width}}  {'teacher':>9}  {'student':>9}  {'% of teacher':>12}"]
    lines += [f"{task:<{width}}  {t:>9.2f}  {s:>9.2f}  {p:>11.1f}%" for task, t, s, p in rows]
    lines.append(f"{'geometric mean':<{width + 24}}  {geomean:>11.1f}%")
    return "\n".join(lines)


class TeacherComparison(pl.Callback):
    """Logs % of teacher per task and the geometric mean after every evaluation.

    Args:
        teacher_scores: the teachers' scores, one per task in the data module's order;
            ``None`` measures them when training starts with the data module's evaluation
            budget (the same protocol and seed as the student's evaluations).
    """

    RANGES: ClassVar[dict[str, Range]] = {"teacher_scores": FINITE}

    def __init__(self, teacher_scores: Sequence[float] | None = None) -> None:
        check_ranges("TeacherComparison", self.RANGES, locals())
        self.teacher_scores = None if teacher_scores is None else [float(s) for s in teacher_scores]
        self.best: tuple[float, int, list[tuple[str, float, float, float]]] | None = None

    def _measure_teachers(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[float]:
        datamodule = require(datamodule_of(trainer), TeacherSource, "TeacherComparison", "give teacher_scores instead")
        teachers = [teacher.on_device(pl_module.device) for teacher in datamodule.load_teachers()]

        def act(tasks: Sequence[int], obs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
            return [teachers[i].act(o) for i, o in zip(tasks, obs, strict=True)]

        budget = datamodule.evaluation.as_kwargs()
        results = evaluate_tasks(act, datamodule.tasks, device=pl_module.device, **budget)
        for task, result in zip(datamodule.tasks, results, strict=True):
            rank_zero_info(f"teacher {task.id}: {result.mean:.2f} over {result.count} episodes")
        return [result.mean for result in results]

    def _ensure_scores(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[float]:
        num_tasks = len(require(pl_module, RLModule, "TeacherComparison").tasks)
        if self.teacher_scores is None:
            self.teacher_scores = self._measure_teachers(trainer, pl_module)
        if len(self.teacher_scores) != num_tasks:
            raise ConfigError(
                f"TeacherComparison.teacher_scores has {len(self.teacher_scores)} entries for {num_tasks} tasks"
            )
        return self.teacher_scores

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ensure_scores(trainer, pl_module)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ensure_scores(trainer, pl_module)  # ``validate`` has no fit start

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        module = require(pl_module, RLModule, "TeacherComparison")
        rows = []
        for task, teacher_score in zip(module.tasks, self._ensure_scores(trainer, pl_module), strict=True):
            result = module.last_evaluation.get(task.id)
            if result is None:
                return
            rows.append((task.id, teacher_score, result.mean, percent_of_teacher(result.mean, teacher_score)))
        geomean = geometric_mean([r[3] for r in rows])
        metrics = {f"eval/{task_id}/pct_teacher": pct for task_id, _, _, pct in rows}
        metrics[GEOMEAN_KEY] = geomean
        pl_module.log_dict(metrics, batch_size=1)
        summary = " · ".join(f"{task_id} {pct:.0f}%" for task_id, _, _, pct in rows)
        rank_zero_info(f"update {trainer.global_step}: {summary} · geometric mean {geomean:.1f}% of teacher")
        if self.best is None or geomean > self.best[0]:
            self.best = (geomean, trainer.global_step, rows)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best is not None:
            geomean, step, rows = self.best
            rank_zero_info(f"\nbest evaluation (update {step}):\n{format_table(rows, geomean)}")

    def state_dict(self) -> dict:
        """The teachers' scores and the best evaluation so far: a resumed run's final table is
        the best of the whole run."""
        return {"teacher_scores": self.teacher_scores, "best": self.best}

    def load_state_dict(self, state_dict: dict) -> None:
        self.teacher_scores = state_dict["teacher_scores"]
        best = state_dict.get("best")
        self.best = None if best is None else (float(best[0]), int(best[1]), [tuple(row) for row in best[2]])
