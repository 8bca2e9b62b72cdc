"""PPO and REPAINT's loss pieces against hand-computed values."""

import math

import pytest
import torch

from lightning_distill.errors import ConfigError
from lightning_distill.policies import Categorical, Gaussian
from lightning_distill.ppo_losses import (
    clipped_surrogate,
    gae,
    kickstarting_loss,
    kickstarting_weight,
    select_by_advantage,
)


def categorical(*probs: list[float]) -> Categorical:
    return Categorical(torch.tensor(probs).log())


def gaussian(mean: list[list[float]], std: list[list[float]]) -> Gaussian:
    return Gaussian(torch.tensor(mean), torch.tensor(std).log())


def test_categorical_kickstarting_loss_is_the_cross_entropy_from_the_teacher():
    teacher = categorical([0.5, 0.25, 0.25])
    student = categorical([0.25, 0.5, 0.25])
    expected = -(0.5 * math.log(0.25) + 0.25 * math.log(0.5) + 0.25 * math.log(0.25))  # 1.2130
    assert kickstarting_loss(student, teacher).item() == pytest.approx(expected, abs=1e-6)


def test_gaussian_cross_entropy_matches_the_closed_form_by_hand():
    # teacher N(1, 0.5^2), student N(0, 2^2): log 2 + log(2 pi)/2 + (0.25 + 1) / 8
    teacher, student = gaussian([[1.0]], [[0.5]]), gaussian([[0.0]], [[2.0]])
    expected = math.log(2.0) + 0.5 * math.log(2 * math.pi) + 1.25 / 8.0
    assert student.cross_entropy_from(teacher).item() == pytest.approx(expected, abs=1e-6)


def test_gaussian_cross_entropy_sums_over_dimensions_and_matches_sampling():
    teacher = gaussian([[1.0, -0.5]], [[0.5, 1.5]])
    student = gaussian([[0.0, 0.3]], [[2.0, 0.7]])
    closed = student.cross_entropy_from(teacher).item()
    per_dim = sum(
        math.log(s) + 0.5 * math.log(2 * math.pi) + (st**2 + (mt - ms) ** 2) / (2 * s**2)
        for mt, st, ms, s in ((1.0, 0.5, 0.0, 2.0), (-0.5, 1.5, 0.3, 0.7))
    )
    assert closed == pytest.approx(per_dim, abs=1e-5)
    torch.manual_seed(0)
    samples = teacher.mean + torch.randn(200_000, 2) * teacher.log_std.exp()
    monte_carlo = -student.log_prob(samples).mean().item()  # broadcast over the samples
    assert closed == pytest.approx(monte_carlo, abs=0.02)


def test_log_prob_and_entropy_agree_with_torch_distributions():
    dist = gaussian([[0.2, -1.0], [0.0, 3.0]], [[0.3, 1.2], [0.3, 1.2]])
    action = torch.tensor([[0.0, 0.5], [1.0, 2.0]])
    reference = torch.distributions.Normal(dist.mean, dist.log_std.exp())
    assert torch.allclose(dist.log_prob(action), reference.log_prob(action).sum(-1), atol=1e-6)
    assert torch.allclose(dist.entropy(), reference.entropy().sum(-1), atol=1e-6)
    cat = categorical([0.1, 0.6, 0.3], [0.5, 0.25, 0.25])
    ref = torch.distributions.Categorical(logits=cat.logits)
    assert torch.allclose(cat.log_prob(torch.tensor([1, 2])), ref.log_prob(torch.tensor([1, 2])), atol=1e-6)
    assert torch.allclose(cat.entropy(), ref.entropy(), atol=1e-6)


def test_selection_keeps_exactly_the_samples_at_or_above_zeta():
    advantage = torch.tensor([[-1.0, 0.0], [0.5, 2.0], [-0.1, 0.5]])  # [T=3, N=2], flattened row-major
    assert sorted(select_by_advantage(advantage, zeta=0.0).tolist()) == [1, 2, 3, 5]
    assert sorted(select_by_advantage(advantage, zeta=0.5).tolist()) == [2, 3, 5]
    assert select_by_advantage(advantage, zeta=3.0).numel() == 0


