"""Hierarchical prioritized replay (H-PR; Yin & Pan 2017, spec section 6), whole, in one file.

Read the paper's section on H-PR, then this file top to bottom. ``HierarchicalMemory`` holds
every piece of H-PR's state, once; ``PartitionWriter`` and ``HierarchicalSampler`` are the
TorchRL ``Writer`` and ``Sampler`` views of one memory, so a ``torchrl.data.ReplayBuffer``
built from them *is* H-PR (``HierarchicalReplayBuffer``, and the example in docs/replay.md).

1. **Partitions** (steps 1-2). ``[V_min, V_max]`` of the teacher's state value is split evenly
   into ``p`` ranges; experience ``s`` goes to partition ``j`` with ``V(s)`` in ``(V_j, V_j+1]``
   (the first range closed, values outside clamped to the ends). Partition ``j`` owns the slots
   ``[j C, (j + 1) C)`` and is its own FIFO: it evicts its own oldest experience, no other.
2. **Partition choice** (step 3). ``P_j = N_j / sum_k N_k``, ``N_j`` the experiences that went
   to ``j`` among the last ``window`` insertions: sampling follows the state-visit distribution.
3. **Rank law** (step 4). Inside ``j``, the experience of rank ``r`` (by ``|delta|``, largest
   first, ties by slot) with ``P_j[r] = r^-alpha / sum_t t^-alpha`` (Schaul et al.'s rank-based
   priority). The ranks are exact at every draw: ``ranks`` keeps each partition in rank order.
4. **Importance weights** (step 5). ``w = (1 / (N P_j P_j[r]))^beta / max w`` over the batch,
   ``N`` the experiences stored; ``beta`` annealed linearly from ``beta`` to ``beta_final``.
5. **Priority update** (step 6). A sampled experience's new ``|delta|`` moves it to its rank at
   once; a new experience enters at the largest priority seen. An update for an experience
   evicted since it was drawn is dropped: each slot counts its writes (its *generation*), and a
   sample carries the generations it saw.

Modes of the same memory: ``partitions=1`` is rank-based PR; ``uniform=True`` draws uniformly
over what is stored, with unit weights (the paper's baseline, and the DQN teachers' FIFO);
``partition_by="random"`` sends each experience to a uniformly random partition instead of its
value's (a control: partitioned at all, but not by value).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torchrl.data import ReplayBuffer
from torchrl.data.replay_buffers.samplers import Sampler
from torchrl.data.replay_buffers.writers import Writer

from lightning_distill.errors import ConfigError
from lightning_distill.replay import ALPHA, BETA, BETA_FINAL, WINDOW, ranks


def check_layout(saved: tuple[int, ...], mine: tuple[int, ...]) -> None:
    """A saved memory fits only a memory of the same partitions x capacity and window."""
    if tuple(saved) != tuple(mine):

        def show(layout):
            return f"{layout[0]} partitions x {layout[1]}" + (f" (window {layout[2]})" if len(layout) > 2 else "")

        raise ConfigError(
            f"saved replay has {show(saved)}, this one {show(mine)}: resume with the same replay settings"
        )


def check_settings(
    partitions: int,
    capacity: int,
    window: int,
    alpha: float,
    beta: float,
    beta_final: float,
    beta_updates: int,
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> None:
    """``HierarchicalMemory``'s settings, checked without building one (a config is read long
    before training, and a memory's index is sized by its capacity)."""
    if min(partitions, capacity, window) < 1:
        raise ConfigError(f"partitions, capacity and window must be >= 1, got {partitions}, {capacity}, {window}")
    if alpha < 0 or not 0 <= beta <= 1 or not 0 <= beta_final <= 1 or beta_updates < 0:
        raise ConfigError(
            f"need alpha >= 0, beta and beta_final in [0, 1], beta_updates >= 0; got "
            f"alpha={alpha}, beta={beta}, beta_final={beta_final}, beta_updates={beta_updates}"
        )
    if partitions > 1:
        if value_range is None or not np.all(np.isfinite(value_range)):
            raise ConfigError(f"{partitions} partitions need a finite value range (V_min, V_max), got {value_range}")
        if value_range[1] < value_range[0]:
            raise ConfigError(f"value range needs V_min <= V_max, got {value_range}")


