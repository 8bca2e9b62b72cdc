"""The paper's Atari distillation configs parse, start and run a few hundred steps on this CPU
(budgets shrunk through the CLI, teachers written here as CleanRL files)."""

import copy

import pytest
import torch
import yaml
from torch import nn

from conftest import REPO, csv_logger, run_cli
from lightning_distill.tasks import Task

ATARI10 = ["proposed", "dist", "amn"]


def write_cleanrl_teacher(task: Task, path) -> str:
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(),
        nn.Linear(512, task.num_actions),
    )
    torch.save({f"network.{k}": v for k, v in network.state_dict().items()}, path)
    return str(path)


@pytest.fixture(scope="module")
def atari10_teachers(tmp_path_factory) -> list[str]:
    config = yaml.safe_load((REPO / "configs/distill/atari10_proposed.yaml").read_text())
    root = tmp_path_factory.mktemp("atari_teachers")
    tasks = [Task.coerce(t) for t in config["data"]["init_args"]["tasks"]]
    return [write_cleanrl_teacher(t, root / f"{t.game}.cleanrl_model") for t in tasks]


@pytest.mark.parametrize("name", ATARI10)
def test_atari10_config_has_the_papers_settings(name, capsys):
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", str(REPO / f"configs/distill/atari10_{name}.yaml"), "--print_config")
    config = yaml.safe_load(capsys.readouterr().out)
    data, model = config["data"]["init_args"], config["model"]["init_args"]
    assert len(data["tasks"]) == 10 and len(data["teachers"]) == 10
    assert (data["batch_size"], data["train_freq"], data["replay"]["init_args"]["capacity"]) == (32, 4, 500_000)
    assert (model["architecture"], model["loss"], model["tau"]) == (name, "kl", 0.01)
    assert data["evaluation"]["steps"] == 100_000 and data["evaluation"]["epsilon"] == 0.05
    assert config["trainer"]["val_check_interval"] == 25_000
    epsilon = next(c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("EpsilonSchedule"))
    assert epsilon["init_args"] == {"start": 1.0, "end": 0.1, "decay_steps": 1_000_000}


def run_a_few_hundred_steps(config: str, teachers: list[str], overrides: list[str], tmp_path,
                            updates: int = 60, learning_starts: int = 64) -> None:
    """Fit an Atari config for ``updates`` x 4 steps per game (after ``learning_starts`` to fill)
    and check that its last checkpoint holds them."""
    run_cli(
        "fit", "--config", str(REPO / f"configs/distill/{config}.yaml"),
        "--data.init_args.teachers", yaml.safe_dump(teachers, default_flow_style=True).strip(),
        *overrides,
        "--data.init_args.learning_starts", str(learning_starts),
        "--data.init_args.evaluation.steps", "100",
        "--trainer.max_steps", str(updates),
        *csv_logger(tmp_path, config),
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    )
    (checkpoint,) = (tmp_path / config).glob("version_0/checkpoints/last.ckpt")
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"] == updates


# dist and amn differ from proposed only in the student, whose Atari forward and gradients
# tests/test_students.py checks for all three; running their 10-game configs too cost 30 s more
@pytest.mark.parametrize("name", ["proposed"])
def test_atari10_config_runs_a_few_hundred_steps_on_cpu(name, atari10_teachers, tmp_path):
    # 10 games x (32 + 15 x 4) steps: each architecture acts, stores, updates and checkpoints
    run_a_few_hundred_steps(f"atari10_{name}", atari10_teachers,
                            ["--data.init_args.replay.init_args.capacity", "2000"], tmp_path,
                            updates=15, learning_starts=32)


ATARI4 = {  # replay kind -> the overrides that shrink its memory for a CPU smoke run
    "uniform": ["--data.init_args.replay.init_args.capacity", "2000"],
    "pr": ["--data.init_args.replay.init_args.capacity", "2000"],
    "hpr": ["--data.init_args.replay.init_args.partition_capacity", "400",
            "--data.init_args.replay.init_args.value_steps", "64"],
}


def atari4_config(kind: str, capsys) -> dict:
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", str(REPO / f"configs/distill/atari4_{kind}.yaml"), "--print_config")
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("kind", ATARI4)
def test_atari4_replay_configs_have_the_papers_games_and_memories(kind, capsys):
    config = atari4_config(kind, capsys)
    data = config["data"]["init_args"]
    assert [t["id"] for t in data["tasks"]] == ["ALE/Breakout", "ALE/Freeway", "ALE/Pong", "ALE/Qbert"]
    replay = data["replay"]["init_args"]
    if kind == "hpr":
        assert (replay["partitions"], replay["partition_capacity"]) == (5, 200_000)
    else:
        assert replay["capacity"] == 500_000
    if kind == "uniform":  # the kinds differ in data.replay (and the run's name) only
        for other in ("pr", "hpr"):
            assert without_replay(atari4_config(other, capsys)) == without_replay(config)


def without_replay(config: dict) -> dict:
    config = copy.deepcopy(config)
    del config["data"]["init_args"]["replay"]
    for logger in config["trainer"]["logger"]:  # CSV and W&B: the run's name differs
        del logger["init_args"]["name"]
    return config


@pytest.mark.parametrize("kind", ATARI4)
def test_atari4_replay_config_runs_a_few_hundred_steps_on_cpu(kind, atari10_teachers, tmp_path):
    teachers = [t for t in atari10_teachers if any(g in t for g in ("Breakout", "Freeway", "Pong", "Qbert"))]
    run_a_few_hundred_steps(f"atari4_{kind}", teachers, ATARI4[kind], tmp_path, updates=30)