def test_selection_by_top_fraction_keeps_exactly_the_largest_advantages():
    advantage = torch.tensor([3.0, -2.0, 7.0, 0.0, 1.0, 5.0, -1.0, 2.0, 4.0, 6.0])
    assert sorted(select_by_advantage(advantage, top_fraction=0.3).tolist()) == [2, 5, 9]  # 7, 5, 6
    assert select_by_advantage(advantage, top_fraction=0.25).numel() == 3  # ceil(2.5)
    assert select_by_advantage(advantage, top_fraction=1.0).numel() == 10
    with pytest.raises(ConfigError, match="top_fraction must be in"):
        select_by_advantage(advantage, top_fraction=0.0)


def test_clipped_surrogate_takes_the_pessimistic_clipped_term():
    log_old = torch.zeros(3)
    ratio = torch.tensor([1.5, 0.5, 1.1])
    advantage = torch.tensor([2.0, -1.0, 1.0])
    # rho=1.5, A=2: min(3.0, 1.2*2=2.4) = 2.4; rho=0.5, A=-1: min(-0.5, -0.8) = -0.8; rho=1.1: 1.1
    expected = (2.4 - 0.8 + 1.1) / 3
    assert clipped_surrogate(ratio.log(), log_old, advantage, clip=0.2).item() == pytest.approx(expected, abs=1e-6)


def test_gae_bootstraps_through_truncation_and_stops_at_termination():
    gamma, lam = 0.9, 0.8
    reward = torch.tensor([[1.0], [2.0], [3.0]])
    value = torch.tensor([[0.5], [1.0], [1.5]])
    next_value = torch.tensor([[1.0], [4.0], [2.0]])  # V(s'_1) is the value of a final observation
    terminated = torch.tensor([[False], [False], [True]])
    truncated = torch.tensor([[False], [True], [False]])
    adv = gae(reward, value, next_value, terminated, truncated, gamma, lam)
    d2 = 3.0 - 1.5  # terminated: no bootstrap
    d1 = 2.0 + 0.9 * 4.0 - 1.0  # truncated: bootstraps from V(final obs), and the sum stops
    d0 = 1.0 + 0.9 * 1.0 - 0.5
    assert adv[:, 0].tolist() == pytest.approx([d0 + gamma * lam * d1, d1, d2])


def test_beta_k_decays_exponentially_or_linearly():
    assert kickstarting_weight(0, 2.0, "exponential", decay=0.5) == 2.0
    assert kickstarting_weight(3, 2.0, "exponential", decay=0.5) == 0.25
    assert kickstarting_weight(25, 2.0, "linear", iterations=100) == 1.5
    assert kickstarting_weight(150, 2.0, "linear", iterations=100) == 0.0
    with pytest.raises(ConfigError, match="unknown beta_schedule 'cosine'"):
        kickstarting_weight(1, 1.0, "cosine")


def test_executed_gaussian_is_centred_on_the_mean_of_the_clipped_action():
    dist = gaussian([[4.7, 0.0, 0.9, -3.0]], [[0.6, 1.0, 0.5, 1.0]])
    low = torch.tensor([-1.0, -1.0, -1.0, -math.inf])
    high = torch.tensor([1.0, 1.0, 1.0, math.inf])
    executed = dist.executed(low, high)
    torch.manual_seed(0)
    samples = dist.mean + torch.randn(400_000, 4) * dist.log_std.exp()
    clipped_mean = torch.max(torch.min(samples, high), low).mean(0)
    assert torch.allclose(executed.mean[0], clipped_mean, atol=0.01)
    assert executed.mean[0, 0].item() == pytest.approx(1.0, abs=1e-6)  # saturated: at the bound
    assert executed.mean[0, 3].item() == -3.0  # unbounded: unchanged
    assert torch.equal(executed.log_std, dist.log_std)  # the teacher's own spread


def test_categorical_teachers_are_their_own_executed_distribution():
    dist = categorical([0.2, 0.8])
    assert dist.executed(torch.tensor(-1.0), torch.tensor(1.0)) is dist
