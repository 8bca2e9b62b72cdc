"""Bad input ends in one line that says what to change, before any work is done; a run prints
its progress, evaluations and results, not other libraries' noise; defaults chosen per task
are named, not ``null``."""

from __future__ import annotations

import re

import lightning.pytorch  # noqa: F401 - imported at collection: its log handler binds the session's stderr
import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, csv_logger, one_line_error, run_cli

PAIR = str(REPO / "configs/repaint/cartpole.yaml")
DQN = str(REPO / "configs/teacher/cartpole.yaml")


@pytest.fixture
def corrupt_checkpoint(tmp_path):
    path = tmp_path / "runs" / "pair" / "version_0" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 this is not a whole checkpoint")
    return path


@pytest.mark.parametrize("subcommand", ["fit", "validate"])
def test_a_corrupt_checkpoint_is_one_line_for_fit_validate_and_last(subcommand, corrupt_checkpoint, tmp_path, capsys):
    line = one_line_error(capsys, subcommand, "--config", PAIR, "--ckpt_path", str(corrupt_checkpoint))
    assert str(corrupt_checkpoint) in line and "not a readable checkpoint" in line
    line = one_line_error(
        capsys, subcommand, "--config", PAIR, "--ckpt_path", "last", *csv_logger(tmp_path / "runs", "pair")
    )
    assert str(corrupt_checkpoint) in line and "not a readable checkpoint" in line


def test_resuming_with_no_last_checkpoint_names_the_folder_it_looked_in(tmp_path, capsys):
    line = one_line_error(capsys, "fit", "--config", PAIR, "--ckpt_path", "last", *csv_logger(tmp_path, "pair"))
    assert f"no last.ckpt in {tmp_path}/pair/version_*/checkpoints;" in line


