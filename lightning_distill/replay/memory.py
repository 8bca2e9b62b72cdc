"""One task's replay memory as the distillation data module uses it: add what the student saw
with the teacher's outputs, sample a minibatch with its indices and importance weights, and
pass priorities back to the sampler."""

from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict

from lightning_distill.replay.frames import FrameStacks
from lightning_distill.tasks import Task
from lightning_distill.upstream import storage_tensors


class TaskMemory:
    """A TorchRL buffer of ``q_teacher`` and ``value`` per experience, plus the observations:
    inside the buffer (``obs``), or for Atari as frame ids into a ``FrameStacks`` pool.

    ``buffer`` comes from a ``Replay`` kind's ``make_buffer`` (a ``PartitionWriter`` and a
    ``HierarchicalSampler`` over a TorchRL storage).

    The frame ids of each buffer slot are kept here (``slot_frames``): when the buffer's
    writer reuses a slot, the ids it held lose a reference, whatever order the writer
    evicts in.
    """

    def __init__(self, buffer, task: Task, batch_size: int, num_envs: int) -> None:
        self.task = task
        self.batch_size = batch_size
        self.buffer = buffer
        self.slots = buffer.storage.max_size
        self.prioritized = not buffer.sampler.uniform
        self._columns: tuple[object, dict] | None = None  # the storage's tensors, by key
        self.frames: FrameStacks | None = None
        if task.backend == "atari":
            stack, *frame_shape = task.obs_shape
            self.frames = FrameStacks(num_envs, stack, tuple(frame_shape))
            self.slot_frames = np.full((self.slots, stack), -1, dtype=np.int64)

    @property
    def partition_sizes(self) -> np.ndarray:
        """Experiences stored in each partition (one entry for uniform and PR replay)."""
        return self.buffer.writer.sizes.copy()

    def __len__(self) -> int:
        """Experiences stored (for H-PR, ``len(buffer)`` is its capacity: every slot is readable)."""
        return self.buffer.writer.stored

    def add(self, obs: np.ndarray, q_teacher: torch.Tensor, value: torch.Tensor, new_episode: np.ndarray) -> np.ndarray:
        """Store one experience per env: its observation and the teacher's outputs for it.
        Returns the buffer slots written.

        After the first write (which lets TorchRL lay out the storage), rows are copied into
        the storage's tensors directly: the writer picks the slots, the sampler ranks them.
        ``ReplayBuffer.extend`` would wrap the same work in a TensorDict, a lock and its
        transforms, at ~0.5 ms a call, four calls per agent step with four tasks."""
        data = {"q_teacher": q_teacher.cpu(), "value": value.cpu()}
        if self.frames is None:
            data["obs"] = torch.as_tensor(obs)
        if self.buffer.storage.initialized and len(obs) <= self.buffer.writer.capacity:
            slots = self._write(data)
        else:  # TorchRL lays out the storage's tensors (the first write), or a batch past a partition
            # device="cpu", the storage's: TorchRL then skips a per-call device move (~50 us)
            slots = self.buffer.extend(TensorDict(data, batch_size=[len(obs)], device="cpu")).numpy()
        if self.frames is None:
            return slots
        ids = self.frames.encode(obs, new_episode)
        evicted = self.slot_frames[slots]
        self.slot_frames[slots] = ids
        self.frames.pool.incref(ids)
        if (evicted >= 0).any():
            self.frames.pool.decref(evicted[evicted[:, 0] >= 0])
        return slots

    def _write(self, data: dict[str, torch.Tensor]) -> np.ndarray:
        writer = self.buffer.writer
        slots = writer.place(data["value"].numpy().reshape(-1))
        index = torch.from_numpy(slots)
        for key, column in self.columns().items():
            column.index_copy_(0, index, data[key].reshape(len(slots), *column.shape[1:]).to(column.dtype))
        writer.mark_written(index)
        self.buffer.sampler.extend(index)
        return slots

    def sample(self) -> TensorDict:
        """A minibatch: ``obs``, ``q_teacher``, ``value``, ``index`` and ``weight`` (the
        sampler's importance weights).

        ``index`` names each experience, not just its slot: ``slot + slots * generation``, the
        slot's write count when it was sampled (``slot_of`` reads the slot back). Lightning
        fetches the next batch before the current update, so a slot can be rewritten between
        a sample and its priority update; the update is then dropped, not given to the new
        occupant.

        Calls the buffer's sampler directly and ``index_select``s the storage's tensors one by
        one: ``ReplayBuffer.sample`` adds ~100 us of locking and transform handling, and
        indexing the stored TensorDict ~50 us of shape bookkeeping and advanced indexing, that
        this path does not need."""
        slot, info = self.buffer.sampler.sample(self.buffer.storage, self.batch_size)
        batch = {key: column.index_select(0, slot) for key, column in self.columns().items()}
        batch["index"] = torch.from_numpy(slot.numpy() + self.slots * info["index_generation"].astype(np.int64))
        batch["weight"] = torch.from_numpy(info["_weight"])
        if self.frames is not None:
            batch["obs"] = self.frames.pool.gather(self.slot_frames[slot.numpy()])
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

    def state_dict(self) -> dict:
        """Everything stored, the H-PR state (partitions, ranks, priorities) and the frame pool:
        what a resumed run needs to sample as this memory would have."""
        state = {"buffer": self.buffer.state_dict()}
        if self.frames is not None:
            pool = self.frames.pool
            state["frames"] = {
                "frames": pool.frames,
                "refs": torch.from_numpy(pool.refs),
                "free": torch.from_numpy(pool.free),
                "num_free": pool.num_free,
                "held": torch.from_numpy(self.frames.held),
                "slot_frames": torch.from_numpy(self.slot_frames),
            }
        return state

    def load_state_dict(self, state: dict) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self._columns = None
        if self.frames is not None:
            frames, pool = state["frames"], self.frames.pool
            pool.frames, pool.num_free = frames["frames"].clone(), int(frames["num_free"])
            pool.refs, pool.free = frames["refs"].numpy().copy(), frames["free"].numpy().copy()
            self.frames.held = frames["held"].numpy().copy()
            self.slot_frames = frames["slot_frames"].numpy().copy()

    def update_priority(self, index: torch.Tensor, priority: torch.Tensor) -> None:
        """The sampled experiences' new ``|delta|`` (a no-op for uniform sampling)."""
        if self.prioritized:
            generation, slot = np.divmod(index.cpu().numpy(), self.slots)
            self.buffer.sampler.update_priority(slot, priority.detach().cpu().numpy(), generation=generation)
