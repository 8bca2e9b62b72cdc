"""Per-task replay memories: frame-deduplicated Atari stacks come back exactly as observed."""

import numpy as np
import torch

from lightning_distill.envs import make_vec_env
from lightning_distill.replay import UniformReplay
from lightning_distill.replay.frames import FramePool
from lightning_distill.replay.memory import TaskMemory
from lightning_distill.tasks import Task


def test_frame_pool_frees_unreferenced_frames_and_keeps_content_when_growing():
    pool = FramePool((2, 2), initial_capacity=2)
    first = pool.add(np.full((2, 2, 2), 7, dtype=np.uint8))
    pool.incref(first)
    more = pool.add(np.arange(12, dtype=np.uint8).reshape(3, 2, 2))  # grows past 2
    assert pool.capacity >= 5 and pool.gather(first).eq(7).all()
    assert pool.gather(more[1:2]).flatten().tolist() == [4, 5, 6, 7]
    pool.incref(more)
    pool.decref(first)
    assert pool.in_use == 3
    reused = pool.add(np.zeros((1, 2, 2), dtype=np.uint8))
    assert reused[0] in set(first.tolist())


def test_atari_memory_stores_each_frame_once_and_returns_the_exact_stacks():
    task = Task("ALE/Breakout")
    num_envs, capacity = 2, 200
    memory = TaskMemory(UniformReplay(capacity).make_buffer(task, None, 64), task, batch_size=64, num_envs=num_envs)
    env = make_vec_env(task, num_envs, seed=3)
    rng = np.random.default_rng(0)
    stored: dict[int, np.ndarray] = {}  # slot -> the stack written there
    obs, new_episode, episodes = env.reset(), np.ones(num_envs, dtype=bool), 0
    for _ in range(700):  # several episodes end (random play), and the memory wraps 7 times
        q = torch.zeros(num_envs, task.num_actions)
        slots = memory.add(obs, q, q.max(dim=1).values, new_episode)
        stored.update((int(slot), stack.copy()) for slot, stack in zip(slots, obs, strict=True))
        step = env.step(rng.integers(0, task.num_actions, num_envs))
        obs, new_episode = step.obs, step.terminated | step.truncated
        episodes += int(new_episode.sum())
    env.close()
    assert episodes >= 2 and len(memory) == capacity
    batch = memory.sample()
    for slot, stack in zip(memory.slot_of(batch["index"]).tolist(), batch["obs"], strict=True):
        assert np.array_equal(stack.numpy(), stored[slot])
    # one frame per experience, plus the first frames of episodes and the envs' current stacks
    assert memory.frames.pool.in_use <= capacity + 3 * (episodes + 2 * num_envs) + 4 * num_envs
    assert memory.frames.pool.capacity < 700 * num_envs  # freed frames are reused


def test_minatar_memory_keeps_observations_in_the_buffer():
    task = Task("MinAtar/Breakout")
    memory = TaskMemory(UniformReplay(50).make_buffer(task, None, 8), task, batch_size=8, num_envs=1)
    obs = np.ones((1, *task.obs_shape), dtype=np.uint8)
    memory.add(obs, torch.ones(1, 6), torch.ones(1), np.ones(1, dtype=bool))
    batch = memory.sample()
    assert memory.frames is None and batch["obs"].shape == (8, *task.obs_shape)
    assert batch["weight"].eq(1).all() and batch["q_teacher"].shape == (8, 6)