def test_play_checks_the_video_path_before_playing(cartpole_best_ckpt, tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "dir"
    line = one_line_error(capsys, "play", "--ckpt_path", str(cartpole_best_ckpt), "--video", str(missing / "out.gif"))
    assert f"{str(missing)!r} does not exist" in line and not missing.exists()
    assert "episode" not in capsys.readouterr().out  # nothing was played


@pytest.mark.parametrize("epsilon", ["1.5", "-0.1"])
def test_play_rejects_an_epsilon_outside_0_and_1(cartpole_best_ckpt, capsys, epsilon):
    line = one_line_error(capsys, "play", "--ckpt_path", str(cartpole_best_ckpt), "--epsilon", epsilon)
    assert "--epsilon must be in [0, 1]" in line and epsilon in line


def test_a_config_with_a_yaml_error_is_one_line_naming_the_file_and_line(tmp_path, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text("trainer:\n  max_steps: 10\n  callbacks: [a, b\nmodel: {}\n")
    line = one_line_error(capsys, "fit", "--config", str(config))
    assert str(config) in line and "line 4" in line


def test_an_abbreviated_key_is_an_error_not_the_key_it_abbreviates(capsys):
    line = one_line_error(capsys, "fit", "--config", DQN, "--trainer.max_step", "10")
    assert "--trainer.max_step" in line and "did you mean --trainer.max_steps?" in line


@pytest.mark.parametrize(
    "override",
    [
        ("--data.init_args.teacher", "no_such_teacher.ckpt"),  # a missing teacher
        ("--data.init_args.teacher", "null"),  # REPAINT without a teacher
        ("--data.init_args.evaluation.episodes", "0"),  # nothing to evaluate
    ],
)
def test_a_run_that_cannot_start_is_one_line_and_leaves_no_run_folder(override, tmp_path, capsys):
    one_line_error(capsys, "fit", "--config", PAIR, *csv_logger(tmp_path, "pair"), *override)
    assert not (tmp_path / "pair").exists()


def test_a_repaint_run_is_named_by_its_method_prints_its_result_and_no_library_noise(
    tmp_path, monkeypatch, capfd, caplog
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")  # the config's own loggers: CSV and W&B
    run_cli(
        "fit",
        "--config",
        PAIR,
        "--model.init_args.method",
        "baseline",
        "--trainer.max_epochs",
        "1",
        "--trainer.check_val_every_n_epoch",
        "1",
        "--data.init_args.evaluation",
        "{episodes: 1}",
        "--trainer.callbacks+=lightning_distill.callbacks.RLProgress",
        "--trainer.callbacks.live",
        "false",
        "--trainer.enable_model_summary",
        "false",
    )
    out, err = capfd.readouterr()
    printed = out + err + caplog.text  # caplog: Lightning's log lines (printed to stderr outside pytest)
    for noise in ("[torchrl]", "litlogger", "LeafSpec", "anonymous setting", "git root", "\x1b["):
        assert noise not in printed, noise
    assert re.search(r"^1/1 it .* eval ", printed, re.M), printed  # the evaluation after iteration 1 says 1
    assert "baseline on CartPole-v1: 1 iteration, 512 env steps of the student" in printed
    assert "target 300: not reached" in printed
    (run,) = (tmp_path / "runs" / "repaint_cartpole" / "baseline").glob("version_0")
    # the config keeps best and last with two callbacks: one line names both
    kept = [line for line in caplog.messages if line.startswith("best checkpoint")]
    folder = "runs/repaint_cartpole/baseline/version_0/checkpoints"
    assert len(kept) == 1 and re.fullmatch(
        rf"best checkpoint \(eval/return [\d.]+\): {folder}/best-epoch=0\.ckpt; latest: {folder}/last\.ckpt", kept[0]
    ), kept
    text = (run / "metrics.csv").read_text()
    digits = [len(re.sub(r"^[0.]+|\.", "", number)) for number in re.findall(r"\d+\.\d+", text)]
    assert digits and max(digits) <= 9, text  # float32 values, without the noise of their float64 repr
    assert pd.read_csv(run / "metrics.csv")["eval/return"].notna().sum() == 1


def test_print_config_names_the_defaults_chosen_per_task(capsys):
    with pytest.raises(SystemExit):
        run_cli(
            "fit",
            "--model",
            "lightning_distill.modules.Distillation",
            "--data",
            "lightning_distill.data.DistillDataModule",
            "--data.init_args.tasks",
            "[{id: MinAtar/Breakout}]",
            "--data.init_args.teachers",
            "[bundled:minatar/breakout]",
            "--print_config",
        )
    printed = yaml.safe_load(capsys.readouterr().out)
    data, model = printed["data"]["init_args"], printed["model"]["init_args"]
    assert data["replay"] == {"class_path": "lightning_distill.replay.UniformReplay", "init_args": {"capacity": 500000}}
    assert data["evaluation"]["episodes"] == "auto" and data["evaluation"]["epsilon"] == 0.05
    task = data["tasks"][0]
    assert (task["noop_max"], task["sticky_action_prob"], task["max_episode_steps"]) == ("auto", "auto", "auto")
    assert model["head_hidden"] == "auto" and model["extractor_hidden"] == [64, 64]


def test_an_interpolation_to_a_missing_key_is_one_line_naming_it(tmp_path, capsys):
    config = tmp_path / "interp.yaml"
    config.write_text(
        (REPO / "configs/repaint/cartpole.yaml")
        .read_text()
        .replace("${model.init_args.method}", "${model.init_args.nope}")
    )
    line = one_line_error(capsys, "fit", "--config", str(config))
    assert line.startswith("error: config interpolation:") and "nope" in line


#: a DQN run on CartPole from the command line alone: no config file
BARE_DQN = (
    "fit",
    "--model",
    "lightning_distill.modules.DQN",
    "--data",
    "lightning_distill.data.DQNDataModule",
    "--data.init_args.task",
    "{id: CartPole-v1}",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
)


def test_a_run_without_a_config_keeps_a_last_checkpoint_and_prints_no_library_noise(
    tmp_path, monkeypatch, capfd, caplog
):
    monkeypatch.chdir(tmp_path)
    run_cli(
        *BARE_DQN,
        "--data.init_args.learning_starts",
        "32",
        "--data.init_args.evaluation",
        "{episodes: 1}",
        "--trainer.max_steps",
        "20",
        "--trainer.val_check_interval",
        "10",
    )
    out, err = capfd.readouterr()
    printed = out + err + caplog.text
    for noise in ("Tip:", "litmodels", "No seed found"):
        assert noise not in printed, noise
    last = tmp_path / "runs" / "default" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 20
    run_cli(*BARE_DQN, "--trainer.max_steps", "21", "--ckpt_path", "last")
    assert torch.load(last, weights_only=True)["global_step"] == 21  # resumed into the same run


@pytest.mark.parametrize(
    "broken, content, expected",
    [
        ("config.yaml", "model: [unclosed\n", "config.yaml is not valid YAML (line 2)"),
        ("metrics.csv", "step,eval/return\nnot-a-number,1\n", "metrics.csv is not a metrics file fit wrote"),
    ],
)
def test_report_on_a_run_with_a_broken_file_is_one_line_naming_the_run_and_the_file(
    broken, content, expected, tmp_path, capsys
):
    import shutil

    for name in ("uniform_s0", "pr_s0"):
        shutil.copytree(REPO / "benchmarks/results/runs/figure4" / name, tmp_path / name)
    (tmp_path / "pr_s0" / broken).write_text(content)
    line = one_line_error(capsys, "report", str(tmp_path), "--out", str(tmp_path / "r"))
    assert f"run {tmp_path / 'pr_s0'}: {expected}" in line


def test_report_checks_its_output_folder_before_reading_any_run(tmp_path, capsys):
    line = one_line_error(
        capsys, "report", str(REPO / "benchmarks/results/runs/figure4"), "--out", str(tmp_path / "no/such/dir/r")
    )
    assert f"--out '{tmp_path / 'no/such/dir/r'}'" in line and "does not exist" in line


def test_report_rebuilds_the_committed_figure4_file_exactly(tmp_path, capsys):
    committed = (REPO / "benchmarks/results/figure4.md").read_text()
    title = committed.splitlines()[0].removeprefix("# ")
    run_cli(
        "report",
        str(REPO / "benchmarks/results/runs/figure4"),
        "--baseline",
        "uniform",
        "--out",
        str(tmp_path / "figure4"),
        "--title",
        title,
    )
    assert (tmp_path / "figure4.md").read_text() == committed  # config-key rows of one class only included


@pytest.mark.parametrize("content", ["", "# only a comment\n"])
def test_an_empty_config_is_one_line_naming_the_file(content, tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text(content)
    line = one_line_error(capsys, "fit", "--config", str(empty))
    assert line.startswith(f"error: --config '{empty}' is empty")


def test_a_bad_choice_names_the_value_and_every_valid_choice(capsys):
    line = one_line_error(
        capsys, "fit", "--config", str(REPO / "configs/repaint/cartpole.yaml"), "--trainer.precision=bf17"
    )
    assert line.startswith("error: trainer.precision='bf17' is not valid; valid: ")
    assert "'bf16-mixed'" in line and "'32-true'" in line
    choices = line.split("; valid: ", 1)[1].split(", ")
    assert len(choices) == len(set(choices)) and "32" not in choices  # '32' once, as the string


def test_an_out_of_range_value_is_all_that_stderr_holds(capfd):
    """The error is the only line: no ``Seed set to 0`` (Lightning's log handler writes to the
    process's stderr, so this reads the file descriptor)."""
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", str(REPO / "configs/repaint/cartpole.yaml"), "--model.init_args.clip=-0.2")
    assert capfd.readouterr().err.strip().splitlines() == [
        "error: model.init_args.clip=-0.2 is out of range; valid: 0 < clip"
    ]


@pytest.mark.parametrize("subcommand", ["report", "play", "fit"])
def test_help_names_the_command_a_user_types(subcommand, capsys):
    with pytest.raises(SystemExit):
        run_cli(subcommand, "--help")
    assert capsys.readouterr().out.startswith(f"usage: python -m lightning_distill [options] {subcommand} ")
