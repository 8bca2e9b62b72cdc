"""Every backend steps with the right shapes, dtypes, autoreset and no-op starts."""

import numpy as np
import pytest

from lightning_distill.envs import make_vec_env
from lightning_distill.tasks import Task


def random_actions(task: Task, n: int, rng) -> np.ndarray:
    if task.discrete:
        return rng.integers(0, task.num_actions, n)
    return rng.uniform(-1, 1, (n, task.num_actions)).astype(np.float32)


@pytest.mark.parametrize(
    "task_id,shape,dtype",
    [
        ("ALE/Breakout", (4, 84, 84), np.uint8),
        ("MinAtar/Seaquest", (10, 10, 10), np.uint8),
        ("MinAtar/Breakout", (4, 10, 10), np.uint8),
        ("CartPole-v1", (4,), np.float32),
    ],
)
def test_backend_steps_with_task_shapes_and_dtypes(task_id, shape, dtype):
    task = Task(task_id)
    env = make_vec_env(task, num_envs=3, seed=0)
    rng = np.random.default_rng(0)
    obs = env.reset()
    assert obs.shape == (3, *shape) and obs.dtype == dtype
    for _ in range(50):
        step = env.step(random_actions(task, 3, rng))
    assert step.obs.shape == step.next_obs.shape == (3, *shape)
    assert step.obs.dtype == dtype
    assert step.reward.shape == (3,) and step.reward.dtype == np.float32
    assert step.terminated.dtype == np.bool_ and step.truncated.dtype == np.bool_
    env.close()


def test_next_obs_is_the_final_state_when_an_episode_ends():
    env = make_vec_env(Task("CartPole-v1"), num_envs=1, seed=0)
    env.reset()
    for steps in range(1, 500):  # noqa: B007 - the step count is read after the loop
        step = env.step(np.array([0]))  # always push left: falls within ~10 steps
        if step.terminated[0]:
            break
    assert step.terminated[0]
    assert env.episodes.pop_finished() == [(0, float(steps), steps)]
    x, _, angle, _ = step.next_obs[0]
    assert abs(x) > 2.4 or abs(angle) > 0.2095  # CartPole's termination bounds
    assert np.abs(step.obs[0]).max() <= 0.05  # the reset state of the next episode


def test_raw_rewards_reach_the_episode_tracker():
    env = make_vec_env(Task("CartPole-v1"), num_envs=2, seed=1)
    env.reset()
    for _ in range(200):
        env.step(np.array([0, 1]))
    finished = env.episodes.pop_finished()
    assert finished and all(ret == length for _, ret, length in finished)  # +1 a step
    assert env.episodes.pop_finished() == []


def _first_obs_per_env(task: Task, num_envs: int = 6) -> np.ndarray:
    env = make_vec_env(task, num_envs=num_envs, seed=3)
    obs = env.reset()
    env.close()
    return obs


def test_atari_noop_starts_differ_between_envs_and_no_noops_do_not():
    with_noops = _first_obs_per_env(Task("ALE/SpaceInvaders", noop_max=30))
    without = _first_obs_per_env(Task("ALE/SpaceInvaders", noop_max=0))
    assert all((without[i] == without[0]).all() for i in range(1, 6))  # deterministic ALE
    assert any((with_noops[i] != with_noops[0]).any() for i in range(1, 6))


def test_minatar_noop_starts_advance_the_game_before_the_first_observation():
    task_kwargs = dict(sticky_action_prob=0.0)
    with_noops = _first_obs_per_env(Task("MinAtar/Freeway", noop_max=30, **task_kwargs))
    without = _first_obs_per_env(Task("MinAtar/Freeway", noop_max=0, **task_kwargs))
    assert any((with_noops[i] != without[i]).any() for i in range(6))  # cars moved during no-ops


def test_render_gives_rgb_frames_for_videos():
    for task_id in ("ALE/Pong", "MinAtar/Breakout", "CartPole-v1"):
        env = make_vec_env(Task(task_id), num_envs=1, seed=0, render=True)
        env.reset()
        env.step(np.array([0]))
        frame = env.render()
        assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8 and frame.max() > 0
        env.close()


def test_reacher_source_tasks_change_the_reward_or_confine_the_goal_and_nothing_else():
    pytest.importorskip("mujoco")
    from lightning_distill.tasks import make_gym_env

    action = np.array([0.5, -1.0], dtype=np.float32)
    for variant, expected in (
        ("reacher_similar", lambda info: info["reward_dist"] + 3 * info["reward_ctrl"]),
        ("reacher_different", lambda info: info["reward_dist"] - info["reward_ctrl"]),
    ):
        env = make_gym_env(Task(id="Reacher-v5", reward=variant))
        env.reset(seed=0)
        _, reward, *_, info = env.step(action)
        assert reward == pytest.approx(expected(info)) and info["env_reward"] != reward
    quadrant, target = (
        make_gym_env(Task(id="Reacher-v5", reward="reacher_quadrant")),
        make_gym_env(Task(id="Reacher-v5")),
    )
    goals = np.array([quadrant.reset(seed=seed)[0][4:6] for seed in range(100)])
    assert (goals > 0).all() and (np.linalg.norm(goals, axis=1) < 0.2).all()  # qpos[2:] of the obs is the goal
    assert (np.array([target.reset(seed=seed)[0][4:6] for seed in range(100)]) < 0).any()
    quadrant.reset(seed=3)
    _, reward, *_, info = quadrant.step(action)
    fingertip_to_goal = quadrant.unwrapped.get_body_com("fingertip") - quadrant.unwrapped.get_body_com("target")
    assert np.allclose(quadrant.unwrapped.get_body_com("target")[:2], goals[3])  # the physics sees the new goal
    assert reward == pytest.approx(-np.linalg.norm(fingertip_to_goal) - np.square(action).sum())  # the target's reward
