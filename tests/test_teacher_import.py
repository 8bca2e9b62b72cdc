"""Teachers from Stable-Baselines3 / RL Zoo zips and CleanRL model files, written here in
those formats, give the same Q-values as the network that wrote them."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from lightning_distill.errors import CheckpointError, ConfigError
from lightning_distill.tasks import Task
from lightning_distill.teachers import load_teacher

from conftest import cleanrl_atari_network, save_cleanrl

sb3 = pytest.importorskip("stable_baselines3")


class AtariShapedEnv(gym.Env):
    """Only the spaces matter: SB3 builds its policy from them."""

    observation_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)

    def __init__(self, num_actions: int) -> None:
        self.action_space = gym.spaces.Discrete(num_actions)

    def reset(self, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def atari_obs(n: int = 5) -> torch.Tensor:
    return torch.randint(0, 256, (n, 4, 84, 84), dtype=torch.uint8)


def test_sb3_cnn_dqn_zip_loads_as_a_teacher_with_the_same_q_values(tmp_path):
    model = sb3.DQN("CnnPolicy", AtariShapedEnv(4), buffer_size=10, learning_starts=0, seed=0, device="cpu")
    model.save(tmp_path / "breakout_dqn.zip")
    teacher = load_teacher(tmp_path / "breakout_dqn.zip", "ALE/Breakout")
    obs = atari_obs()
    with torch.no_grad():
        expected = model.q_net(model.policy.obs_to_tensor(obs.numpy())[0])
    assert torch.allclose(teacher.q_values(obs), expected, atol=1e-5)
    assert torch.equal(teacher.value(obs), expected.max(dim=1).values)


def test_sb3_mlp_dqn_zip_loads_for_a_vector_task(tmp_path):
    model = sb3.DQN(
        "MlpPolicy",
        "CartPole-v1",
        buffer_size=10,
        learning_starts=0,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [32, 16]},
    )
    model.save(tmp_path / "cartpole_dqn.zip")
    teacher = load_teacher(tmp_path / "cartpole_dqn.zip", "CartPole-v1")
    obs = torch.randn(7, 4)
    with torch.no_grad():
        expected = model.q_net(obs)
    assert torch.allclose(teacher.q_values(obs), expected, atol=1e-6)
    assert teacher.network.features.out_features == 16  # the MLP is the student's extractor


def test_cleanrl_atari_model_loads_with_the_same_q_values(tmp_path):
    network = cleanrl_atari_network(6)
    save_cleanrl(network, tmp_path / "pong.cleanrl_model")
    teacher = load_teacher(tmp_path / "pong.cleanrl_model", "ALE/Pong")
    obs = atari_obs()
    with torch.no_grad():
        expected = network(obs.float() / 255.0)  # CleanRL scales inside forward
    assert torch.allclose(teacher.q_values(obs), expected, atol=1e-5)


def test_cleanrl_mlp_model_loads_for_a_vector_task(tmp_path):
    network = nn.Sequential(nn.Linear(6, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 3))
    save_cleanrl(network, tmp_path / "acrobot.cleanrl_model")
    teacher = load_teacher(tmp_path / "acrobot.cleanrl_model", "Acrobot-v1")
    obs = torch.randn(4, 6)
    assert torch.allclose(teacher.q_values(obs), network(obs), atol=1e-6)


def test_a_teacher_with_the_wrong_action_count_fails_naming_both(tmp_path):
    save_cleanrl(cleanrl_atari_network(6), tmp_path / "pong.cleanrl_model")
    with pytest.raises(CheckpointError) as info:
        load_teacher(tmp_path / "pong.cleanrl_model", "ALE/Breakout")
    message = str(info.value)
    assert "\n" not in message
    assert "the teacher has 6 actions" in message and "'ALE/Breakout'" in message and "4 actions" in message


def test_a_teacher_with_the_wrong_input_fails_naming_both(tmp_path):
    model = sb3.DQN("MlpPolicy", "CartPole-v1", buffer_size=10, learning_starts=0, device="cpu")
    model.save(tmp_path / "cartpole_dqn.zip")
    with pytest.raises(CheckpointError, match=r"input of 4 features, the task has 3 actions and input \(6,\)"):
        load_teacher(tmp_path / "cartpole_dqn.zip", Task("Acrobot-v1"))


def test_foreign_formats_need_a_task_and_bundled_names_are_checked(tmp_path):
    save_cleanrl(cleanrl_atari_network(6), tmp_path / "pong.cleanrl_model")
    with pytest.raises(CheckpointError, match="does not name its task"):
        load_teacher(tmp_path / "pong.cleanrl_model")
    with pytest.raises(CheckpointError, match="no bundled teacher 'minatar/chess'; bundled:"):
        load_teacher("bundled:minatar/chess")


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_sb3_ppo_zip_is_a_policy_teacher_with_the_same_distribution_and_value(tmp_path, env_id):
    from lightning_distill.teachers import PolicyTeacher

    model = sb3.PPO(
        "MlpPolicy",
        env_id,
        seed=0,
        device="cpu",
        n_steps=64,
        policy_kwargs={"net_arch": {"pi": [32, 16], "vf": [24]}, "activation_fn": nn.ReLU},
    )
    with torch.no_grad():  # move off the initial weights, so a mix-up of layers would show
        for p in model.policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.save(tmp_path / "ppo.zip")
    teacher = load_teacher(tmp_path / "ppo.zip", env_id)
    assert isinstance(teacher, PolicyTeacher)
    obs = torch.randn(5, *model.observation_space.shape)
    with torch.no_grad():
        expected = model.policy.get_distribution(obs).distribution
        expected_value = model.policy.predict_values(obs).squeeze(-1)
    ours = teacher.distribution(obs)
    if env_id == "CartPole-v1":
        assert torch.allclose(torch.log_softmax(ours.logits, -1), expected.logits, atol=1e-5)
    else:
        assert torch.allclose(ours.mean, expected.mean, atol=1e-5)
        assert torch.allclose(ours.log_std.exp(), expected.stddev, atol=1e-5)
    assert torch.allclose(teacher.value(obs), expected_value, atol=1e-5)
    if env_id == "CartPole-v1":  # a distillation target: its logits, its critic's V
        targets, value = teacher.targets_and_value(obs)
        assert torch.allclose(torch.log_softmax(targets, -1), expected.logits, atol=1e-5)
        assert torch.allclose(value, expected_value, atol=1e-5)
        from lightning_distill.modules import Distillation

        student = Distillation(tasks=[env_id], head_hidden=[8])
        student.copy_teacher_features([teacher])  # the student's extractor: the actor's [32, 16] ReLU layers
        assert torch.allclose(student.student.extractors[0](obs), teacher.network.actor_features(obs), atol=1e-6)
    else:
        with pytest.raises(ConfigError, match="has continuous actions: distillation needs discrete ones"):
            teacher.targets_and_value(obs)


def test_an_sb3_ppo_zip_for_another_task_fails_naming_both(tmp_path):
    sb3.PPO("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", n_steps=64).save(tmp_path / "pendulum.zip")
    with pytest.raises(CheckpointError, match=r"'CartPole-v1'.*the task has 2 actions"):
        load_teacher(tmp_path / "pendulum.zip", "CartPole-v1")


def perturbed(module: nn.Module) -> nn.Module:
    """Move off the initial weights (zero biases, tiny heads), so a mix-up of layers would show."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return module


