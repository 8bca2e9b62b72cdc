"""Source-task variants: the same environment with a changed reward, or (a sub-task) with its
episodes confined to a part of the target task's, to make REPAINT's source tasks.

A task names one with ``Task(id, reward=<name>)``; the env is then wrapped so that every
consumer (training, evaluation, ``play``) sees that variant. Dynamics and observations are
unchanged, so a teacher trained on a variant acts in the original task (the target).

- ``cartpole_centered`` (similar to CartPole): ``1 - |x| / 2.4``: balance, and keep the cart
  near the centre.
- ``reacher_similar`` (similar to Reacher): ``reward_dist + 3 * reward_ctrl``: the same goal,
  a control cost weighted 3x.
- ``reacher_different`` (different from Reacher): ``reward_dist - reward_ctrl``: the control
  term's sign flipped, so the teacher is paid for large torques, which the target penalises.
- ``ant_similar`` (similar to Ant): ``reward_forward + reward_survive + 3 * reward_ctrl +
  reward_contact``: the same goal (run forward), a control cost weighted 3x.
- ``reacher_quadrant`` (a sub-task of Reacher): the target's reward, but every goal is drawn in
  one quadrant (x > 0, y > 0) of the target's disk of radius 0.2 instead of anywhere in it. Each
  of its episodes is an episode of the target task; the teacher has solved a quarter of them.

The Reacher terms are gymnasium's own (``info["reward_dist"]``, ``info["reward_ctrl"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np

from lightning_distill.errors import ConfigError

#: (observation after the step, env reward, info) -> the variant's reward
RewardFn = Callable[[np.ndarray, float, dict[str, Any]], float]
#: (the unwrapped env, just reset) -> the observation of the variant's start (None: the env's own)
StartFn = Callable[[Any], np.ndarray]


@dataclass(frozen=True)
class RewardVariant:
    env_prefix: str  # the gymnasium ids it applies to start with this
    fn: RewardFn | None  # None: the env's own reward
    doc: str
    start: StartFn | None = None  # None: the env's own start


def _info_terms(**weights: float) -> RewardFn:
    def reward(obs: np.ndarray, env_reward: float, info: dict[str, Any]) -> float:
        return float(sum(w * float(info[term]) for term, w in weights.items()))

    return reward


def _reacher_goal_in_first_quadrant(env: Any) -> np.ndarray:
    """Redraw the goal of a just-reset Reacher uniformly in the quarter-disk x, y > 0, r < 0.2
    (the target draws it in the whole disk), with the env's own seeded generator."""
    while True:
        goal = env.np_random.uniform(low=0.0, high=0.2, size=2)
        if np.linalg.norm(goal) < 0.2:
            break
    qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
    qpos[-2:] = env.goal = goal
    env.set_state(qpos, qvel)
    return env._get_obs()


def _cartpole_centered(obs: np.ndarray, env_reward: float, info: dict[str, Any]) -> float:
    return 1.0 - abs(float(obs[0])) / 2.4


REWARD_VARIANTS: dict[str, RewardVariant] = {
    "cartpole_centered": RewardVariant("CartPole", _cartpole_centered, "1 - |x| / 2.4"),
    "reacher_similar": RewardVariant(
        "Reacher", _info_terms(reward_dist=1.0, reward_ctrl=3.0), "reward_dist + 3 * reward_ctrl"
    ),
    "reacher_different": RewardVariant(
        "Reacher", _info_terms(reward_dist=1.0, reward_ctrl=-1.0), "reward_dist - reward_ctrl"
    ),
    "ant_similar": RewardVariant(
        "Ant",
        _info_terms(reward_forward=1.0, reward_survive=1.0, reward_ctrl=3.0, reward_contact=1.0),
        "reward_forward + reward_survive + 3 * reward_ctrl + reward_contact",
    ),
    "reacher_quadrant": RewardVariant(
        "Reacher", None, "the target's reward, goals in the quadrant x, y > 0", _reacher_goal_in_first_quadrant
    ),
}


def check_reward_variant(name: str, env_id: str) -> None:
    """One-line error for an unknown variant, or one made for another environment."""
    if name not in REWARD_VARIANTS:
        raise ConfigError(f"unknown reward variant {name!r}; valid: {sorted(REWARD_VARIANTS)}")
    prefix = REWARD_VARIANTS[name].env_prefix
    if not env_id.startswith(prefix):
        valid = sorted(n for n, v in REWARD_VARIANTS.items() if env_id.startswith(v.env_prefix))
        raise ConfigError(
            f"reward variant {name!r} is for {prefix} tasks, not {env_id!r}; valid here: {valid or 'none'}"
        )


class VariantReward(gymnasium.Wrapper):
    """Replace the env's reward with a variant's (the original stays in ``info["env_reward"]``),
    and its start with the variant's where it has one."""

    def __init__(self, env: gymnasium.Env, name: str) -> None:
        super().__init__(env)
        self.variant = REWARD_VARIANTS[name]

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        if self.variant.start is not None:
            obs = self.variant.start(self.env.unwrapped).astype(obs.dtype)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.variant.fn is None:
            return obs, reward, terminated, truncated, info
        info = dict(info, env_reward=reward)
        return obs, self.variant.fn(obs, float(reward), info), terminated, truncated, info
