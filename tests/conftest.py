"""Shared fixtures (one CartPole DQN teacher trained once per session through the CLI) and helpers
(running the CLI in-process, the layout of a CleanRL Atari Q-network)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
# the shipped configs log to W&B offline; tests that do not check W&B keep it off (no run folders, no service)
os.environ.setdefault("WANDB_MODE", "disabled")
REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> None:
    """``python -m lightning_distill ...`` in-process (a subprocess would pay ~8 s of imports)."""
    from lightning_distill.cli import main

    main(list(args))


@pytest.fixture(autouse=True)
def no_wandb_run_outlives_its_test():
    """A command-line run ends its W&B run when the process exits; in-process tests end it here,
    or the next WandbLogger would reuse it."""
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def csv_logger(save_dir: str | Path, name: str, version: int | None = None) -> list[str]:
    """One CSVLogger instead of the config's CSV + W&B loggers: the metrics.csv the tests read."""
    from lightning_distill.cli import csv_logger_args

    return csv_logger_args(save_dir, name, version)


def one_line_error(capsys, *args: str) -> str:
    """Run the CLI expecting bad input: exit status 2 and exactly one ``error:`` line, no traceback."""
    with pytest.raises(SystemExit) as info:
        run_cli(*args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "usage:" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.fixture(scope="session")
def cartpole_run(tmp_path_factory) -> Path:
    """Train the shipped CartPole teacher config (fixed seed) and return its run directory."""
    root = tmp_path_factory.mktemp("runs")
    run_cli(
        "fit",
        "--config",
        str(REPO / "configs/teacher/cartpole.yaml"),
        *csv_logger(root, "teacher_cartpole"),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
    )
    (run_dir,) = (root / "teacher_cartpole").iterdir()
    return run_dir


@pytest.fixture(scope="session")
def cartpole_best_ckpt(cartpole_run: Path) -> Path:
    (best,) = (cartpole_run / "checkpoints").glob("best-*.ckpt")
    return best


def fit_and_record_batches(model, datamodule, max_steps: int) -> list:
    """Fit ``model`` for ``max_steps`` updates with no logger, checkpoint, progress bar or
    evaluation, and return every training batch it saw."""
    import lightning.pytorch as pl

    seen = []
    original = model.training_step

    def spy(batch, batch_idx):
        seen.append(batch)
        return original(batch, batch_idx)

    model.training_step = spy
    pl.Trainer(
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        max_epochs=-1,
    ).fit(model, datamodule=datamodule)
    return seen


def cleanrl_atari_network(num_actions: int) -> nn.Sequential:
    """The layer layout of CleanRL's dqn_atari.py QNetwork (``network.0`` .. ``network.9``)."""
    return nn.Sequential(
        nn.Conv2d(4, 32, 8, stride=4),
        nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3136, 512),
        nn.ReLU(),
        nn.Linear(512, num_actions),
    )


def save_cleanrl(network: nn.Sequential, path) -> None:
    torch.save({f"network.{k}": v for k, v in network.state_dict().items()}, path)
