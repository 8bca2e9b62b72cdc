"""Collection overlaps the envs' steps with the replay writes and the update: what it stores is
what stepping in line stores, and the student that acts is at most one update old."""

import pytest
import torch

from lightning_distill.data import DistillDataModule
from lightning_distill.envs import make_vec_env
from lightning_distill.modules import Distillation
from lightning_distill.replay import UniformReplay
from lightning_distill.tasks import Task

from conftest import fit_and_record_batches

GAMES = {"MinAtar/Breakout": "bundled:minatar/breakout", "MinAtar/Freeway": "bundled:minatar/freeway"}


def small_run(async_envs: bool) -> tuple[Distillation, DistillDataModule]:
    torch.manual_seed(0)
    data = DistillDataModule(
        list(GAMES),
        list(GAMES.values()),
        replay=UniformReplay(capacity=500),
        num_envs=2,
        batch_size=8,
        learning_starts=40,
        train_freq=2,
        async_envs=async_envs,
    )
    return Distillation(tasks=data.tasks, head_hidden=[32], lr=1e-3), data


def test_envs_in_worker_processes_store_what_envs_in_line_store():
    batches = {}
    for async_envs in (False, True):
        model, data = small_run(async_envs)
        batches[async_envs] = fit_and_record_batches(model, data, max_steps=6)
    for in_line, in_workers in zip(batches[False], batches[True], strict=True):
        for a, b in zip(in_line, in_workers, strict=True):
            assert torch.equal(a["obs"], b["obs"]) and torch.equal(a["teacher_logits"], b["teacher_logits"])


@pytest.mark.parametrize("async_envs", [False, True])
def test_the_student_that_acts_is_one_update_old(async_envs):
    """Lightning fetches the next batch before the update of the current one, so when the
    student acts, exactly one batch handed to training is not yet in its parameters. The envs'
    step in flight (worker processes here) finishes after the update and adds no lag."""
    model, data = small_run(async_envs=async_envs)
    lags: list[int] = []
    handed = [0]
    original_act, original_sample = model.act_tasks, data.sample

    def act(tasks, obs):
        if data.learning_started():  # acting for a batch still to come
            lags.append(handed[0] - model.trainer.global_step)
        return original_act(tasks, obs)

    def sample():
        handed[0] += 1
        return original_sample()

    model.act_tasks, data.sample = act, sample
    fit_and_record_batches(model, data, max_steps=8)
    assert len(lags) >= 8 and set(lags) == {1}


@pytest.mark.parametrize("task", [Task("ALE/Pong"), Task("MinAtar/Breakout")])
def test_a_step_in_two_halves_is_the_same_step(task):
    whole, halves = make_vec_env(task, 2, seed=3), make_vec_env(task, 2, seed=3)
    try:
        assert (whole.reset() == halves.reset()).all()
        for t in range(30):
            actions = torch.tensor([t % task.num_actions, (t + 1) % task.num_actions]).numpy()
            a = whole.step(actions)
            halves.step_async(actions)
            b = halves.step_wait()
            assert (a.obs == b.obs).all() and (a.reward == b.reward).all() and (a.terminated == b.terminated).all()
    finally:
        whole.close()
        halves.close()
