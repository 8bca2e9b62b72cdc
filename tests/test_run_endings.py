"""How runs end, with nothing lost: a real Ctrl-C or SIGTERM sent to a running ``fit`` writes ``last.ckpt``
at the update reached and prints one line that says where, and how to resume; ``--ckpt_path
last`` never resumes an older run than the newest."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import pytest
import torch

from conftest import REPO, csv_logger, one_line_error, run_cli

CARTPOLE = str(REPO / "configs/teacher/cartpole.yaml")
MARK_AT = 300  # updates before the signal: past any checkpoint the config would write (first at 1000)


class MarkAtUpdate(pl.Callback):
    """Touches ``<log_dir>/reached`` once the run has made ``MARK_AT`` updates (the test's cue)."""

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if trainer.global_step == MARK_AT:
            Path(trainer.log_dir, "reached").touch()


def fit_args(root: Path) -> list[str]:
    return [
        "fit",
        "--config",
        CARTPOLE,
        *csv_logger(root, "cartpole"),
        "--trainer.max_steps",
        "100000",
        "--data.init_args.learning_starts",
        "100",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.callbacks+",
        "test_run_endings.MarkAtUpdate",
    ]


def interrupt_run(root: Path, signum: int) -> tuple[int, str]:
    """Start a long fit in a subprocess, send ``signum`` once it has made ``MARK_AT`` updates;
    its exit status and stderr."""
    command = [sys.executable, "-m", "lightning_distill", *fit_args(root)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    mark, deadline = root / "cartpole" / "version_0" / "reached", time.monotonic() + 180
    try:
        while not mark.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mark.exists(), process.stderr.read().decode()[-2000:] if process.poll() is not None else "too slow"
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, err.decode()


@pytest.mark.parametrize("signum, name, code", [(signal.SIGINT, "SIGINT", 130), (signal.SIGTERM, "SIGTERM", 143)])
def test_an_interrupted_run_saves_last_ckpt_at_the_update_reached_and_says_how_to_resume(signum, name, code, tmp_path):
    status, err = interrupt_run(tmp_path, signum)
    last_line = err.strip().splitlines()[-1]
    found = re.fullmatch(rf"interrupted \({name}\) at update (\d+): saved (\S+); resume with: (.+)", last_line)
    assert status == code and found, err[-3000:]
    assert "Detected KeyboardInterrupt" not in err  # Lightning's notice: the line above says it all
    step, path, resume = int(found.group(1)), Path(found.group(2)), found.group(3)
    assert step >= MARK_AT
    assert path == tmp_path / "cartpole" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(path, weights_only=True, mmap=True)["global_step"] == step
    assert "--config" in resume and resume.endswith("--ckpt_path last")
    # the command it prints resumes that run, from that update
    run_cli(*fit_args(tmp_path), "--trainer.max_steps", str(step + 5), "--ckpt_path", "last")
    assert [p.name for p in (tmp_path / "cartpole").iterdir()] == ["version_0"]
    assert torch.load(path, weights_only=True, mmap=True)["global_step"] == step + 5


def test_resuming_last_refuses_an_older_run_when_the_newest_has_no_checkpoint(tmp_path, capsys):
    old = tmp_path / "cartpole" / "version_4" / "checkpoints"
    old.mkdir(parents=True)
    torch.save({"state_dict": {}, "global_step": 12000}, old / "last.ckpt")
    (tmp_path / "cartpole" / "version_5").mkdir()  # the newest run, stopped before its first checkpoint
    error = one_line_error(capsys, *fit_args(tmp_path), "--ckpt_path", "last")
    assert "version_5 has no checkpoint" in error
    assert str(old / "last.ckpt") in error and "update 12000" in error
    assert "--ckpt_path" in error


def test_a_run_shorter_than_its_evaluation_interval_ends_with_an_evaluation_and_a_best_checkpoint(tmp_path):
    run_cli(*fit_args(tmp_path), "--trainer.max_steps", "250", "--trainer.enable_model_summary", "false")
    run_dir = tmp_path / "cartpole" / "version_0"
    evaluated = pd.read_csv(run_dir / "metrics.csv").dropna(subset=["eval/return"])
    # val_check_interval is 1000: evaluated once, at the end (Lightning writes the row at the update - 1)
    assert evaluated["step"].tolist() == [249]
    assert [p.name for p in (run_dir / "checkpoints").glob("best-*.ckpt")] == ["best-step=250.ckpt"]


def test_a_ppo_run_whose_iterations_are_not_a_multiple_of_the_interval_evaluates_its_last_iteration(tmp_path):
    run_cli(
        "fit",
        "--config",
        str(REPO / "configs/repaint/cartpole.yaml"),
        *csv_logger(tmp_path, "ppo"),
        "--model.init_args.method",
        "baseline",
        "--trainer.max_epochs",
        "3",
        "--trainer.enable_progress_bar",
        "false",
    )
    metrics = pd.read_csv(tmp_path / "ppo" / "version_0" / "metrics.csv")
    evaluated = metrics.dropna(subset=["eval/return"])
    assert evaluated["epoch"].tolist() == [2]  # check_val_every_n_epoch is 10: the third, last, iteration
