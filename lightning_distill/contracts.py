"""The seams between data modules, modules and callbacks, declared in one place.

A Lightning module reaches its data module through ``trainer.datamodule`` and a data module its
module through ``trainer.lightning_module``; these ``Protocol``s say what each side may use
there, so that a newcomer (and a type checker) can see the contract instead of finding it in
``getattr`` calls. Every data module of this project is an ``ExperienceSource``; the others are
offered by some only, and checked with ``isinstance`` where a component works with several.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from lightning_distill.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from lightning_distill.evaluation import EvalBudget
    from lightning_distill.policies import ActorCritic
    from lightning_distill.replay.memory import TaskMemory
    from lightning_distill.tasks import Task


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
class FrozenTeacher(Protocol):
    """A teacher as distillation uses it, whatever its kind (``teachers.Teacher``: a DQN's
    Q-values; ``teachers.PolicyTeacher``: an actor-critic's logits and critic).

    ``targets_and_value``: the logits of the student's target ``softmax(logits / tau)`` and the
    state value ``V(s)`` that places an experience in an H-PR partition; ``temperature``: which
    of the module's temperatures applies (``tau`` for Q-values, ``policy_tau`` for a policy);
    ``feature_layers``: what the proposed student's task extractor is initialised from."""

    task: Task

    def targets_and_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def value(self, obs: torch.Tensor) -> torch.Tensor: ...

    def act(self, obs: torch.Tensor) -> torch.Tensor: ...

    def temperature(self, tau: float, policy_tau: float) -> float: ...

    def feature_layers(self) -> nn.Module: ...

    @property
    def device(self) -> torch.device: ...

    def on_device(self, device: torch.device) -> FrozenTeacher: ...


@runtime_checkable
class TeacherSource(ExperienceSource, Protocol):
    """A data module that loads one teacher per task (distillation): the module copies their
    feature layers into the student, ``TeacherComparison`` measures their scores."""

    def load_teachers(self) -> list[FrozenTeacher]: ...


@runtime_checkable
class ReplaySource(ExperienceSource, Protocol):
    """A data module with one replay memory per task (distillation): the module sends each
    minibatch's new priorities back, ``WandbMedia`` logs each H-PR partition's share."""

    memories: Sequence[TaskMemory]

    def update_priority(
        self, task_index: int, index: torch.Tensor, generation: torch.Tensor, priority: torch.Tensor
    ) -> None: ...


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
    """What the distillation data module acts with: the greedy actions in several tasks from one
    call (``obs[j]``: a batch of task ``tasks[j]``), as evaluation acts (``RLModule.act_tasks``)."""

    @property
    def device(self) -> torch.device: ...

    def act_tasks(self, tasks: Sequence[int], obs: Sequence[torch.Tensor]) -> list[torch.Tensor]: ...


Contract = TypeVar("Contract")


def require(obj: object, contract: type[Contract], needed_by: str, hint: str = "") -> Contract:
    """``obj`` as ``contract`` offers it, or one line saying what ``needed_by`` needs and got.

    The one way across a seam: where a side that does not offer a contract is an error, this;
    where it is a documented skip (logging a statistic a data module may not keep), a plain
    ``isinstance`` with the skip said in a comment. ``hint``: what to do instead, if anything."""
    if not isinstance(obj, contract):
        raise ConfigError(
            f"{needed_by} needs a {contract.__name__} (see lightning_distill.contracts), "
            f"got {type(obj).__name__}" + (f"; {hint}" if hint else "")
        )
    return obj
