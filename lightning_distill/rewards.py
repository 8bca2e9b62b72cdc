"""Reward variants: the same environment with a changed reward, to make REPAINT's source tasks.

A task names one with ``Task(id, reward=<name>)``; the env is then wrapped so that every
consumer (training, evaluation, ``play``) sees that reward. Dynamics and observations are
unchanged, so a teacher trained on a variant acts in the original task (the target).

- ``cartpole_centered`` (similar to CartPole): ``1 - |x| / 2.4``: balance, and keep the cart
  near the centre.
- ``reacher_similar`` (similar to Reacher): ``reward_dist + 3 * reward_ctrl``: the same goal,
  a control cost weighted 3x.
- ``reacher_different`` (different from Reacher): ``reward_dist - reward_ctrl``: the control
  term's sign flipped, so the teacher is paid for large torques, which the target penalises.

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


@dataclass(frozen=True)
class RewardVariant:
    env_prefix: str  # the gymnasium ids it applies to start with this
    fn: RewardFn
    doc: str


def _info_terms(**weights: float) -> RewardFn:
    def reward(obs: np.ndarray, env_reward: float, info: dict[str, Any]) -> float:
        return float(sum(w * float(info[term]) for term, w in weights.items()))

    return reward


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
    """Replace the env's reward with a variant's; the original stays in ``info["env_reward"]``."""

    def __init__(self, env: gymnasium.Env, name: str) -> None:
        super().__init__(env)
        self.variant = REWARD_VARIANTS[name]

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info, env_reward=reward)
        return obs, self.variant.fn(obs, float(reward), info), terminated, truncated, info
