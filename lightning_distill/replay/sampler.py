"""The hierarchical prioritized sampler (H-PR; Yin & Pan 2017, spec section 6, steps 3-6).

A minibatch is drawn in two levels, vectorised over the batch (no Python loop over items or
partitions):

1. a partition ``j`` with probability ``P_j = N_j / sum_k N_k``, ``N_j`` the experiences that
   went to ``j`` among the last ``window`` insertions (sampling follows the state-visit
   distribution);
2. an experience of rank ``r`` inside it with ``P_j[r] = r^-alpha / sum_t t^-alpha`` (Schaul
   et al.'s rank-based priority, ranks by ``|delta|`` descending): ``r`` is found by
   ``searchsorted`` of a uniform draw in one shared prefix sum of ``t^-alpha``.

Each sample's weight is ``w = (N * P_j * P_j[r])^-beta / max w`` (``N`` the experiences in the
memory), with ``beta`` annealed linearly to ``beta_final``.

Rank order: each partition keeps its slots in rank order (``order``, a ring whose start is
``head``), re-sorted by priority every ``sort_every`` samples (``K``, Schaul et al.'s
approximation; ~40 ms at 1M experiences). Between sorts:

- a new experience enters at rank 1 with the maximum priority (so it is seen soon), and the
  other ranks shift down by one, as in an exact sort, except that the lowest-ranked
  experience of a full partition takes the evicted one's place;
- an updated priority moves its experience to the rank that priority had at the last sort,
  swapping places with the experience there (the O(1) stand-in for the sift of Schaul et al.'s
  heap), after ``move_every`` minibatches' updates, all in one vectorised move.

Draws, probabilities and weights are exact for the order held.

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
        sort_every: samples between two re-sorts of the rank order (``K``).
        move_every: priority updates gathered before their experiences move to their ranks
            (one vectorised move for several minibatches costs a fraction of one per minibatch).
        uniform: ignore priorities and partitions: uniform over what is stored.
        seed: of the sampler's own random stream (saved with its state).
    """

    def __init__(
        self,
        partitions: int,
        capacity: int,
        alpha: float = 0.7,
        beta: float = 0.5,
        beta_final: float = 1.0,
        beta_updates: int = 1_000_000,
        window: int = 100_000,
        sort_every: int = 5000,
        move_every: int = 8,
        uniform: bool = False,
        seed: int = 0,
    ) -> None:
        if min(partitions, capacity, window, sort_every, move_every) < 1:
            raise ConfigError(
                f"partitions, capacity, window, sort_every and move_every must be >= 1, got "
                f"{partitions}, {capacity}, {window}, {sort_every}, {move_every}"
            )
        if alpha < 0 or not 0 <= beta <= 1 or not 0 <= beta_final <= 1 or beta_updates < 0:
            raise ConfigError(
                f"need alpha >= 0, beta and beta_final in [0, 1], beta_updates >= 0; got "
                f"alpha={alpha}, beta={beta}, beta_final={beta_final}, beta_updates={beta_updates}"
            )
        self.partitions, self.capacity = partitions, capacity
        self.alpha, self.beta, self.beta_final, self.beta_updates = alpha, beta, beta_final, beta_updates
        self.window, self.sort_every, self.move_every, self.uniform = window, sort_every, move_every, uniform
        # sum_{t <= r} t^-alpha for r = 1..C: the unnormalised rank CDF of every partition
        self.rank_mass = np.cumsum(np.arange(1, capacity + 1, dtype=np.float64) ** -alpha)
        # the ranks whose keys the last sort keeps, to place moved experiences: every rank up to
        # 64, then every 1.6% (~600 per partition at 200k): a moved experience lands within 1.6%
        # of the rank its priority had, found in a table that stays in cache
        guide = np.unique(np.concatenate([np.arange(64), np.round(64 * (1 + 1 / 64) ** np.arange(2048))]))
        guide = guide[guide < capacity].astype(np.int64)
        self.guide_positions = (np.arange(partitions)[:, None] * capacity + guide[None, :]).reshape(-1)
        self._guide_ranks = guide
        self._seed = seed
        self._empty()

    # ---- state -------------------------------------------------------------------------------
    def _empty(self) -> None:
        slots = self.partitions * self.capacity
        self.priority = np.zeros(slots, dtype=np.float32)  # |delta| per slot
        # int32: at 1M slots these arrays are read at random, and half the bytes is fewer cache misses
        self.generation = np.zeros(slots, dtype=np.int32)  # writes per slot: stale updates are dropped
        self.order = np.arange(slots, dtype=np.int32)  # position -> slot; partition j ranked from head[j]
        self.pos = np.arange(slots, dtype=np.int32)  # slot -> position (the inverse)
        self.head = np.zeros(self.partitions, dtype=np.int64)
        self.sizes = np.zeros(self.partitions, dtype=np.int64)
        # the last sort's keys at the guide positions (see ``_sort_key``), the sizes then, and
        # insertions since
        self.sorted_key = self._sort_key(
            np.zeros(len(self.guide_positions), dtype=np.float32), np.zeros(self.partitions, dtype=np.int64)
        )
        self.sorted_sizes = np.zeros(self.partitions, dtype=np.int64)
        self.inserted = np.zeros(self.partitions, dtype=np.int64)
        self.recent = np.full(self.window, -1, dtype=np.int64)  # partitions of the last insertions (ring)
        self.recent_pos = 0
        self.visits = np.zeros(self.partitions, dtype=np.int64)  # N_j over the window
        self.max_priority = 1.0
        self.samples = 0
        self.to_move: list[np.ndarray] = []  # slots updated per minibatch, waiting to move to their ranks ...
        self.to_move_generation: list[np.ndarray] = []  # ... unless rewritten meanwhile
        self.rng = np.random.default_rng(self._seed)

    _ARRAYS = (
        "priority",
        "generation",
        "order",
        "pos",
        "head",
        "sizes",
        "sorted_key",
        "sorted_sizes",
        "inserted",
        "recent",
        "visits",
    )

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: torch.from_numpy(getattr(self, name).copy()) for name in self._ARRAYS}
        state.update(
            layout=[self.partitions, self.capacity, self.window],
            recent_pos=self.recent_pos,
            to_move=[torch.from_numpy(a) for a in self.to_move],
            to_move_generation=[torch.from_numpy(a) for a in self.to_move_generation],
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
        self.to_move = [a.numpy().copy() for a in state_dict["to_move"]]
        self.to_move_generation = [a.numpy().copy() for a in state_dict["to_move_generation"]]
        self.max_priority = float(state_dict["max_priority"])
        self.rng.bit_generator.state = state_dict["rng"]

    def dumps(self, path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path / "sampler.pt")

    def loads(self, path) -> None:
        self.load_state_dict(torch.load(Path(path) / "sampler.pt", weights_only=True))

    # ---- insertion ---------------------------------------------------------------------------
    def extend(self, index: torch.Tensor) -> None:
        slots = np.asarray(index, dtype=np.int64).reshape(-1)
        for start in range(0, len(slots), self.capacity):  # one chunk unless a batch exceeds C
            self._insert(slots[start : start + self.capacity])

    def add(self, index: int) -> None:
        self.extend(torch.as_tensor([index]))

    def _rank_key(self, positions: np.ndarray) -> np.ndarray:
        """Sorts positions by partition, then by rank (0-based) in the partition's ring."""
        part = positions // self.capacity
        return part * self.capacity + (positions - self.head[part]) % self.capacity

    def _insert(self, slots: np.ndarray) -> None:
        """Put new experiences at the top ranks (most recent first); the partition's lowest
        ranks rotate round to the top and the experiences there fill the evicted ones' places."""
        C = self.capacity
        parts = slots // C
        onehot = parts[:, None] == np.arange(self.partitions)[None, :]
        counts = onehot.sum(axis=0)
        nth = np.cumsum(onehot, axis=0)[np.arange(len(slots)), parts] - 1
        new_head = (self.head - counts) % C
        target = parts * C + (new_head[parts] + counts[parts] - 1 - nth) % C  # new slots' positions
        old_pos = self.pos[slots]
        displaced = self.order[target]  # the old lowest ranks, which rotate to the top
        moving = ~np.isin(displaced, slots)
        holes = old_pos[~np.isin(old_pos, target)]
        # pair them partition by partition, higher ranks with higher ranks
        movers = displaced[moving][np.argsort(self._rank_key(target[moving]))]
        holes = holes[np.argsort(self._rank_key(holes))]
        self.order[holes] = movers
        self.pos[movers] = holes
        self.order[target] = slots
        self.pos[slots] = target
        self.head = new_head
        self.sizes = np.minimum(self.sizes + counts, C)
        self.inserted += counts
        self.priority[slots] = self.max_priority
        self.generation[slots] += 1
        self._count_visits(parts)

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
        if self.uniform:
            slots = self._uniform_slots(batch_size)
            weight = np.ones(batch_size, dtype=np.float32)
        else:
            if self.samples % self.sort_every == 0:
                self.sort_ranks()
            slots, prob = self._prioritized_slots(batch_size)
            # (N P)^-beta / max (N P)^-beta: N cancels
            weight = ((prob.min() / prob) ** self.current_beta).astype(np.float32)
        self.samples += 1
        return torch.from_numpy(slots.astype(np.int64)), {"_weight": weight, "index_generation": self.generation[slots]}

    def _uniform_slots(self, batch_size: int) -> np.ndarray:
        ends = np.cumsum(self.sizes)
        u = self.rng.integers(0, ends[-1], batch_size)
        part = np.searchsorted(ends, u, side="right")
        return part * self.capacity + u - (ends[part] - self.sizes[part])

    def _prioritized_slots(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Slots drawn as in steps 3-4, and their probabilities ``P_j * P_j[r]``."""
        u_part, u_rank = self.rng.random((2, batch_size))
        visits = np.cumsum(self.visits)
        part = np.searchsorted(visits, u_part * visits[-1], side="right")
        size = self.sizes[part]
        total_mass = self.rank_mass[size - 1]
        rank = np.minimum(np.searchsorted(self.rank_mass, u_rank * total_mass, side="right"), size - 1)
        slots = self.order[part * self.capacity + (self.head[part] + rank) % self.capacity]
        prob = self.visits[part] / (visits[-1] * total_mass) * (rank + 1.0) ** -self.alpha
        return slots, prob

    def sort_ranks(self) -> None:
        """Re-sort every partition by priority, descending (ties keep their current order).

        The ranked order is nearly sorted already, which a stable sort exploits."""
        C = self.capacity
        positions = self.head[:, None] + np.arange(C)[None, :]
        positions -= C * (positions >= C)  # each partition's ring read from its head
        ranked = np.take_along_axis(self.order.reshape(self.partitions, C), positions, axis=1)  # slots by rank
        key = -self.priority[ranked]
        key[np.arange(C)[None, :] >= self.sizes[:, None]] = np.inf  # empty slots stay below the stored ones
        if self.sizes.any():
            self.max_priority = float(-key.min())
        ranked = np.take_along_axis(ranked, np.argsort(key, axis=1, kind="stable"), axis=1)
        self.order = ranked.reshape(-1)
        self.pos[self.order] = np.arange(len(self.order), dtype=self.pos.dtype)
        self.head[:] = 0
        self.sorted_key = self._sort_key(self.priority[self.order[self.guide_positions]], self.sizes)
        self.sorted_sizes, self.inserted = self.sizes.copy(), np.zeros_like(self.inserted)
        self.to_move, self.to_move_generation = [], []

    def _sort_key(self, guide_priority: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """``j + 1 - p / (1 + p)`` for a priority ``p`` at a guide rank ``r < sizes[j]`` of
        partition ``j`` (``j + 1.5`` past them): ascending over all guide positions, so one
        ``searchsorted`` finds where a new priority belongs, in any partition."""
        p = guide_priority.astype(np.float64).reshape(self.partitions, -1)
        key = np.arange(self.partitions, dtype=np.float64)[:, None] + 1.0 - p / (1.0 + p)
        key[self._guide_ranks[None, :] >= sizes[:, None]] += 0.5
        return key.reshape(-1)

    # ---- priorities --------------------------------------------------------------------------
    def update_priority(self, index, priority, *, storage=None, generation=None) -> None:
        """Set the sampled experiences' new ``|delta|``. With ``generation`` (from the sample's
        ``index_generation``), slots rewritten since they were sampled keep their new
        occupant's priority; non-finite priorities are ignored."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        priority = np.abs(np.asarray(priority, dtype=np.float32).reshape(-1))
        keep = np.isfinite(priority)
        generation = self.generation[index] if generation is None else np.asarray(generation).reshape(-1)
        keep &= self.generation[index] == generation
        index, priority, generation = index[keep], priority[keep], generation[keep]
        if len(index):
            self.priority[index] = priority
            self.max_priority = max(self.max_priority, float(priority.max()))
        if not self.uniform:
            self.to_move.append(index)
            self.to_move_generation.append(generation)
            if len(self.to_move) >= self.move_every:
                self.move_updated()

    def move_updated(self) -> None:
        """Move the experiences updated since the last move (and not rewritten since) to
        the ranks of their current priorities."""
        slots, generation = np.concatenate(self.to_move), np.concatenate(self.to_move_generation)
        slots = np.unique(slots[self.generation[slots] == generation])
        self.to_move, self.to_move_generation = [], []
        if len(slots):
            self._move_to_rank(slots, self.priority[slots])

    def _move_to_rank(self, slots: np.ndarray, priority: np.ndarray) -> None:
        """Move each updated experience to the rank its new priority had at the last sort (to
        the nearest guide rank at or below it),
        swapping places with the experience there (Schaul et al.'s heap moves an updated
        priority at once too; a swap is the O(1) stand-in). Only positions the last sort
        placed and no insertion has rotated since are targets; swaps that would touch the
        same position twice in one batch are skipped."""
        C = self.capacity
        part = slots // C
        placed = np.minimum(self.sorted_sizes, C - self.inserted)[part]  # sorted positions still in place
        p = priority.astype(np.float64)
        guide = np.searchsorted(self.sorted_key, part + 1.0 - p / (1.0 + p), side="left")
        target = self.guide_positions[np.minimum(guide, len(self.guide_positions) - 1)]
        target = np.clip(target, part * C, part * C + placed - 1)
        source = self.pos[slots].astype(np.int64)
        move = (placed > 0) & (target != source)
        if not move.any():
            return
        slots, source, target = slots[move], source[move], target[move]
        touched = np.concatenate([source, target])
        order = np.argsort(touched, kind="stable")
        ranked = touched[order]
        repeated = np.zeros(len(touched), dtype=bool)
        repeated[order[1:]] = ranked[1:] == ranked[:-1]
        repeated[order[:-1]] |= ranked[:-1] == ranked[1:]
        ok = ~(repeated[: len(slots)] | repeated[len(slots) :])
        slots, source, target = slots[ok], source[ok], target[ok]
        partners = self.order[target]
        self.order[source], self.order[target] = partners, slots
        self.pos[partners], self.pos[slots] = source, target

    @property
    def default_priority(self) -> float:
        return self.max_priority

    def __repr__(self) -> str:
        mode = "uniform" if self.uniform else f"alpha={self.alpha}, beta={self.beta}->{self.beta_final}"
        return f"HierarchicalSampler(partitions={self.partitions}, capacity={self.capacity}, {mode})"
