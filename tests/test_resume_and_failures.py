"""Runs that users can trust: killed runs resume from their last checkpoint (replay included),
checkpoints are never half-written, a diverging loss stops the run and keeps the good
checkpoints, impossible settings fail before training, and progress shows what matters."""

from __future__ import annotations

import copy
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch

from lightning_distill.checkpointing import atomic_save

from conftest import REPO, csv_logger, one_line_error, run_cli

HPR = str(REPO / "configs/distill/minatar_hpr.yaml")
CARTPOLE_PAIR = str(REPO / "configs/repaint/cartpole.yaml")
QUIET = ("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false")
# two games, small H-PR memories, a checkpoint every 25 updates with the replay inside it
SMALL_HPR = (
    "--data.init_args.tasks",
    "[{id: MinAtar/Breakout}, {id: MinAtar/Freeway}]",
    "--data.init_args.teachers",
    "[bundled:minatar/breakout, bundled:minatar/freeway]",
    "--data.init_args.replay.init_args.partition_capacity",
    "600",
    "--data.init_args.replay.init_args.value_steps",
    "200",
    "--data.init_args.learning_starts",
    "100",
    "--data.init_args.checkpoint_replay",
    "true",
    "--trainer.val_check_interval",
    "100000",
    # the monitored score falls at every update: the best checkpoint stays at update 25, and
    # last.ckpt must still be the latest state
    "--trainer.callbacks",
    "[{class_path: lightning_distill.callbacks.EpsilonSchedule, init_args: {decay_steps: 8000}}, "
    "{class_path: test_resume_and_failures.WorseEveryUpdate}, {class_path: test_resume_and_failures.ReplayProbe}, "
    "{class_path: lightning.pytorch.callbacks.ModelCheckpoint, init_args: {every_n_train_steps: 25, "
    "save_last: true, monitor: probe/score, mode: max, filename: 'best-{step}'}}]",
)


class WorseEveryUpdate(pl.Callback):
    """Logs ``probe/score``, lower at every update (named by class path in the configs above)."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        pl_module.log("probe/score", -float(trainer.global_step))


def hpr_args(root: Path, *extra: str) -> list[str]:
    return ["fit", "--config", HPR, *SMALL_HPR, *csv_logger(root, "hpr"), *QUIET, *extra]


def kill_after_second_checkpoint(root: Path) -> Path:
    """Start a long run in a subprocess; SIGKILL it once it has written ``last.ckpt`` twice."""
    args = hpr_args(root, "--trainer.max_steps", "100000")
    process = subprocess.Popen(
        [sys.executable, "-m", "lightning_distill", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")},
    )
    last = root / "hpr" / "version_0" / "checkpoints" / "last.ckpt"
    first_write, deadline = None, time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if last.exists():
                mtime = last.stat().st_mtime_ns
                if first_write is None:
                    first_write = mtime
                elif mtime != first_write:
                    break
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert first_write is not None, "no checkpoint written in time"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return last


def replay_snapshot(memories) -> list[dict]:
    """What each task's memory holds, through its own API: stored tensors, sampler state, sizes."""
    return [
        {
            "rows": memory.buffer.storage.get(torch.from_numpy(memory.hpr.stored_slots())).to_dict(),
            "sampler": copy.deepcopy(memory.buffer.sampler.state_dict()),
            "sizes": memory.partition_sizes.tolist(),
        }
        for memory in memories
    ]


