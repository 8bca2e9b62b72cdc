"""One task's replay memory as the distillation data module uses it: add what the student saw
with the teacher's outputs, sample a minibatch with its indices and importance weights, and
pass priorities back to the sampler."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from tensordict import TensorDict

from lightning_distill.errors import ConfigError
from lightning_distill.replay.frames import FrameStacks
from lightning_distill.tasks import Task
from lightning_distill.upstream import unchecked_tensordict

if TYPE_CHECKING:  # at run time the buffer brings it: --help imports no TorchRL
    from lightning_distill.replay.hierarchical import HierarchicalMemory, HierarchicalReplayBuffer


class TaskMemory:
    """One task's TorchRL ``ReplayBuffer`` (from a ``Replay`` kind's ``make_buffer``: a
    ``HierarchicalMemory`` behind its writer and sampler) and, for Atari, the frame pool its
    observations live in. Distillation stores ``teacher_logits`` and ``value`` per experience
    (``add``); a DQN's ``TransitionMemory`` stores transitions.

    Everything goes through the buffer's public API (``extend``, ``sample``,
    ``update_priority``). Atari observations are frame ids into a ``FrameStacks`` pool, kept here
    per slot (``slot_frames``, one array per stacked key): when the writer reuses a slot, the ids
    it held lose a reference, whatever order it evicts in.
    """

    #: the entries that are frame stacks, stored as frame ids for Atari
    stacked_keys: tuple[str, ...] = ("obs",)

    def __init__(self, buffer: HierarchicalReplayBuffer, task: Task, batch_size: int, num_envs: int) -> None:
        self.task = task
        self.batch_size = batch_size
        self.buffer = buffer
        self.hpr: HierarchicalMemory = buffer.memory
        if num_envs > self.hpr.capacity:
            raise ConfigError(
                f"{num_envs} envs add {num_envs} experiences a step, more than a partition holds "
                f"({self.hpr.capacity}): use fewer envs or a larger replay"
            )
        self.frames: FrameStacks | None = None
        self.slot_frames: dict[str, np.ndarray] = {}
        if task.backend == "atari":
            stack, *frame_shape = task.obs_shape
            self.frames = FrameStacks(num_envs, stack, tuple(frame_shape))
            self.slot_frames = {key: np.full((self.hpr.slots, stack), -1, dtype=np.int64) for key in self.stacked_keys}

    @property
    def prioritized(self) -> bool:
        return not self.hpr.uniform

    @property
    def partition_sizes(self) -> np.ndarray:
        """Experiences stored in each partition (one entry for uniform and PR replay)."""
        return self.hpr.sizes.copy()

    def __len__(self) -> int:
        """Experiences stored (for H-PR, ``len(buffer)`` is its capacity: every slot is readable)."""
        return self.hpr.stored

    def add(
        self, obs: np.ndarray, teacher_logits: torch.Tensor, value: torch.Tensor, new_episode: np.ndarray
    ) -> np.ndarray:
        """Store one experience per env: its observation and the teacher's outputs for it.
        Returns the buffer slots written."""
        data = {"teacher_logits": teacher_logits.cpu(), "value": value.cpu().reshape(-1)}
        if self.frames is None:
            return self.store(data | {"obs": torch.as_tensor(obs)})
        return self.store(data, {"obs": self.frames.encode(obs, new_episode)})

    def store(self, data: dict[str, torch.Tensor], frame_ids: dict | None = None) -> np.ndarray:
        """``buffer.extend`` a batch (the writer places each row by its ``value``); rows of
        ``frame_ids`` reference the pool's frames. Returns the buffer slots written."""
        rows = len(next(iter(data.values())))
        slots = self.buffer.extend(TensorDict(data, batch_size=[rows], device="cpu")).numpy()
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
        """A minibatch (``buffer.sample``): the stored entries, ``index`` (the slots),
        ``index_generation`` (each slot's write count when drawn: ``update_priority`` drops an
        update for a slot rewritten since, as Lightning fetches the next batch before the current
        update) and ``weight`` (the importance weights)."""
        batch, info = self.buffer.sample(self.batch_size, return_info=True)
        entries = dict(batch.items()) | {
            "index": info["index"],
            "index_generation": info["index_generation"],
            "weight": info["_weight"],
        }
        if self.frames is not None:
            slots = info["index"].numpy()
            for key, ids in self.slot_frames.items():
                entries[key] = self.frames.pool.gather(ids[slots])
        return unchecked_tensordict(entries, self.batch_size, batch.device)

    def update_priority(self, index: torch.Tensor, generation: torch.Tensor, priority: torch.Tensor) -> None:
        """The sampled experiences' new ``|delta|`` (a no-op for uniform sampling)."""
        if self.prioritized:
            self.buffer.update_priority(index, priority, generation)  # the memory takes tensors on any device

    def state_dict(self) -> dict:
        """What a resumed run needs to sample as this memory would have, in bytes proportional to
        what it holds (not to its capacity): the memory's state, the stored slots' rows and the
        frames in use."""
        slots = torch.from_numpy(self.hpr.stored_slots())
        stored = self.buffer.storage.initialized and len(slots) > 0
        state = {
            "replay": self.hpr.state_dict(),
            "rows": self.buffer.storage.get(slots).to_dict() if stored else {},
        }
        if self.frames is not None:
            state["frames"] = self.frames.state_dict()
            state["slot_frames"] = {
                key: torch.from_numpy(ids[slots.numpy()].copy()) for key, ids in self.slot_frames.items()
            }
        return state

    def load_state_dict(self, state: dict) -> None:
        if "replay" not in state:
            raise ConfigError(
                "this checkpoint's replay was written by lightning_distill < 0.9; resume it with that "
                "version, or set data.init_args.checkpoint_replay false"
            )
        self.hpr.load_state_dict(state["replay"])  # checks the layout first
        slots = torch.from_numpy(self.hpr.stored_slots())
        if len(slots) and state["rows"]:
            rows = TensorDict(state["rows"], batch_size=[len(slots)], device="cpu")
            self.buffer.writer.write_rows(slots, rows)
        if self.frames is not None:
            self.frames.load_state_dict(state["frames"])
            for key, ids in self.slot_frames.items():
                ids[:] = -1
                ids[slots.numpy()] = state["slot_frames"][key].numpy()


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
        if self.frames is None:
            return self.store(data | {"obs": torch.as_tensor(obs), "next_obs": torch.as_tensor(next_obs)})
        pool = self.frames.pool
        obs_ids = self.frames.hold(obs, new_episode)
        pool.incref(obs_ids)  # kept alive while the stacks move on to next_obs
        next_ids = self.frames.encode(next_obs, np.zeros(len(obs), dtype=bool))
        slots = self.store(data, {"obs": obs_ids, "next_obs": next_ids})
        pool.decref(obs_ids)
        return slots
