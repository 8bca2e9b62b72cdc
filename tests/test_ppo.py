"""PPO learns, REPAINT transfers: the module, its data module and the four-method switch."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from tensordict import TensorDict

from lightning_distill.data.rollout import EnvRunner
from lightning_distill.evaluation import evaluate
from lightning_distill.modules import PPO, load_agent
from lightning_distill.play import play
from lightning_distill.ppo_losses import clipped_surrogate
from lightning_distill.tasks import Task
from lightning_distill.teachers import PolicyTeacher, load_teacher
from lightning_distill.transfer_metric import iterations_to_target

from conftest import REPO, csv_logger, one_line_error, run_cli

QUIET = ("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false")
CARTPOLE_PAIR = str(REPO / "configs/repaint/cartpole.yaml")


def fit(config: str, root: Path, name: str, *args: str) -> Path:
    """Run ``fit`` with a config into ``root/name``; the run directory."""
    run_cli("fit", "--config", config, *csv_logger(root, name), *QUIET, *args)
    (run_dir,) = (root / name).iterdir()
    return run_dir


def per_iteration(run_dir: Path, column: str) -> list[float]:
    metrics = pd.read_csv(run_dir / "metrics.csv")
    return metrics.groupby("epoch")[column].first().tolist()


def test_plain_ppo_learns_cartpole_to_475_on_fresh_episodes(tmp_path):
    run = fit(str(REPO / "configs/teacher/ppo_cartpole.yaml"), tmp_path, "ppo", "--trainer.max_epochs", "40")
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    agent = load_agent(best)
    assert isinstance(agent, PPO) and agent.hparams.method == "baseline"
    result = evaluate(agent.policy(), agent.tasks[0], episodes=10, epsilon=0.0, num_envs=2, seed=777)
    assert result.mean >= 475.0, result


@pytest.fixture(scope="module")
def cartpole_pair_runs(tmp_path_factory) -> dict[tuple[str, int], Path]:
    """Baseline and REPAINT on the CartPole pair, seeds 0 and 1, 30 iterations each."""
    root = tmp_path_factory.mktemp("pair")
    return {
        (method, seed): fit(
            CARTPOLE_PAIR,
            root,
            f"{method}_{seed}",
            "--model.init_args.method",
            method,
            "--seed_everything",
            str(seed),
            "--data.init_args.seed",
            str(seed),
            "--trainer.max_epochs",
            "30",
            "--trainer.check_val_every_n_epoch",
            "30",
        )
        for method in ("baseline", "repaint")
        for seed in (0, 1)
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_repaint_reaches_the_target_score_in_fewer_iterations_than_baseline(cartpole_pair_runs, seed):
    target = 300.0  # moving average of the last 10 training episodes
    k_repaint = iterations_to_target(per_iteration(cartpole_pair_runs["repaint", seed], "train/return"), target)
    k_baseline = iterations_to_target(per_iteration(cartpole_pair_runs["baseline", seed], "train/return"), target)
    assert k_repaint is not None and k_repaint <= 25, k_repaint
    assert k_baseline is None or k_repaint < k_baseline, (k_repaint, k_baseline)


def test_beta_k_and_the_kept_teacher_samples_are_logged_every_iteration(cartpole_pair_runs):
    run = cartpole_pair_runs["repaint", 0]
    beta = per_iteration(run, "transfer/beta_k")
    assert beta == pytest.approx([1.0 * 0.9**k for k in range(30)], rel=1e-5)  # the config's beta_0, decay
    kept = per_iteration(run, "transfer/kept")
    fraction = per_iteration(run, "transfer/kept_fraction")
    assert len(kept) == 30 and all(0 <= n <= 512 for n in kept)
    assert fraction == pytest.approx([n / 512 for n in kept])
    assert per_iteration(cartpole_pair_runs["baseline", 0], "transfer/beta_k") == [0.0] * 30


def test_teacher_rollouts_store_the_teachers_log_probability_of_its_own_action():
    teacher = load_teacher("bundled:ppo/cartpole_centered", "CartPole-v1")
    runner = EnvRunner(Task("CartPole-v1"), num_envs=2, seed=3)
    rollout = runner.rollout(teacher.distribution, steps=20, device=torch.device("cpu"))
    runner.close()
    obs, action = rollout["obs"].flatten(0, 1), rollout["action"].flatten(0, 1)
    expected = teacher.distribution(obs).log_prob(action)
    assert torch.allclose(rollout["log_prob"].flatten(), expected, atol=1e-6)


def test_the_off_policy_ratio_is_the_students_over_the_teachers_probability():
    torch.manual_seed(0)
    module = PPO(tasks=["CartPole-v1"], method="it", normalize_advantage=False)
    obs = torch.randn(6, 4)
    mb = TensorDict(
        {
            "obs": obs,
            "action": torch.tensor([0, 1, 1, 0, 1, 0]),
            "log_prob": torch.zeros(6),
            "advantage": torch.ones(6),
            "return": torch.zeros(6),
        },
        batch_size=[6],
    )
    teacher_mb = TensorDict(
        {
            "obs": obs,
            "action": torch.tensor([1, 1, 0, 0, 1, 1]),
            "log_prob": torch.tensor([-0.1, -0.2, -0.3, -2.0, -0.5, -0.6]),
            "advantage": torch.tensor([1.0, 2.0, 0.5, 3.0, 0.0, 1.5]),
        },
        batch_size=[6],
    )
    _, parts = module.loss(mb, teacher_mb, beta=0.0)
    with torch.no_grad():
        student_log_prob = module.actor_critic.distribution(obs).log_prob(teacher_mb["action"])
    rho = torch.exp(student_log_prob - teacher_mb["log_prob"])
    expected = torch.min(rho * teacher_mb["advantage"], rho.clamp(0.8, 1.2) * teacher_mb["advantage"]).mean()
    assert parts["loss/instance"].item() == pytest.approx(-expected.item(), abs=1e-6)  # logged minimised
    assert expected.item() == pytest.approx(
        clipped_surrogate(student_log_prob, teacher_mb["log_prob"], teacher_mb["advantage"]).item()
    )


def test_the_critic_learns_from_the_students_samples_only():
    module = PPO(tasks=["CartPole-v1"], method="it")
    mb = TensorDict(
        {
            "obs": torch.randn(4, 4),
            "action": torch.tensor([0, 1, 1, 0]),
            "log_prob": torch.full((4,), -0.7),
            "advantage": torch.randn(4),
            "return": torch.randn(4),
        },
        batch_size=[4],
    )
    teacher_mb = TensorDict(
        {
            "obs": torch.randn(5, 4),
            "action": torch.tensor([1, 1, 0, 0, 1]),
            "log_prob": torch.full((5,), -0.2),
            "advantage": torch.rand(5),
        },
        batch_size=[5],
    )
    loss, _ = module.loss(mb, teacher_mb, beta=0.0)
    loss.backward()
    critic_grads = [
        p.grad
        for p in [*module.actor_critic.critic_features.parameters(), *module.actor_critic.value_head.parameters()]
    ]
    module.zero_grad()
    value_only, _ = module.loss(mb, None, beta=0.0)
    value_only.backward()
    for with_teacher, p in zip(
        critic_grads,
        [*module.actor_critic.critic_features.parameters(), *module.actor_critic.value_head.parameters()],
        strict=True,
    ):
        assert torch.allclose(with_teacher, p.grad)


def test_every_iteration_takes_epochs_times_minibatches_steps_however_few_teacher_samples_are_kept(tmp_path):
    # top 0.2% of 512 teacher samples: 2 kept, fewer than the 4 minibatches
    run = fit(
        CARTPOLE_PAIR,
        tmp_path,
        "few_kept",
        "--model.init_args.method",
        "it",
        "--model.init_args.top_fraction",
        "0.002",
        "--trainer.max_epochs",
        "2",
        "--trainer.check_val_every_n_epoch",
        "2",
    )
    assert per_iteration(run, "transfer/kept") == [2.0, 2.0]
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2 * 4 * 4  # iterations x epochs x minibatches (the config's)


def test_a_transfer_method_without_a_teacher_is_one_line(capsys):
    line = one_line_error(
        capsys,
        "fit",
        "--config",
        CARTPOLE_PAIR,
        "--data.init_args.teacher",
        "null",
        "--trainer.max_epochs",
        "1",
        *QUIET,
    )
    assert "'repaint' needs a teacher" in line and "data.teacher" in line


def test_a_q_network_teacher_is_refused_with_one_line(capsys, cartpole_best_ckpt):
    line = one_line_error(
        capsys,
        "fit",
        "--config",
        CARTPOLE_PAIR,
        "--data.init_args.teacher",
        str(cartpole_best_ckpt),
        "--trainer.max_epochs",
        "1",
        *QUIET,
    )
    assert "Q-network teacher" in line and "policy (actor-critic) teacher" in line


def test_unknown_method_is_one_line_listing_the_four(capsys):
    line = one_line_error(capsys, "fit", "--config", CARTPOLE_PAIR, "--model.init_args.method", "kickstart")
    assert "'kickstart'" in line and all(m in line for m in ("baseline", "ks", "it", "repaint"))


def test_a_ppo_checkpoint_is_a_policy_teacher(cartpole_pair_runs):
    last = cartpole_pair_runs["repaint", 0] / "checkpoints" / "last.ckpt"
    teacher = load_teacher(last, "CartPole-v1")
    assert isinstance(teacher, PolicyTeacher)
    obs = torch.randn(3, 4)
    assert teacher.distribution(obs).logits.shape == (3, 2) and teacher.value(obs).shape == (3,)


def test_play_writes_rendered_mujoco_frames_from_a_reacher_checkpoint(tmp_path):
    pytest.importorskip("mujoco")
    run = fit(
        str(REPO / "configs/teacher/ppo_reacher.yaml"),
        tmp_path,
        "reacher",
        "--trainer.max_epochs",
        "1",
        "--data.init_args.num_envs",
        "1",
        "--data.init_args.n_steps",
        "64",
        "--trainer.check_val_every_n_epoch",
        "1",
        "--data.init_args.evaluation.episodes",
        "1",
    )
    video = tmp_path / "reacher.mp4"
    lines: list[str] = []
    result = play(str(run / "checkpoints" / "last.ckpt"), episodes=1, video=str(video), print_fn=lines.append)
    assert result.count == 1 and -100 < result.mean < 0
    assert video.stat().st_size > 1000 and "(50 frames at 30 fps)" in lines[-1]
    import imageio.v3 as iio

    frames = iio.imread(video)
    assert frames.shape[0] == 50 and frames.shape[-1] == 3 and frames.std() > 1.0  # a rendered scene, not blank


@pytest.mark.parametrize("config", sorted((REPO / "configs" / "repaint").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_repaint_config_parses_with_a_bundled_teacher_and_the_repaint_method(config, capsys):
    import yaml

    with pytest.raises(SystemExit) as info:
        run_cli("fit", "--config", str(config), "--print_config")
    assert info.value.code in (None, 0)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["method"] == "repaint"
    teacher = printed["data"]["init_args"]["teacher"]
    assert teacher.startswith("bundled:ppo/") and load_teacher(teacher, printed["data"]["init_args"]["task"])


def test_anneal_lr_decays_the_learning_rate_linearly_to_zero_over_max_epochs(tmp_path):
    run = fit(
        CARTPOLE_PAIR,
        tmp_path,
        "annealed",
        "--model.init_args.method",
        "baseline",
        "--model.init_args.lr",
        "0.002",
        "--model.init_args.anneal_lr",
        "true",
        "--trainer.max_epochs",
        "4",
        "--trainer.check_val_every_n_epoch",
        "4",
    )
    assert per_iteration(run, "train/lr") == pytest.approx([0.002, 0.0015, 0.001, 0.0005])
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0005)


@pytest.mark.parametrize(("target", "mean_range"), [("executed", (-1.1, 1.1)), ("raw", (3.0, 6.0))])
def test_a_student_kickstarted_by_a_saturating_teacher_copies_the_action_it_executes(target, mean_range):
    """The bundled "different" Reacher teacher's mean is ~4.5 in magnitude against bounds of [-1, 1]: copied raw,
    every sampled action of the student would clip and PPO would get no gradient to come back."""
    from lightning_distill.policies import ActorCritic
    from lightning_distill.ppo_losses import kickstarting_loss

    pytest.importorskip("mujoco")
    task = Task(id="Reacher-v5")
    runner = EnvRunner(task, num_envs=4, seed=0)
    teacher = load_teacher("bundled:ppo/reacher_different", task)
    obs = runner.rollout(teacher.distribution, 64, torch.device("cpu"))["obs"].flatten(0, 1)
    runner.close()
    teacher_dist = teacher.distribution(obs)
    assert teacher_dist.mean.abs().max() > 3.0  # the teacher does saturate
    torch.manual_seed(0)
    student = ActorCritic(task)
    optimizer = torch.optim.Adam(student.parameters(), lr=3e-3)
    for _ in range(300):
        target_dist = student.as_executed(teacher_dist) if target == "executed" else teacher_dist
        loss = kickstarting_loss(student.distribution(obs), target_dist)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    mean = student.distribution(obs).mean.detach().abs().mean().item()
    assert mean_range[0] < mean < mean_range[1]


def test_unknown_kickstart_target_is_one_line_listing_the_valid_ones(capsys):
    line = one_line_error(capsys, "fit", "--config", CARTPOLE_PAIR, "--model.init_args.kickstart_target", "clipped")
    assert "'clipped'" in line and "executed" in line and "raw" in line
