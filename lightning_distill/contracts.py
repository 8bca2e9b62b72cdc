"""The seams between data modules, modules and callbacks, declared in one place.

A Lightning module reaches its data module through ``trainer.datamodule`` and a data module its
module through ``trainer.lightning_module``; these ``Protocol``s say what each side may use
there, so that a newcomer (and a type checker) can see the contract instead of finding it in
``getattr`` calls. Every data module of this project is an ``ExperienceSource``; the others are
offered by some only, and checked with ``isinstance`` where a component works with several.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from lightning_distill.errors import ConfigError
from lightning_distill.upstream import datamodule_of

if TYPE_CHECKING:
    import torch

    from lightning_distill.evaluation import EvalBudget
    from lightning_distill.policies import ActorCritic
    from lightning_distill.replay.memory import TaskMemory
    from lightning_distill.tasks import Task
    from lightning_distill.teachers import PolicyTeacher, Teacher


@runtime_checkable
class ExperienceSource(Protocol):
    """What every data module offers (``data.base.RLDataModule``): its tasks, the env steps taken
    (the clock of epsilon's schedule), the exploration epsilon it acts with, and the statistics
    of recent training episodes."""

    env_steps: int
    epsilon: float
    evaluation: EvalBudget  # the budget of every evaluation (and of measuring the teachers)

    @property
    def tasks(self) -> list[Task]: ...

    @property
    def steps_per_task(self) -> int: ...

    def episode_stats(self) -> dict[str, float]: ...


@runtime_checkable
class TeacherSource(ExperienceSource, Protocol):
    """A data module that loads one teacher per task (distillation): the module copies their
    feature layers into the student, ``TeacherComparison`` measures their scores."""

    def load_teachers(self) -> list[Teacher | PolicyTeacher]: ...


@runtime_checkable
class ReplaySource(ExperienceSource, Protocol):
    """A data module with one replay memory per task (distillation): the module sends each
    minibatch's new priorities back, ``WandbMedia`` logs each H-PR partition's share."""

    memories: Sequence[TaskMemory]

    def update_priority(self, task_index: int, index: torch.Tensor, priority: torch.Tensor) -> None: ...


@runtime_checkable
class RolloutSource(ExperienceSource, Protocol):
    """The REPAINT data module as the PPO module reads it: the teacher it was given, the
    student's recent training returns (``train/return``, what ``K`` is measured on) and the
    teacher's returns in the target task during the last iteration."""

    teacher_ref: str | None

    @property
    def recent_returns(self) -> Sequence[float]: ...

    @property
    def teacher_returns(self) -> Sequence[float]: ...


@runtime_checkable
class TransferLearner(Protocol):
    """What the REPAINT data module reads of the module it collects for: the actor-critic it
    acts with, which of the two transfers it uses (kickstarting needs the teacher's outputs on
    the student's states; instance transfer needs the teacher's own rollouts), and the method's
    name for messages."""

    actor_critic: ActorCritic
    kickstarts: bool
    transfers_instances: bool

    @property
    def method(self) -> str: ...


@runtime_checkable
class MultiTaskActor(Protocol):
    """What the distillation data module acts with: every task's greedy actions from one call
    (``obs[i]``: task ``i``'s observations; the actions concatenated in task order)."""

    @property
    def device(self) -> torch.device: ...

    def greedy_actions(self, obs: Sequence[torch.Tensor]) -> torch.Tensor: ...


def multi_task_actor(module: Any) -> MultiTaskActor:
    """``module`` as a ``MultiTaskActor``, or one line saying it is not one."""
    if not isinstance(module, MultiTaskActor):
        raise ConfigError(
            f"the distillation data module acts with a multi-task student (lightning_distill.modules.Distillation), "
            f"got {type(module).__name__}"
        )
    return module


Source = TypeVar("Source")


def datamodule_as(trainer: Any, contract: type[Source], needed_by: str) -> Source:
    """The trainer's data module as ``contract`` offers it, or one line saying what is missing."""
    datamodule = datamodule_of(trainer)
    if not isinstance(datamodule, contract):
        raise ConfigError(
            f"{needed_by} needs a data module that is a {contract.__name__} (see lightning_distill.contracts), "
            f"got {type(datamodule).__name__}"
        )
    return datamodule
