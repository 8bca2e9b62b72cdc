"""The distillation losses and their priorities, against values worked out by hand."""

import math

import pytest
import torch

from lightning_distill.errors import ConfigError
from lightning_distill.losses import distillation_loss


def test_kl_loss_matches_hand_computed_value_and_priority():
    # tau = 1: p_T = softmax([0, ln 3]) = [1/4, 3/4]; p_S = softmax([0, 0]) = [1/2, 1/2]
    teacher_logits = torch.tensor([[0.0, math.log(3.0)]])
    q_student = torch.zeros(1, 2, requires_grad=True)
    out = distillation_loss(q_student, teacher_logits, "kl", tau=1.0)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    # |delta| = (1/|A|) * ||p_T - p_S||_1 = (0.25 + 0.25) / 2
    assert out.priority.tolist() == pytest.approx([0.25])
    out.loss.backward()  # dKL/dq_S = p_S - p_T
    assert q_student.grad.flatten().tolist() == pytest.approx([0.25, -0.25])


def test_kl_default_tau_sharpens_the_teacher_to_its_greedy_action():
    teacher_logits = torch.tensor([[1.0, 1.05]])  # almost tied Q-values
    q_student = torch.tensor([[0.0, 0.0]])
    out = distillation_loss(q_student, teacher_logits)  # tau = 0.01: p_T = softmax([100, 105])
    p_t = torch.softmax(torch.tensor([100.0, 105.0]), dim=0)
    assert p_t[1] > 0.99
    expected = (p_t * (p_t.log() - math.log(0.5))).sum().item()
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)


def test_importance_weights_scale_each_sample_and_its_gradient():
    teacher_logits = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0]])
    q_student = torch.zeros(2, 2, requires_grad=True)
    weights = torch.tensor([1.0, 0.5])
    out = distillation_loss(q_student, teacher_logits, "kl", tau=1.0, weights=weights)
    kl = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert out.loss.item() == pytest.approx((kl + 0.5 * kl) / 2, rel=1e-6)
    assert out.per_sample.tolist() == pytest.approx([kl, kl])  # unweighted
    out.loss.backward()  # w_k * (p_S - p_T) / batch
    assert q_student.grad.flatten().tolist() == pytest.approx([0.125, -0.125, -0.0625, 0.0625])


@pytest.mark.parametrize("kind", ["kl", "mse", "nll"])
def test_priority_is_the_mean_absolute_gradient_of_each_samples_loss(kind):
    torch.manual_seed(0)
    teacher_logits = torch.randn(5, 4)
    q_student = torch.randn(5, 4, requires_grad=True)
    out = distillation_loss(q_student, teacher_logits, kind, tau=0.5)
    (grad,) = torch.autograd.grad(out.loss * 5, q_student)  # undo the batch mean
    assert out.priority.tolist() == pytest.approx(grad.abs().mean(dim=1).tolist(), rel=1e-5)


def test_mse_and_nll_match_hand_computed_values():
    q_student = torch.tensor([[1.0, 2.0]])
    mse = distillation_loss(q_student, torch.zeros(1, 2), "mse")
    assert mse.loss.item() == pytest.approx(0.5 * (1 + 4))
    assert mse.priority.tolist() == pytest.approx([1.5])
    nll = distillation_loss(torch.zeros(1, 2), torch.tensor([[0.0, 1.0]]), "nll")
    assert nll.loss.item() == pytest.approx(math.log(2.0))
    assert nll.priority.tolist() == pytest.approx([0.5])  # |[0.5, 0.5] - [0, 1]| averaged


def test_unknown_loss_and_shape_mismatch_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown distillation loss 'l2'; valid"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), "l2")
    with pytest.raises(ConfigError, match=r"\(1, 2\) vs \(1, 3\)"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 3))
