"""Distillation losses (spec section 4) and the replay priority each one implies (section 6.4).

All take the student's Q-values over one task's own actions, ``q_student``, and the teacher's
``teacher_logits`` (a Q-teacher's Q-values, a policy teacher's logits: the logits of the target
``softmax(. / tau)``), both of shape ``[batch, |A_i|]``, and per-sample weights ``w`` (H-PR's
importance weights; ones for uniform replay). The priority of a sample is the mean absolute
gradient of its loss with respect to the student's outputs,
``|delta| = (1/|A_i|) * ||dL_k/dq_S||_1``; for the KL loss that is the spec's
``(1/|A_i|) * ||softmax(q_T/tau) - softmax(q_S)||_1``. It is computed in closed form, without
autograd, and detached.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lightning_distill.errors import ConfigError

LOSSES = ("kl", "mse", "nll")


@dataclass
class DistillLoss:
    loss: torch.Tensor  # scalar: mean over the batch of w_k * L_k
    per_sample: torch.Tensor  # [batch]: L_k, unweighted, detached
    priority: torch.Tensor  # [batch]: |delta_k|, detached


def kl_loss(
    q_student: torch.Tensor, teacher_logits: torch.Tensor, tau: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """``KL(softmax(q_T / tau) || softmax(q_S))`` per sample, and its gradient w.r.t. ``q_S``.

    ``tau`` = 0.01 (Rusu et al.) sharpens the teacher towards its greedy action.
    """
    log_p_teacher = F.log_softmax(teacher_logits / tau, dim=-1)
    log_p_student = F.log_softmax(q_student, dim=-1)
    p_teacher = log_p_teacher.exp()
    per_sample = (p_teacher * (log_p_teacher - log_p_student)).sum(dim=-1)
    return per_sample, log_p_student.detach().exp() - p_teacher


def mse_loss(q_student: torch.Tensor, teacher_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``0.5 * ||q_S - q_T||^2`` per sample (Rusu's regression on Q-values), and its gradient."""
    diff = q_student - teacher_logits
    return 0.5 * diff.pow(2).sum(dim=-1), diff.detach()


def nll_loss(q_student: torch.Tensor, teacher_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``-log softmax(q_S)[argmax q_T]`` per sample (Rusu's NLL on the teacher's action)."""
    target = teacher_logits.argmax(dim=-1)
    log_p_student = F.log_softmax(q_student, dim=-1)
    per_sample = -log_p_student.gather(1, target.unsqueeze(1)).squeeze(1)
    grad = log_p_student.detach().exp() - F.one_hot(target, q_student.shape[-1]).to(q_student.dtype)
    return per_sample, grad


def distillation_loss(
    q_student: torch.Tensor,
    teacher_logits: torch.Tensor,
    kind: str = "kl",
    tau: float = 0.01,
    weights: torch.Tensor | None = None,
) -> DistillLoss:
    """The weighted loss of one task's minibatch, with per-sample losses and priorities."""
    if q_student.shape != teacher_logits.shape:
        raise ConfigError(
            f"student and teacher Q-values differ in shape: {tuple(q_student.shape)} vs {tuple(teacher_logits.shape)}"
        )
    q_student = q_student.float()  # under bf16 autocast the student's outputs are bf16: the loss is not
    if kind == "kl":
        per_sample, grad = kl_loss(q_student, teacher_logits.float(), tau)
    elif kind == "mse":
        per_sample, grad = mse_loss(q_student, teacher_logits.float())
    elif kind == "nll":
        per_sample, grad = nll_loss(q_student, teacher_logits)
    else:
        raise ConfigError(f"unknown distillation loss {kind!r}; valid: {list(LOSSES)}")
    weighted = per_sample if weights is None else per_sample * weights.to(per_sample.dtype)
    return DistillLoss(weighted.mean(), per_sample.detach(), grad.abs().mean(dim=-1))
