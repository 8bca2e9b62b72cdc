"""The command line: help stays light, configs parse and link, runs keep their config, errors
are one line, validate and play work on a checkpoint made in the tests."""

import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, csv_logger, one_line_error, run_cli

TEACHER_CONFIGS = sorted((REPO / "configs" / "teacher").glob("*.yaml"))


def test_help_does_not_import_torchrl_wandb_mujoco_the_hub_or_opencv():
    code = (
        "import sys\n"
        "from lightning_distill.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "lazy = {'torchrl', 'wandb', 'mujoco', 'huggingface_hub', 'cv2'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & lazy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "fit" in out and "validate" in out and "play" in out
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("config", TEACHER_CONFIGS, ids=lambda p: p.stem)
def test_every_teacher_config_parses_and_links_its_task_into_the_model(config, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli("fit", "--config", str(config), "--print_config")
    assert info.value.code in (None, 0)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] in ("lightning_distill.modules.DQN", "lightning_distill.modules.PPO")
    assert "tasks" not in printed["model"].get("init_args", {})  # linked at instantiation, not typed twice
    assert printed["data"]["init_args"]["task"]["id"]


def test_omegaconf_interpolation_resolves_in_configs(tmp_path, capsys):
    config = tmp_path / "interp.yaml"
    text = yaml.safe_load((REPO / "configs/teacher/cartpole.yaml").read_text())
    text["trainer"]["val_check_interval"] = "${trainer.max_steps}"
    config.write_text(yaml.safe_dump(text))
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", str(config), "--print_config")
    assert yaml.safe_load(capsys.readouterr().out)["trainer"]["val_check_interval"] == 6000


def test_misspelt_config_key_is_one_line_naming_it(capsys):
    line = one_line_error(
        capsys, "fit", "--config", str(REPO / "configs/teacher/cartpole.yaml"), "--model.init_args.lrr", "0.1"
    )
    assert "'lrr'" in line and "DQN" in line


def test_unknown_game_is_one_line_listing_valid_names(capsys):
    line = one_line_error(
        capsys,
        "fit",
        "--config",
        str(REPO / "configs/teacher/minatar_breakout.yaml"),
        "--data.init_args.task.id",
        "MinAtar/Pong",
    )
    assert "'MinAtar/Pong'" in line and "MinAtar/Breakout" in line and "MinAtar/Seaquest" in line


def test_missing_checkpoint_is_one_line_naming_the_path(capsys, tmp_path):
    missing = tmp_path / "nope.ckpt"
    line = one_line_error(capsys, "play", "--ckpt_path", str(missing))
    assert str(missing) in line and "not found" in line


def test_play_prints_each_return_and_the_frames_its_gif_holds(cartpole_best_ckpt, tmp_path, capsys):
    import imageio.v3 as iio

    video = tmp_path / "cartpole.gif"
    run_cli(
        "play",
        "--ckpt_path",
        str(cartpole_best_ckpt),
        "--episodes",
        "2",
        "--epsilon",
        "0.5",  # short episodes
        "--video",
        str(video),
    )
    out = capsys.readouterr().out
    assert "episode 1: return" in out and "episode 2: return" in out and "mean return over 2 episodes" in out
    reported = int(re.search(r"\((\d+) frames", out).group(1))
    assert reported == sum(1 for _ in iio.imiter(video)) > 1


def test_play_accepts_the_saved_fit_config_and_its_mp4_shows_the_episode(
    cartpole_run, cartpole_best_ckpt, tmp_path, capsys
):
    import imageio.v3 as iio
    import numpy as np

    video = tmp_path / "cartpole.mp4"
    run_cli(
        "play",
        "--config",
        str(cartpole_run / "config.yaml"),
        "--ckpt_path",
        str(cartpole_best_ckpt),
        "--episodes",
        "1",
        "--epsilon",
        "0.0",
        "--video",
        str(video),
    )
    steps = int(float(capsys.readouterr().out.split("episode 1: return ")[1].split()[0]))  # CartPole: +1 a step
    frames = iio.imread(video)
    assert frames.ndim == 4 and frames.shape[-1] == 3 and len(frames) in (steps, steps + 1)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1  # the cart and pole moved


def test_validate_evaluates_a_checkpoint_with_the_protocol(cartpole_run, cartpole_best_ckpt, tmp_path, capsys):
    run_cli(
        "validate",
        "--config",
        str(cartpole_run / "config.yaml"),
        "--ckpt_path",
        str(cartpole_best_ckpt),
        "--trainer.enable_progress_bar",
        "false",
    )
    out = capsys.readouterr().out
    assert "eval/CartPole-v1/return" in out and "eval/CartPole-v1/episodes: 10\n" in out
    assert sorted(p.name for p in cartpole_run.parent.iterdir()) == [cartpole_run.name]  # no new run folder
    (shown,) = [line for line in out.splitlines() if line.startswith("eval/CartPole-v1/return: ")]
    assert len(shown.split(": ")[1]) <= 8, shown  # the value as logged, not float32 noise


@pytest.mark.parametrize(
    "config,overrides",
    [
        ("minatar_breakout.yaml", ["--data.init_args.learning_starts", "100"]),
        (
            "atari_pong.yaml",
            [
                "--data.init_args.learning_starts",
                "100",
                "--data.init_args.buffer_size",
                "1000",
                "--data.init_args.evaluation.steps",
                "200",
                "--data.init_args.evaluation.num_envs",
                "1",
            ],
        ),
    ],
)
def test_minatar_and_atari_teacher_configs_train_a_few_hundred_steps(config, overrides, tmp_path):
    run_cli(
        "fit",
        "--config",
        str(REPO / "configs/teacher" / config),
        *overrides,
        "--trainer.max_steps",
        "200",
        "--trainer.val_check_interval",
        "200",
        *csv_logger(tmp_path, "teacher"),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
    )
    (run_dir,) = next(tmp_path.iterdir()).iterdir()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert "eval/return" in (run_dir / "metrics.csv").read_text()


def test_two_runs_of_one_config_never_clobber_each_others_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the shipped loggers (CSV and W&B) write to ./runs
    for _ in range(2):
        run_cli(
            "fit",
            "--config",
            str(REPO / "configs/teacher/cartpole.yaml"),
            "--trainer.max_steps",
            "50",
            "--data.init_args.learning_starts",
            "64",
            "--trainer.val_check_interval",
            "50",
            "--data.init_args.evaluation.episodes",
            "1",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
        )
    runs = sorted((tmp_path / "runs" / "teacher_cartpole").iterdir())
    assert [r.name for r in runs] == ["version_0", "version_1"]
    assert all((r / "config.yaml").is_file() and (r / "checkpoints" / "last.ckpt").is_file() for r in runs)


def test_runs_without_a_logger_write_no_config_and_run_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Lightning would have saved ./config.yaml, and refused the second run
    for _ in range(2):
        run_cli(
            "fit",
            "--config",
            str(REPO / "configs/teacher/cartpole.yaml"),
            "--trainer.logger",
            "false",
            "--trainer.max_steps",
            "20",
            "--data.init_args.learning_starts",
            "32",
            "--trainer.val_check_interval",
            "20",
            "--data.init_args.evaluation.episodes",
            "1",
            "--trainer.enable_progress_bar",
            "false",
        )
    assert not (tmp_path / "config.yaml").exists()