PARTITION_BY = ("value", "random")


def check_partition_by(partition_by: str) -> None:
    if partition_by not in PARTITION_BY:
        raise ConfigError(f"partition_by={partition_by!r} is not valid; valid: {', '.join(PARTITION_BY)}")


def _as_array(values: Any, dtype: type) -> np.ndarray:
    """A flat array of ``dtype`` from an array, a list or a tensor (no copy where it is one
    already: a minibatch's CPU ``index`` and ``index_generation`` come back as they went out,
    and each step saved here is a few us of an update of ~50 us at batch 32)."""
    if isinstance(values, torch.Tensor):
        values = (
            values.numpy()
            if values.device.type == "cpu" and not values.requires_grad
            else values.detach().cpu().numpy()
        )
    if isinstance(values, np.ndarray) and values.dtype == dtype and values.ndim == 1 and values.flags.c_contiguous:
        return values
    return np.ascontiguousarray(values, dtype=dtype).reshape(-1)


class Draw(NamedTuple):
    """A minibatch's slots, importance weights and generations (each slot's write count when
    drawn: ``update_priority`` drops an update for a slot rewritten since)."""

    slots: np.ndarray
    weight: np.ndarray
    generation: np.ndarray


class HierarchicalMemory:
    """H-PR's state, each piece held once: the partition layout and FIFO cursors, each slot's
    priority and generation, the rank index, the visit window and the random stream.

    It knows slots, not data: the TorchRL storage holds the experiences (``PartitionWriter``).

    Args:
        partitions: ``p`` (the paper: 5; 1 is PR).
        capacity: ``C``, experiences per partition (the paper: 200,000).
        value_range: ``(V_min, V_max)``, measured by playing the teacher; needed for ``p > 1``.
        alpha: rank exponent (Schaul et al.'s rank-based 0.7).
        beta: importance-sampling exponent at the start (0.5) ...
        beta_final: ... annealed linearly to this (1.0) ...
        beta_updates: ... over this many draws (minibatches).
        window: insertions over which ``N_j`` is counted (not given in the paper).
        uniform: ignore priorities and partitions: uniform over what is stored, unit weights.
        seed: of the memory's own random stream (saved with its state).
        partition_by: ``"value"`` (H-PR) or ``"random"``: each experience to a uniformly random
            partition, everything else the same (a control for partitioning by value).
    """

    def __init__(
        self,
        partitions: int = 1,
        capacity: int = 1,
        value_range: tuple[float, float] | None = None,
        alpha: float = ALPHA,
        beta: float = BETA,
        beta_final: float = BETA_FINAL,
        beta_updates: int = 1_000_000,
        window: int = WINDOW,
        uniform: bool = False,
        seed: int = 0,
        partition_by: str = "value",
    ) -> None:
        check_settings(partitions, capacity, window, alpha, beta, beta_final, beta_updates, value_range)
        check_partition_by(partition_by)
        self.partition_by = partition_by
        self.partitions, self.capacity, self.window, self.uniform = partitions, capacity, window, uniform
        self.value_range = None if value_range is None else (float(value_range[0]), float(value_range[1]))
        self.alpha, self.beta, self.beta_final, self.beta_updates = alpha, beta, beta_final, beta_updates
        # sum_{t <= r} t^-alpha for r = 1..C: the unnormalised rank CDF of every partition
        self.rank_mass = np.cumsum(np.arange(1, (1 if uniform else capacity) + 1, dtype=np.float64) ** -alpha)
        self.rank_guide = ranks.rank_search_guide(self.rank_mass)
        self.seed = seed
        self.clear()

    @property
    def slots(self) -> int:
        return self.partitions * self.capacity

    def clear(self) -> None:
        """Empty: no experience, no priorities, the window and the random stream from the start."""
        self.cursor = np.zeros(self.partitions, dtype=np.int64)  # next offset to write, per partition
        self.sizes = np.zeros(self.partitions, dtype=np.int64)  # experiences stored, per partition
        self.priority = np.zeros(self.slots, dtype=np.float32)  # |delta| per slot
        self.generation = np.zeros(self.slots, dtype=np.int32)  # writes per slot (0: never written)
        self.index = None if self.uniform else ranks.empty_index(self.partitions, self.capacity)
        self.recent = np.full(self.window, -1, dtype=np.int64)  # partitions of the last insertions (ring)
        self.recent_pos = 0
        self.visits = np.zeros(self.partitions, dtype=np.int64)  # N_j over the window
        self.max_priority = 1.0
        self.samples = 0  # minibatches drawn: beta's clock
        self.rng = np.random.default_rng(self.seed)
        self.reset_statistics()

    @property
    def stored(self) -> int:
        return int(self.sizes.sum())

    # ---- 1. partitions -----------------------------------------------------------------------
    def partition_of(self, values: np.ndarray) -> np.ndarray:
        """The partition of each state value: ``j`` with ``V`` in ``(V_j, V_j+1]`` (the first
        range closed on the left), clamped to ``[0, p - 1]``."""
        values = np.asarray(values, dtype=np.float64)
        if self.partitions == 1:
            return np.zeros(values.shape, dtype=np.int64)
        assert self.value_range is not None  # the constructor requires one for partitions > 1
        low, high = self.value_range
        width = (high - low) / self.partitions
        if width <= 0:  # a constant teacher value: below or at it -> first, above -> last
            return np.where(values > low, self.partitions - 1, 0).astype(np.int64)
        scaled = np.nan_to_num((values - low) / width, nan=0.0, posinf=self.partitions, neginf=0.0)
        return np.clip(np.ceil(scaled).astype(np.int64) - 1, 0, self.partitions - 1)

    def insert(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """New experiences with state values ``values``, in order: each takes the next slot of
        its partition's FIFO (by value, or at random with ``partition_by="random"``), enters the
        rank index at the largest priority seen, and slides the visit window. Returns the slots
        and, when one call brings more experiences than a partition holds (a slot given twice),
        the positions to keep (each slot's last write)."""
        values = np.asarray(values).reshape(-1)
        if self.partition_by == "random":
            parts = self.rng.integers(0, self.partitions, len(values))
        else:
            parts = self.partition_of(values)
        slots = self._take_slots(parts)
        keep = None
        if len(slots) > self.capacity:
            _, last = np.unique(slots[::-1], return_index=True)
            keep = np.sort(len(slots) - 1 - last)
        written = slots if keep is None else slots[keep]
        if self.index is None:
            self.generation[written] += 1
        else:
            bits = np.float32(self.max_priority).view(np.int32)
            ranks.write(self.index, written, self.priority.view(np.int32), self.generation, self.capacity, bits)
            self._slide_window(written // self.capacity)
        return written, keep

    def _take_slots(self, parts: np.ndarray) -> np.ndarray:
        """Advance each partition's FIFO cursor over ``parts``; the slot of each, in order."""
        counts = np.bincount(parts, minlength=self.partitions)
        if self.partitions == 1:
            nth = np.arange(len(parts))
        else:  # each experience's position among those of its partition in this call
            order = np.argsort(parts, kind="stable")
            starts = np.cumsum(counts) - counts
            nth = np.empty(len(parts), dtype=np.int64)
            nth[order] = np.arange(len(parts)) - np.repeat(starts, counts)
        offsets = (self.cursor[parts] + nth) % self.capacity
        self.cursor = (self.cursor + counts) % self.capacity
        self.sizes = np.minimum(self.sizes + counts, self.capacity)
        return parts * self.capacity + offsets

    def stored_slots(self) -> np.ndarray:
        """The slots that hold an experience: each partition fills its block from the start."""
        return np.concatenate([j * self.capacity + np.arange(n) for j, n in enumerate(self.sizes)]).astype(np.int64)

    # ---- 2. partition choice: the visit window ----------------------------------------------
    def _slide_window(self, parts: np.ndarray) -> None:
        """Slide the window of insertions forward over ``parts``; keep ``N_j`` in step."""
        parts = parts[-self.window :]
        ring = (self.recent_pos + np.arange(len(parts))) % self.window
        left = self.recent[ring]
        self.visits -= np.bincount(left[left >= 0], minlength=self.partitions)
        self.visits += np.bincount(parts, minlength=self.partitions)
        self.recent[ring] = parts
        self.recent_pos = (self.recent_pos + len(parts)) % self.window

    # ---- 3-4. draw and importance weights ---------------------------------------------------
    @property
    def current_beta(self) -> float:
        """``beta`` of the next draw."""
        done = min(1.0, self.samples / self.beta_updates) if self.beta_updates else 1.0
        return self.beta + (self.beta_final - self.beta) * done

    def draw(self, batch_size: int) -> Draw:
        """Slots of a minibatch, their importance weights and their generations (steps 3-5, in
        ``ranks.draw_ranked``: partition by ``P_j``, rank by ``P_j[r]``, ``w`` over the batch
        maximum)."""
        if not self.sizes.any():
            raise RuntimeError("cannot sample from an empty replay memory")
        beta = self.current_beta
        self.samples += 1
        if self.index is None:
            slots, seen = ranks.draw_uniform(
                self.rng.random(batch_size), self.sizes, self.capacity, self.generation, self._counts
            )
            return Draw(slots, np.ones(batch_size, dtype=np.float32), seen)
        u = self.rng.random((2, batch_size))
        drawn = ranks.draw_ranked(
            self.index,
            u,
            self.visits,
            self.rank_mass,
            self.rank_guide,
            beta,
            self.generation,
            self.capacity,
            self._counts,
        )
        return Draw(*drawn)

    def ranked_slots(self, partition: int) -> np.ndarray:
        """The slots of a partition's experiences, rank 1 first (for tests and inspection)."""
        if self.index is None:
            raise RuntimeError("a uniform memory holds no ranks")
        return ranks.ranked_keys(self.index, partition) & 0xFFFFFFFF

    # ---- 5. priority update ------------------------------------------------------------------
    def update_priority(self, slots: Any, priority: Any, generation: Any = None) -> None:
        """Set the sampled experiences' new ``|delta|``, moving each to its rank at once. With
        ``generation`` (a draw's or a sample's ``index_generation``), a slot rewritten since it
        was drawn keeps its new occupant's priority; non-finite priorities are ignored. Takes
        arrays or CPU tensors. No-op when uniform."""
        if self.index is None:
            return
        slots = _as_array(slots, np.int64)
        priority = _as_array(priority, np.float32)
        seen = self.generation[slots] if generation is None else _as_array(generation, np.int32)
        largest = ranks.reprioritise(
            self.index,
            slots,
            priority.view(np.int32),
            seen,
            self.priority.view(np.int32),
            self.generation,
            self.capacity,
            np.empty((4, 2 * len(slots)), dtype=np.int64),
        )
        self.max_priority = max(self.max_priority, float(np.int32(largest).view(np.float32)))

    # ---- what a user sees while it runs ------------------------------------------------------
    def reset_statistics(self) -> None:
        # the draws of each partition, then batches, the sum of their mean weights and of their
        # effective sizes (``ranks.draw_ranked`` adds to it)
        self._counts = np.zeros(self.partitions + 3)

    def statistics(self) -> dict[str, float]:
        """Since the last call: each partition's share of stored experiences (``stored_j``), of
        the window's insertions (``window_j``) and of the draws (``sampled_j``), the mean
        normalised importance weight and the batches' effective sample size
        ``(sum w)^2 / sum w^2``; then the counts start again. Shares only with partitions,
        weights only with priorities (empty for uniform replay)."""
        out: dict[str, float] = {}
        if self.partitions > 1:
            drawn = self._counts[: self.partitions]
            for name, counts in (("stored", self.sizes), ("window", self.visits), ("sampled", drawn)):
                total = max(int(counts.sum()), 1)
                out |= {f"{name}_{j}": int(n) / total for j, n in enumerate(counts)}
        batches, weights, effective = self._counts[self.partitions :]
        if batches and not self.uniform:
            out |= {"mean_weight": weights / batches, "effective_batch": effective / batches}
        self.reset_statistics()
        return out

    # ---- one save path -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What the memory holds, in bytes proportional to what is stored (not to ``C``): the
        cursors and sizes, the stored slots' priorities and generations, the window (a byte a
        partition index), the counters and the random stream. The rank index is a function of
        the priorities and is rebuilt on load."""
        stored = torch.from_numpy(self.stored_slots())
        window = torch.from_numpy(self.recent).to(torch.int8 if self.partitions < 128 else torch.int64)
        return {
            "layout": [self.partitions, self.capacity, self.window],
            "partition_by": self.partition_by,
            "value_range": self.value_range,
            "cursor": torch.from_numpy(self.cursor.copy()),
            "sizes": torch.from_numpy(self.sizes.copy()),
            "priority": torch.from_numpy(self.priority)[stored].clone(),
            "generation": torch.from_numpy(self.generation)[stored].clone(),
            "recent": window,
            "recent_pos": self.recent_pos,
            "max_priority": self.max_priority,
            "samples": self.samples,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "layout" not in state or "cursor" not in state:
            raise ConfigError(
                "this replay state was written by lightning_distill < 0.9; resume it with that version, "
                "or set data.init_args.checkpoint_replay false"
            )
        check_layout(state["layout"], (self.partitions, self.capacity, self.window))
        if state.get("partition_by", "value") != self.partition_by:
            raise ConfigError(
                f"saved replay partitions by {state['partition_by']!r}, this one by {self.partition_by!r}: "
                "resume with the same replay settings"
            )
        self.clear()
        self.value_range = None if state["value_range"] is None else tuple(state["value_range"])
        self.cursor, self.sizes = state["cursor"].numpy().copy(), state["sizes"].numpy().copy()
        stored = self.stored_slots()
        self.priority[stored], self.generation[stored] = state["priority"].numpy(), state["generation"].numpy()
        self.recent = state["recent"].numpy().astype(np.int64)
        self.recent_pos, self.samples = int(state["recent_pos"]), int(state["samples"])
        self.visits = np.bincount(self.recent[self.recent >= 0], minlength=self.partitions).astype(np.int64)
        self.max_priority = float(state["max_priority"])
        self.rng.bit_generator.state = state["rng"]
        if self.index is not None:
            ranks.rebuild(self.index, self.priority.view(np.int32), self.generation > 0, self.capacity)

    @property
    def nbytes(self) -> int:
        """Bytes of the memory's own state (priorities, generations, rank index, window)."""
        index = ranks.index_nbytes(self.index) if self.index is not None else 0
        return index + self.priority.nbytes + self.generation.nbytes + self.recent.nbytes

    def __repr__(self) -> str:
        mode = "uniform" if self.uniform else f"alpha={self.alpha}, beta={self.beta}->{self.beta_final}"
        return f"HierarchicalMemory(partitions={self.partitions}, capacity={self.capacity}, {mode})"


# ---- TorchRL: a Writer and a Sampler over one memory ------------------------------------------


class PartitionWriter(Writer):
    """TorchRL's ``Writer`` of a ``HierarchicalMemory``: ``extend`` asks the memory for each
    experience's slot (by its ``value_key`` entry) and writes the rows there.

    It tracks generations (TorchRL's ``index_generation`` in each sample's info). It holds no
    state of its own: the sampler saves the memory.
    """

    tracks_generations = True

    def __init__(self, memory: HierarchicalMemory, value_key: str = "value") -> None:
        super().__init__()
        self.memory, self.value_key = memory, value_key

    def extend(self, data) -> torch.Tensor:
        if self.memory.partitions > 1:
            values = data[self.value_key].detach().cpu().numpy()
        else:  # one partition: V plays no part (a DQN's transitions have none)
            values = np.zeros(len(data))
        slots, keep = self.memory.insert(values)
        if keep is not None:
            data = data[torch.from_numpy(keep)]
        index = torch.from_numpy(slots)
        self.write_rows(index, data)
        return index

    def add(self, data) -> int:
        return int(self.extend(data.unsqueeze(0))[0])

    def write_rows(self, index: torch.Tensor, rows) -> None:
        """``rows`` into the storage's slots ``index``. With several partitions, the first write
        lays out every slot (each partition fills its block from its own start, and TorchRL reads
        the slots ``[0, len(storage))``), so the storage's length is its capacity."""
        storage = self._storage  # set by ReplayBuffer (Writer.register_storage)
        if self.memory.partitions > 1 and not storage.initialized:
            slots = storage.max_size
            storage.set(torch.arange(slots), rows[:1].expand(slots, *rows.shape[1:]))
        storage.set(index, rows)

    def generations_of(self, index) -> torch.Tensor:
        return torch.from_numpy(self.memory.generation[_as_array(index, np.int64)])

    def _empty(self, empty_write_count: bool = True) -> None:
        self.memory.clear()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        return None

    def dumps(self, path) -> None:
        return None

    def loads(self, path) -> None:
        return None

    def __repr__(self) -> str:
        return f"PartitionWriter({self.memory!r})"


class HierarchicalSampler(Sampler):
    """TorchRL's ``Sampler`` of a ``HierarchicalMemory``: ``sample`` draws (``_weight`` in the
    info), ``update_priority`` moves ranks, ``state_dict`` / ``dumps`` save the memory."""

    def __init__(self, memory: HierarchicalMemory) -> None:
        super().__init__()
        self.memory = memory

    def sample(self, storage, batch_size: int) -> tuple[torch.Tensor, dict]:
        slots, weight, _ = self.memory.draw(batch_size)
        return torch.from_numpy(slots), {"_weight": torch.from_numpy(weight)}

    def update_priority(self, index, priority, *, storage=None, generation=None) -> None:
        """TorchRL's ``update_priority``; pass ``generation`` (the sample's ``index_generation``)
        to drop updates for experiences evicted since they were drawn."""
        self.memory.update_priority(index, priority, generation)

    @property
    def default_priority(self) -> float:
        return self.memory.max_priority

    def extend(self, index) -> None:
        return None  # the writer placed them in the memory

    def add(self, index) -> None:
        return None

    def _empty(self) -> None:
        self.memory.clear()

    def state_dict(self) -> dict[str, Any]:
        return self.memory.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.memory.load_state_dict(state_dict)

    def dumps(self, path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path / "hierarchical_memory.pt")

    def loads(self, path) -> None:
        self.load_state_dict(torch.load(Path(path) / "hierarchical_memory.pt", weights_only=True))

    def __repr__(self) -> str:
        return f"HierarchicalSampler({self.memory!r})"


class HierarchicalReplayBuffer(ReplayBuffer):
    """A ``torchrl.data.ReplayBuffer`` that is one ``HierarchicalMemory``: a ``ColumnStorage``
    of its ``p x C`` slots, its ``PartitionWriter`` and its ``HierarchicalSampler``.

    ``sample`` and ``update_priority`` keep TorchRL's signatures and results and drop the work
    this buffer has no use for: TorchRL's generic ``sample`` takes two thread locks, asks the
    writer for the generations the draw has just read, and maps the info onto the storage's
    device, together ~40 us a call, as much as the draw and the gather at batch 32
    (``benchmarks/replay_throughput.py``). ``update_priority`` takes the sample's
    ``index_generation``. With a transform appended, ``sample`` is TorchRL's own. Like the
    memory, it is not for sharing between threads.
    """

    def __init__(self, memory: HierarchicalMemory, batch_size: int | None = None, value_key: str = "value") -> None:
        from lightning_distill.replay.storage import ColumnStorage

        super().__init__(
            storage=ColumnStorage(memory.slots, device="cpu"),
            sampler=HierarchicalSampler(memory),
            writer=PartitionWriter(memory, value_key),
            batch_size=batch_size,
        )
        self.memory = memory

    def sample(self, batch_size: int | None = None, return_info: bool = False) -> Any:
        if len(self.transform):
            return super().sample(batch_size, return_info)
        batch_size = self.batch_size if batch_size is None else batch_size
        if batch_size is None:
            raise RuntimeError("batch_size not specified: pass it to sample or to the buffer")
        slots, weight, generation = self.memory.draw(batch_size)
        index = torch.from_numpy(slots)
        data = self.storage.get(index)
        if not return_info:
            return data
        info = {"_weight": torch.from_numpy(weight), "index": index, "index_generation": torch.from_numpy(generation)}
        return data, info

    def update_priority(self, index, priority, generation=None) -> None:
        """TorchRL's ``update_priority``; pass ``generation`` (the sample's ``index_generation``)
        to drop updates for experiences evicted since they were drawn."""
        self.memory.update_priority(index, priority, generation)
