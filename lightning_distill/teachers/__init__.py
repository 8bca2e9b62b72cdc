"""Teachers: trained agents, frozen, behind one interface, from any of the formats people have.

A Q-teacher (``Teacher``, from DQN) gives Q-values over its task's own actions and
``V(s) = max_a Q(s, a)``, the state value that H-PR partitions the replay by. A policy teacher
(``PolicyTeacher``, from PPO) gives its action distribution ``pi_T(.|s)`` and its critic's
``V(s)``: what REPAINT's kickstarting and instance transfer use. Both ``act`` greedily, and
both can teach a distillation student (``targets_and_value``: Q-values or policy logits, and V).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from typing_extensions import Self

from lightning_distill.errors import CheckpointError, ConfigError
from lightning_distill.policies import Categorical
from lightning_distill.tasks import Task

if TYPE_CHECKING:
    from lightning_distill.networks import QNetwork
    from lightning_distill.policies import ActionDist, ActorCritic


class FrozenModule(nn.Module):
    """What both teachers share: one task's network, frozen (eval mode, ``requires_grad=False``:
    DDP would otherwise complain about parameters that get no gradient), moved to a device once."""

    def __init__(self, network: nn.Module, task: Task) -> None:
        super().__init__()
        self.network = network
        self.task = task
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> Self:
        return super().train(False)  # a teacher never leaves eval mode

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def on_device(self, device: torch.device) -> Self:
        """This teacher on ``device`` (the module's), moved once."""
        return self if self.device == device else self.to(device)


class Teacher(FrozenModule):
    """A frozen Q-network for one task: ``q_values``, ``value`` and greedy ``act``."""

    network: QNetwork

    def __init__(self, network: QNetwork, task: Task) -> None:
        super().__init__(network, task)

    @torch.no_grad()
    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values over the task's own actions, shape [batch, task.num_actions]."""
        return self.network(obs)

    forward = q_values

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``V(s) = max_a Q(s, a)``, shape [batch]."""
        return self.q_values(obs).max(dim=-1).values

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_values(obs).argmax(dim=-1)

    @torch.no_grad()
    def targets_and_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What distillation stores per experience, in one forward pass: the Q-values (the
        logits of the target ``softmax(q_T / tau)``) and ``V(s) = max_a Q(s, a)``."""
        q = self.network(obs)
        return q, q.max(dim=-1).values

    def feature_layers(self) -> nn.Module:
        """The layers a proposed student's task extractor is initialised from."""
        return self.network.features

    def temperature(self, tau: float, policy_tau: float) -> float:
        """Q-values are sharpened: the target is ``softmax(Q_T / tau)`` (the paper's tau, 0.01)."""
        return tau


class PolicyTeacher(FrozenModule):
    """A frozen actor-critic for one task: ``distribution``, ``value``, greedy ``act``."""

    network: ActorCritic

    def __init__(self, network: ActorCritic, task: Task) -> None:
        super().__init__(network, task)

    @torch.no_grad()
    def distribution(self, obs: torch.Tensor) -> ActionDist:
        """``pi_T(.|s)``."""
        return self.network.distribution(obs)

    forward = distribution

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """The teacher's critic, ``V_T(s)``, shape [batch]."""
        return self.network.value(obs)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely action (a Gaussian's mean clipped to the action bounds)."""
        return self.network.act(obs)

    @torch.no_grad()
    def targets_and_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What distillation stores per experience: the policy's logits (discrete actions) and
        its critic's ``V_T(s)``, which places the experience in an H-PR partition."""
        dist = self.network.distribution(obs)
        if not isinstance(dist, Categorical):
            raise ConfigError(
                f"policy teacher of {self.task.id!r} has continuous actions: distillation needs discrete ones"
            )
        return dist.logits, self.network.value(obs)

    def feature_layers(self) -> nn.Module:
        """The layers a proposed student's task extractor is initialised from: the actor's."""
        return self.network.actor_features

    def temperature(self, tau: float, policy_tau: float) -> float:
        """A policy's logits are its distribution: ``policy_tau`` (1 keeps it as it is)."""
        return policy_tau


def mismatch_error(source: str, task: Task, teacher_actions: int, teacher_input: str) -> CheckpointError:
    """The one-line error for a teacher whose actions or inputs differ from its task's."""
    return CheckpointError(
        f"teacher {source!r} does not fit task {task.id!r}: the teacher has {teacher_actions} actions "
        f"and input {teacher_input}, the task has {task.num_actions} actions and input {tuple(task.obs_shape)}"
    )


def check_fits(task: Task, expected: Task, source: str) -> None:
    """Fail with one line when a teacher's actions or inputs differ from the task's."""
    if (
        task.discrete != expected.discrete
        or task.num_actions != expected.num_actions
        or tuple(task.obs_shape) != tuple(expected.obs_shape)
    ):
        raise mismatch_error(source, expected, task.num_actions, str(tuple(task.obs_shape)))


BUNDLED_PREFIX = "bundled:"
BUNDLED_DIR = Path(__file__).resolve().parent
#: Suffix -> the format it is read as (see ``importers``); anything else is a project checkpoint.
FOREIGN_FORMATS = {".zip": "Stable-Baselines3", ".cleanrl_model": "CleanRL"}


def bundled_teachers() -> dict[str, dict]:
    """The teachers shipped inside the package: name -> task, score, and the command that made it."""
    return json.loads((BUNDLED_DIR / "bundled.json").read_text())


def resolve_teacher_path(ref: str | Path) -> Path:
    """A file path, ``bundled:<name>`` (e.g. ``bundled:minatar/breakout``) for a shipped teacher,
    or ``hf:<org>/<repo>[/<file>]`` for one on the Hugging Face Hub (fetched into its cache)."""
    from lightning_distill.teachers.hub import HUB_PREFIX, fetch_hub_teacher

    ref = str(ref)
    if ref.startswith(HUB_PREFIX):
        return fetch_hub_teacher(ref)
    if not ref.startswith(BUNDLED_PREFIX):
        return Path(ref).expanduser()
    name = ref[len(BUNDLED_PREFIX) :]
    registry = bundled_teachers()
    if name not in registry:
        raise CheckpointError(f"no bundled teacher {name!r}; bundled: {sorted(registry)}")
    return BUNDLED_DIR / registry[name]["file"]


def load_teacher(ref: str | Path, task: Task | str | None = None) -> Teacher | PolicyTeacher:
    """A frozen teacher from this project's DQN or PPO checkpoint, a bundled teacher, an SB3
    ``.zip`` (DQN: a Q-teacher; PPO / A2C ``MlpPolicy`` or ``CnnPolicy``: a policy teacher) or a
    CleanRL ``.cleanrl_model`` (dqn / dqn_atari: a Q-teacher; ppo / ppo_atari: a policy teacher).

    ``task`` is the task the teacher will be used on (required for the foreign formats, which
    do not record it); a teacher whose action count or input shape differs fails here with
    one line naming both.
    """
    from lightning_distill.modules.base import load_agent
    from lightning_distill.teachers import importers

    path = resolve_teacher_path(ref)
    if not path.is_file():
        raise CheckpointError(f"teacher checkpoint not found: {str(path)!r}")
    task = None if task is None else Task.coerce(task)
    suffix = path.suffix.lower()
    if suffix in FOREIGN_FORMATS:
        if task is None:
            raise CheckpointError(f"{FOREIGN_FORMATS[suffix]} file {str(path)!r} does not name its task: pass task=...")
        if suffix == ".zip":
            return importers.load_sb3(path, task)
        return importers.load_cleanrl(path, task)
    teacher = load_agent(path).as_teacher()
    if task is not None:
        check_fits(teacher.task, task, str(ref))
        teacher.task = task
    return teacher


#: What a bundled or exported teacher checkpoint keeps: enough for ``load_from_checkpoint``.
ESSENTIAL_CHECKPOINT_KEYS = ("state_dict", "hyper_parameters", "pytorch-lightning_version", "lightning_distill")


def export_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy a training checkpoint without optimiser, loop and callback state (a third of the size)."""
    checkpoint = torch.load(src, map_location="cpu", weights_only=True)
    slim = {k: checkpoint[k] for k in ESSENTIAL_CHECKPOINT_KEYS if k in checkpoint}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save(slim, dst)
    return Path(dst)
