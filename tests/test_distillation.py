"""Distillation end to end: bundled MinAtar teachers distilled into one proposed student
through the CLI reach 90% of each teacher; the checkpoint plays without its teachers; a
teacher that does not fit its task stops the run before training with one line."""

from pathlib import Path

import pytest
import torch
import yaml

from lightning_distill.modules.base import load_agent
from lightning_distill.play import play
from lightning_distill.teachers import bundled_teachers

from conftest import REPO, csv_logger, fit_and_record_batches, run_cli

QUICKSTART = REPO / "configs/distill/minatar_quickstart.yaml"
GAMES = {"MinAtar/Breakout": "bundled:minatar/breakout", "MinAtar/Freeway": "bundled:minatar/freeway"}


def two_game_overrides(tmp_path: Path) -> Path:
    """The quick start on two games, with a shorter budget (the same settings otherwise)."""
    config = tmp_path / "two_games.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "init_args": {
                        "tasks": [{"id": task} for task in GAMES],
                        "teachers": list(GAMES.values()),
                    }
                }
            }
        )
    )
    return config


@pytest.fixture(scope="module")
def distilled_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("distill")
    run_cli(
        "fit",
        "--config",
        str(QUICKSTART),
        "--config",
        str(two_game_overrides(root)),
        "--trainer.max_steps",
        "4500",  # measured: 87% and 103% at 3,000 updates, 99% and 100% at 4,500
        "--trainer.val_check_interval",
        "2250",
        "--data.init_args.evaluation.episodes",
        "64",  # Breakout's returns vary: 32 episodes leave ~10% noise
        *csv_logger(root, "minatar_quickstart"),
    )
    (run_dir,) = (root / "minatar_quickstart").iterdir()
    return run_dir


def evaluations(run_dir: Path) -> list[dict[str, float]]:
    import csv

    with open(run_dir / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("eval/geomean_pct_teacher")]
    return [{k: float(v) for k, v in r.items() if v and (k.startswith("eval/") or k == "step")} for r in rows]


def test_two_bundled_teachers_distil_to_90_percent_of_each(distilled_run):
    best = max(evaluations(distilled_run), key=lambda r: r["eval/geomean_pct_teacher"])
    for task in GAMES:
        assert best[f"eval/{task}/pct_teacher"] >= 90.0, best


def test_the_best_checkpoint_is_kept_by_geometric_mean(distilled_run):
    rows = evaluations(distilled_run)
    (best_ckpt,) = (distilled_run / "checkpoints").glob("best-*.ckpt")
    best_row = max(rows, key=lambda r: r["eval/geomean_pct_teacher"])
    assert best_ckpt.name == f"best-step={int(best_row['step']) + 1}.ckpt"  # logged at the last update's index
    state = torch.load(best_ckpt, map_location="cpu", weights_only=True)
    assert any("TeacherComparison" in key for key in state["callbacks"])  # teacher scores ride along


def test_a_distilled_checkpoint_plays_each_task_without_its_teachers(distilled_run):
    agent = load_agent(distilled_run / "checkpoints/last.ckpt")
    assert [t.id for t in agent.tasks] == list(GAMES)
    assert agent.hparams.architecture == "proposed" and not hasattr(agent, "teachers")
    lines: list[str] = []
    result = play(
        str(distilled_run / "checkpoints/last.ckpt"), task="MinAtar/Freeway", episodes=1, print_fn=lines.append
    )
    assert result.count == 1 and lines[-1].startswith("MinAtar/Freeway mean return over 1 episodes")


def test_only_dqn_and_ppo_checkpoints_can_teach_and_distillation_needs_discrete_actions(distilled_run):
    from lightning_distill.data import DistillDataModule
    from lightning_distill.errors import CheckpointError, ConfigError
    from lightning_distill.teachers import load_teacher

    with pytest.raises(CheckpointError, match="a Distillation checkpoint cannot serve as a teacher"):
        load_teacher(distilled_run / "checkpoints/last.ckpt")
    data = DistillDataModule(tasks=["Reacher-v5"], teachers=["bundled:ppo/reacher_similar"])
    with pytest.raises(ConfigError, match="'Reacher-v5' .* has continuous actions: distillation's students"):
        data.load_teachers()


