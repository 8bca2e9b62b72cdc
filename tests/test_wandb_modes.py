"""``WANDB_MODE`` wins over a config's ``offline``, in both directions, as W&B documents; a run
that fails before training leaves no W&B run behind and prints its error last. No network:
online runs point at a closed local port and have no API key."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO, one_line_error, run_cli

PAIR = str(REPO / "configs/repaint/cartpole.yaml")  # loggers: CSV and W&B with offline: true
SHORT = (
    "--trainer.max_epochs",
    "1",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--data.init_args.evaluation",
    "{episodes: 1}",
    "--trainer.callbacks",
    "[]",
)


@pytest.fixture
def no_wandb_account(tmp_path, monkeypatch):
    """No key anywhere, a W&B server on a closed local port, and runs written under tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    return tmp_path


def wandb_runs(root: Path) -> list[str]:
    return sorted(p.name.split("-")[0] for p in (root / "runs" / "wandb").glob("*run-*"))


def test_wandb_mode_online_starts_an_online_run_despite_offline_in_the_config(no_wandb_account, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "online")
    line = one_line_error(capsys, "fit", "--config", PAIR, *SHORT)
    # only an online run needs an account: the config's offline: true did not win
    assert "W&B could not start an online run" in line and "API key" in line, line
    assert "WANDB_MODE=offline" in line
    assert wandb_runs(no_wandb_account) == []  # nothing half-made left behind


def test_wandb_mode_offline_starts_an_offline_run_despite_offline_false(no_wandb_account, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_cli(
        "fit",
        "--config",
        PAIR,
        *SHORT,
        "--trainer.logger",
        "[{class_path: lightning_distill.loggers.WandbLogger, "
        "init_args: {save_dir: runs, project: lightning_distill, offline: false}}]",
    )
    assert wandb_runs(no_wandb_account) == ["offline"]


def test_wandb_mode_disabled_creates_no_wandb_run(no_wandb_account, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run_cli("fit", "--config", PAIR, *SHORT)
    assert wandb_runs(no_wandb_account) == []
    assert list((no_wandb_account / "runs" / "repaint_cartpole" / "repaint").glob("version_0/metrics.csv"))


def test_a_run_that_fails_before_training_leaves_no_run_behind_and_prints_its_error_last(
    no_wandb_account, monkeypatch, capfd
):
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", PAIR, *SHORT, "--data.init_args.teacher", "no_such_teacher.ckpt")
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "no_such_teacher.ckpt" in err[-1], err[-3:]
    assert wandb_runs(no_wandb_account) == []
    assert not (no_wandb_account / "runs" / "repaint_cartpole").exists()
