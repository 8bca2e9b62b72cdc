"""Observation and reward normalisation (SB3's VecNormalize): the statistics, PPO with them, their
place in checkpoints, and an SB3 teacher's ``vec_normalize.pkl`` read without running it."""

import os
import pickle

import numpy as np
import pytest
import torch

from lightning_distill.errors import CheckpointError
from lightning_distill.normalization import ObsNormalizer, RewardScaler, RunningMeanStd
from lightning_distill.teachers import load_teacher

from conftest import REPO, csv_logger, run_cli


def test_running_moments_of_batches_equal_the_moments_of_all_the_data():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, (1000, 4))
    stats = RunningMeanStd((4,))
    for batch in np.array_split(data, 7):
        stats.update(torch.as_tensor(batch))
    assert np.allclose(stats.mean.numpy(), data.mean(0), atol=1e-4)
    assert np.allclose(stats.var.numpy(), data.var(0), atol=1e-3)


def test_rewards_are_scaled_by_the_std_of_the_discounted_return_and_keep_their_sign():
    scaler = RewardScaler(gamma=0.5)
    reward = torch.tensor([[1.0, -2.0], [1.0, -2.0], [1.0, -2.0]])
    done = torch.tensor([[False, False], [False, True], [False, False]])
    scaler.update(reward, done)
    returns = np.array([[1.0, -2.0], [1.5, -3.0], [1.75, -2.0]])  # env 1 restarts after its episode ends
    assert scaler.stats.var.item() == pytest.approx(returns.var(), rel=1e-3)
    assert torch.allclose(scaler(reward), reward / np.sqrt(returns.var()), rtol=1e-3)
    assert scaler.returns.tolist() == [1.75, -2.0]  # carried into the next rollout


def test_a_ppo_run_with_normalisation_keeps_the_statistics_in_its_checkpoint_and_its_teacher_applies_them(tmp_path):
    pytest.importorskip("mujoco")
    run_cli(
        "fit",
        "--config",
        str(REPO / "configs/teacher/ppo_reacher.yaml"),
        *csv_logger(tmp_path, "norm"),
        "--model.init_args.normalize_obs=true",
        "--model.init_args.normalize_reward=true",
        "--trainer.max_epochs=2",
        "--trainer.check_val_every_n_epoch=2",
        "--data.init_args.num_envs=2",
        "--data.init_args.n_steps=64",
        "--data.init_args.evaluation.episodes=1",
        "--trainer.enable_progress_bar=false",
    )
    (run,) = (tmp_path / "norm").iterdir()
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    state = checkpoint["state_dict"]
    assert state["actor_critic.obs_normalizer.stats.count"].item() == pytest.approx(2 * 2 * 64, abs=1)
    assert state["reward_scaler.stats.count"].item() == pytest.approx(2 * 2 * 64, abs=1)
    assert checkpoint["reward_scaler_returns"].shape == (2,)
    teacher = load_teacher(run / "checkpoints" / "last.ckpt", "Reacher-v5")
    obs = torch.randn(3, 10) * 5
    expected = (obs.double() - state["actor_critic.obs_normalizer.stats.mean"]) / torch.sqrt(
        state["actor_critic.obs_normalizer.stats.var"] + 1e-8
    )
    assert torch.allclose(teacher.network.normalize(obs), expected.clamp(-10, 10).float(), atol=1e-5)


def sb3_teacher_with_vec_normalize(tmp_path, stats_name="vec_normalize.pkl"):
    """An SB3 PPO Pendulum model saved beside the VecNormalize it was trained behind (files SB3 writes)."""
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0), clip_obs=5.0)
    model = sb3.PPO("MlpPolicy", env, seed=0, device="cpu", n_steps=64, batch_size=64, n_epochs=1)
    model.learn(128)
    model.save(tmp_path / "ppo-Pendulum-v1.zip")
    (tmp_path / stats_name).parent.mkdir(parents=True, exist_ok=True)
    env.save(tmp_path / stats_name)
    return model, env


@pytest.mark.parametrize("stats_name", ["vec_normalize.pkl", "ppo-Pendulum-v1/vecnormalize.pkl"])
def test_an_sb3_teacher_acts_on_observations_normalised_by_its_vec_normalize(tmp_path, stats_name):
    model, env = sb3_teacher_with_vec_normalize(tmp_path, stats_name)
    teacher = load_teacher(tmp_path / "ppo-Pendulum-v1.zip", "Pendulum-v1")
    raw = np.random.default_rng(0).normal(0, 3, (6, 3)).astype(np.float32)
    with torch.no_grad():
        expected = model.policy.get_distribution(torch.as_tensor(env.normalize_obs(raw))).distribution.mean
    assert env.obs_rms.count > 100 and teacher.network.obs_normalizer.clip_obs == 5.0
    assert torch.allclose(teacher.distribution(torch.as_tensor(raw)).mean, expected, atol=1e-5)


class Exploit:
    """What a malicious vec_normalize.pkl would run on load."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_vec_normalize_pickle_that_would_run_code_is_refused_unread(tmp_path, monkeypatch):
    sb3_teacher_with_vec_normalize(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vec_normalize.pkl").write_bytes(pickle.dumps({"obs_rms": Exploit()}))
    with pytest.raises(CheckpointError, match=r"refused unread \(global (posix|nt)\.system is not allowed\)"):
        load_teacher(tmp_path / "ppo-Pendulum-v1.zip", "Pendulum-v1")
    assert not (tmp_path / "pwned").exists()


def test_vec_normalize_for_another_observation_shape_fails_naming_both(tmp_path):
    sb3_teacher_with_vec_normalize(tmp_path)
    normalizer = ObsNormalizer((5,))
    assert normalizer(torch.zeros(1, 5)).shape == (1, 5)
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    VecNormalize(make_vec_env("CartPole-v1", n_envs=1)).save(tmp_path / "vec_normalize.pkl")
    with pytest.raises(
        CheckpointError, match=r"normalises observations of shape \(4,\); task 'Pendulum-v1' has \(3,\)"
    ):
        load_teacher(tmp_path / "ppo-Pendulum-v1.zip", "Pendulum-v1")


def test_rl_zoos_best_model_finds_the_statistics_of_its_run_and_a_corrupt_file_is_named_as_such(tmp_path):
    sb3_teacher_with_vec_normalize(tmp_path, "Pendulum-v1/vecnormalize.pkl")  # RL Zoo's logs/ppo/<env>_1/
    (tmp_path / "ppo-Pendulum-v1.zip").rename(tmp_path / "best_model.zip")
    assert load_teacher(tmp_path / "best_model.zip", "Pendulum-v1").network.obs_normalizer is not None
    stats = tmp_path / "Pendulum-v1" / "vecnormalize.pkl"
    stats.write_bytes(stats.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="is not a readable VecNormalize pickle"):
        load_teacher(tmp_path / "best_model.zip", "Pendulum-v1")


@pytest.mark.parametrize("key", ["clip_obs", "clip_reward"])
def test_a_clip_that_is_not_positive_is_one_line(key, capsys):
    from conftest import one_line_error

    config = str(REPO / "configs/teacher/ppo_reacher.yaml")
    line = one_line_error(capsys, "fit", "--config", config, f"--model.init_args.{key}", "-1")
    assert line == f"error: model.init_args.{key}=-1.0 is out of range; valid: 0 < {key}"
