"""Replay memories, built on TorchRL's buffers (its pure-Python parts only: its compiled
extension does not load with torch 2.13, so nothing here may need it) and, for the exact rank
order of PR and H-PR, an index compiled by numba (``ranks``).

- ``Replay``: what a distillation config selects as ``data.replay``: ``UniformReplay``,
  ``PrioritizedReplay`` (PR) or ``HierarchicalReplay`` (H-PR). Each builds one TorchRL
  ``ReplayBuffer`` per task over a ``hierarchical.HierarchicalMemory`` (all three are modes of it).
- ``hierarchical``: H-PR whole: its state, the draw, the weights and the priority update, and
  the TorchRL ``Writer`` / ``Sampler`` that make a ``ReplayBuffer`` of it.
- ``ranks``: the numba kernels that keep each partition in exact rank order.
- ``frames``: Atari frame stacks stored once per frame (not four times per stack).
- ``memory.TaskMemory``: one task's buffer plus its observation storage, as the data module sees
  it; ``memory.TransitionMemory``: the DQN teachers' FIFO of transitions, on the same parts.
  Both checkpoint what they hold, not their capacity.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Literal

import torch

from lightning_distill.errors import ConfigError

if TYPE_CHECKING:
    from lightning_distill.contracts import FrozenTeacher
    from lightning_distill.tasks import Task

#: the paper's sampling defaults, written once (the replay configs take them from here): the
#: rank exponent alpha (Schaul et al.'s rank-based 0.7), beta annealed from 0.5 to 1, and the
#: visit window of H-PR's partition distribution
ALPHA, BETA, BETA_FINAL, WINDOW = 0.7, 0.5, 1.0, 100_000


class Replay(ABC):
    """A kind of replay memory for distillation: the config's ``data.replay`` (class_path).

    ``make_buffer`` builds one task's TorchRL buffer. Entries are TensorDicts with the
    teacher's ``teacher_logits`` and ``value`` (its state value: ``max_a Q_T(s, a)`` for a Q-teacher, its critic's
    ``V_T(s)`` for a policy) computed at insertion, plus
    either ``obs`` or nothing (when frames are stored apart, see ``frames``). A sample's info
    holds the importance weights (``_weight``) and the slots' generations
    (``index_generation``); unless uniform, the sampler takes
    ``update_priority(index, priority, generation=...)`` after every update.

    All three kinds are modes of one component (spec section 6): a ``HierarchicalMemory``.
    """

    @abstractmethod
    def make_buffer(self, task: Task, teacher: FrozenTeacher, batch_size: int, seed: int = 0):
        """One task's TorchRL buffer (the teacher is there for kinds that need its values)."""


class UniformReplay(Replay):
    """Uniform sampling from one FIFO memory per task (spec section 6; the paper's baseline).

    Args:
        capacity: experiences kept per task (the paper: 500,000).
    """

    def __init__(self, capacity: int = 500_000) -> None:
        if capacity < 1:
            raise ConfigError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = capacity

    def make_buffer(self, task: Task, teacher: FrozenTeacher, batch_size: int, seed: int = 0):
        return uniform_buffer(self.capacity, batch_size, seed)


def uniform_buffer(capacity: int, batch_size: int, seed: int = 0):
    """One FIFO of ``capacity`` slots, sampled uniformly with replacement (H-PR's memory with one
    partition and no priorities)."""
    from lightning_distill.replay.hierarchical import HierarchicalMemory, HierarchicalReplayBuffer

    return HierarchicalReplayBuffer(HierarchicalMemory(1, capacity, window=1, uniform=True, seed=seed), batch_size)


