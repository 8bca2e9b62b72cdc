"""A run that is checked, stopped and resumed stays one run: ``last.ckpt`` is its latest state
even when the monitored metric gets worse, ``--ckpt_path last`` continues the same folder,
metrics and best score, and ``validate`` reports the checkpoint's update."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import pytest
import torch

from conftest import REPO, csv_logger, run_cli

CARTPOLE_DQN = str(REPO / "configs/teacher/cartpole.yaml")
QUIET = ("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false")


class WorseEveryEvaluation(pl.Callback):
    """Logs ``probe/score``, which falls at every evaluation: the first is the best one."""

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.log("probe/score", 1000.0 - trainer.global_step)


class StartProbe(pl.Callback):
    started_at: list[int] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        StartProbe.started_at.append(trainer.global_step)


def dqn_run(root: Path, max_steps: int, *extra: str) -> None:
    """The shipped CartPole DQN config, evaluated every 100 updates, keeping the best
    ``probe/score`` with Lightning's own ``ModelCheckpoint`` class path (the CLI upgrades it)."""
    callbacks = (
        "[{class_path: test_run_continuity.WorseEveryEvaluation}, "
        "{class_path: test_run_continuity.StartProbe}, "
        "{class_path: lightning.pytorch.callbacks.ModelCheckpoint, init_args: "
        "{monitor: probe/score, mode: max, save_last: true, filename: 'best-{step}'}}]"
    )
    run_cli(
        "fit",
        "--config",
        CARTPOLE_DQN,
        *csv_logger(root, "dqn"),
        *QUIET,
        "--trainer.callbacks",
        callbacks,
        "--trainer.max_steps",
        str(max_steps),
        "--trainer.val_check_interval",
        "100",
        "--data.init_args.learning_starts",
        "50",
        "--data.init_args.evaluation",
        "{episodes: 2}",
        *extra,
    )


def step_of(path: Path) -> int:
    return int(torch.load(path, weights_only=True, map_location="cpu")["global_step"])


def best_score(path: Path) -> float:
    states = torch.load(path, weights_only=True, map_location="cpu")["callbacks"]
    (state,) = [s for key, s in states.items() if "probe/score" in key]
    return float(state["best_model_score"])


def test_last_ckpt_is_the_latest_state_and_a_resume_continues_the_same_run_with_its_best(tmp_path, capfd, caplog):
    StartProbe.started_at = []
    dqn_run(tmp_path, 300)
    checkpoints = tmp_path / "dqn" / "version_0" / "checkpoints"
    best, last = checkpoints / "best-step=100.ckpt", checkpoints / "last.ckpt"
    assert caplog.messages[-1] == f"best checkpoint (probe/score 900.0): {best}; latest: {last}"  # what it kept
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-step=100.ckpt", "last.ckpt"]
    assert step_of(checkpoints / "last.ckpt") == 300  # not the best (100): the metric got worse

    dqn_run(tmp_path, 400, "--ckpt_path", "last")
    assert StartProbe.started_at == [0, 300]  # resumed from the latest state
    assert [p.name for p in (tmp_path / "dqn").iterdir()] == ["version_0"]  # the same run, no version_1
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-step=100.ckpt", "last.ckpt"]
    assert step_of(checkpoints / "last.ckpt") == 400
    assert best_score(checkpoints / "last.ckpt") == 900.0  # the best of the whole run, not of its second part
    run_dir = tmp_path / "dqn" / "version_0"
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["probe/score"].dropna().tolist() == [900.0, 800.0, 700.0, 600.0]  # each evaluation once
    # each training row holds the values of its own update: 64 steps fill the memory, then one a
    # step; the resumed run, whose checkpoint holds no replay, fills a new memory first
    assert metrics["train/env_steps"].dropna().tolist() == [164.0, 264.0, 364.0, 364.0 + 64 + 100]
    assert sorted(p.name for p in run_dir.glob("config*.yaml")) == ["config.until-300.yaml", "config.yaml"]
    capfd.readouterr()

    run_cli(
        "validate",
        "--config",
        CARTPOLE_DQN,
        "--ckpt_path",
        str(checkpoints / "last.ckpt"),
        *QUIET,
    )
    assert "step: 400\n" in capfd.readouterr().out  # the evaluated checkpoint's update, not 0


def test_resuming_from_an_older_checkpoint_of_a_run_starts_a_new_version_and_overwrites_nothing(tmp_path):
    StartProbe.started_at = []
    dqn_run(tmp_path, 300)
    old = tmp_path / "dqn" / "version_0" / "checkpoints" / "best-step=100.ckpt"
    before = {p.name: p.stat().st_mtime_ns for p in old.parent.iterdir()}
    dqn_run(tmp_path, 200, "--ckpt_path", str(old))
    assert StartProbe.started_at == [0, 100]
    assert {p.name: p.stat().st_mtime_ns for p in old.parent.iterdir()} == before
    assert step_of(tmp_path / "dqn" / "version_1" / "checkpoints" / "last.ckpt") == 200


@pytest.mark.parametrize("value, shown", [(437.3999938964844, 437.4), (0.98765, 0.98765), (2.0**25 + 1, 2.0**25 + 1)])
def test_metrics_are_written_as_logged_without_float32_noise(value, shown):
    import numpy as np

    from lightning_distill.loggers import as_logged

    logged = float(np.float32(value)) if value < 2.0**24 else value  # what Lightning hands the logger
    assert as_logged(logged) == shown
