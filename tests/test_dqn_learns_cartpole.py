"""The learning test: the shipped CartPole teacher config reaches 195+ with its fixed seed."""

from pathlib import Path

import pandas as pd
import torch
import yaml

from lightning_distill.evaluation import evaluate
from lightning_distill.teachers import load_teacher


def test_cartpole_teacher_reaches_195_on_fresh_evaluation(cartpole_best_ckpt: Path):
    teacher = load_teacher(cartpole_best_ckpt)
    result = evaluate(teacher.act, teacher.task, episodes=20, seed=2024)
    assert result.count == 20
    assert result.mean >= 195.0, f"best CartPole checkpoint scored {result.mean:.1f} over 20 episodes"


def test_the_best_checkpoint_is_the_best_evaluation_and_last_is_the_end_of_training(cartpole_run: Path):
    config = yaml.safe_load((cartpole_run / "config.yaml").read_text())
    metrics = pd.read_csv(cartpole_run / "metrics.csv")
    evaluations = metrics.dropna(subset=["eval/return"])
    every = config["trainer"]["val_check_interval"]
    assert len(evaluations) == config["trainer"]["max_steps"] // every
    assert list(evaluations["step"] + 1) == [every * (i + 1) for i in range(len(evaluations))]
    best_step = int(evaluations.loc[evaluations["eval/return"].idxmax(), "step"]) + 1  # the first best one
    (best,) = (cartpole_run / "checkpoints").glob("best-*.ckpt")
    assert best.name == f"best-step={best_step}.ckpt"
    last = torch.load(cartpole_run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert last["global_step"] == config["trainer"]["max_steps"]
