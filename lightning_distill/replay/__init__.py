"""Replay memories, built on TorchRL's buffers (pure Python/torch parts only: its compiled
extension does not load with torch 2.13, so nothing here may need it).

- ``make_uniform_replay``: the DQN teachers' FIFO memory of whole transitions.
- ``Replay`` / ``UniformReplay``: what a distillation config selects as ``data.replay``; it
  builds one TorchRL buffer per task. Prioritized kinds subclass ``Replay``.
- ``frames``: Atari frame stacks stored once per frame (not four times per stack).
- ``memory.TaskMemory``: one task's buffer plus its observation storage, as the data module sees it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from lightning_distill.errors import ConfigError

if TYPE_CHECKING:
    from lightning_distill.tasks import Task
    from lightning_distill.teachers import Teacher


def make_uniform_replay(capacity: int, batch_size: int):
    """A FIFO memory of ``capacity`` transitions (TensorDicts), sampled uniformly with replacement.

    Storage grows lazily to ``capacity`` on the first write of each key, so memory follows
    what is stored: ~1.3 KB a transition for MinAtar, ~56 KB for Atari 4x84x84 obs + next obs.
    """
    if capacity < 1 or batch_size < 1:
        raise ConfigError(f"replay capacity and batch size must be >= 1, got {capacity} and {batch_size}")
    from torchrl.data import LazyTensorStorage, RandomSampler, TensorDictReplayBuffer

    return TensorDictReplayBuffer(
        storage=LazyTensorStorage(capacity), sampler=RandomSampler(), batch_size=batch_size
    )


class Replay(ABC):
    """A kind of replay memory for distillation: the config's ``data.replay`` (class_path).

    ``make_buffer`` builds one task's TorchRL buffer. Entries are TensorDicts with the
    teacher's ``q_teacher`` and ``value`` (V(s) = max_a Q_T(s, a)) computed at insertion, plus
    either ``obs`` or nothing (when frames are stored apart, see ``frames``). Samplers that
    prioritise read ``update_priority(index, priority)`` after every update; samplers that
    importance-weight return ``_weight`` with the sample.
    """

    capacity: int  # buffer slots per task
    prioritized: bool = False  # whether the sampler reads priorities after each update

    @abstractmethod
    def make_buffer(self, task: "Task", teacher: "Teacher", batch_size: int):
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

    def make_buffer(self, task: "Task", teacher: "Teacher", batch_size: int):
        from torchrl.data import LazyTensorStorage, RandomSampler, ReplayBuffer

        # the plain ReplayBuffer: its extend costs a third of TensorDictReplayBuffer's, and
        # TaskMemory samples through the sampler and storage itself
        return ReplayBuffer(storage=LazyTensorStorage(self.capacity, device="cpu"), sampler=RandomSampler(),
                            batch_size=batch_size)
