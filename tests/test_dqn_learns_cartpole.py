"""The learning test: the shipped CartPole teacher config reaches 195+ with its fixed seed."""

from pathlib import Path

import yaml

from lightning_distill.evaluation import evaluate
from lightning_distill.teachers import load_teacher


def test_cartpole_teacher_reaches_195_on_fresh_evaluation(cartpole_best_ckpt: Path):
    teacher = load_teacher(cartpole_best_ckpt)
    result = evaluate(teacher.act, teacher.task, episodes=20, seed=2024)
    assert result.count == 20
    assert result.mean >= 195.0, f"best CartPole checkpoint scored {result.mean:.1f} over 20 episodes"


def test_run_directory_holds_resolved_config_next_to_checkpoints(cartpole_run: Path):
    config = yaml.safe_load((cartpole_run / "config.yaml").read_text())
    assert config["model"]["class_path"] == "lightning_distill.modules.DQN"
    assert config["data"]["init_args"]["task"]["id"] == "CartPole-v1"
    assert (cartpole_run / "checkpoints" / "last.ckpt").is_file()
    assert (cartpole_run / "metrics.csv").read_text().count("eval/return") == 1  # header names it