def test_a_dqn_and_a_ppo_teacher_teach_one_student_from_the_cli(tmp_path):
    """MinAtar Breakout from its DQN teacher, CartPole from a PPO teacher (target softmax(logits / 1),
    its critic's V for the replay): both reach 90% of their teacher."""
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "init_args": {
                        "tasks": [{"id": "MinAtar/Breakout"}, {"id": "CartPole-v1"}],
                        "teachers": ["bundled:minatar/breakout", "bundled:ppo/cartpole_centered"],
                    }
                }
            }
        )
    )
    run_cli(
        "fit",
        "--config",
        str(QUICKSTART),
        "--config",
        str(mixed),
        "--trainer.max_steps",
        "3000",
        "--trainer.val_check_interval",
        "1500",
        "--data.init_args.evaluation.episodes",
        "16",
        *csv_logger(tmp_path, "mixed"),
    )
    (run_dir,) = (tmp_path / "mixed").iterdir()
    best = max(evaluations(run_dir), key=lambda r: r["eval/geomean_pct_teacher"])
    assert best["eval/CartPole-v1/pct_teacher"] >= 90.0, best
    assert best["eval/MinAtar/Breakout/pct_teacher"] >= 90.0, best


def test_a_policy_teacher_stores_its_logits_and_critic_value_and_teaches_at_policy_tau():
    from lightning_distill.data import DistillDataModule
    from lightning_distill.modules import Distillation
    from lightning_distill.replay import HierarchicalReplay, estimate_value_range

    replay = HierarchicalReplay(partitions=2, partition_capacity=300, value_steps=200)
    data = DistillDataModule(
        ["CartPole-v1"], ["bundled:ppo/cartpole_centered"], replay=replay, num_envs=2, learning_starts=50, seed=0
    )
    model = Distillation(tasks=data.tasks, head_hidden=[32], lr=1e-3)
    batches = fit_and_record_batches(model, data, max_steps=5)
    (teacher,) = data.load_teachers()
    assert teacher.temperature(0.01, 1.0) == 1.0 and model.tau_of(0) == 1.0
    (minibatch,) = batches[-1]
    obs = minibatch["obs"].float()
    torch.testing.assert_close(minibatch["teacher_logits"], teacher.network.distribution(obs).logits)
    torch.testing.assert_close(minibatch["value"], teacher.network.value(obs))
    # H-PR's partitions split the range of the critic's V over the teacher's own play
    assert data.memories[0].hpr.value_range == estimate_value_range(data.tasks[0], teacher, 200, seed=0)


def test_bundled_teachers_record_their_score_and_command():
    registry = bundled_teachers()
    assert {
        "minatar/breakout",
        "minatar/freeway",
        "minatar/space_invaders",
        "minatar/seaquest",
        "minatar/asterix",
        *(f"ppo/minatar_{game}" for game in ("asterix", "breakout", "freeway", "seaquest", "space_invaders")),
        "ppo/cartpole_centered",
        "ppo/reacher_similar",
        "ppo/reacher_different",
    } <= set(registry)
    for name, entry in registry.items():
        kind, game = name.split("/")
        assert entry["task"].startswith({"minatar": "MinAtar/", "ppo": ""}[kind])
        assert entry["command"].endswith(f"configs/teacher/{kind}_{game}.yaml")
        assert (REPO / entry["command"].split("--config ")[1]).is_file()
        assert (REPO / "lightning_distill/teachers" / entry["file"]).is_file()


def test_a_teacher_that_does_not_fit_its_task_stops_before_training(tmp_path, capsys):
    overrides = tmp_path / "wrong.yaml"
    overrides.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "init_args": {
                        "tasks": [{"id": "CartPole-v1"}],
                        "teachers": ["bundled:minatar/breakout"],
                    }
                }
            }
        )
    )
    with pytest.raises(SystemExit) as info:
        run_cli(
            "fit",
            "--config",
            str(QUICKSTART),
            "--config",
            str(overrides),
            "--seed_everything",
            "false",
            *csv_logger(tmp_path, "wrong"),
        )
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit task 'CartPole-v1'" in err[0] and "6 actions" in err[0]


def test_proposed_student_starts_from_the_teachers_features_and_can_freeze_them():
    from lightning_distill.modules import Distillation
    from lightning_distill.teachers import load_teacher

    teachers = [load_teacher(ref, task) for task, ref in GAMES.items()]
    module = Distillation(tasks=list(GAMES), head_hidden=[32], freeze_extractors=True)
    module.copy_teacher_features(teachers)
    for extractor, teacher in zip(module.student.extractors, teachers, strict=True):
        for mine, theirs in zip(extractor.parameters(), teacher.network.features.parameters(), strict=True):
            assert torch.equal(mine, theirs) and not mine.requires_grad
    optimised = {id(p) for group in module.configure_optimizers().param_groups for p in group["params"]}
    assert optimised == {id(p) for p in module.student.shared.parameters()}


