"""The evaluation protocol's budgets and epsilon, and the frozen-teacher interface."""

import numpy as np
import pytest
import torch

from lightning_distill.errors import CheckpointError, ConfigError
from lightning_distill.evaluation import EvalBudget, epsilon_greedy, evaluate, evaluate_tasks
from lightning_distill.tasks import Task
from lightning_distill.teachers import load_teacher

CARTPOLE = Task("CartPole-v1")


def always_left(obs: torch.Tensor) -> torch.Tensor:
    return torch.zeros(obs.shape[0], dtype=torch.long)


def test_episode_budget_counts_exactly_that_many_episodes_split_over_envs():
    result = evaluate(always_left, CARTPOLE, episodes=7, epsilon=0.0, num_envs=3)
    assert result.count == 7 and len(result.returns) == 7
    assert 8 <= result.mean <= 12  # pushing left falls in ~9-10 steps


def test_step_budget_reports_only_completed_episodes():
    result = evaluate(always_left, CARTPOLE, steps=25, epsilon=0.0, num_envs=1)
    assert result.count == 2  # 25 steps hold two ~10-step episodes and an unfinished third
    assert sum(result.returns) <= 25


def test_evaluation_is_reproducible_under_a_seed():
    a = evaluate(always_left, CARTPOLE, episodes=5, epsilon=0.5, seed=7)
    b = evaluate(always_left, CARTPOLE, episodes=5, epsilon=0.5, seed=7)
    assert a.returns == b.returns


def first_action_if_left_leaning(obs: torch.Tensor) -> torch.Tensor:
    """A policy that depends on the observation (so lockstep ordering errors would show)."""
    return (obs.reshape(len(obs), -1)[:, 0] > 0).long()


@pytest.mark.parametrize("budget", [{"episodes": 5}, {"steps": 120}])
def test_evaluating_tasks_together_gives_each_task_its_own_evaluation(budget):
    """Lockstep evaluation of several tasks is each task's ``evaluate``, episode for episode,
    and tasks that are done are no longer asked for actions."""
    tasks = [CARTPOLE, Task("MinAtar/Breakout"), Task("Acrobot-v1", max_episode_steps=60)]
    policies = [always_left, first_action_if_left_leaning, always_left]
    asked: list[list[int]] = []

    def act(indices, obs):
        asked.append(list(indices))
        return [policies[i](o) for i, o in zip(indices, obs, strict=True)]

    kwargs = {"epsilon": 0.3, "num_envs": 2, "seed": 11, **budget}
    together = evaluate_tasks(act, tasks, **kwargs)
    for task, policy, result in zip(tasks, policies, together, strict=True):
        assert result.returns == evaluate(policy, task, **kwargs).returns
        assert result.count >= 1
    if "episodes" in budget:  # CartPole's left pushes end first; Acrobot plays on to 60 steps
        assert asked[0] == [0, 1, 2] and asked[-1] != [0, 1, 2]
    else:
        assert len(asked) == 60 and all(a == [0, 1, 2] for a in asked)


def test_epsilon_greedy_explores_at_the_given_rate_over_the_tasks_actions():
    rng = np.random.default_rng(0)
    greedy = np.zeros(100_000, dtype=np.int64)
    acted = epsilon_greedy(greedy, 0.05, num_actions=4, rng=rng)
    changed = (acted != 0).mean()
    assert changed == pytest.approx(0.05 * 3 / 4, abs=0.003)  # a random pick may be the greedy one
    assert set(np.unique(acted)) == {0, 1, 2, 3}


def test_budget_must_be_exactly_one_of_episodes_or_steps():
    with pytest.raises(ConfigError, match="not both"):
        EvalBudget(episodes=3, steps=100)
    assert EvalBudget().as_kwargs()["episodes"] == 10  # auto: 10 episodes unless steps is set
    assert EvalBudget(steps=100).as_kwargs()["episodes"] is None
    with pytest.raises(ConfigError, match="evaluation.episodes must be >= 1, got 0"):
        EvalBudget(episodes=0)
    with pytest.raises(ConfigError, match="exactly one"):
        evaluate(always_left, CARTPOLE, episodes=None, steps=None)


def test_teacher_value_is_max_q_and_teacher_stays_frozen(cartpole_best_ckpt):
    teacher = load_teacher(cartpole_best_ckpt)
    obs = torch.randn(16, 4) * 0.05
    q = teacher.q_values(obs)
    assert q.shape == (16, 2)
    assert torch.equal(teacher.value(obs), q.max(dim=-1).values)
    assert torch.equal(teacher.act(obs), q.argmax(dim=-1))
    teacher.train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())


def test_teacher_that_does_not_fit_the_task_fails_naming_both(cartpole_best_ckpt):
    with pytest.raises(CheckpointError) as info:
        load_teacher(cartpole_best_ckpt, Task("Acrobot-v1"))
    message = str(info.value)
    assert "2 actions" in message and "3 actions" in message and "(4,)" in message and "(6,)" in message


def test_a_file_that_is_not_a_checkpoint_fails_with_one_line(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a readable checkpoint"):
        load_teacher(junk)


def test_a_teacher_scoring_zero_has_no_percentage_and_is_left_out_of_the_geometric_mean():
    import math

    from lightning_distill.callbacks.teacher_score import geometric_mean, percent_of_teacher

    assert math.isnan(percent_of_teacher(5.0, 0.0)) and math.isnan(percent_of_teacher(5.0, -1.0))
    assert geometric_mean([100.0, percent_of_teacher(5.0, 0.0), 25.0]) == pytest.approx(50.0)
    assert geometric_mean([0.0, 1000.0]) == pytest.approx(10.0)  # 0% is floored at 0.1 before the mean