@pytest.mark.parametrize("algo", ["PPO", "A2C"])
def test_sb3_cnn_policy_zip_is_a_policy_teacher_with_the_same_logits_and_value(tmp_path, algo):
    from lightning_distill.teachers import PolicyTeacher

    sizes = {"n_steps": 8, "batch_size": 8} if algo == "PPO" else {"n_steps": 8}
    model = getattr(sb3, algo)("CnnPolicy", AtariShapedEnv(4), seed=0, device="cpu", **sizes)
    perturbed(model.policy)
    model.save(tmp_path / "breakout.zip")
    teacher = load_teacher(tmp_path / "breakout.zip", "ALE/Breakout")
    assert isinstance(teacher, PolicyTeacher)
    obs = atari_obs()
    with torch.no_grad():
        tensor = model.policy.obs_to_tensor(obs.numpy())[0]
        expected = model.policy.get_distribution(tensor).distribution.logits
        expected_value = model.policy.predict_values(tensor).squeeze(-1)
    targets, value = teacher.targets_and_value(obs)
    assert torch.allclose(torch.log_softmax(targets, -1), expected, atol=1e-5)
    assert torch.allclose(value, expected_value, atol=1e-4)


def test_sb3_cnn_policy_with_separate_extractors_is_refused_in_one_line(tmp_path):
    model = sb3.PPO(
        "CnnPolicy",
        AtariShapedEnv(4),
        device="cpu",
        n_steps=8,
        batch_size=8,
        policy_kwargs={"share_features_extractor": False},
    )
    perturbed(model.policy)
    model.save(tmp_path / "separate.zip")
    with pytest.raises(CheckpointError, match="needs one feature extractor shared by actor and critic"):
        load_teacher(tmp_path / "separate.zip", "ALE/Breakout")


