"""Atari teachers see what they were trained on: side by side with Stable-Baselines3's own
``AtariWrapper`` + ``VecFrameStack`` (same ROM, same actions, no sticky actions, no no-op
starts), the observations match pixel for pixel with ``preprocessing: sb3``; ALE's own
pipeline (the default) differs where the max-pool of grey frames is not the grey of the
max-pooled RGB frames."""

import gymnasium as gym
import numpy as np
import pytest

from lightning_distill.envs import make_vec_env
from lightning_distill.errors import ConfigError
from lightning_distill.tasks import Task

cv2 = pytest.importorskip("cv2")
atari_wrappers = pytest.importorskip("stable_baselines3.common.atari_wrappers")
vec_env = pytest.importorskip("stable_baselines3.common.vec_env")
ale_py = pytest.importorskip("ale_py")
gym.register_envs(ale_py)


def sb3_env(game: str, terminal_on_life_loss: bool = False):
    """What RL Zoo trains and evaluates Atari agents behind (its sticky-free NoFrameskip-v4)."""

    def make():
        env = gym.make(f"{game}NoFrameskip-v4")
        return atari_wrappers.AtariWrapper(
            env, noop_max=0, terminal_on_life_loss=terminal_on_life_loss, clip_reward=False
        )

    return vec_env.VecTransposeImage(vec_env.VecFrameStack(vec_env.DummyVecEnv([make]), 4))


def cleanrl_env(game: str):
    """CleanRL's ppo_atari / dqn_atari stack (gymnasium 0.29's resize, then cv2 grey)."""

    def make():
        env = gym.make(f"{game}NoFrameskip-v4")
        env = atari_wrappers.MaxAndSkipEnv(env, skip=4)
        env = atari_wrappers.FireResetEnv(env)
        env = gym.wrappers.ResizeObservation(env, (84, 84))
        env = gym.wrappers.TransformObservation(
            env, lambda o: cv2.cvtColor(o, cv2.COLOR_RGB2GRAY), gym.spaces.Box(0, 255, (84, 84), np.uint8)
        )
        return gym.wrappers.FrameStackObservation(env, 4, padding_type="reset")

    return gym.vector.SyncVectorEnv([make])


def largest_difference(reference, ours, num_actions: int, steps: int, until_life_lost: bool = False) -> int:
    """Step both with the same random actions; the largest pixel difference seen."""
    ref_obs, our_obs = reference.reset(), ours.reset()
    if isinstance(ref_obs, tuple):  # a gymnasium vector env
        ref_obs = ref_obs[0]
    rng = np.random.default_rng(0)
    worst = 0
    for _ in range(steps):
        worst = max(worst, int(np.abs(np.asarray(ref_obs, int) - our_obs).max()))
        action = np.array([rng.integers(num_actions)])
        result = reference.step(action)
        ref_obs, ref_done = result[0], np.logical_or(result[2], result[3]) if len(result) == 5 else result[2]
        step = ours.step(action)
        our_obs = step.obs
        if ref_done[0] or step.terminated[0] or step.truncated[0]:
            break
    return worst


def test_sb3_preprocessing_matches_sb3s_wrappers_pixel_for_pixel_and_ale_does_not():
    task = Task("ALE/Pong", noop_max=0, preprocessing="sb3")
    assert largest_difference(sb3_env("Pong"), make_vec_env(task, 1, seed=0), task.num_actions, 300) == 0
    ale = Task("ALE/Pong", noop_max=0)
    ale_env = make_vec_env(ale, 1, seed=0)
    ale_env.reset()
    for action in (1, 2):  # what SB3's FireResetEnv presses after its reset
        ale_env.step(np.array([action]))
    sb3 = sb3_env("Pong")
    sb3.reset()
    worst = 0
    rng = np.random.default_rng(0)
    for _ in range(100):
        action = np.array([rng.integers(ale.num_actions)])
        worst = max(worst, int(np.abs(sb3.step(action)[0].astype(int) - ale_env.step(action).obs).max()))
    assert worst > 0  # the same game states, pixels off: the option above is what makes them match


def test_sb3_preprocessing_presses_fire_at_each_life_as_sb3s_episodic_life_did():
    task = Task("ALE/Breakout", noop_max=0, preprocessing="sb3")
    ours = make_vec_env(task, 1, seed=0)
    reference = sb3_env("Breakout", terminal_on_life_loss=True)  # an "episode" per life: no-op, FIRE, 2
    reference.reset(), ours.reset()
    rng = np.random.default_rng(0)
    lives_lost = 0
    for _ in range(1500):
        action = np.array([rng.integers(task.num_actions)])
        ref_obs, _, ref_done, _ = reference.step(action)
        step = ours.step(action)
        assert np.array_equal(ref_obs[0, -1], step.obs[0, -1])  # the newest frame, every step
        if step.terminated[0]:
            break
        lives_lost += int(ref_done[0])  # SB3 ended a life; the game went on here
    assert lives_lost >= 2


def test_cleanrl_preprocessing_matches_cleanrls_wrapper_stack_pixel_for_pixel():
    task = Task("ALE/Pong", noop_max=0, preprocessing="cleanrl")
    assert largest_difference(cleanrl_env("Pong"), make_vec_env(task, 1, seed=0), task.num_actions, 300) == 0


def test_preprocessing_is_checked_in_one_line():
    with pytest.raises(ConfigError, match=r"unknown preprocessing 'rgb'; valid: \['ale', 'sb3', 'cleanrl'\]"):
        Task("ALE/Pong", preprocessing="rgb")
    with pytest.raises(ConfigError, match="preprocessing 'sb3' is for ALE/ tasks only"):
        Task("MinAtar/Breakout", preprocessing="sb3")


def test_a_compat_pipeline_renders_the_screen_for_play_videos():
    env = make_vec_env(Task("ALE/Pong", preprocessing="sb3"), 1, seed=0, render=True)
    env.reset()
    env.step(np.array([0]))
    assert env.render().shape == (210, 160, 3)
