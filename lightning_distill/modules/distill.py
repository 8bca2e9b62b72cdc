"""Multi-task policy distillation (Yin & Pan 2017; spec sections 3-5): one student, many teachers.

A training batch is a list with one minibatch per task (from ``DistillDataModule``). The loss
is the sum over tasks of each task's weighted distillation loss; after the forward pass the
sampled experiences' priorities ``|delta|`` go back to the task's replay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
from tensordict import TensorDict

from lightning_distill.checks import AT_LEAST_1, NON_NEGATIVE, POSITIVE, UNIT, Range, check_ranges
from lightning_distill.contracts import FrozenTeacher, ReplaySource, TeacherSource, require
from lightning_distill.errors import ConfigError
from lightning_distill.evaluation import Policy
from lightning_distill.losses import LOSSES, distillation_loss
from lightning_distill.modules.base import CHECKPOINT_KEY, RLModule
from lightning_distill.networks import EXTRACTOR_HIDDEN, encoder_spec
from lightning_distill.students import Student, make_student
from lightning_distill.tasks import Task
from lightning_distill.upstream import datamodule_of


class Distillation(RLModule):
    """The multi-task student, trained on teacher outputs stored in replay.

    Args:
        tasks: the tasks (linked from ``data.tasks`` by the CLI).
        architecture: ``proposed`` (per-task extractors + shared FC), ``dist`` or ``amn``.
        head_hidden: widths of the FC layers after the features; ``auto`` is the paper's:
            proposed [1028, 512] shared, dist [512] per task, amn [512] shared.
        extractor_hidden: widths of MLP extractors (vector observations). With
            ``init_from_teachers`` each task's extractor takes its teacher's shape instead.
        loss: ``kl`` (the paper's), ``mse`` or ``nll`` (Rusu et al.'s alternatives).
        tau: temperature of a Q-value teacher's softmax in the KL loss (0.01, the paper's:
            sharpens it towards the greedy action).
        policy_tau: temperature of a policy teacher's softmax (1: the teacher's own distribution).
        lr: RMSProp learning rate.
        rmsprop_alpha: RMSProp's smoothing constant.
        rmsprop_eps: RMSProp's epsilon.
        init_from_teachers: proposed only: copy each teacher's feature layers into its
            task's extractor when training starts (the paper's initialisation).
        freeze_extractors: proposed only: keep the task extractors fixed (the paper trains
            them end to end; freezing is an ablation).
        channels_last: keep the convolutions' weights in channels-last memory format. Measured
            (``benchmarks/network_options.py``): 1.2x Atari updates on a 2-core Xeon, 2.0x with
            ``trainer.precision: bf16-mixed``; no gain at MinAtar's size.
    """

    RANGES: ClassVar[dict[str, Range]] = {
        "head_hidden": AT_LEAST_1,
        "extractor_hidden": AT_LEAST_1,
        "tau": POSITIVE,
        "policy_tau": POSITIVE,
        "lr": POSITIVE,
        "rmsprop_alpha": UNIT,
        "rmsprop_eps": NON_NEGATIVE,
    }

    def __init__(
        self,
        tasks: Sequence[Task | Mapping[str, Any]] | None = None,
        architecture: str = "proposed",
        head_hidden: Sequence[int] | Literal["auto"] = "auto",
        extractor_hidden: Sequence[int] = EXTRACTOR_HIDDEN,
        loss: str = "kl",
        tau: float = 0.01,
        policy_tau: float = 1.0,
        lr: float = 1e-4,
        rmsprop_alpha: float = 0.99,
        rmsprop_eps: float = 1e-6,
        init_from_teachers: bool = True,
        freeze_extractors: bool = False,
        channels_last: bool = False,
    ) -> None:
        check_ranges("model.init_args", self.RANGES, locals())
        super().__init__(tasks)
        if loss not in LOSSES:
            raise ConfigError(f"unknown loss {loss!r}; valid: {list(LOSSES)}")
        self.save_hyperparameters(ignore=["tasks"])
        self._save_task_hparams()
        if (init_from_teachers or freeze_extractors) and architecture != "proposed":
            raise ConfigError(
                f"init_from_teachers / freeze_extractors need per-task extractors: architecture "
                f"{architecture!r} has a shared one; use proposed, or set both to false"
            )
        self.student = self.build_student()
        self.temperatures: list[float] = []  # per task, its teacher's tau: set when a fit starts

    def build_student(self, extractor_specs: Sequence[dict[str, Any]] | None = None) -> Student:
        """The student of the hyperparameters; ``extractor_specs`` (``networks.encoder_spec``)
        give the proposed student's per-task extractors another shape (their teachers')."""
        head_hidden = self.hparams.head_hidden
        student = make_student(
            self.hparams.architecture,
            self.tasks,
            None if head_hidden == "auto" else head_hidden,
            tuple(self.hparams.extractor_hidden),
            extractor_specs,
        )
        if self.hparams.freeze_extractors:
            for extractor in student.per_task_extractors() or []:
                extractor.requires_grad_(False)
        if self.hparams.get("channels_last", False):
            student = student.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # not in the stubs
        return student

    def forward(self, obs: torch.Tensor, task_index: int = 0) -> torch.Tensor:
        """Q-values over the task's own actions."""
        return self.student(obs, task_index)

    def policy(self, task_index: int = 0) -> Policy:
        return lambda obs: self.student(obs, task_index).argmax(dim=-1)

    def act_tasks(self, tasks: Sequence[int], obs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The tasks' greedy actions from one student call over all of them (collection's and
        evaluation's acting path)."""
        return [q.argmax(dim=-1) for q in self.student.forward_tasks(obs, tasks)]

    def setup(self, stage: str) -> None:
        """Fresh fits start from the teachers' features (a resumed fit then loads its checkpoint)."""
        if stage != "fit":
            return
        datamodule = require(
            datamodule_of(self.trainer), TeacherSource, "Distillation", "use lightning_distill.data.DistillDataModule"
        )
        teachers = datamodule.load_teachers()
        self.temperatures = [t.temperature(self.hparams.tau, self.hparams.policy_tau) for t in teachers]
        if self.hparams.init_from_teachers:
            self.copy_teacher_features(teachers)

    def tau_of(self, task_index: int) -> float:
        """The temperature of the task's teacher (``FrozenTeacher.temperature``): ``tau`` for
        Q-values, ``policy_tau`` for a policy. Known once ``setup("fit")`` has loaded them."""
        if not self.temperatures:
            raise RuntimeError(
                "Distillation.tau_of: the teachers are loaded by setup('fit'); train through trainer.fit"
            )
        return self.temperatures[task_index]

    def copy_teacher_features(self, teachers: Sequence[FrozenTeacher]) -> None:
        """Each task's extractor becomes a copy of its teacher's feature layers, in the teacher's
        shape (the paper's initialisation): no width needs repeating in the config."""
        specs = []
        for task, teacher in zip(self.tasks, teachers, strict=True):
            try:
                specs.append(encoder_spec(teacher.feature_layers()))
            except ConfigError as exc:
                raise ConfigError(
                    f"the teacher of {task.id!r} cannot initialise an extractor: {exc}; "
                    "set model.init_args.init_from_teachers: false"
                ) from None
        if specs != self.student.extractor_specs():
            self.student = self.build_student(specs)
        for extractor, teacher in zip(self.student.per_task_extractors() or [], teachers, strict=True):
            extractor.load_state_dict(teacher.feature_layers().state_dict())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[CHECKPOINT_KEY]["extractors"] = self.student.extractor_specs()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Extractors shaped by their teachers are rebuilt in that shape before the weights load."""
        super().on_load_checkpoint(checkpoint)
        specs = (checkpoint.get(CHECKPOINT_KEY) or {}).get("extractors")
        if specs is not None and specs != self.student.extractor_specs():
            self.student = self.build_student(specs)

    def training_step(self, batch: list[TensorDict], batch_idx: int) -> torch.Tensor:
        datamodule = require(datamodule_of(self.trainer), ReplaySource, "Distillation")
        log = self.should_log()
        metrics: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=self.device)
        q_students = self.student.forward_tasks([minibatch["obs"] for minibatch in batch])
        for i, (minibatch, q_student) in enumerate(zip(batch, q_students, strict=True)):
            out = distillation_loss(
                q_student, minibatch["teacher_logits"], self.hparams.loss, self.tau_of(i), minibatch["weight"]
            )
            total = total + out.loss
            datamodule.update_priority(i, minibatch["index"], minibatch["index_generation"], out.priority)
            metrics[f"train/{self.tasks[i].id}/loss"] = out.loss.detach()
            if log:
                metrics[f"train/{self.tasks[i].id}/priority"] = out.priority.mean()
        self.check_finite(total, metrics)
        if log:
            metrics["train/loss"] = total.detach()
            for task, memory in zip(self.tasks, datamodule.memories, strict=True):
                metrics |= {
                    f"replay/{task.id}/{k}": torch.tensor(v, dtype=torch.float32)
                    for k, v in memory.hpr.statistics().items()
                }
            self.log_dict(metrics, batch_size=len(batch[0]["obs"]), sync_dist=True)
            self.log_episode_stats()
        return total

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.student.parameters() if p.requires_grad]
        # foreach: one kernel per step for all parameters (the same numbers, ~6% faster updates on CPU)
        return torch.optim.RMSprop(
            params, lr=self.hparams.lr, alpha=self.hparams.rmsprop_alpha, eps=self.hparams.rmsprop_eps, foreach=True
        )
