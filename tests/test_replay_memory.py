"""Per-task replay memories: frame-deduplicated Atari stacks come back exactly as observed."""

import numpy as np
import torch

from lightning_distill.envs import make_vec_env
from lightning_distill.replay import UniformReplay
from lightning_distill.replay.frames import FramePool
from lightning_distill.replay.hierarchical import HierarchicalMemory, HierarchicalReplayBuffer
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
    for slot, stack in zip(batch["index"].tolist(), batch["obs"], strict=True):
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
    assert batch["weight"].eq(1).all() and batch["teacher_logits"].shape == (8, 6)


def hpr_memory(task: Task, partition_capacity: int, num_envs: int = 2, seed: int = 0) -> TaskMemory:
    """An H-PR memory of 5 partitions over [0, 1] (no teacher play needed)."""
    memory = HierarchicalMemory(5, partition_capacity, (0.0, 1.0), window=1000, seed=seed)
    return TaskMemory(HierarchicalReplayBuffer(memory, 16), task, batch_size=16, num_envs=num_envs)


def fill(memory: TaskMemory, steps: int, num_envs: int, seed: int) -> None:
    """``steps`` agent steps of random MinAtar-shaped experiences, with priorities updated."""
    rng = np.random.default_rng(seed)
    task = memory.task
    for _ in range(steps):
        obs = rng.integers(0, 2, (num_envs, *task.obs_shape), dtype=np.uint8)
        q = torch.as_tensor(rng.random((num_envs, task.num_actions)), dtype=torch.float32)
        memory.add(obs, q, q.max(dim=1).values, np.zeros(num_envs, dtype=bool))
        batch = memory.sample()
        priority = torch.as_tensor(rng.random(len(batch["index"])), dtype=torch.float32)
        memory.update_priority(batch["index"], batch["index_generation"], priority)


def test_a_saved_memory_holds_only_what_is_stored_and_samples_on_as_the_original():
    import io

    task = Task("MinAtar/Breakout")
    memory = hpr_memory(task, partition_capacity=20_000)  # 100k slots, 1.5k experiences held
    fill(memory, 750, num_envs=2, seed=0)
    state = memory.state_dict()
    saved = io.BytesIO()
    torch.save(state, saved)
    slots = torch.from_numpy(memory.hpr.stored_slots())
    held = sum(column.nbytes for column in memory.buffer.storage.get(slots).values())  # bytes per row x rows
    assert len(memory) == 1500 and saved.getbuffer().nbytes <= 1.1 * held

    restored = hpr_memory(task, partition_capacity=20_000)
    restored.load_state_dict(torch.load(io.BytesIO(saved.getvalue()), weights_only=True))
    assert restored.partition_sizes.tolist() == memory.partition_sizes.tolist() and len(restored) == 1500
    assert (restored.buffer.storage.get(slots) == memory.buffer.storage.get(slots)).all()
    for name in ("priority", "generation", "sizes", "recent", "visits"):
        assert np.array_equal(getattr(restored.hpr, name), getattr(memory.hpr, name)), name
    # the same draws, weights and contents from here on, new experiences and priorities included
    fill(memory, 30, num_envs=2, seed=1)
    fill(restored, 30, num_envs=2, seed=1)
    mine, theirs = memory.sample(), restored.sample()
    assert all(torch.equal(mine[key], theirs[key]) for key in ("index", "weight", "obs", "teacher_logits"))


def test_a_saved_atari_memory_keeps_only_the_frames_in_use_and_the_same_stacks():
    import io

    task = Task("ALE/Breakout")
    num_envs = 2
    memory = TaskMemory(UniformReplay(5000).make_buffer(task, None, 32), task, batch_size=32, num_envs=num_envs)
    env = make_vec_env(task, num_envs, seed=3)
    rng = np.random.default_rng(0)
    obs, new_episode = env.reset(), np.ones(num_envs, dtype=bool)
    for _ in range(150):
        q = torch.zeros(num_envs, task.num_actions)
        memory.add(obs, q, q.max(dim=1).values, new_episode)
        step = env.step(rng.integers(0, task.num_actions, num_envs))
        obs, new_episode = step.obs, step.terminated | step.truncated
    env.close()
    saved = io.BytesIO()
    torch.save(memory.state_dict(), saved)
    frame_bytes = 84 * 84
    # one new frame per experience, plus each env's first stack: 7.1 KB an experience, not 28 KB
    assert saved.getbuffer().nbytes <= 1.1 * frame_bytes * (len(memory) + 3 * num_envs)

    restored = TaskMemory(UniformReplay(5000).make_buffer(task, None, 32), task, batch_size=32, num_envs=num_envs)
    restored.load_state_dict(torch.load(io.BytesIO(saved.getvalue()), weights_only=True))
    mine, theirs = memory.sample(), restored.sample()
    assert torch.equal(mine["index"], theirs["index"]) and torch.equal(mine["obs"], theirs["obs"])


