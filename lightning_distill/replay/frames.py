"""Atari frame stacks stored once per frame.

A 4x84x84 stack shares three frames with the previous step's stack, so storing stacks costs
four times the memory of storing frames (28 KB against 7 KB an experience). Here each frame
is written once into a ``FramePool``; an experience keeps the ids of its 4 frames. Frames are
reference-counted and freed when no stored experience (and no env's current stack) uses
them, so any eviction order works: a FIFO memory, or H-PR's partitions, each its own FIFO.
"""

from __future__ import annotations

import numpy as np
import torch


class FramePool:
    """Reference-counted storage of single frames, growing by doubling as needed."""

    def __init__(self, frame_shape: tuple[int, ...], initial_capacity: int = 1024) -> None:
        self.frame_shape = tuple(frame_shape)
        self.frames = torch.zeros((initial_capacity, *self.frame_shape), dtype=torch.uint8)
        self.refs = np.zeros(initial_capacity, dtype=np.int32)
        self.free = np.arange(initial_capacity - 1, -1, -1, dtype=np.int64)  # a stack of free ids
        self.num_free = initial_capacity

    @property
    def capacity(self) -> int:
        return len(self.refs)

    @property
    def in_use(self) -> int:
        return self.capacity - self.num_free

    def _grow(self, needed: int) -> None:
        old = self.capacity
        new = max(2 * old, old + needed)
        frames = torch.zeros((new, *self.frame_shape), dtype=torch.uint8)
        frames[:old] = self.frames
        self.frames = frames
        self.refs = np.concatenate([self.refs, np.zeros(new - old, dtype=np.int32)])
        free = np.empty(new, dtype=np.int64)
        free[: self.num_free] = self.free[: self.num_free]
        free[self.num_free : self.num_free + new - old] = np.arange(new - 1, old - 1, -1)
        self.free, self.num_free = free, self.num_free + new - old

    def add(self, frames: np.ndarray) -> np.ndarray:
        """Store ``frames`` ([n, *frame_shape]); their ids, with no references yet."""
        n = len(frames)
        if n > self.num_free:
            self._grow(n - self.num_free)
        ids = self.free[self.num_free - n : self.num_free][::-1].copy()
        self.num_free -= n
        self.frames[torch.from_numpy(ids)] = torch.as_tensor(frames)
        return ids

    def incref(self, ids: np.ndarray) -> None:
        np.add.at(self.refs, ids.ravel(), 1)

    def decref(self, ids: np.ndarray) -> None:
        """Drop one reference per id; frames left with none return to the free stack."""
        ids = ids.ravel()
        np.add.at(self.refs, ids, -1)
        dead = np.unique(ids[self.refs[ids] == 0])
        self.free[self.num_free : self.num_free + len(dead)] = dead
        self.num_free += len(dead)

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        """The frames in use with their ids and counts, and the free stack: bytes in proportion
        to the frames held, not to the pool's capacity (which doubles as it grows)."""
        used = np.flatnonzero(self.refs > 0)
        return {
            "capacity": self.capacity,
            "ids": torch.from_numpy(used),
            "frames": self.frames[torch.from_numpy(used)].clone(),
            "refs": torch.from_numpy(self.refs[used].copy()),
            "free": torch.from_numpy(self.free[: self.num_free].copy()),
        }

    def load_state_dict(self, state: dict) -> None:
        """The same ids hold the same frames, and frees and adds go on in the same order."""
        capacity, ids = int(state["capacity"]), state["ids"]
        self.frames = torch.zeros((capacity, *self.frame_shape), dtype=torch.uint8)
        self.frames[ids] = state["frames"]
        self.refs = np.zeros(capacity, dtype=np.int32)
        self.refs[ids.numpy()] = state["refs"].numpy()
        self.num_free = len(state["free"])
        self.free = np.empty(capacity, dtype=np.int64)
        self.free[: self.num_free] = state["free"].numpy()

    def gather(self, ids: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Frames by id; ``ids`` of shape [batch, stack] give stacks [batch, stack, *frame_shape]."""
        ids = torch.as_tensor(ids)
        return self.frames[ids.reshape(-1)].reshape(*ids.shape, *self.frame_shape)


class FrameStacks:
    """Turns each env's stacked observations into frame ids, writing only frames that are new.

    Each env holds a reference to the frames of its current stack. After a normal step the
    new stack is the old one shifted by one frame, so only its last frame is written; after a
    reset (``new_episode``) the whole stack is.
    """

    def __init__(self, num_envs: int, stack: int, frame_shape: tuple[int, ...]) -> None:
        self.pool = FramePool(frame_shape)
        self.held = np.full((num_envs, stack), -1, dtype=np.int64)  # -1: no stack yet

    def state_dict(self) -> dict:
        return {"pool": self.pool.state_dict(), "held": torch.from_numpy(self.held.copy())}

    def load_state_dict(self, state: dict) -> None:
        self.pool.load_state_dict(state["pool"])
        self.held = state["held"].numpy().copy()

    def hold(self, obs: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        """Frame ids [num_envs, stack] of ``obs``, whose stacks are already held except where
        ``fresh`` (a new episode): those are written whole. (``encode`` shifts instead.)"""
        fresh = fresh | (self.held[:, 0] < 0)
        if fresh.any():
            ids = self.pool.add(obs[fresh].reshape(-1, *self.pool.frame_shape)).reshape(int(fresh.sum()), -1)
            self.pool.incref(ids)
            old = self.held[fresh]
            if (old >= 0).any():
                self.pool.decref(old[old[:, 0] >= 0])
            self.held[fresh] = ids
        return self.held.copy()

    def encode(self, obs: np.ndarray, new_episode: np.ndarray) -> np.ndarray:
        """Frame ids [num_envs, stack] of ``obs`` [num_envs, stack, *frame_shape]."""
        fresh = new_episode | (self.held[:, 0] < 0)
        ids = self.held.copy()
        if fresh.any():
            ids[fresh] = self.pool.add(obs[fresh].reshape(-1, *self.pool.frame_shape)).reshape(int(fresh.sum()), -1)
        shift = ~fresh
        if shift.any():
            ids[shift] = np.concatenate([self.held[shift, 1:], self.pool.add(obs[shift, -1])[:, None]], axis=1)
        self.pool.incref(ids)
        known = self.held[self.held >= 0]
        if known.size:
            self.pool.decref(known)
        self.held = ids
        return ids
