"""The one evaluation protocol every part of the project uses (spec section 7).

Play the policy epsilon-greedy (epsilon = 0.05) with the task's random no-op starts, for a
budget of agent steps or of episodes, and report the mean, standard deviation and count of
the returns of the episodes that *completed* within the budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from lightning_distill.envs import make_vec_env
from lightning_distill.errors import ConfigError
from lightning_distill.tasks import Task

#: observations (a batch, as a tensor) -> the task's own greedy actions (or continuous actions)
Policy = Callable[[torch.Tensor], torch.Tensor]

EVAL_EPSILON = 0.05


@dataclass
class EvalBudget:
    """How to evaluate each task (spec section 7).

    Args:
        episodes: complete this many episodes; ``auto``: 10, unless ``steps`` is set.
        steps: or play this many agent steps and average the episodes that completed (the
            paper's protocol: 100,000).
        epsilon: epsilon-greedy exploration while evaluating.
        num_envs: parallel evaluation envs (episodes are split evenly).
        seed: seed of the evaluation envs and exploration (the same at every evaluation).
    """

    episodes: int | Literal["auto"] | None = "auto"
    steps: int | None = None
    epsilon: float = EVAL_EPSILON
    num_envs: int = 1
    seed: int = 12345

    def __post_init__(self) -> None:
        if self.episodes is None:  # as written before ``auto``
            self.episodes = "auto"
        if self.episodes != "auto" and self.steps is not None:
            raise ConfigError(
                f"evaluation: set episodes or steps, not both (episodes={self.episodes}, steps={self.steps})"
            )
        for key in ("episodes", "steps", "num_envs"):
            value = getattr(self, key)
            if isinstance(value, int) and value < 1:
                raise ConfigError(f"evaluation.{key} must be >= 1, got {value}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ConfigError(f"evaluation.epsilon must be in [0, 1], got {self.epsilon}")

    def as_kwargs(self) -> dict[str, Any]:
        """The budget as ``evaluate`` takes it (``auto`` resolved)."""
        budget = asdict(self)
        if budget["episodes"] == "auto":
            budget["episodes"] = None if self.steps is not None else 10
        return budget


@dataclass
class EvalResult:
    mean: float
    std: float
    count: int  # completed episodes
    returns: list[float] = field(default_factory=list, repr=False)

    @classmethod
    def from_returns(cls, returns: list[float]) -> EvalResult:
        if not returns:
            return cls(math.nan, math.nan, 0, [])
        arr = np.asarray(returns, dtype=np.float64)
        return cls(float(arr.mean()), float(arr.std()), len(returns), list(returns))


def epsilon_greedy(greedy: np.ndarray, epsilon: float, num_actions: int, rng: np.random.Generator) -> np.ndarray:
    """Replace each action by a uniformly random one of the task's actions with probability epsilon."""
    if epsilon <= 0.0:
        return greedy
    explore = np.asarray(rng.random(greedy.shape[0])) < epsilon
    if explore.any():
        greedy = greedy.copy()
        greedy[explore] = rng.integers(0, num_actions, int(explore.sum()))
    return greedy


def _episode_quotas(episodes: int, num_envs: int) -> np.ndarray:
    """Episodes each env must finish: an even split, so short episodes are not over-counted."""
    return np.array([episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)])


@torch.inference_mode()
def evaluate(
    policy: Policy,
    task: Task,
    *,
    episodes: int | None = None,
    steps: int | None = None,
    epsilon: float = EVAL_EPSILON,
    num_envs: int = 1,
    seed: int = 0,
    device: torch.device | str = "cpu",
    on_frame: Callable[[np.ndarray], None] | None = None,
) -> EvalResult:
    """Play ``policy`` on ``task`` for ``episodes`` episodes or ``steps`` agent steps (exactly one).

    ``epsilon`` applies to discrete tasks; continuous policies act as given. ``on_frame``
    receives an RGB frame of env 0 before every step (for videos).
    """
    if (episodes is None) == (steps is None):
        raise ConfigError(f"give exactly one evaluation budget: episodes={episodes}, steps={steps}")
    if (episodes is not None and episodes < 1) or (steps is not None and steps < 1):
        raise ConfigError(f"the evaluation budget must be positive: episodes={episodes}, steps={steps}")
    num_envs = min(num_envs, episodes) if episodes is not None else num_envs
    rng = np.random.default_rng(seed)
    env = make_vec_env(task, num_envs, seed=seed, render=on_frame is not None)
    quotas = _episode_quotas(episodes, num_envs) if episodes is not None else None
    done_count = np.zeros(num_envs, dtype=np.int64)
    returns: list[float] = []
    try:
        obs = env.reset()
        for _ in range(math.ceil(steps / num_envs) if steps is not None else 2**62):
            if on_frame is not None:
                on_frame(env.render())
            actions = policy(torch.as_tensor(obs, device=device)).cpu().numpy()
            if task.discrete:
                actions = epsilon_greedy(actions, epsilon, task.num_actions, rng)
            obs = env.step(actions).obs
            for i, ret, _ in env.episodes.pop_finished():
                if quotas is None or done_count[i] < quotas[i]:
                    returns.append(ret)
                done_count[i] += 1
            if quotas is not None and (done_count >= quotas).all():
                break
    finally:
        env.close()
    return EvalResult.from_returns(returns)