class CleanRLAtariAgent(nn.Module):
    """The module layout of CleanRL's ppo_atari.py ``Agent`` (its state dict is what it saves)."""

    def __init__(self, num_actions: int) -> None:
        super().__init__()
        self.network = nn.Sequential(*list(cleanrl_atari_network(num_actions))[:-1])  # convs, FC 512, ReLU
        self.actor = nn.Linear(512, num_actions)
        self.critic = nn.Linear(512, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.network(x.float() / 255.0)
        return self.actor(hidden), self.critic(hidden).squeeze(-1)


class CleanRLMlpAgent(nn.Module):
    """The module layout of CleanRL's ppo.py ``Agent``: separate tanh MLPs for critic and actor."""

    def __init__(self, obs_dim: int, num_actions: int) -> None:
        super().__init__()
        self.critic = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
        self.actor = nn.Sequential(
            nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, num_actions)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(x), self.critic(x).squeeze(-1)


@pytest.mark.parametrize(
    ("agent", "task", "obs"),
    [
        (lambda: CleanRLAtariAgent(4), "ALE/Breakout", atari_obs),
        (lambda: CleanRLMlpAgent(4, 2), "CartPole-v1", lambda: torch.randn(5, 4)),
    ],
    ids=["ppo_atari", "ppo"],
)
def test_cleanrl_ppo_model_is_a_policy_teacher_with_the_same_logits_and_value(tmp_path, agent, task, obs):
    from lightning_distill.teachers import PolicyTeacher

    network = perturbed(agent())
    torch.save(network.state_dict(), tmp_path / "ppo.cleanrl_model")  # what CleanRL's script saves
    teacher = load_teacher(tmp_path / "ppo.cleanrl_model", task)
    assert isinstance(teacher, PolicyTeacher)
    x = obs()
    with torch.no_grad():
        logits, value = network(x)
    targets, ours = teacher.targets_and_value(x)
    assert torch.allclose(targets, logits, atol=1e-5)
    assert torch.allclose(ours, value, atol=1e-5)


def test_a_cleanrl_ppo_atari_model_for_another_game_fails_naming_both(tmp_path):
    torch.save(CleanRLAtariAgent(6).state_dict(), tmp_path / "pong.cleanrl_model")
    with pytest.raises(CheckpointError, match=r"'ALE/Breakout'.*the task has 4 actions"):
        load_teacher(tmp_path / "pong.cleanrl_model", "ALE/Breakout")


def test_an_sb3_cnn_policy_trained_on_raw_pixels_is_refused_in_one_line(tmp_path):
    model = sb3.PPO(
        "CnnPolicy", AtariShapedEnv(4), device="cpu", n_steps=8, batch_size=8, policy_kwargs={"normalize_images": False}
    )
    model.save(tmp_path / "raw.zip")
    with pytest.raises(CheckpointError, match="was trained with normalize_images=False"):
        load_teacher(tmp_path / "raw.zip", "ALE/Breakout")
