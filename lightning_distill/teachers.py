"""Teachers: trained agents, frozen, behind one interface.

A Q-teacher (DQN) gives Q-values over its task's own actions and ``V(s) = max_a Q(s, a)``,
the state value that H-PR partitions the replay by.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lightning_distill.errors import CheckpointError
from lightning_distill.tasks import Task


class Teacher(nn.Module):
    """A frozen Q-network for one task: ``q_values``, ``value`` and greedy ``act``.

    Frozen means eval mode and ``requires_grad=False`` (DDP would otherwise complain about
    parameters that get no gradient).
    """

    def __init__(self, network: nn.Module, task: Task) -> None:
        super().__init__()
        self.network = network
        self.task = task
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "Teacher":
        return super().train(False)  # a teacher never leaves eval mode

    @torch.no_grad()
    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values over the task's own actions, shape [batch, task.num_actions]."""
        return self.network(obs)

    forward = q_values

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``V(s) = max_a Q(s, a)``, shape [batch]."""
        return self.q_values(obs).max(dim=-1).values

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_values(obs).argmax(dim=-1)


def check_fits(task: Task, expected: Task, source: str) -> None:
    """Fail with one line when a teacher's actions or inputs differ from the task's."""
    if task.num_actions != expected.num_actions or tuple(task.obs_shape) != tuple(expected.obs_shape):
        raise CheckpointError(
            f"teacher {source!r} does not fit task {expected.id!r}: the teacher has "
            f"{task.num_actions} actions and input {tuple(task.obs_shape)}, the task has "
            f"{expected.num_actions} actions and input {tuple(expected.obs_shape)}"
        )


def load_teacher(path: str | Path, task: Task | str | None = None) -> Teacher:
    """A frozen teacher from a checkpoint of this project's DQN.

    ``task``, when given, is the task the teacher will be used on; a teacher whose action
    count or input shape differs fails here with one line naming both.
    """
    from lightning_distill.modules.base import load_agent

    agent = load_agent(path)
    if not hasattr(agent, "as_teacher"):
        raise CheckpointError(f"{str(path)!r} holds a {type(agent).__name__}, which cannot serve as a teacher")
    teacher = agent.as_teacher()
    if task is not None:
        task = Task.coerce(task)
        check_fits(teacher.task, task, str(path))
        teacher.task = task
    return teacher