def test_the_dqn_replay_stores_an_atari_transition_in_one_frame_and_returns_both_exact_stacks():
    from lightning_distill.replay.memory import TransitionMemory

    task = Task("ALE/Breakout")
    num_envs, capacity = 2, 300
    memory = TransitionMemory(task, capacity, batch_size=64, num_envs=num_envs)
    env = make_vec_env(task, num_envs, seed=3)
    rng = np.random.default_rng(0)
    stored: dict[int, tuple] = {}  # slot -> (obs, next_obs, action) written there
    obs, new_episode, episodes = env.reset(), np.ones(num_envs, dtype=bool), 0
    for _ in range(600):  # episodes end (random play) and the memory wraps 4 times
        actions = rng.integers(0, task.num_actions, num_envs)
        step = env.step(actions)
        slots = memory.add_transitions(obs, actions, step.reward, step.next_obs, step.terminated, new_episode)
        for i, slot in enumerate(slots):
            stored[int(slot)] = (obs[i].copy(), step.next_obs[i].copy(), int(actions[i]))
        obs, new_episode = step.obs, step.terminated | step.truncated
        episodes += int(new_episode.sum())
    env.close()
    assert episodes >= 2 and len(memory) == capacity
    batch = memory.sample()
    for slot, o, n, a in zip(batch["index"].tolist(), batch["obs"], batch["next_obs"], batch["action"], strict=True):
        assert np.array_equal(o.numpy(), stored[slot][0]) and np.array_equal(n.numpy(), stored[slot][1])
        assert int(a) == stored[slot][2]
    # one frame per transition, plus the first stacks of episodes and the envs' current stacks
    assert memory.frames.pool.in_use <= capacity + 4 * (episodes + num_envs) + 4 * num_envs
    frames_held = memory.frames.pool.in_use * 84 * 84
    rows = memory.buffer.storage.get(torch.arange(capacity))
    per_slot = sum(ids.nbytes for ids in memory.slot_frames.values()) + sum(c.nbytes for c in rows.values())
    assert (frames_held + per_slot) / capacity <= 7.5 * 1024, (frames_held + per_slot) / capacity
    # a checkpoint holds the frames in use, and the restored memory samples the same transitions
    import io

    saved = io.BytesIO()
    torch.save(memory.state_dict(), saved)
    assert saved.getbuffer().nbytes <= 1.1 * (frames_held + per_slot * len(memory) / capacity)
    restored = TransitionMemory(task, capacity, batch_size=64, num_envs=num_envs)
    restored.load_state_dict(torch.load(io.BytesIO(saved.getvalue()), weights_only=True))
    mine, theirs = memory.sample(), restored.sample()
    assert all(torch.equal(mine[k], theirs[k]) for k in ("index", "obs", "next_obs", "action", "reward", "terminated"))


def test_a_replay_saved_whole_by_an_older_release_is_refused_with_one_line():
    import pytest

    from lightning_distill.errors import ConfigError

    task = Task("MinAtar/Breakout")
    memory = TaskMemory(UniformReplay(50).make_buffer(task, None, 8), task, batch_size=8, num_envs=1)
    # 0.6's (the whole buffer), 0.6's DQN replay, 0.7-0.8's (writer and sampler apart)
    for older in ({"buffer": {}}, {"_storage": {}, "_sampler": {}, "_writer": {}}, {"writer": {}, "sampler": {}}):
        with pytest.raises(ConfigError, match=r"written by lightning_distill < 0\.9.*checkpoint_replay false"):
            memory.load_state_dict(older)
