"""Actor-critic networks and the two action distributions PPO and REPAINT need.

``ActionDist`` is ``Categorical`` (``logits``) or a diagonal ``Gaussian`` (``mean``,
``log_std``). It has what the losses use, and nothing else: ``log_prob``, ``entropy``,
``sample``, ``mode`` and ``cross_entropy_from(teacher)``, the kickstarting term
``H(pi_T || pi_theta)`` in closed form for both kinds, and ``executed(low, high)``: the
distribution recentred on the action the env actually receives once it is clipped to the bounds.

``ActorCritic`` is a policy head and a value head over the task's feature extractor:
for images (Atari, MinAtar) one shared extractor, for vectors two separate tanh MLPs (the
usual PPO layout for control, and Stable-Baselines3's ``MlpPolicy``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from lightning_distill.errors import ConfigError
from lightning_distill.networks import EXTRACTOR_HIDDEN, linear_layers, make_encoder
from lightning_distill.normalization import ObsNormalizer
from lightning_distill.tasks import Task

LOG_2PI = math.log(2.0 * math.pi)


class ActionDist(ABC):
    """A batch of action distributions: ``Categorical`` or ``Gaussian``.

    ``columns`` / ``from_columns`` store one in a rollout and read it back: kickstarting keeps the
    teacher's ``pi_T(.|s)`` beside the student's samples."""

    discrete: ClassVar[bool]

    @abstractmethod
    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """log pi(a|s) per sample, [B]."""

    @abstractmethod
    def entropy(self) -> torch.Tensor:
        """H(pi(.|s)) per sample, [B] (the PPO entropy bonus)."""

    @abstractmethod
    def cross_entropy_from(self, teacher: ActionDist) -> torch.Tensor:
        """``H(pi_T || pi_theta) = -E_{a~pi_T} log pi_theta(a|s)`` per sample, [B]; ``self`` is pi_theta."""

    @abstractmethod
    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor: ...

    @abstractmethod
    def mode(self) -> torch.Tensor:
        """The most likely action."""

    @abstractmethod
    def executed(self, low: torch.Tensor, high: torch.Tensor) -> ActionDist:
        """The distribution as it acts in an env that clips actions to ``[low, high]``."""

    @abstractmethod
    def columns(self, shape: Sequence[int]) -> dict[str, torch.Tensor]:
        """The parameters, reshaped to ``shape`` + the event dimension, under their stored names."""

    @staticmethod
    def from_columns(columns: Mapping[str, torch.Tensor]) -> ActionDist:
        """The distribution ``columns`` stored (``teacher_logits``, or ``teacher_mean`` and ``teacher_log_std``)."""
        if "teacher_logits" in columns.keys():
            return Categorical(columns["teacher_logits"])
        return Gaussian(columns["teacher_mean"], columns["teacher_log_std"])


def kind_mismatch() -> ConfigError:
    return ConfigError("teacher and student policies differ in kind (categorical vs Gaussian)")


@dataclass
class Categorical(ActionDist):
    """Categorical over the task's own actions, ``logits`` [B, A]."""

    logits: torch.Tensor
    discrete: ClassVar[bool] = True

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(self.logits, dim=-1)
        return log_p.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        log_p = torch.log_softmax(self.logits, dim=-1)
        return -(log_p.exp() * log_p).sum(dim=-1)

    def cross_entropy_from(self, teacher: ActionDist) -> torch.Tensor:
        if not isinstance(teacher, Categorical):
            raise kind_mismatch()
        p_teacher = torch.softmax(teacher.logits, dim=-1)
        return -(p_teacher * torch.log_softmax(self.logits, dim=-1)).sum(dim=-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.multinomial(torch.softmax(self.logits, dim=-1), 1, generator=generator).squeeze(-1)

    def mode(self) -> torch.Tensor:
        return self.logits.argmax(dim=-1)

    def executed(self, low: torch.Tensor, high: torch.Tensor) -> Categorical:
        return self  # discrete actions are never clipped

    def columns(self, shape: Sequence[int]) -> dict[str, torch.Tensor]:
        return {"teacher_logits": self.logits.reshape(*shape, -1)}


@dataclass
class Gaussian(ActionDist):
    """Diagonal Gaussian, ``mean`` and ``log_std`` [B, D]; its density is the product over dimensions."""

    mean: torch.Tensor
    log_std: torch.Tensor
    discrete: ClassVar[bool] = False

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        z = (action - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * LOG_2PI).sum(dim=-1)

    def entropy(self) -> torch.Tensor:
        return (self.log_std + 0.5 * (LOG_2PI + 1.0)).sum(dim=-1).expand(self.mean.shape[0])

    def cross_entropy_from(self, teacher: ActionDist) -> torch.Tensor:
        """Per dimension: ``log sigma_S + log(2 pi)/2 + (sigma_T^2 + (mu_T - mu_S)^2) / (2 sigma_S^2)``."""
        if not isinstance(teacher, Gaussian):
            raise kind_mismatch()
        var_student = torch.exp(2.0 * self.log_std)
        var_teacher = torch.exp(2.0 * teacher.log_std)
        per_dim = self.log_std + 0.5 * LOG_2PI + (var_teacher + (teacher.mean - self.mean).pow(2)) / (2.0 * var_student)
        return per_dim.sum(dim=-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + noise * torch.exp(self.log_std)

    def mode(self) -> torch.Tensor:
        return self.mean

    def executed(self, low: torch.Tensor, high: torch.Tensor) -> Gaussian:
        """The Gaussian centred on ``E[clip(a, low, high)]``, ``a ~ N(mean, std)``, with the same std.

        A teacher whose mean lies far outside the bounds (e.g. 4.7 against [-1, 1]) acts like one
        that always outputs the bound, but a student kickstarted on the raw mean copies 4.7, clips
        every sample, and PPO then gets no gradient to come back. The mean of the clipped action
        (the censored normal's, in closed form) is what the teacher does on average; a few stds
        inside the bounds it is the mean itself. The spread stays the teacher's own: the clipped
        action's variance goes to 0 for a saturated teacher, and a cross-entropy to that would
        collapse the student's exploration.
        """
        std = torch.exp(self.log_std)
        alpha, beta = (low - self.mean) / std, (high - self.mean) / std
        below, above = torch.special.ndtr(alpha), torch.special.ndtr(-beta)  # P(a < low), P(a > high)
        density = (torch.exp(-0.5 * alpha.pow(2)) - torch.exp(-0.5 * beta.pow(2))) / math.sqrt(2.0 * math.pi)
        at_bounds = _times(low, below) + _times(high, above)  # an infinite bound has mass 0
        mean = at_bounds + self.mean * (1.0 - below - above) + std * density
        return Gaussian(mean, self.log_std)

    def columns(self, shape: Sequence[int]) -> dict[str, torch.Tensor]:
        return {"teacher_mean": self.mean.reshape(*shape, -1), "teacher_log_std": self.log_std.reshape(*shape, -1)}


def _times(bound: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
    """``bound * mass``, 0 where the mass is 0 (so an infinite bound adds nothing, not NaN)."""
    return torch.where(mass > 0, bound * mass, torch.zeros_like(mass))


class ActorCritic(nn.Module):
    """pi(a|s) and V(s) for one task.

    Args:
        task: fixes the input (image or vector) and the action space (categorical over the
            task's own actions, or a diagonal Gaussian of the action dimension).
        extractor_hidden: the actor's MLP widths for vector observations.
        critic_hidden: the critic's MLP widths (``None``: the same as ``extractor_hidden``).
        activation: of the MLPs, ``tanh`` (PPO's usual) or ``relu``.
        head_hidden: for images, ReLU FC layers on the shared features (empty: none).
        log_std_init: initial log standard deviation of a Gaussian policy (state-independent,
            learned), 0.0 = std 1.
        normalize_obs: put an ``ObsNormalizer`` (running mean and variance, SB3's
            ``VecNormalize``) before both heads; vector observations only.
        clip_obs: its clip of the normalised observations.
    """

    action_low: torch.Tensor  # buffers of a Gaussian policy: the action bounds ``act`` clips to
    action_high: torch.Tensor

    def __init__(
        self,
        task: Task,
        extractor_hidden: Sequence[int] = EXTRACTOR_HIDDEN,
        critic_hidden: Sequence[int] | None = None,
        activation: str = "tanh",
        head_hidden: Sequence[int] = (),
        log_std_init: float = 0.0,
        normalize_obs: bool = False,
        clip_obs: float = 10.0,
    ) -> None:
        super().__init__()
        if activation not in ("tanh", "relu"):
            raise ConfigError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        if normalize_obs and len(task.obs_shape) > 1:
            raise ConfigError(
                f"normalize_obs is for vector observations; task {task.id!r} has images {tuple(task.obs_shape)}"
            )
        self.obs_normalizer = ObsNormalizer(task.obs_shape, clip_obs) if normalize_obs else None
        self.discrete = task.discrete
        self.shared = len(task.obs_shape) > 1  # images: one extractor for both heads
        critic_hidden = extractor_hidden if critic_hidden is None else critic_hidden
        self.actor_features = make_encoder(task, tuple(extractor_hidden), activation)
        self.critic_features = (
            self.actor_features if self.shared else make_encoder(task, tuple(critic_hidden), activation)
        )
        width = self.actor_features.out_features
        trunk, width = linear_layers(width, tuple(head_hidden) if self.shared else ())
        self.trunk = nn.Sequential(*trunk)
        self.action_head = nn.Linear(width, task.num_actions)
        self.value_head = nn.Linear(width if self.shared else self.critic_features.out_features, 1)
        self.log_std = None if self.discrete else nn.Parameter(torch.full((task.num_actions,), float(log_std_init)))
        if not self.discrete:
            low, high = task.action_bounds
            self.register_buffer("action_low", torch.tensor(low), persistent=False)
            self.register_buffer("action_high", torch.tensor(high), persistent=False)
        _init_orthogonal(self)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """What the heads see: ``obs`` normalised when the network has an ``ObsNormalizer``."""
        return obs if self.obs_normalizer is None else self.obs_normalizer(obs)

    def distribution(self, obs: torch.Tensor) -> ActionDist:
        out = self.action_head(self.trunk(self.actor_features(self.normalize(obs))))
        if self.log_std is None:
            return Categorical(out)
        return Gaussian(out, self.log_std.expand_as(out))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s), [B]."""
        return self.value_head(self.trunk(self.critic_features(self.normalize(obs)))).squeeze(-1)

    def as_executed(self, dist: ActionDist) -> ActionDist:
        """``dist`` as it acts in this task, whose env clips actions to the bounds (``ActionDist.executed``)."""
        return dist if self.discrete else dist.executed(self.action_low, self.action_high)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely action: argmax, or a Gaussian's mean clipped to the action bounds."""
        action = self.distribution(obs).mode()
        if not self.discrete:
            action = torch.max(torch.min(action, self.action_high), self.action_low)
        return action


def _init_orthogonal(net: ActorCritic) -> None:
    """Orthogonal weights, zero biases; gain 0.01 on the policy head (a near-uniform start) and
    1 on the value head: the initialisation PPO's results are usually reported with."""
    for module in net.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(module.weight, math.sqrt(2))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    nn.init.orthogonal_(net.action_head.weight, 0.01)
    nn.init.orthogonal_(net.value_head.weight, 1.0)
