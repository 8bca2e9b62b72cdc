"""Every numeric hyperparameter of every module, data module and callback has a declared range,
and a value outside it is refused at construction with one line naming the key, the value and
what is valid. A new numeric argument without a range fails here."""

from __future__ import annotations

import inspect
import math
import typing

import pytest

from lightning_distill.callbacks import EpsilonSchedule, RLProgress, TeacherComparison, WandbMedia
from lightning_distill.data import DistillDataModule, DQNDataModule, RolloutDataModule
from lightning_distill.errors import ConfigError
from lightning_distill.modules import DQN, PPO, Distillation

#: class -> the arguments it needs besides the one under test
CLASSES = {
    DQN: {"tasks": ["CartPole-v1"]},
    Distillation: {"tasks": ["CartPole-v1"]},
    PPO: {"tasks": ["CartPole-v1"]},
    DQNDataModule: {"task": "CartPole-v1"},
    DistillDataModule: {"tasks": ["CartPole-v1"], "teachers": ["bundled:ppo/cartpole_centered"]},
    RolloutDataModule: {"task": "CartPole-v1"},
    EpsilonSchedule: {},
    RLProgress: {},
    TeacherComparison: {},
    WandbMedia: {},
}


def is_numeric(annotation: object) -> bool:
    """int, float, their optional forms, and sequences of them (layer widths, scores)."""
    if annotation in (int, float):
        return True
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is not None and "Sequence" in str(origin):
        return any(is_numeric(a) for a in args)
    return bool(args) and any(is_numeric(a) for a in args if a is not type(None))


def numeric_arguments(cls: type) -> list[str]:
    hints = typing.get_type_hints(cls.__init__)
    names = [name for name in inspect.signature(cls.__init__).parameters if name != "self"]
    return [name for name in names if name in hints and is_numeric(hints[name])]


CASES = [(cls, name) for cls in CLASSES for name in numeric_arguments(cls)]


def test_the_walk_finds_the_arguments_it_must_check():
    assert {"clip", "gamma", "gae_lambda", "epochs", "beta_decay", "top_fraction", "head_hidden"} <= set(
        numeric_arguments(PPO)
    )
    assert "seed" in numeric_arguments(RolloutDataModule) and "architecture" not in numeric_arguments(Distillation)


@pytest.mark.parametrize("cls, name", CASES, ids=[f"{c.__name__}.{n}" for c, n in CASES])
def test_every_numeric_argument_has_a_range_and_a_value_outside_it_is_one_line(cls, name):
    assert name in cls.RANGES, f"{cls.__name__}({name}=...) has no range in {cls.__name__}.RANGES"
    valid = cls.RANGES[name]
    bad = valid.outside()
    default = inspect.signature(cls.__init__).parameters[name].default
    value = [bad] if isinstance(default, (tuple, list)) or name == "teacher_scores" else bad
    with pytest.raises(ConfigError) as info:
        cls(**CLASSES[cls], **{name: value})
    message = str(info.value)
    assert "\n" not in message
    assert f"{name}={value!r}" in message and valid.describe(name).split(name)[0] in message


@pytest.mark.parametrize(
    "cls, name, value, shown",
    [
        (PPO, "clip", -0.2, "valid: 0 < clip"),
        (PPO, "gamma", 1.5, "valid: 0 <= gamma <= 1"),
        (PPO, "gae_lambda", -0.1, "valid: 0 <= gae_lambda <= 1"),
        (PPO, "epochs", 0, "valid: 1 <= epochs"),
        (PPO, "ent_coef", -0.01, "valid: 0 <= ent_coef"),
        (PPO, "lr", math.inf, "valid: 0 < lr"),
        (PPO, "beta_decay", 0.0, "valid: 0 < beta_decay <= 1"),
        (PPO, "top_fraction", 1.5, "valid: 0 < top_fraction <= 1"),
        (Distillation, "lr", math.nan, "valid: 0 < lr"),
        (DistillDataModule, "batch_size", 0, "valid: 1 <= batch_size"),
    ],
)
def test_the_issues_examples_name_key_value_and_range(cls, name, value, shown):
    with pytest.raises(ConfigError, match=rf"^(model|data)\.init_args\.{name}={value!r} is out of range; {shown}$"):
        cls(**CLASSES[cls], **{name: value})


def test_a_bad_clip_on_the_command_line_is_one_line(capsys):
    from conftest import REPO, one_line_error

    line = one_line_error(
        capsys, "fit", "--config", str(REPO / "configs/repaint/cartpole.yaml"), "--model.init_args.clip=-0.2"
    )
    assert line == "error: model.init_args.clip=-0.2 is out of range; valid: 0 < clip"