def test_channels_last_students_keep_their_layout_through_the_teachers_features_and_act_the_same():
    """``channels_last`` (a measured speed option for Atari) changes the memory layout only."""
    from lightning_distill.modules import Distillation
    from lightning_distill.teachers import load_teacher

    teachers = [load_teacher(ref, task) for task, ref in GAMES.items()]
    plain = Distillation(tasks=list(GAMES), head_hidden=[32])
    fast = Distillation(tasks=list(GAMES), head_hidden=[32], channels_last=True)
    fast.student.shared.load_state_dict(plain.student.shared.state_dict())
    for module in (plain, fast):
        module.copy_teacher_features(teachers)
    conv = fast.student.extractors[0].net[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    obs = [torch.randint(0, 2, (5, *task.obs_shape), dtype=torch.uint8) for task in plain.tasks]
    for q_plain, q_fast in zip(plain.student.forward_tasks(obs), fast.student.forward_tasks(obs), strict=True):
        torch.testing.assert_close(q_fast, q_plain, rtol=1e-5, atol=1e-5)


def test_proposed_extractors_take_each_teachers_shape_and_keep_it_in_the_checkpoint(tmp_path):
    from lightning_distill.modules import Distillation
    from lightning_distill.modules.base import load_agent
    from lightning_distill.networks import MLPEncoder, QNetwork
    from lightning_distill.teachers import Teacher

    # An SB3 DQN with net_arch [256, 256] and a narrow one: no width repeated in the config.
    teachers = [
        Teacher(QNetwork(MLPEncoder(4, [256, 256]), 2, []), "CartPole-v1"),
        Teacher(QNetwork(MLPEncoder(6, [32], "tanh"), 3, []), "Acrobot-v1"),
    ]
    module = Distillation(tasks=["CartPole-v1", "Acrobot-v1"], head_hidden=[16])
    module.copy_teacher_features(teachers)
    for extractor, teacher in zip(module.student.extractors, teachers, strict=True):
        assert extractor.state_dict().keys() == teacher.network.features.state_dict().keys()
        assert all(
            torch.equal(a, b)
            for a, b in zip(extractor.parameters(), teacher.network.features.parameters(), strict=True)
        )
    obs = torch.randn(5, 6)
    expected = module(obs, task_index=1)

    path = tmp_path / "student.ckpt"
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    loaded = load_agent(path)
    assert loaded.student.extractor_specs() == [
        {"hidden": [256, 256], "activation": "relu"},
        {"hidden": [32], "activation": "tanh"},
    ]
    assert torch.equal(loaded(obs, task_index=1), expected)


def test_teacher_features_of_an_unknown_layout_fail_naming_the_option_to_set():
    from lightning_distill.errors import ConfigError
    from lightning_distill.modules import Distillation
    from lightning_distill.teachers import Teacher

    features = torch.nn.Linear(4, 8)
    features.out_features = 8
    network = torch.nn.Module()
    network.features = features
    module = Distillation(tasks=["CartPole-v1"], head_hidden=[16])
    with pytest.raises(ConfigError, match="cannot initialise an extractor.*init_from_teachers: false"):
        module.copy_teacher_features([Teacher(network, "CartPole-v1")])


def test_old_hyperparameter_names_are_refused_and_every_bundled_teacher_stores_this_releases_names(capsys):
    import torch

    from lightning_distill.modules import DQN, PPO, Distillation
    from lightning_distill.teachers import BUNDLED_DIR, load_teacher

    for module in (DQN, PPO, Distillation):  # dropped in 0.8 (names of releases before 0.2)
        with pytest.raises(TypeError, match="hidden"):
            module(tasks=["CartPole-v1"], hidden=[16])
    for path in sorted(BUNDLED_DIR.glob("*/*.ckpt")):
        hparams = torch.load(path, weights_only=True, mmap=True)["hyper_parameters"]
        assert not {"hidden", "mlp_hidden"} & set(hparams), path
        assert all(not isinstance(hparams.get(k), int) for k in ("head_hidden", "extractor_hidden")), path
    load_teacher("bundled:minatar/breakout")
    load_teacher("bundled:ppo/cartpole_centered")
    assert capsys.readouterr().err == ""


def test_one_teacher_per_task_is_required():
    from lightning_distill.data import DistillDataModule
    from lightning_distill.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.init_args.teachers has 1 entries for 2 tasks"):
        DistillDataModule(tasks=list(GAMES), teachers=["bundled:minatar/breakout"])