class PrioritizedReplay(Replay):
    """Rank-based prioritized replay (PR; Schaul et al. 2016): H-PR with one partition.

    Args:
        capacity: experiences kept per task.
        alpha: rank-priority exponent: ``P(k) ~ rank(k)^-alpha`` by ``|delta|`` (Schaul et al.: 0.7).
        beta: importance-sampling exponent at the start (Schaul et al.: 0.5) ...
        beta_final: ... annealed linearly to this ...
        beta_updates: ... over this many updates.

    Ranks are exact at every draw: an updated priority moves its experience at once (see
    ``hierarchical``).
    """

    def __init__(
        self,
        capacity: int = 500_000,
        alpha: float = ALPHA,
        beta: float = BETA,
        beta_final: float = BETA_FINAL,
        beta_updates: int = 1_000_000,
    ) -> None:
        if capacity < 1:
            raise ConfigError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.partitions, self.partition_capacity, self.window = 1, capacity, 1
        self.partition_by = "value"
        self.sampling: dict[str, Any] = dict(alpha=alpha, beta=beta, beta_final=beta_final, beta_updates=beta_updates)
        self.check()  # the settings now, not when training starts

    def check(self) -> None:
        from lightning_distill.replay.hierarchical import check_partition_by, check_settings

        check_settings(self.partitions, self.partition_capacity, self.window, **self.sampling)
        check_partition_by(self.partition_by)

    def memory(self, value_range: tuple[float, float] | None, seed: int):
        """One task's ``HierarchicalMemory`` with these settings."""
        from lightning_distill.replay.hierarchical import HierarchicalMemory

        value_range = value_range if self.partitions > 1 else None
        return HierarchicalMemory(
            self.partitions,
            self.partition_capacity,
            value_range,
            window=self.window,
            seed=seed,
            partition_by=self.partition_by,
            **self.sampling,
        )

    def value_range(self, task: Task, teacher: FrozenTeacher, seed: int) -> tuple[float, float] | None:
        return None

    def make_buffer(self, task: Task, teacher: FrozenTeacher, batch_size: int, seed: int = 0):
        from lightning_distill.replay.hierarchical import HierarchicalReplayBuffer

        return HierarchicalReplayBuffer(self.memory(self.value_range(task, teacher, seed), seed), batch_size)


class HierarchicalReplay(PrioritizedReplay):
    """Hierarchical prioritized replay (H-PR; Yin & Pan 2017, spec section 6).

    Experiences are split into ``partitions`` by the teacher's state value over the range seen
    while playing the teacher; a partition is drawn with the share of recent insertions that
    went to it, then an experience inside it rank-based, as in PR.

    Args:
        partitions: ``p`` (the paper: 5; 1 is PR).
        partition_capacity: experiences per partition, each its own FIFO (the paper: 200,000).
        alpha, beta, beta_final, beta_updates: as for ``PrioritizedReplay``.
        window: recent insertions over which each partition's share ``N_j`` is counted (not
            given in the paper).
        value_steps: agent steps of the teacher's own play (epsilon 0.05) that measure
            ``[V_min, V_max]`` before training.
        partition_by: ``value`` (H-PR) or ``random``: each experience to a uniformly random
            partition, the layout, capacities, window and weights the same (a control that
            separates partitioning by value from partitioning at all).
    """

    def __init__(
        self,
        partitions: int = 5,
        partition_capacity: int = 200_000,
        alpha: float = ALPHA,
        beta: float = BETA,
        beta_final: float = BETA_FINAL,
        beta_updates: int = 1_000_000,
        window: int = WINDOW,
        value_steps: int = 10_000,
        partition_by: Literal["value", "random"] = "value",
    ) -> None:
        if partitions < 1 or partition_capacity < 1 or value_steps < 1:
            raise ConfigError(
                f"partitions, partition_capacity and value_steps must be >= 1, got "
                f"{partitions}, {partition_capacity}, {value_steps}"
            )
        self.partitions, self.partition_capacity, self.window = partitions, partition_capacity, window
        self.value_steps = value_steps
        self.partition_by = partition_by
        self.sampling: dict[str, Any] = dict(alpha=alpha, beta=beta, beta_final=beta_final, beta_updates=beta_updates)
        self.check()

    def value_range(self, task: Task, teacher: FrozenTeacher, seed: int) -> tuple[float, float] | None:
        if self.partitions == 1:
            return None
        low, high = estimate_value_range(task, teacher, self.value_steps, seed)
        _log(
            f"H-PR {task.id}: teacher values in [{low:.4g}, {high:.4g}] over {self.value_steps} steps, "
            f"{self.partitions} partitions of {self.partition_capacity}"
        )
        return low, high


def estimate_value_range(task: Task, teacher: FrozenTeacher, steps: int, seed: int = 0) -> tuple[float, float]:
    """``[V_min, V_max]`` of the teacher's ``V(s)`` (``max_a Q_T(s, a)``, or a policy teacher's
    critic) over the states the teacher visits in ``steps`` agent steps of its own
    epsilon-greedy play (the evaluation protocol's)."""
    from lightning_distill.evaluation import evaluate

    values = []

    def teacher_policy(obs):
        targets, value = teacher.targets_and_value(obs)
        values.append(value)
        return targets.argmax(dim=-1)

    evaluate(teacher_policy, task, steps=steps, num_envs=min(8, steps), seed=seed, device=teacher.device)
    seen = torch.cat(values)
    return float(seen.min()), float(seen.max())


def _log(message: str) -> None:
    from lightning.pytorch.utilities import rank_zero_info

    rank_zero_info(message)
