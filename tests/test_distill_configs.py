"""The paper's Atari distillation configs parse, start and run a few hundred steps on this CPU
(budgets shrunk through the CLI, teachers written here as CleanRL files)."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from lightning_distill.tasks import Task

from conftest import REPO, cleanrl_atari_network, csv_logger, run_cli, save_cleanrl

ATARI10 = ["proposed", "dist", "amn"]


def write_cleanrl_teacher(task: Task, path) -> str:
    torch.manual_seed(0)
    save_cleanrl(cleanrl_atari_network(task.num_actions), path)
    return str(path)


@pytest.fixture(scope="module")
def atari10_teachers(tmp_path_factory) -> list[str]:
    config = yaml.safe_load((REPO / "configs/distill/atari10_proposed.yaml").read_text())
    root = tmp_path_factory.mktemp("atari_teachers")
    tasks = [Task.coerce(t) for t in config["data"]["init_args"]["tasks"]]
    return [write_cleanrl_teacher(t, root / f"{t.game}.cleanrl_model") for t in tasks]


def resolved_config(name: str, capsys) -> dict:
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", str(REPO / f"configs/distill/{name}.yaml"), "--print_config")
    return yaml.safe_load(capsys.readouterr().out)


def without(config: dict, *keys: str) -> dict:
    """``config`` without the dotted ``keys`` and without the loggers' run names."""
    config = copy.deepcopy(config)
    for key in keys:
        *parents, last = key.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        del node[last]
    for logger in config["trainer"]["logger"]:  # CSV and W&B: each run has its own name
        del logger["init_args"]["name"]
    return config


def test_the_three_atari10_configs_differ_only_in_the_architecture(capsys):
    """Table 1 compares architectures: games, teachers, replay, budgets and seeds must be one."""
    configs = {name: resolved_config(f"atari10_{name}", capsys) for name in ATARI10}
    assert [c["model"]["init_args"]["architecture"] for c in configs.values()] == ATARI10
    # only the proposed student has per-task extractors to start from the teachers'
    assert [c["model"]["init_args"]["init_from_teachers"] for c in configs.values()] == [True, False, False]
    assert len(configs["proposed"]["data"]["init_args"]["tasks"]) == 10
    common = [
        without(c, "model.init_args.architecture", "model.init_args.init_from_teachers") for c in configs.values()
    ]
    assert common[0] == common[1] == common[2]


def run_a_few_hundred_steps(
    config: str, teachers: list[str], overrides: list[str], tmp_path, updates: int = 60, learning_starts: int = 64
) -> None:
    """Fit an Atari config for ``updates`` x 4 steps per game (after ``learning_starts`` to fill)
    and check that its last checkpoint holds them."""
    run_cli(
        "fit",
        "--config",
        str(REPO / f"configs/distill/{config}.yaml"),
        "--data.init_args.teachers",
        yaml.safe_dump(teachers, default_flow_style=True).strip(),
        *overrides,
        "--data.init_args.learning_starts",
        str(learning_starts),
        "--data.init_args.evaluation.steps",
        "100",
        "--data.init_args.evaluation.num_envs",
        "1",  # the configs' 8 evaluation envs a game cost ~1 s each to start
        "--trainer.max_steps",
        str(updates),
        *csv_logger(tmp_path, config),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
    )
    (checkpoint,) = (tmp_path / config).glob("version_0/checkpoints/last.ckpt")
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"] == updates


# dist and amn differ from proposed only in the student, whose Atari forward and gradients
# tests/test_students.py checks for all three; running their 10-game configs too cost 30 s more
@pytest.mark.parametrize("name", ["proposed"])
def test_atari10_config_runs_a_few_hundred_steps_on_cpu(name, atari10_teachers, tmp_path):
    # 10 games x (32 + 15 x 4) steps: each architecture acts, stores, updates and checkpoints
    run_a_few_hundred_steps(
        f"atari10_{name}",
        atari10_teachers,
        ["--data.init_args.replay.init_args.capacity", "2000"],
        tmp_path,
        updates=15,
        learning_starts=32,
    )


ATARI4 = {  # replay kind -> the overrides that shrink its memory for a CPU smoke run
    "uniform": ["--data.init_args.replay.init_args.capacity", "2000"],
    "pr": ["--data.init_args.replay.init_args.capacity", "2000"],
    "hpr": [
        "--data.init_args.replay.init_args.partition_capacity",
        "400",
        "--data.init_args.replay.init_args.value_steps",
        "64",
        "--trainer.log_every_n_steps",
        "10",  # H-PR's replay/<task>/... statistics reach metrics.csv
    ],
}


def test_the_three_atari4_configs_differ_only_in_the_replay(capsys):
    """Figure 4 compares replay kinds: everything else must be one."""
    configs = {kind: resolved_config(f"atari4_{kind}", capsys) for kind in ATARI4}
    tasks = configs["hpr"]["data"]["init_args"]["tasks"]
    assert [t["id"] for t in tasks] == ["ALE/Breakout", "ALE/Freeway", "ALE/Pong", "ALE/Qbert"]
    assert [c["data"]["init_args"]["replay"]["class_path"].rsplit(".", 1)[1] for c in configs.values()] == [
        "UniformReplay",
        "PrioritizedReplay",
        "HierarchicalReplay",
    ]
    common = [without(c, "data.init_args.replay") for c in configs.values()]
    assert common[0] == common[1] == common[2]


# one Atari smoke run per config family: the replay kinds share the frame pool and the acting
# path, and tests/test_hierarchical_replay.py checks each kind's sampling
@pytest.mark.parametrize("kind", ["hpr"])
def test_atari4_replay_config_runs_a_few_hundred_steps_on_cpu(kind, atari10_teachers, tmp_path):
    teachers = [t for t in atari10_teachers if any(g in t for g in ("Breakout", "Freeway", "Pong", "Qbert"))]
    run_a_few_hundred_steps(f"atari4_{kind}", teachers, ATARI4[kind], tmp_path, updates=30)
    metrics = pd.read_csv(next((tmp_path / f"atari4_{kind}").glob("version_0/metrics.csv")))
    logged = metrics.dropna(subset=["replay/ALE/Pong/effective_batch"])
    assert len(logged) == 3 and logged["replay/ALE/Pong/effective_batch"].between(1, 32).all()
    assert 0 < logged["replay/ALE/Pong/mean_weight"].max() <= 1
    for name in ("stored", "window", "sampled"):  # each a distribution over the 5 partitions
        shares = logged[[f"replay/ALE/Pong/{name}_{j}" for j in range(5)]].sum(axis=1)
        assert np.allclose(shares, 1.0), (name, shares)


def test_the_two_minatar5_configs_differ_only_in_their_bundled_teachers(capsys):
    """The PPO and DQN teacher sets of the five MinAtar games: one student, one budget."""
    ppo, dqn = (resolved_config(f"minatar5_{kind}", capsys) for kind in ("ppo", "dqn"))
    games = ["asterix", "breakout", "freeway", "seaquest", "space_invaders"]
    assert ppo["data"]["init_args"]["teachers"] == [f"bundled:ppo/minatar_{g}" for g in games]
    assert dqn["data"]["init_args"]["teachers"] == [f"bundled:minatar/{g}" for g in games]
    assert without(ppo, "data.init_args.teachers") == without(dqn, "data.init_args.teachers")
    from lightning_distill.teachers import bundled_teachers

    shipped = set(bundled_teachers())
    for config in (ppo, dqn):
        assert {t.removeprefix("bundled:") for t in config["data"]["init_args"]["teachers"]} <= shipped
