"""The hierarchical prioritized sampler (H-PR; Yin & Pan 2017, spec section 6, steps 3-6).

A minibatch is drawn in two levels:

1. a partition ``j`` with probability ``P_j = N_j / sum_k N_k``, ``N_j`` the experiences that
   went to ``j`` among the last ``window`` insertions (sampling follows the state-visit
   distribution);
2. the experience of rank ``r`` inside it with ``P_j[r] = r^-alpha / sum_t t^-alpha`` (Schaul
   et al.'s rank-based priority; ranks by the current ``|delta|``, descending, ties by slot).

Each sample's weight is ``w = (N * P_j * P_j[r])^-beta / max w`` (``N`` the experiences in the
memory), with ``beta`` annealed linearly to ``beta_final``.

The guarantee: the ranks are exact at every draw, under any interleaving of ``extend``,
``sample`` and ``update_priority``. Each partition's experiences are held in rank order by an
order-statistic index (``ranks``: a blocked sorted list with a Fenwick tree over its blocks,
compiled by numba), which finds the experience of rank ``r`` and moves an experience to its
new priority in ``O(log C)``. A new experience enters with the largest priority seen so far;
a priority for an experience evicted since it was drawn is dropped (its slot's generation
moved on).

Special cases: ``partitions=1`` is rank-based PR; ``uniform=True`` ignores priorities and
draws uniformly over all stored experiences (the spec's "one partition per experience").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchrl.data.replay_buffers.samplers import Sampler

from lightning_distill.errors import ConfigError
from lightning_distill.replay import ALPHA, BETA, BETA_FINAL, WINDOW, ranks
from lightning_distill.replay.writer import check_layout


class HierarchicalSampler(Sampler):
    """Samples slots of a ``PartitionWriter`` storage (partition ``j`` = slots ``[j*C, (j+1)*C)``).

    Args:
        partitions: ``p``, as the writer's.
        capacity: ``C``, slots per partition, as the writer's.
        alpha: rank-priority exponent (Schaul et al.'s rank-based value, 0.7).
        beta: importance-sampling exponent at the start (0.5) ...
        beta_final: ... annealed linearly to this (1.0) ...
        beta_updates: ... over this many samples (minibatches).
        window: insertions over which ``N_j`` is counted.
        uniform: ignore priorities and partitions: uniform over what is stored.
        seed: of the sampler's own random stream (saved with its state).
    """

    def __init__(
        self,
        partitions: int,
        capacity: int,
        alpha: float = ALPHA,
        beta: float = BETA,
        beta_final: float = BETA_FINAL,
        beta_updates: int = 1_000_000,
        window: int = WINDOW,
        uniform: bool = False,
        seed: int = 0,
    ) -> None:
        if min(partitions, capacity, window) < 1:
            raise ConfigError(f"partitions, capacity and window must be >= 1, got {partitions}, {capacity}, {window}")
        if alpha < 0 or not 0 <= beta <= 1 or not 0 <= beta_final <= 1 or beta_updates < 0:
            raise ConfigError(
                f"need alpha >= 0, beta and beta_final in [0, 1], beta_updates >= 0; got "
                f"alpha={alpha}, beta={beta}, beta_final={beta_final}, beta_updates={beta_updates}"
            )
        self.partitions, self.capacity = partitions, capacity
        self.alpha, self.beta, self.beta_final, self.beta_updates = alpha, beta, beta_final, beta_updates
        self.window, self.uniform = window, uniform
        # sum_{t <= r} t^-alpha for r = 1..C: the unnormalised rank CDF of every partition
        self.rank_mass = np.cumsum(np.arange(1, (1 if uniform else capacity) + 1, dtype=np.float64) ** -alpha)
        self.rank_guide = ranks.rank_search_guide(self.rank_mass)
        self._seed = seed
        self._empty()

    # ---- state -------------------------------------------------------------------------------
    def _empty(self) -> None:
        slots = self.partitions * self.capacity
        self.priority = np.zeros(slots, dtype=np.float32)  # |delta| per slot
        self.generation = np.zeros(slots, dtype=np.int32)  # writes per slot: stale updates are dropped
        self.sizes = np.zeros(self.partitions, dtype=np.int64)
        self.index = None if self.uniform else ranks.empty_index(self.partitions, self.capacity)
        self.recent = np.full(self.window, -1, dtype=np.int64)  # partitions of the last insertions (ring)
        self.recent_pos = 0
        self.visits = np.zeros(self.partitions, dtype=np.int64)  # N_j over the window
        self.max_priority = 1.0
        self.samples = 0
        self.rng = np.random.default_rng(self._seed)

    _ARRAYS = ("priority", "generation", "sizes", "recent", "visits")

    def state_dict(self) -> dict[str, Any]:
        """Priorities and write counts per slot, the window, the counters and the random stream:
        the rank index is a function of the priorities, and is rebuilt from them on load."""
        state: dict[str, Any] = {name: torch.from_numpy(getattr(self, name).copy()) for name in self._ARRAYS}
        state.update(
            layout=[self.partitions, self.capacity, self.window],
            recent_pos=self.recent_pos,
            max_priority=self.max_priority,
            samples=self.samples,
            rng=self.rng.bit_generator.state,
        )
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        check_layout(state_dict["layout"], (self.partitions, self.capacity, self.window))
        for name in self._ARRAYS:
            setattr(self, name, state_dict[name].numpy().copy())
        self.recent_pos, self.samples = int(state_dict["recent_pos"]), int(state_dict["samples"])
        self.max_priority = float(state_dict["max_priority"])
        self.rng.bit_generator.state = state_dict["rng"]
        if self.index is not None:
            self.index = ranks.empty_index(self.partitions, self.capacity)
            ranks.rebuild(self.index, self.priority.view(np.int32), self.generation > 0, self.capacity)

    def dumps(self, path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path / "sampler.pt")

    def loads(self, path) -> None:
        self.load_state_dict(torch.load(Path(path) / "sampler.pt", weights_only=True))

    @property
    def nbytes(self) -> int:
        """Bytes of the sampler's own state (priorities, write counts, rank index, window)."""
        index = ranks.index_nbytes(self.index) if self.index is not None else 0
        return index + sum(getattr(self, name).nbytes for name in self._ARRAYS)

    # ---- insertion ---------------------------------------------------------------------------
    def extend(self, index: torch.Tensor) -> None:
        slots = np.asarray(index, dtype=np.int64).reshape(-1)
        parts = slots // self.capacity
        self.sizes = np.minimum(self.sizes + np.bincount(parts, minlength=self.partitions), self.capacity)
        if self.index is None:  # uniform: no ranks, and no partition shares to count
            self.generation[slots] += 1
            return
        bits = np.float32(self.max_priority).view(np.int32)
        ranks.write(self.index, slots, self.priority.view(np.int32), self.generation, self.capacity, bits)
        self._count_visits(parts)

    def add(self, index: int) -> None:
        self.extend(torch.as_tensor([index]))

    def _count_visits(self, parts: np.ndarray) -> None:
        """Slide the window of insertions forward over ``parts``; keep ``N_j`` in step."""
        parts = parts[-self.window :]
        ring = (self.recent_pos + np.arange(len(parts))) % self.window
        left = self.recent[ring]
        self.visits -= np.bincount(left[left >= 0], minlength=self.partitions)
        self.visits += np.bincount(parts, minlength=self.partitions)
        self.recent[ring] = parts
        self.recent_pos = (self.recent_pos + len(parts)) % self.window

    # ---- sampling ----------------------------------------------------------------------------
    @property
    def current_beta(self) -> float:
        done = min(1.0, self.samples / self.beta_updates) if self.beta_updates else 1.0
        return self.beta + (self.beta_final - self.beta) * done

    def sample(self, storage, batch_size: int) -> tuple[torch.Tensor, dict]:
        if not self.sizes.any():
            raise RuntimeError("cannot sample from an empty replay memory")
        if self.index is None:
            slots = self._uniform_slots(batch_size)
            weight, seen = np.ones(batch_size, dtype=np.float32), self.generation[slots]
        else:
            u = self.rng.random((2, batch_size))
            slots, weight, seen = ranks.draw_ranked(
                self.index,
                u,
                self.visits,
                self.rank_mass,
                self.rank_guide,
                self.current_beta,
                self.generation,
                self.capacity,
            )
        self.samples += 1
        return torch.from_numpy(slots), {"_weight": weight, "index_generation": seen}

    def _uniform_slots(self, batch_size: int) -> np.ndarray:
        """Uniform over the stored experiences: the ``u``-th stored one, partition by partition."""
        ends = np.cumsum(self.sizes)
        u = self.rng.integers(0, ends[-1], batch_size)
        part = np.searchsorted(ends, u, side="right")
        return part * self.capacity + u - (ends[part] - self.sizes[part])

    def ranked_slots(self, partition: int) -> np.ndarray:
        """The slots of a partition's experiences, rank 1 first (for tests and inspection)."""
        if self.index is None:
            raise RuntimeError("a uniform sampler holds no ranks")
        return ranks.ranked_keys(self.index, partition) & 0xFFFFFFFF

    # ---- priorities --------------------------------------------------------------------------
    def update_priority(self, index, priority, *, storage=None, generation=None) -> None:
        """Set the sampled experiences' new ``|delta|``, moving each to its rank at once. With
        ``generation`` (from the sample's ``index_generation``), slots rewritten since they were
        sampled keep their new occupant's priority; non-finite priorities are ignored."""
        if self.index is None:
            return
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        priority = np.asarray(priority, dtype=np.float32).reshape(-1)
        seen = self.generation[index] if generation is None else np.asarray(generation, dtype=np.int32).reshape(-1)
        largest = ranks.reprioritise(
            self.index,
            index,
            priority.view(np.int32),
            seen,
            self.priority.view(np.int32),
            self.generation,
            self.capacity,
        )
        self.max_priority = max(self.max_priority, float(np.int32(largest).view(np.float32)))

    @property
    def default_priority(self) -> float:
        return self.max_priority

    def __repr__(self) -> str:
        mode = "uniform" if self.uniform else f"alpha={self.alpha}, beta={self.beta}->{self.beta_final}"
        return f"HierarchicalSampler(partitions={self.partitions}, capacity={self.capacity}, {mode})"