def same(a, b) -> bool:
    """Equal, tensors elementwise, through dicts and lists."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same, a, b))
    return a == b


class ReplayProbe(pl.Callback):
    """Snapshots the replay beside every checkpoint written, and records what a resumed run
    restored before it steps on (named by class path on the command line)."""

    seen: dict = {}

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        folder = Path(trainer.log_dir) / "replay_snapshots"
        folder.mkdir(exist_ok=True)
        atomic_save(replay_snapshot(trainer.datamodule.memories), folder / f"step={trainer.global_step}.pt")

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        ReplayProbe.seen.update(
            env_steps=trainer.datamodule.env_steps, memories=replay_snapshot(trainer.datamodule.memories)
        )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        ReplayProbe.seen.update(step=trainer.global_step)


def test_a_killed_run_resumes_from_its_last_checkpoint_with_the_same_replay(tmp_path):
    last = kill_after_second_checkpoint(tmp_path)
    saved = torch.load(last, weights_only=True)  # whole and readable although the writer was killed
    step = saved["global_step"]
    assert step >= 50 and step % 25 == 0

    run_cli(*hpr_args(tmp_path, "--trainer.max_steps", str(step + 10), "--ckpt_path", "last"))
    seen = ReplayProbe.seen
    assert seen["step"] == step
    checkpoints = tmp_path / "hpr" / "version_0" / "checkpoints"
    resumed = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == step + 10  # the same run continued: no version_1
    assert sorted(p.name for p in checkpoints.glob("best-*")) == ["best-step=25.ckpt"]  # best != latest
    assert [p.name for p in (tmp_path / "hpr").iterdir()] == ["version_0"]
    assert seen["env_steps"] == saved["DistillDataModule"]["env_steps"] > 0
    before_kill = torch.load(
        tmp_path / "hpr" / "version_0" / "replay_snapshots" / f"step={step}.pt", weights_only=False
    )
    for mine, theirs in zip(seen["memories"], before_kill, strict=True):
        for key in ("obs", "teacher_logits", "value"):  # every stored experience, bit for bit
            torch.testing.assert_close(mine["rows"][key], theirs["rows"][key], rtol=0, atol=0)
        # all the sampler's state but its random stream, which a resume re-seeds per rank
        assert [key for key in theirs["sampler"] if not same(mine["sampler"][key], theirs["sampler"][key])] == ["rng"]
        assert mine["sizes"] == theirs["sizes"] and sum(theirs["sizes"]) > 0
    # the checkpoint holds the stored experiences, not the memories' capacity (5 x 2,000 slots a game)
    held = sum(column.nbytes for memory in before_kill for column in memory["rows"].values())
    buffer = io.BytesIO()
    torch.save(saved["DistillDataModule"]["memories"], buffer)
    assert held > 0 and buffer.getbuffer().nbytes <= 1.1 * held, (buffer.getbuffer().nbytes, held)


def kill_a_writer_mid_write(path: Path) -> bool:
    """SIGKILL a process that overwrites ``path`` in a loop, as soon as its temporary file shows;
    True if the kill landed during a write (the temporary file is left behind)."""
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, torch; from pathlib import Path; from lightning_distill.checkpointing import atomic_save\n"
                "big = torch.randn(16, 1024, 1024)\n"  # 64 MB: a write takes long enough to be caught in it
                "while True: atomic_save({'step': 2, 'weights': big}, Path(sys.argv[1]))\n"
            ),
            str(path),
        ],
        cwd=REPO,
    )
    temporary = path.with_name(f".{path.name}.tmp-{writer.pid}")
    try:
        deadline = time.monotonic() + 60
        while not temporary.exists() and time.monotonic() < deadline:
            pass
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    return temporary.exists()


def test_a_checkpoint_being_overwritten_is_the_old_or_the_new_never_a_partial_file(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_save({"step": 1, "weights": torch.zeros(10)}, path)
    assert any(kill_a_writer_mid_write(path) for _ in range(3)), "no kill landed during a write"
    checkpoint = torch.load(path, weights_only=True)  # the old file, or a whole new one
    assert (checkpoint["step"], checkpoint["weights"].numel()) in ((1, 10), (2, 16 * 1024 * 1024))
    atomic_save({"step": 3}, path)  # the next save clears what the killed writer left
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot be pickled")


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_temporary_file(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_save({"step": 1}, path)
    with pytest.raises(RuntimeError, match="cannot be pickled"):
        atomic_save({"step": 2, "bad": Unpicklable()}, path)  # fails mid-save
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_nan_loss_stops_the_run_with_one_line_and_every_checkpoint_stays_finite(tmp_path, capsys, monkeypatch):
    import lightning_distill.modules.ppo as ppo

    surrogate = ppo.clipped_surrogate
    calls = {"n": 0}

    def diverging(*args, **kwargs):  # finite for 3 iterations (4 epochs x 4 minibatches each), then NaN
        calls["n"] += 1
        value = surrogate(*args, **kwargs)
        return value * torch.nan if calls["n"] > 3 * 16 else value

    monkeypatch.setattr(ppo, "clipped_surrogate", diverging)
    with pytest.raises(SystemExit) as info:
        run_cli(
            "fit",
            "--config",
            CARTPOLE_PAIR,
            "--model.init_args.method",
            "ks",
            "--trainer.max_epochs",
            "10",
            "--trainer.check_val_every_n_epoch",
            "1",
            *csv_logger(tmp_path, "repaint_cartpole"),
            *QUIET,
        )
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "the loss became nan at update 48 (loss/policy=nan)" in line and "last.ckpt" in line, line
    checkpoints = list((tmp_path / "repaint_cartpole" / "version_0" / "checkpoints").glob("*.ckpt"))
    assert checkpoints
    for path in checkpoints:
        state = torch.load(path, weights_only=True)
        assert state["epoch"] <= 3
        assert all(torch.isfinite(v).all() for v in state["state_dict"].values())


def test_a_gpu_run_on_a_machine_without_one_fails_before_training_with_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without a GPU, wherever this runs
    line = one_line_error(
        capsys,
        "fit",
        "--config",
        CARTPOLE_PAIR,
        "--trainer.accelerator",
        "gpu",
        *csv_logger(tmp_path, "repaint_cartpole"),
    )
    assert "trainer.accelerator 'gpu' needs a GPU" in line and "--trainer.accelerator cpu" in line
    assert not (tmp_path / "repaint_cartpole").exists()


def test_a_teacher_for_other_actions_fails_before_training_with_one_line(capsys, tmp_path):
    line = one_line_error(
        capsys,
        "fit",
        "--config",
        str(REPO / "configs/repaint/reacher_similar.yaml"),
        "--data.init_args.teacher",
        "bundled:ppo/cartpole_centered",
        *csv_logger(tmp_path, "repaint_cartpole"),
        *QUIET,
    )
    assert "does not fit task 'Reacher-v5'" in line and "2 actions" in line
    assert not list(tmp_path.rglob("*.ckpt"))


def test_resuming_from_a_missing_checkpoint_is_one_line(capsys, tmp_path):
    line = one_line_error(
        capsys, "fit", "--config", CARTPOLE_PAIR, "--ckpt_path", "last", *csv_logger(tmp_path, "repaint_cartpole")
    )
    assert "no last.ckpt in" in line
    line = one_line_error(capsys, "fit", "--config", CARTPOLE_PAIR, "--ckpt_path", str(tmp_path / "nope.ckpt"))
    assert "nope.ckpt" in line and "is not a file" in line


def fit_cartpole_pair_with_progress(tmp_path, iterations: int, evaluate_every: int, live: bool) -> None:
    run_cli(
        "fit",
        "--config",
        CARTPOLE_PAIR,
        "--trainer.max_epochs",
        str(iterations),
        "--trainer.check_val_every_n_epoch",
        str(evaluate_every),
        *csv_logger(tmp_path, "repaint_cartpole"),
        "--trainer.enable_model_summary",
        "false",
        "--trainer.callbacks+=lightning_distill.callbacks.RLProgress",
        "--trainer.callbacks.live",
        str(live).lower(),
    )


def test_progress_shows_iterations_env_steps_beta_and_the_last_evaluation(tmp_path, capsys):
    fit_cartpole_pair_with_progress(tmp_path, iterations=4, evaluate_every=2, live=True)
    out = capsys.readouterr().out.replace("\r", "\n")
    final = [line for line in out.splitlines() if "4/4 it" in line][-1]
    for shown in ("env 2048", "it/s", "beta_k 0.729", "eval "):
        assert shown in final, final
    assert re.search(r"kept \d+(\.\d)?%", final), final  # the share of teacher samples, as the summary shows it


def test_printed_progress_shows_each_iterations_own_metrics(tmp_path, capsys):
    """Without a terminal, progress is printed lines: the one for 2 iterations done, after the
    evaluation, shows the 2nd iteration's beta_k (0.9), not the first's (1)."""
    fit_cartpole_pair_with_progress(tmp_path, iterations=2, evaluate_every=2, live=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("2/2 it")]
    assert lines and all("beta_k 0.9 " in line for line in lines), lines
    assert "eval " in lines[-1]


def test_wandb_offline_run_holds_the_config_videos_score_table_and_partition_occupancy(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)  # the config's loggers write to ./runs
    run_cli(
        "fit",
        "--config",
        HPR,
        *SMALL_HPR[:-2],
        *QUIET,
        "--trainer.max_steps",
        "40",
        "--trainer.val_check_interval",
        "40",
        "--trainer.log_every_n_steps",
        "20",
        "--data.init_args.evaluation",
        "{episodes: 2, num_envs: 2}",
        "--trainer.callbacks",
        "[{class_path: lightning_distill.callbacks.WandbMedia, init_args: {video_steps: 30}}]",
    )
    import wandb

    run_config, summary = dict(wandb.run.config), dict(wandb.run.summary)
    wandb.finish()
    assert run_config["data"]["init_args"]["replay"]["init_args"]["partitions"] == 5  # the resolved config
    assert run_config["trainer"]["max_steps"] == 40
    shares = [summary[f"replay/MinAtar/Breakout/partition_{j}"] for j in range(5)]
    assert sum(shares) == pytest.approx(1.0)
    (run,) = (tmp_path / "runs" / "wandb").glob("offline-run-*")  # for `wandb sync`
    files = run / "files"
    videos = sorted(p.name for p in (files / "videos").glob("*.mp4"))
    assert videos == ["MinAtar_Breakout_40.mp4", "MinAtar_Freeway_40.mp4"]
    (table,) = (files / "media" / "table" / "eval").glob("scores_*.table.json")
    rows = json.loads(table.read_text())["data"]
    assert [row[0] for row in rows] == ["MinAtar/Breakout", "MinAtar/Freeway"]
    (csv_run,) = (tmp_path / "runs" / "minatar_hpr").glob("version_*")
    metrics = pd.read_csv(csv_run / "metrics.csv")
    shares = metrics[[f"replay/MinAtar/Breakout/partition_{j}" for j in range(5)]].dropna()
    assert len(shares) >= 1 and np.allclose(shares.sum(axis=1), 1.0)


def test_a_resumed_repaint_run_continues_its_iterations_and_beta_schedule(tmp_path):
    common = (
        "fit",
        "--config",
        CARTPOLE_PAIR,
        *csv_logger(tmp_path, "pair"),
        *QUIET,
        "--trainer.check_val_every_n_epoch",
        "2",
    )
    run_cli(*common, "--trainer.max_epochs", "2")
    run_cli(*common, "--trainer.max_epochs", "4", "--ckpt_path", "last")
    resumed = pd.read_csv(tmp_path / "pair" / "version_0" / "metrics.csv").dropna(subset=["transfer/beta_k"])
    assert resumed["epoch"].tolist() == [0, 1, 2, 3]  # one run, its iterations each logged once
    resumed = resumed[resumed["epoch"] >= 2]
    assert resumed["transfer/beta_k"].tolist() == pytest.approx([0.9**2, 0.9**3])  # the config's beta_decay
    assert resumed["train/env_steps"].tolist() == [3 * 512.0, 4 * 512.0]
