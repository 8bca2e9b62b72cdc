"""Replay memories, built on TorchRL's buffers (pure Python/torch parts only: its compiled
extension does not load with torch 2.13, so nothing here may need it)."""

from __future__ import annotations

from lightning_distill.errors import ConfigError


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
