"""Observation and reward normalisation for PPO, as Stable-Baselines3's ``VecNormalize`` does it.

- ``ObsNormalizer``: ``clip((s - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)`` with a
  running mean and variance of the observations seen. It is a layer of the actor-critic
  (``policies.ActorCritic``), so its statistics are in every checkpoint's state dict and a
  teacher loaded from one normalises what it sees as it did when it learned, whoever acts.
- ``RewardScaler``: rewards divided by the running standard deviation of the discounted return
  (not centred: the sign of a reward is kept), then clipped to ``clip_reward``.

Both follow SB3's defaults (``clip 10``, ``epsilon 1e-8``) and its update rule for the
statistics (Chan et al.'s parallel merge of a batch into the running moments), so that an SB3
teacher's ``vec_normalize.pkl`` (read by ``teachers.vec_normalize``) means the same here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

EPSILON = 1e-8


class RunningMeanStd(nn.Module):
    """Running mean and variance of a stream of batches (float64 buffers, in the state dict).

    ``count`` starts at ``epsilon`` as in SB3, so the first batch's moments are taken almost as is.
    """

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, shape: Sequence[int] = ()) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(tuple(shape), dtype=torch.float64))
        self.register_buffer("var", torch.ones(tuple(shape), dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Merge a batch ``[B, *shape]`` into the running moments."""
        batch = batch.to(torch.float64).reshape(-1, *self.mean.shape)
        batch_mean, batch_var, batch_count = batch.mean(0), batch.var(0, unbiased=False), batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        m2 = self.var * self.count + batch_var * batch_count + delta.pow(2) * self.count * batch_count / total
        self.mean.add_(delta * batch_count / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)


class ObsNormalizer(nn.Module):
    """``clip((s - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``: the first layer of a PPO
    actor-critic with ``normalize_obs``. The statistics change only through ``update``."""

    def __init__(self, shape: Sequence[int], clip_obs: float = 10.0, epsilon: float = EPSILON) -> None:
        super().__init__()
        self.stats = RunningMeanStd(shape)
        self.clip_obs = float(clip_obs)
        self.epsilon = float(epsilon)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(self.stats.var + self.epsilon)
        normalised = (obs.to(torch.float64) - self.stats.mean) * scale
        return normalised.clamp(-self.clip_obs, self.clip_obs).to(
            obs.dtype if obs.is_floating_point() else torch.float32
        )

    def update(self, obs: torch.Tensor) -> None:
        self.stats.update(obs)

    @classmethod
    def from_stats(cls, mean, var, count: float, clip_obs: float, epsilon: float) -> ObsNormalizer:
        """A normaliser holding given statistics (an SB3 teacher's ``VecNormalize``)."""
        normalizer = cls(tuple(mean.shape), clip_obs, epsilon)
        normalizer.stats.mean.copy_(torch.as_tensor(mean, dtype=torch.float64))
        normalizer.stats.var.copy_(torch.as_tensor(var, dtype=torch.float64))
        normalizer.stats.count.fill_(float(count))
        return normalizer

    def extra_repr(self) -> str:
        return f"clip_obs={self.clip_obs}, epsilon={self.epsilon}"


class RewardScaler(nn.Module):
    """``clip(r / sqrt(Var[R] + epsilon), -clip_reward, clip_reward)`` with ``R`` the running
    discounted return ``R_t = gamma R_{t-1} + r_t`` of each env, reset where an episode ends.

    ``returns`` (one per env) carries over from one rollout to the next; the PPO module keeps it
    in its checkpoints, and the statistics are buffers of its state dict.
    """

    def __init__(self, gamma: float = 0.99, clip_reward: float = 10.0, epsilon: float = EPSILON) -> None:
        super().__init__()
        self.stats = RunningMeanStd(())
        self.gamma = float(gamma)
        self.clip_reward = float(clip_reward)
        self.epsilon = float(epsilon)
        self.returns: torch.Tensor | None = None

    @torch.no_grad()
    def returns_through(self, reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """The discounted returns ``[T, N]`` of each step of a rollout, carried on from the last one."""
        returns = torch.zeros(reward.shape[1], dtype=torch.float64, device=reward.device)
        if self.returns is not None:  # carried on from the last rollout (or a checkpoint, on the CPU)
            returns = self.returns.to(reward.device)
        seen = []
        for t in range(reward.shape[0]):
            returns = returns * self.gamma + reward[t].to(torch.float64)
            seen.append(returns)
            returns = torch.where(done[t], torch.zeros_like(returns), returns)
        self.returns = returns
        return torch.stack(seen)

    def update(self, reward: torch.Tensor, done: torch.Tensor) -> None:
        """Run the discounted returns through a ``[T, N]`` rollout and merge them into the statistics."""
        self.stats.update(self.returns_through(reward, done))

    def forward(self, reward: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(self.stats.var + self.epsilon).to(reward.dtype)
        return (reward * scale).clamp(-self.clip_reward, self.clip_reward)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, clip_reward={self.clip_reward}"
