"""One task's replay memory as the distillation data module uses it: add what the student saw
with the teacher's outputs, sample a minibatch with its indices and importance weights, and
pass priorities back to the sampler."""

from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict

from lightning_distill.errors import ConfigError
from lightning_distill.replay.frames import FrameStacks
from lightning_distill.tasks import Task
from lightning_distill.upstream import storage_tensors

#: the sampler's arrays with one entry per slot (the rest of its state is per partition or scalar)
SAMPLER_PER_SLOT = ("priority", "generation")


class TaskMemory:
    """One task's TorchRL buffer and its observations: inside the buffer, or for Atari as frame
    ids into a ``FrameStacks`` pool. Distillation stores ``teacher_logits`` and ``value`` per
    experience (``add``); a DQN's ``TransitionMemory`` stores transitions.

    ``buffer`` comes from a ``Replay`` kind's ``make_buffer`` (a ``PartitionWriter`` and a
    ``HierarchicalSampler`` over a TorchRL storage).

    The frame ids of each buffer slot are kept here (``slot_frames``, one array per stacked
    key): when the buffer's writer reuses a slot, the ids it held lose a reference, whatever
    order the writer evicts in.
    """

    #: the entries that are frame stacks, stored as frame ids for Atari
    stacked_keys: tuple[str, ...] = ("obs",)

    def __init__(self, buffer, task: Task, batch_size: int, num_envs: int) -> None:
        self.task = task
        self.batch_size = batch_size
        self.buffer = buffer
        self.slots = buffer.storage.max_size
        self.prioritized = not buffer.sampler.uniform
        self._columns: tuple[object, dict] | None = None  # the storage's tensors, by key
        self.frames: FrameStacks | None = None
        self.slot_frames: dict[str, np.ndarray] = {}
        if task.backend == "atari":
            stack, *frame_shape = task.obs_shape
            self.frames = FrameStacks(num_envs, stack, tuple(frame_shape))
            self.slot_frames = {key: np.full((self.slots, stack), -1, dtype=np.int64) for key in self.stacked_keys}

    @property
    def partition_sizes(self) -> np.ndarray:
        """Experiences stored in each partition (one entry for uniform and PR replay)."""
        return self.buffer.writer.sizes.copy()

    def __len__(self) -> int:
        """Experiences stored (for H-PR, ``len(buffer)`` is its capacity: every slot is readable)."""
        return self.buffer.writer.stored

    def add(
        self, obs: np.ndarray, teacher_logits: torch.Tensor, value: torch.Tensor, new_episode: np.ndarray
    ) -> np.ndarray:
        """Store one experience per env: its observation and the teacher's outputs for it.
        Returns the buffer slots written."""
        data = {"teacher_logits": teacher_logits.cpu(), "value": value.cpu()}
        if self.frames is None:
            return self.store(data | {"obs": torch.as_tensor(obs)}, data["value"].numpy().reshape(-1))
        return self.store(data, data["value"].numpy().reshape(-1), {"obs": self.frames.encode(obs, new_episode)})

    def store(self, data: dict[str, torch.Tensor], values: np.ndarray, frame_ids: dict | None = None) -> np.ndarray:
        """Write a batch: ``values`` (``V(s)``) place each row in its partition's FIFO; rows
        of ``frame_ids`` reference the pool's frames. Returns the buffer slots written.

        The first write lets TorchRL lay out the storage; later rows are copied into its
        tensors directly: the writer picks the slots, the sampler ranks them (the measured cost
        of going through ``ReplayBuffer.extend`` instead is in docs/replay.md)."""
        writer = self.buffer.writer
        slots = writer.place(values)
        keep = writer.last_writes(slots) if len(slots) > writer.capacity else None
        if keep is not None:  # a batch past a partition's capacity: each slot's last row
            slots = slots[keep]
            data = {key: tensor[torch.from_numpy(keep)] for key, tensor in data.items()}
            frame_ids = {key: ids[keep] for key, ids in (frame_ids or {}).items()}
        index = torch.from_numpy(slots)
        if not self.buffer.storage.initialized:
            # device="cpu", the storage's: TorchRL then skips a per-call device move (~50 us)
            self.buffer.storage.set(index, TensorDict(data, batch_size=[len(slots)], device="cpu"), set_cursor=False)
        else:
            for key, column in self.columns().items():
                column.index_copy_(0, index, data[key].reshape(len(slots), *column.shape[1:]).to(column.dtype))
        writer.mark_written(index)
        self.buffer.sampler.extend(index)
        for key, ids in (frame_ids or {}).items():
            self._reference(key, slots, ids)
        return slots

    def _reference(self, key: str, slots: np.ndarray, ids: np.ndarray) -> None:
        """Slots now hold ``ids``: one reference more for them, one less for what they held."""
        assert self.frames is not None
        evicted = self.slot_frames[key][slots]
        self.slot_frames[key][slots] = ids
        self.frames.pool.incref(ids)
        if (evicted >= 0).any():
            self.frames.pool.decref(evicted[evicted[:, 0] >= 0])

    def sample(self) -> TensorDict:
        """A minibatch: ``obs``, ``teacher_logits``, ``value``, ``index`` and ``weight`` (the
        sampler's importance weights).

        ``index`` names each experience, not just its slot: ``slot + slots * generation``, the
        slot's write count when it was sampled (``slot_of`` reads the slot back). Lightning
        fetches the next batch before the current update, so a slot can be rewritten between
        a sample and its priority update; the update is then dropped, not given to the new
        occupant.

        Calls the buffer's sampler directly and ``index_select``s the storage's tensors one by
        one, without ``ReplayBuffer.sample``'s locking and transforms, which nothing here uses."""
        slot, info = self.buffer.sampler.sample(self.buffer.storage, self.batch_size)
        batch = {key: column.index_select(0, slot) for key, column in self.columns().items()}
        batch["index"] = torch.from_numpy(slot.numpy() + self.slots * info["index_generation"].astype(np.int64))
        batch["weight"] = torch.from_numpy(info["_weight"])
        if self.frames is not None:
            for key, ids in self.slot_frames.items():
                batch[key] = self.frames.pool.gather(ids[slot.numpy()])
        return TensorDict(batch, batch_size=[len(slot)])

    def columns(self) -> dict:
        """The storage's tensor per key (cached; ``buffer.loads`` may replace the storage's)."""
        stored = storage_tensors(self.buffer.storage)
        if self._columns is None or self._columns[0] is not stored:
            self._columns = (stored, dict(stored.items()))
        return self._columns[1]

    def slot_of(self, index: torch.Tensor) -> torch.Tensor:
        """The buffer slot of each ``index`` from ``sample``."""
        return index % self.slots

    def stored_slots(self) -> np.ndarray:
        """The slots that hold an experience: each partition fills its block from the start."""
        sizes, capacity = self.buffer.writer.sizes, self.buffer.writer.capacity
        return np.concatenate([j * capacity + np.arange(n) for j, n in enumerate(sizes)]).astype(np.int64)

    def state_dict(self) -> dict:
        """What a resumed run needs to sample as this memory would have, in bytes proportional to
        what it holds (not to its capacity): the stored slots' rows, the writer's cursors, the
        sampler's per-slot priorities and write counts at those slots, and the frames in use."""
        slots = self.stored_slots()
        index = torch.from_numpy(slots)
        sampler = self.buffer.sampler.state_dict()
        for name in SAMPLER_PER_SLOT:
            sampler[name] = sampler[name][index].clone()
        # the partitions of the last insertions: p < 128 fits a byte (8x less than the ring's int64)
        sampler["recent"] = sampler["recent"].to(torch.int8 if self.buffer.writer.partitions < 128 else torch.int64)
        state = {  # the slots are the writer's sizes' (stored_slots): not saved
            "columns": {key: column[index].clone() for key, column in self.columns().items()}
            if self.buffer.storage.initialized
            else {},
            "writer": self.buffer.writer.state_dict(),
            "sampler": sampler,
        }
        if self.frames is not None:
            state["frames"] = self.frames.state_dict()
            state["slot_frames"] = {key: torch.from_numpy(ids[slots].copy()) for key, ids in self.slot_frames.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        if "writer" not in state:
            raise ConfigError(
                "this checkpoint's replay was written by lightning_distill < 0.7 (the whole storage); "
                "resume it with that version, or set data.init_args.checkpoint_replay false"
            )
        writer, sampler = self.buffer.writer, self.buffer.sampler
        writer.load_state_dict(state["writer"])  # checks the layout first
        index = torch.from_numpy(self.stored_slots())
        if len(index):
            rows = TensorDict(state["columns"], batch_size=[len(index)], device="cpu")
            self.buffer.storage.set(index, rows, set_cursor=False)  # lays the storage out if still empty
            writer.mark_written(index)
        full = dict(state["sampler"])
        for name in SAMPLER_PER_SLOT:
            saved = full[name]
            full[name] = torch.zeros(self.slots, dtype=saved.dtype)
            full[name][index] = saved
        full["recent"] = full["recent"].to(torch.int64)
        sampler.load_state_dict(full)
        self._columns = None
        if self.frames is not None:
            self.frames.load_state_dict(state["frames"])
            for key, ids in self.slot_frames.items():
                ids[:] = -1
                ids[index.numpy()] = state["slot_frames"][key].numpy()

    def update_priority(self, index: torch.Tensor, priority: torch.Tensor) -> None:
        """The sampled experiences' new ``|delta|`` (a no-op for uniform sampling)."""
        if self.prioritized:
            generation, slot = np.divmod(index.cpu().numpy(), self.slots)
            self.buffer.sampler.update_priority(slot, priority.detach().cpu().numpy(), generation=generation)


class TransitionMemory(TaskMemory):
    """A DQN's replay: a FIFO of ``capacity`` transitions (``obs``, ``action``, ``reward``,
    ``next_obs``, ``terminated``), sampled uniformly with replacement.

    For Atari both stacks are frame ids: ``next_obs`` is ``obs`` shifted by the one frame the
    step brought, so a transition costs one 84x84 frame and its ids (~7.1 KB) instead of two
    4x84x84 stacks (56 KB): Nature DQN's 1M transitions in ~7 GB, not ~56 GB.
    """

    stacked_keys = ("obs", "next_obs")

    def __init__(self, task: Task, capacity: int, batch_size: int, num_envs: int, seed: int = 0) -> None:
        from lightning_distill.replay import uniform_buffer

        if capacity < 1 or batch_size < 1:
            raise ConfigError(f"replay capacity and batch size must be >= 1, got {capacity} and {batch_size}")
        super().__init__(uniform_buffer(capacity, batch_size, seed), task, batch_size, num_envs)

    def add_transitions(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        new_episode: np.ndarray,
    ) -> np.ndarray:
        """One transition per env. ``new_episode``: ``obs`` starts an episode (or the memory
        has not seen this env yet); ``next_obs`` is the step's, the final one when it ended."""
        data = {
            "action": torch.as_tensor(action),
            "reward": torch.as_tensor(reward, dtype=torch.float32),
            "terminated": torch.as_tensor(terminated),
        }
        values = np.zeros(len(obs))  # one partition: V plays no part
        if self.frames is None:
            return self.store(data | {"obs": torch.as_tensor(obs), "next_obs": torch.as_tensor(next_obs)}, values)
        pool = self.frames.pool
        obs_ids = self.frames.hold(obs, new_episode)
        pool.incref(obs_ids)  # kept alive while the stacks move on to next_obs
        next_ids = self.frames.encode(next_obs, np.zeros(len(obs), dtype=bool))
        slots = self.store(data, values, {"obs": obs_ids, "next_obs": next_ids})
        pool.decref(obs_ids)
        return slots
