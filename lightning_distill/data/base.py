"""What every data module shares: the tasks, the env-step counter, training-episode statistics,
evaluation requests that drive the module's ``validation_step``, seeds per DDP rank, and the
state a resumed run needs."""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import lightning.pytorch as pl
import numpy as np
from torch.utils.data import DataLoader, IterableDataset

from lightning_distill.checks import NON_NEGATIVE, Range, check_ranges
from lightning_distill.evaluation import EvalBudget
from lightning_distill.seeding import RANK_SEED_STRIDE
from lightning_distill.tasks import Task

if TYPE_CHECKING:
    from lightning_distill.modules.base import RLModule

T = TypeVar("T")


def ready(value: T | None, what: str) -> T:
    """Something ``setup("fit")`` creates (envs, memories, teachers), or a clear error when it is
    used before: outside ``trainer.fit`` there is nothing to act in."""
    if value is None:
        raise RuntimeError(f"{what} is created by setup('fit'): use the data module through trainer.fit")
    return value


def learning_started(stored: int, learning_starts: int, batch_size: int) -> bool:
    """The rule for the first update, the same for every replay: ``learning_starts``
    experiences stored, and at least one whole minibatch."""
    return stored >= max(learning_starts, batch_size)


class RLDataModule(pl.LightningDataModule):
    """Base of the project's data modules: one environment stream per task, owned here.

    Args:
        evaluation: the budget of each evaluation (``validate``, and during ``fit`` every
            ``trainer.val_check_interval`` updates).
        seed: seed of the training environments (evaluation has its own, in ``evaluation``).
    """

    RANGES: ClassVar[dict[str, Range]] = {"seed": NON_NEGATIVE}

    def __init__(self, evaluation: EvalBudget = EvalBudget(), seed: int = 0) -> None:
        check_ranges("data.init_args", RLDataModule.RANGES, locals())
        super().__init__()
        self.evaluation = dataclasses.replace(evaluation) if evaluation is not None else EvalBudget()
        self.seed = seed
        self.env_steps = 0  # agent steps taken in training envs, summed over envs and tasks
        self.epsilon = 1.0  # exploration; set by lightning_distill.callbacks.EpsilonSchedule, uniform random until then
        self._returns: dict[str, deque[float]] = {}
        self._rng = np.random.default_rng(seed)  # exploration; re-seeded per rank in ``setup``

    @property
    def rank(self) -> int:
        """This process's DDP rank (0 without a trainer or without DDP)."""
        trainer = getattr(self, "trainer", None)
        return trainer.global_rank if trainer is not None else 0

    @property
    def rank_seed(self) -> int:
        """The seed of this rank's envs, exploration and sampling (``seed`` on rank 0)."""
        return self.seed + RANK_SEED_STRIDE * self.rank

    @property
    @abstractmethod
    def tasks(self) -> list[Task]:
        """The tasks, in the order the module indexes them."""

    @property
    def acting_module(self) -> RLModule:
        """The module being trained: the data module acts with it, live."""
        from lightning_distill.contracts import require
        from lightning_distill.modules.base import RLModule

        return require(ready(self.trainer, "the trainer").lightning_module, RLModule, type(self).__name__)

    @property
    def steps_per_task(self) -> int:
        """Agent steps per task (over its envs): the clock of schedules such as epsilon's, so
        that the paper's "first 1M steps" means the same with 1 task or 10."""
        return self.env_steps // len(self.tasks)

    def record_episodes(self, task: Task, finished: list[tuple[int, float, int]]) -> None:
        """Keep the returns of finished training episodes (the last 100 per task)."""
        returns = self._returns.setdefault(task.id, deque(maxlen=100))
        returns.extend(ret for _, ret, _ in finished)

    def episode_stats(self) -> dict[str, float]:
        """Env steps, and the mean return over the last 100 training episodes of each task (NaN
        before its first episode ends): the same keys every call, on every DDP rank."""
        stats: dict[str, float] = {"train/env_steps": float(self.env_steps)}
        for task in self.tasks:
            returns = self._returns.get(task.id)
            key = "train/return_100" if len(self.tasks) == 1 else f"train/{task.id}/return_100"
            stats[key] = float(np.mean(returns)) if returns else float("nan")
        return stats

    def val_dataloader(self) -> DataLoader:
        """One evaluation request for all tasks; the module's ``validation_step`` plays them
        together.

        Every DDP rank gets the request (an iterable, so Lightning does not shard it): each
        plays its share of the budget with its own seed, and the module pools the episodes."""
        requests = [{"tasks": list(range(len(self.tasks))), **self.evaluation.as_kwargs()}]
        return DataLoader(Requests(requests), batch_size=None, collate_fn=_as_is)

    def state_dict(self) -> dict[str, Any]:
        """Counters and statistics a resumed run continues from (Lightning stores this in
        every checkpoint; subclasses add their replay)."""
        return {
            "env_steps": self.env_steps,
            "epsilon": self.epsilon,
            "returns": {task_id: list(returns) for task_id, returns in self._returns.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.env_steps = int(state_dict["env_steps"])
        self.epsilon = float(state_dict["epsilon"])
        # rank 0 writes the checkpoint: every rank re-seeds from its own seed and the step count,
        # so that ranks keep exploring differently and a resumed run does not repeat its start
        self._rng = np.random.default_rng([self.rank_seed, self.env_steps])
        for task_id, returns in state_dict.get("returns", {}).items():
            self._returns[task_id] = deque(returns, maxlen=100)


class Requests(IterableDataset):
    """The evaluation requests, the same on every rank."""

    def __init__(self, requests: list[dict[str, Any]]) -> None:
        self.requests = requests

    def __iter__(self) -> Iterator:
        return iter(self.requests)


class Stream(IterableDataset):
    """An endless iterable over a data module's ``stream()`` of training batches (a run's
    length is ``trainer.max_steps``). It runs in the main process: acting needs the live module."""

    def __init__(self, stream: Callable[[], Iterator[Any]]) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator:
        return self.stream()


def _as_is(batch: Any) -> Any:
    """No collation: batches are built whole (TensorDicts, evaluation requests)."""
    return batch
