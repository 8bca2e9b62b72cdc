"""The one evaluation protocol every part of the project uses (spec section 7).

Play the policy epsilon-greedy (epsilon = 0.05) with the task's random no-op starts, for a
budget of agent steps or of episodes, and report the mean, standard deviation and count of
the returns of the episodes that *completed* within the budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from lightning_distill.envs import make_vec_env
from lightning_distill.errors import ConfigError
from lightning_distill.networks import acting_kernels
from lightning_distill.tasks import Task

#: observations (a batch, as a tensor) -> the task's own greedy actions (or continuous actions)
Policy = Callable[[torch.Tensor], torch.Tensor]
#: (task indices, each of those tasks' observations) -> each of those tasks' own actions
TaskPolicies = Callable[[Sequence[int], Sequence[torch.Tensor]], Sequence[torch.Tensor]]

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

    episodes: int | Literal["auto"] = "auto"
    steps: int | None = None
    epsilon: float = EVAL_EPSILON
    num_envs: int = 1
    seed: int = 12345

    def __post_init__(self) -> None:
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


class _TaskEvaluation:
    """One task's evaluation in progress: its envs, exploration stream and episode quotas."""

    def __init__(
        self, task: Task, episodes: int | None, steps: int | None, num_envs: int, seed: int, render: bool
    ) -> None:
        num_envs = min(num_envs, episodes) if episodes is not None else num_envs
        self.task = task
        self.rng = np.random.default_rng(seed)
        self.env = make_vec_env(task, num_envs, seed=seed, render=render)
        self.quotas = _episode_quotas(episodes, num_envs) if episodes is not None else None
        self.steps_left = math.ceil(steps / num_envs) if steps is not None else None
        self.done_count = np.zeros(num_envs, dtype=np.int64)
        self.returns: list[float] = []
        self.obs = self.env.reset()

    @property
    def playing(self) -> bool:
        if self.steps_left is not None:
            return self.steps_left > 0
        assert self.quotas is not None
        return bool((self.done_count < self.quotas).any())

    def step(self, actions: np.ndarray, epsilon: float) -> None:
        """Act (epsilon-greedy where discrete) and keep the returns of episodes within quota."""
        if self.task.discrete:
            actions = epsilon_greedy(actions, epsilon, self.task.num_actions, self.rng)
        self.obs = self.env.step(actions).obs
        for i, ret, _ in self.env.episodes.pop_finished():
            if self.quotas is None or self.done_count[i] < self.quotas[i]:
                self.returns.append(ret)
            self.done_count[i] += 1
        if self.steps_left is not None:
            self.steps_left -= 1


def _check_budget(episodes: int | None, steps: int | None) -> None:
    if (episodes is None) == (steps is None):
        raise ConfigError(f"give exactly one evaluation budget: episodes={episodes}, steps={steps}")
    if (episodes is not None and episodes < 1) or (steps is not None and steps < 1):
        raise ConfigError(f"the evaluation budget must be positive: episodes={episodes}, steps={steps}")


@torch.inference_mode()
def evaluate_tasks(
    act: TaskPolicies,
    tasks: Sequence[Task],
    *,
    episodes: int | None = None,
    steps: int | None = None,
    epsilon: float = EVAL_EPSILON,
    num_envs: int = 1,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> list[EvalResult]:
    """Every task's evaluation at once, in lockstep: each agent step is one call of ``act`` over
    the observations of the tasks still playing, and one copy of their actions to the host.

    Each task keeps its own envs and exploration stream, seeded with ``seed`` as ``evaluate``
    seeds them, so a task's result is the one ``evaluate`` gives for the same actions."""
    _check_budget(episodes, steps)
    runs: list[_TaskEvaluation] = []
    try:
        for task in tasks:
            runs.append(_TaskEvaluation(task, episodes, steps, num_envs, seed, render=False))
        rows = max(run.env.num_envs for run in runs)
        while playing := [i for i, run in enumerate(runs) if run.playing]:
            with acting_kernels(tasks, rows):
                actions = act(playing, [torch.as_tensor(runs[i].obs, device=device) for i in playing])
            for i, host in zip(playing, to_host(actions), strict=True):
                runs[i].step(host.numpy(), epsilon)
    finally:
        for run in runs:
            run.env.close()
    return [EvalResult.from_returns(run.returns) for run in runs]


def to_host(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The tensors on the CPU, in one device-to-host copy from an accelerator (as they are on a
    CPU): every task's actions (and teacher outputs) of a step, flattened, copied, split again."""
    if all(t.device.type == "cpu" for t in tensors):
        return list(tensors)
    flat = torch.cat([t.reshape(-1).to(torch.float32) for t in tensors]).cpu()
    parts = flat.split([t.numel() for t in tensors])
    return [p.reshape(t.shape).to(t.dtype) for p, t in zip(parts, tensors, strict=True)]


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
    _check_budget(episodes, steps)
    run = _TaskEvaluation(task, episodes, steps, num_envs, seed, render=on_frame is not None)
    try:
        while run.playing:
            if on_frame is not None:
                on_frame(run.env.render())
            with acting_kernels([task], run.env.num_envs):
                actions = policy(torch.as_tensor(run.obs, device=device))
            run.step(actions.cpu().numpy(), epsilon)
    finally:
        run.env.close()
    return EvalResult.from_returns(run.returns)
