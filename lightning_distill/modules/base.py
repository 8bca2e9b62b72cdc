"""What every agent module shares: its tasks, greedy acting, evaluation as validation, and a
checkpoint that ``play``, ``validate`` and the teacher loader can open without a config."""

from __future__ import annotations

import importlib
import math
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.data import AttributeDict

from lightning_distill.contracts import ExperienceSource
from lightning_distill.errors import CheckpointError, ConfigError, TrainingDiverged
from lightning_distill.evaluation import EvalResult, Policy, evaluate_tasks
from lightning_distill.seeding import RANK_SEED_STRIDE
from lightning_distill.tasks import Task
from lightning_distill.upstream import datamodule_of, log_every_n_steps

if TYPE_CHECKING:
    from lightning_distill.teachers import PolicyTeacher, Teacher

CHECKPOINT_KEY = "lightning_distill"


class RLModule(pl.LightningModule):
    """Base of the project's LightningModules.

    Args:
        tasks: the tasks this agent acts in. Under the CLI they are linked from the data
            module (``data.tasks``), so a config names them once, on the data side.
    """

    def __init__(self, tasks: Sequence[Task | Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        if not tasks:
            raise ConfigError(f"{type(self).__name__} needs at least one task (got {tasks!r})")
        self.tasks: list[Task] = [Task.coerce(t) for t in tasks]
        self.last_evaluation: dict[str, EvalResult] = {}  # task id -> latest validation result
        self.evaluated_at = -1  # the update of the latest evaluation during fit
        self.restored_step: int | None = None  # the update of the checkpoint this module was loaded from

    @property
    def hparams(self) -> AttributeDict:
        """The saved constructor arguments, read as attributes (``self.hparams.lr``). Lightning
        types this as ``AttributeDict | MutableMapping``; ``save_hyperparameters`` always makes
        the former."""
        return cast(AttributeDict, super().hparams)

    def require_one_task(self) -> Task:
        """The task of a single-task agent (DQN, PPO), or one line naming the tasks given."""
        if len(self.tasks) != 1:
            raise ConfigError(
                f"{type(self).__name__} learns one task, got {len(self.tasks)}: {[t.id for t in self.tasks]}"
            )
        return self.tasks[0]

    def _save_task_hparams(self) -> None:
        """Store tasks as plain dicts: checkpoints must load with ``weights_only=True``."""
        self.hparams["tasks"] = [t.to_dict() for t in self.tasks]

    def as_teacher(self) -> Teacher | PolicyTeacher:
        """This agent, frozen, as a teacher (DQN: a Q-teacher; PPO: a policy teacher)."""
        raise CheckpointError(f"a {type(self).__name__} checkpoint cannot serve as a teacher; give a DQN or PPO one")

    @abstractmethod
    def policy(self, task_index: int = 0) -> Policy:
        """A callable from a batch of observations to the task's own greedy actions."""

    def task_index(self, task: Task | str | None) -> int:
        """Index of a task given by id (or Task); ``None`` means the only task."""
        if task is None:
            if len(self.tasks) > 1:
                raise ConfigError(
                    f"this agent serves {len(self.tasks)} tasks; choose one with --task: "
                    f"{', '.join(t.id for t in self.tasks)}"
                )
            return 0
        task_id = task.id if isinstance(task, Task) else task
        ids = [t.id for t in self.tasks]
        if task_id not in ids:
            raise ConfigError(f"task {task_id!r} is not one this agent serves; valid: {ids}")
        return ids.index(task_id)

    # -- evaluation as Lightning's validation loop -------------------------------------------

    def act_tasks(self, tasks: Sequence[int], obs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Greedy actions in several tasks (``obs[j]``: a batch of task ``tasks[j]``); evaluation
        calls it once a step. Agents whose tasks share layers run them once (``Distillation``)."""
        return [self.policy(i)(o) for i, o in zip(tasks, obs, strict=True)]

    def validation_step(self, request: dict[str, Any], batch_idx: int) -> None:
        """The evaluation request (see ``RLDataModule.val_dataloader``): every task's episodes
        played at once, in lockstep, through ``act_tasks``.

        Under DDP each rank plays its share of the budget with its own seed, and the returns of
        every rank's episodes are pooled: all ranks then hold the same result."""
        indices = [int(i) for i in request["tasks"]]
        budget = {k: request[k] for k in ("episodes", "steps", "epsilon", "num_envs", "seed")}
        world, rank = self.trainer.world_size, self.trainer.global_rank
        if world > 1:
            for key in ("episodes", "steps"):
                if budget[key] is not None:
                    budget[key] = -(-budget[key] // world)
            budget["seed"] += RANK_SEED_STRIDE * rank
        tasks = [self.tasks[i] for i in indices]
        results = evaluate_tasks(self.act_tasks, tasks, device=self.device, **budget)
        metrics: dict[str, float] = {}
        for task, result in zip(tasks, results, strict=True):
            if world > 1:
                result = self.pool_returns(result.returns)
            metrics |= {f"eval/{task.id}/return": result.mean, f"eval/{task.id}/episodes": float(result.count)}
            if len(self.tasks) == 1:
                metrics["eval/return"] = result.mean
            self.last_evaluation[task.id] = result
        if self.trainer.state.fn == "fit":
            self.evaluated_at = self.global_step
        if self.trainer.state.fn == "validate" and self.restored_step is not None:
            metrics["step"] = float(self.restored_step)  # Lightning logs at this step: the checkpoint's update
        self.log_dict(metrics, batch_size=1)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """A run ends with an evaluation of its last update: when ``max_steps`` (or ``max_epochs``)
        is not a multiple of the evaluation interval, the last one is added, so that every run
        has a result, a best checkpoint and its final table."""
        trainer = self.trainer
        if not trainer.enable_validation or self.evaluated_at == self.global_step:
            return
        if trainer.max_steps > 0 and self.global_step >= trainer.max_steps:
            trainer.should_stop = True  # Lightning evaluates before a requested stop
        elif trainer.max_steps <= 0 and trainer.current_epoch + 1 >= (trainer.max_epochs or 0) > 0:
            trainer.check_val_every_n_epoch = 1  # this (last) iteration's end evaluates

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """``all_gather`` of one tensor: every rank's, stacked along a new first dimension."""
        return cast(torch.Tensor, self.all_gather(tensor))

    def pool_returns(self, returns: list[float]) -> EvalResult:
        """Every rank's episode returns as one result (ranks finish different numbers of episodes)."""
        counts = self.gather(torch.tensor(len(returns), device=self.device)).reshape(-1)
        padded = torch.full((int(counts.max()),), float("nan"), dtype=torch.float64, device=self.device)
        padded[: len(returns)] = torch.tensor(returns, dtype=torch.float64)
        pooled = self.gather(padded).reshape(-1)
        return EvalResult.from_returns(pooled[~pooled.isnan()].tolist())

    def reduce_across_ranks(
        self, metrics: Mapping[str, float | torch.Tensor], sums: tuple[str, ...] = ()
    ) -> dict[str, float]:
        """Means over ranks (sums for the keys in ``sums``), leaving out ranks where a value is
        NaN (say, no episode finished there yet); the finite results only.

        Every rank must pass the same keys (missing values as NaN): this is one collective call."""
        keys = sorted(metrics)
        values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=self.device)
        if self._trainer is not None and self.trainer.world_size > 1:
            gathered = self.gather(values).reshape(self.trainer.world_size, len(keys))
            mean = gathered.nanmean(dim=0)
            total = gathered.nan_to_num().sum(dim=0)
            values = torch.where(torch.tensor([k in sums for k in keys], device=self.device), total, mean)
        return {k: float(v) for k, v in zip(keys, values.tolist(), strict=True) if math.isfinite(v)}

    def check_finite(self, loss: torch.Tensor, parts: Mapping[str, torch.Tensor] | None = None) -> None:
        """Stop the run with one line when ``loss`` is NaN or infinite, before its gradients
        reach the weights: every checkpoint written so far stays a good one.

        ``parts`` (name -> value) say which term went bad."""
        if bool(torch.isfinite(loss)):
            return
        bad = [
            f"{name}={float(value):.4g}"
            for name, value in (parts or {}).items()
            if not bool(torch.isfinite(torch.as_tensor(value)))
        ]
        last = self.newest_checkpoint()
        raise TrainingDiverged(
            f"the loss became {float(loss.detach())} at update {self.global_step}"
            + (f" ({', '.join(bad)})" if bad else "")
            + "; stopped before applying it, the last checkpoint "
            + (f"{last!r} holds finite weights" if last else "was not written yet")
            + "; lower model.init_args.lr (or check the teachers' outputs) and resume with --ckpt_path"
        )

    def newest_checkpoint(self) -> str:
        """The run's resume point: the newest ``last`` checkpoint of its ``ModelCheckpoint``
        callbacks, else the newest best one ('' if none was written)."""
        callbacks = self._trainer.checkpoint_callbacks if self._trainer is not None else []
        for kind in ("last_model_path", "best_model_path"):
            written = [Path(getattr(cb, kind)) for cb in callbacks if getattr(cb, kind)]
            written = [p for p in written if p.is_file()]
            if written:
                return str(max(written, key=lambda p: p.stat().st_mtime_ns))
        return ""

    def should_log(self, after_update: bool = False) -> bool:
        """True on the updates whose values the logger writes: ``self.log`` costs ~1 ms a call,
        too much to pay every update of a small network.

        Lightning writes a row after update ``k`` (1-based) when ``k % log_every_n_steps == 0``;
        ``global_step`` is ``k - 1`` before the optimizer step (``training_step``,
        ``on_train_batch_start``) and ``k`` after it (``after_update``: ``on_train_batch_end``).
        Logging on other updates would leave a value that the next row writes, stale."""
        trainer = self.trainer
        update = self.global_step if after_update else self.global_step + 1
        return trainer.logger is not None and update % log_every_n_steps(trainer) == 0

    def log_episode_stats(self) -> None:
        """Log env steps (summed over ranks) and the mean return of recent training episodes."""
        datamodule = datamodule_of(self.trainer)
        if not isinstance(datamodule, ExperienceSource):  # a documented skip: a data module of the user's own
            return
        stats = self.reduce_across_ranks(datamodule.episode_stats(), sums=("train/env_steps",))
        if stats:
            self.log_dict(stats, batch_size=1)

    # -- checkpoints ----------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from lightning_distill.loggers import run_identity

        cls = type(self)
        checkpoint[CHECKPOINT_KEY] = {
            "class_path": f"{cls.__module__}.{cls.__qualname__}",
            "tasks": [t.to_dict() for t in self.tasks],
            "run": run_identity(self.trainer.loggers) if self._trainer is not None else {},
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.restored_step = int(checkpoint.get("global_step", 0))


def load_agent(ckpt_path: str | Path, map_location: str | torch.device = "cpu") -> RLModule:
    """Any checkpoint this project writes, as its module, in eval mode, with no config needed."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {str(path)!r}")
    checkpoint = read_checkpoint_dict(path)
    cls = module_class(checkpoint[CHECKPOINT_KEY]["class_path"])
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    for private in ("_instantiator", "_class_path"):
        hparams.pop(private, None)
    agent = cls(**hparams)
    agent.on_load_checkpoint(checkpoint)
    agent.load_state_dict(checkpoint["state_dict"])
    return agent.to(map_location).eval()


def module_class(class_path: str) -> type[RLModule]:
    """The module class a checkpoint's metadata names."""
    module_name, _, class_name = class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def read_checkpoint_dict(path: str | Path) -> dict[str, Any]:
    """A checkpoint this project wrote (memory-mapped), with one-line errors."""
    from lightning_distill.runs import load_checkpoint_dict

    checkpoint = load_checkpoint_dict(path, flag="")
    if CHECKPOINT_KEY not in checkpoint:
        raise CheckpointError(
            f"{str(path)!r} is not a lightning_distill checkpoint (no {CHECKPOINT_KEY!r} entry); "
            "import other formats with lightning_distill.teachers.load_teacher"
        )
    return checkpoint
