"""PPO and REPAINT's pieces, as plain functions of tensors (spec ``repaint.md`` sections 2-4).

- ``gae``: generalised advantage estimates, bootstrapping through truncations.
- ``clipped_surrogate``: PPO's ``min(rho A, clip(rho, 1-eps, 1+eps) A)``; with
  ``rho = pi_theta / pi_old`` on the student's samples it is ``L_RL`` (the on-policy term),
  with ``rho = pi_theta / pi_T`` on teacher samples it is ``L_ins`` (instance transfer).
- ``kickstarting_loss``: ``L_aux = H(pi_T || pi_theta)`` on the student's own samples.
- ``select_by_advantage``: keep teacher samples with ``A >= zeta``, or the top X%.
- ``kickstarting_weight``: ``beta_k``, exponential or linear decay in the iteration ``k``.

Objectives are returned as quantities to *maximise*, as the spec writes them; the module
negates their sum.
"""

from __future__ import annotations

import math

import torch

from lightning_distill.errors import ConfigError
from lightning_distill.policies import ActionDist

BETA_SCHEDULES = ("exponential", "linear")


@torch.no_grad()
def gae(
    reward: torch.Tensor,
    value: torch.Tensor,
    next_value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float = 0.99,
    lam: float = 0.95,
) -> torch.Tensor:
    """Advantages ``A_t = sum_l (gamma lam)^l delta_{t+l}`` over a [T, N] rollout.

    ``delta_t = r_t + gamma (1 - terminated_t) V(s'_t) - V(s_t)``, with ``s'_t`` the true
    successor (the final observation where an episode ended), so a time-limit truncation
    bootstraps from ``V(s'_t)`` and only a termination cuts the return. The sum stops at every
    episode end (terminated or truncated).
    """
    not_terminal = 1.0 - terminated.float()
    not_done = 1.0 - (terminated | truncated).float()
    delta = reward + gamma * not_terminal * next_value - value
    advantage = torch.zeros_like(delta)
    running = torch.zeros_like(delta[0])
    for t in range(delta.shape[0] - 1, -1, -1):
        running = delta[t] + gamma * lam * not_done[t] * running
        advantage[t] = running
    return advantage


def clipped_surrogate(
    log_prob: torch.Tensor, behaviour_log_prob: torch.Tensor, advantage: torch.Tensor, clip: float = 0.2
) -> torch.Tensor:
    """``E[min(rho A, clip(rho, 1 - eps, 1 + eps) A)]`` with ``rho = exp(log_prob - behaviour_log_prob)``.

    ``behaviour_log_prob`` is the log-probability of the stored action under the policy that
    chose it: ``pi_old`` for the student's samples, ``pi_T`` for the teacher's.
    """
    ratio = torch.exp(log_prob - behaviour_log_prob)
    return torch.min(ratio * advantage, ratio.clamp(1.0 - clip, 1.0 + clip) * advantage).mean()


def kickstarting_loss(student: ActionDist, teacher: ActionDist) -> torch.Tensor:
    """``L_aux = E_s[H(pi_T(.|s) || pi_theta(.|s))]``, closed form for categorical and Gaussian."""
    return student.cross_entropy_from(teacher).mean()


def select_by_advantage(
    advantage: torch.Tensor, zeta: float | None = 0.0, top_fraction: float | None = None
) -> torch.Tensor:
    """Indices of the teacher samples to keep: ``A_t >= zeta``, or the ``ceil(X N)`` largest
    advantages when ``top_fraction`` = X is set (the spec's two rules; exactly one applies)."""
    flat = advantage.reshape(-1)
    if top_fraction is not None:
        if not 0.0 < top_fraction <= 1.0:
            raise ConfigError(f"top_fraction must be in (0, 1], got {top_fraction}")
        keep = math.ceil(top_fraction * flat.numel())
        return torch.topk(flat, keep, sorted=False).indices
    if zeta is None:
        raise ConfigError("experience selection needs zeta (a threshold) or top_fraction (a share to keep)")
    return torch.nonzero(flat >= zeta, as_tuple=False).squeeze(-1)


def kickstarting_weight(
    iteration: int, beta_0: float, schedule: str = "exponential", decay: float = 0.95, iterations: int = 100
) -> float:
    """``beta_k``: ``beta_0 * decay^k`` (exponential) or ``beta_0 * max(0, 1 - k / iterations)`` (linear)."""
    if schedule == "exponential":
        return beta_0 * decay**iteration
    if schedule == "linear":
        return beta_0 * max(0.0, 1.0 - iteration / iterations)
    raise ConfigError(f"unknown beta_schedule {schedule!r}; valid: {list(BETA_SCHEDULES)}")
