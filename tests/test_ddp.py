"""Two CPU processes under DDP (gloo): the weights stay identical across ranks, each rank
trains on its own experience, and metrics are reduced across ranks."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import torch

from conftest import REPO, csv_logger

DDP = (
    "--trainer.accelerator",
    "cpu",
    "--trainer.devices",
    "2",
    "--trainer.strategy",
    "ddp",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.callbacks+=ddp_probe.DDPProbe",
)


def run_ddp(tmp_path, config: str, *args: str) -> tuple[dict, dict, pd.DataFrame]:
    """``python -m lightning_distill fit`` on 2 ranks; each rank's probe file and rank 0's metrics."""
    env = os.environ | {
        "DDP_PROBE_DIR": str(tmp_path),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "helpers"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "lightning_distill",
        "fit",
        "--config",
        str(REPO / config),
        *DDP,
        *csv_logger(tmp_path, "ddp"),
        *args,
    ]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    (metrics,) = (tmp_path / "ddp").glob("version_*/metrics.csv")
    return ranks[0], ranks[1], pd.read_csv(metrics)


def test_ddp_distillation_keeps_ranks_identical_on_different_experience(tmp_path):
    rank0, rank1, metrics = run_ddp(
        tmp_path,
        "configs/distill/minatar_uniform.yaml",
        "--trainer.max_steps",
        "30",
        "--trainer.log_every_n_steps",
        "10",
        "--trainer.val_check_interval",
        "30",
        "--data.init_args.tasks",
        "[{id: MinAtar/Breakout}, {id: MinAtar/Freeway}]",
        "--data.init_args.teachers",
        "[bundled:minatar/breakout, bundled:minatar/freeway]",
        "--data.init_args.learning_starts",
        "64",
        "--data.init_args.evaluation",
        "{episodes: 4, num_envs: 2}",
        "--trainer.callbacks",
        "[{class_path: ddp_probe.DDPProbe}]",
    )
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["global_step"] == rank1["global_step"] == 30  # lockstep
    assert torch.equal(rank0["weights"], rank1["weights"])
    assert rank0["batches"] != rank1["batches"]  # each rank sampled its own memory
    assert rank0["env_steps"] == rank1["env_steps"]
    # summed over ranks: more steps than one rank ever took
    assert rank0["env_steps"] < metrics["train/env_steps"].max() <= 2 * rank0["env_steps"]
    assert metrics["eval/MinAtar/Breakout/episodes"].dropna().iloc[-1] >= 4  # both ranks' episodes pooled


def test_ddp_repaint_keeps_ranks_identical_on_different_rollouts(tmp_path):
    rank0, rank1, metrics = run_ddp(
        tmp_path, "configs/repaint/cartpole.yaml", "--trainer.max_epochs", "3", "--trainer.check_val_every_n_epoch", "3"
    )
    assert rank0["global_step"] == rank1["global_step"] == 3 * 4 * 4
    assert torch.equal(rank0["weights"], rank1["weights"])
    assert rank0["batches"] != rank1["batches"]
    per_iteration = metrics.dropna(subset=["train/env_steps"])
    assert per_iteration["train/env_steps"].tolist() == [1024.0, 2048.0, 3072.0]  # 2 ranks x 4 envs x 128 steps
