"""The three multi-task student architectures of spec section 3, chosen by name.

Every student maps ``(obs, task_index)`` to Q-values over *that task's own actions*. Students
with a union head (proposed, AMN) gather the task's columns of the union output
(``Task.action_map``): the other outputs are masked by construction, so they get no
gradient from the task's loss and can never be the chosen action.

- ``proposed`` (Yin & Pan): one feature extractor per task (the teacher's own layers, in the
  teacher's shape, initialised from it by the module), then shared FC layers
  3136 -> 1028 -> 512 -> union. Tasks whose extractors differ in width get a per-task
  projection to the widest one.
- ``dist`` (Rusu et al.): one shared extractor, then per task a private FC 512 and head.
- ``amn`` (Parisotto et al.): everything shared; FC 512 and a masked union head.

The shared extractor of DIST and AMN sees every task's input, zero-padded to the widest
(MinAtar games have 4 to 10 channels; vector tasks differ in length).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lightning_distill.errors import ConfigError
from lightning_distill.networks import (
    EXTRACTOR_HIDDEN,
    FeatureExtractor,
    encoder_from_spec,
    encoder_spec,
    linear_layers,
    make_encoder,
)
from lightning_distill.tasks import Task

ARCHITECTURES = ("proposed", "dist", "amn")
#: The paper's widths of the fully connected layers after the features, per architecture.
PAPER_HIDDEN: dict[str, tuple[int, ...]] = {"proposed": (1028, 512), "dist": (512,), "amn": (512,)}


def mlp(in_features: int, hidden: Sequence[int], out_features: int) -> nn.Sequential:
    """Linear+ReLU for each hidden width, then a linear output layer."""
    layers, width = linear_layers(in_features, hidden)
    return nn.Sequential(*layers, nn.Linear(width, out_features))


def union_size(tasks: Sequence[Task]) -> int:
    """Width of the union head: 18 for Atari, 6 for MinAtar, the largest action count else."""
    return max(t.union_size for t in tasks)


def padded_shape(tasks: Sequence[Task]) -> tuple[int, ...]:
    """The input shape a shared extractor sees: every dimension the largest over tasks."""
    shapes = [tuple(t.obs_shape) for t in tasks]
    if len({len(s) for s in shapes}) != 1 or len({t.backend for t in tasks}) != 1:
        raise ConfigError(
            "a shared extractor (dist, amn) needs tasks of one kind; got "
            + ", ".join(f"{t.id} {tuple(t.obs_shape)}" for t in tasks)
            + " - use architecture: proposed, which keeps one extractor per task"
        )
    return tuple(max(dims) for dims in zip(*shapes, strict=True))


def pad_obs(obs: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Zero-pad a batch of observations at the end of each dimension up to ``shape``."""
    missing = [target - have for target, have in zip(shape, obs.shape[1:], strict=True)]
    if not any(missing):
        return obs
    pad: list[int] = []
    for m in reversed(missing):  # F.pad lists the last dimension first
        pad += [0, m]
    return nn.functional.pad(obs, pad)


def task_indices(obs: Sequence[torch.Tensor], tasks: Sequence[int] | None) -> Sequence[int]:
    """Which task each batch of ``obs`` belongs to: ``tasks``, or every task in order."""
    if tasks is None:
        return range(len(obs))
    if len(tasks) != len(obs):
        raise ConfigError(f"{len(obs)} batches of observations for tasks {list(tasks)}: give one batch per task")
    return tasks


class Student(nn.Module):
    """Base: ``forward(obs, task_index)`` gives Q-values over the task's own actions."""

    def __init__(self, tasks: Sequence[Task]) -> None:
        super().__init__()
        self.tasks = list(tasks)
        for i, task in enumerate(self.tasks):
            if not task.discrete:
                raise ConfigError(f"distillation needs discrete actions; task {task.id!r} is continuous")
            self.register_buffer(f"action_map_{i}", torch.tensor(task.action_map, dtype=torch.long), persistent=False)

    def action_map(self, task_index: int) -> torch.Tensor:
        return getattr(self, f"action_map_{task_index}")

    def forward_tasks(self, obs: Sequence[torch.Tensor], tasks: Sequence[int] | None = None) -> list[torch.Tensor]:
        """``forward`` for several tasks at once (``obs[j]``: a batch of task ``tasks[j]``; every
        task, in order, by default): what acting and evaluating in all tasks each step call.
        Layers that tasks share run once over all their rows."""
        return [self(o, i) for i, o in zip(task_indices(obs, tasks), obs, strict=True)]

    def _split_heads(
        self, union: torch.Tensor, obs: Sequence[torch.Tensor], tasks: Sequence[int]
    ) -> list[torch.Tensor]:
        """The union outputs of the tasks' rows, split by task, each to its own actions."""
        chunks = union.split([len(o) for o in obs])
        return [chunk[:, self.action_map(i)] for i, chunk in zip(tasks, chunks, strict=True)]

    def per_task_extractors(self) -> list[nn.Module] | None:
        """The task-specific extractors a teacher's features can initialise, if any."""
        return None

    def extractor_specs(self) -> list[dict[str, Any]] | None:
        """The per-task extractors' layouts (``networks.encoder_spec``), if any."""
        extractors = self.per_task_extractors()
        return None if extractors is None else [encoder_spec(e) for e in extractors]


class ProposedStudent(Student):
    """Per-task extractors -> (per-task projection where widths differ) -> shared FC -> union.

    Each task's extractor may have its own layout (a teacher's MLP widths, say).
    """

    def __init__(
        self, tasks: Sequence[Task], head_hidden: Sequence[int], extractors: Sequence[FeatureExtractor]
    ) -> None:
        super().__init__(tasks)
        if len(extractors) != len(self.tasks):
            raise ConfigError(f"{len(extractors)} extractors for {len(self.tasks)} tasks")
        self.extractors = nn.ModuleList(extractors)
        width = max(e.out_features for e in extractors)
        self.projections = nn.ModuleList(
            nn.Identity() if e.out_features == width else nn.Sequential(nn.Linear(e.out_features, width), nn.ReLU())
            for e in extractors
        )
        self.shared = mlp(width, head_hidden, union_size(self.tasks))

    def forward(self, obs: torch.Tensor, task_index: int) -> torch.Tensor:
        features = self.projections[task_index](self.extractors[task_index](obs))
        return self.shared(features)[:, self.action_map(task_index)]

    def forward_tasks(self, obs: Sequence[torch.Tensor], tasks: Sequence[int] | None = None) -> list[torch.Tensor]:
        tasks = task_indices(obs, tasks)
        features = [self.projections[i](self.extractors[i](o)) for i, o in zip(tasks, obs, strict=True)]
        return self._split_heads(self.shared(torch.cat(features)), obs, tasks)

    def per_task_extractors(self) -> list[nn.Module]:
        return list(self.extractors)


class DistStudent(Student):
    """Shared extractor over zero-padded inputs -> per task: FC hidden, head of |A_i| outputs."""

    def __init__(self, tasks: Sequence[Task], head_hidden: Sequence[int], extractor_hidden: Sequence[int]) -> None:
        super().__init__(tasks)
        self.input_shape = padded_shape(self.tasks)
        self.extractor = make_encoder(self.tasks[0], extractor_hidden, obs_shape=self.input_shape)
        self.heads = nn.ModuleList(mlp(self.extractor.out_features, head_hidden, t.num_actions) for t in self.tasks)

    def forward(self, obs: torch.Tensor, task_index: int) -> torch.Tensor:
        return self.heads[task_index](self.extractor(pad_obs(obs, self.input_shape)))

    def forward_tasks(self, obs: Sequence[torch.Tensor], tasks: Sequence[int] | None = None) -> list[torch.Tensor]:
        features = self.extractor(torch.cat([pad_obs(o, self.input_shape) for o in obs]))
        chunks = features.split([len(o) for o in obs])
        return [self.heads[i](f) for i, f in zip(task_indices(obs, tasks), chunks, strict=True)]


class AMNStudent(Student):
    """Everything shared: extractor over zero-padded inputs -> FC hidden -> masked union head."""

    def __init__(self, tasks: Sequence[Task], head_hidden: Sequence[int], extractor_hidden: Sequence[int]) -> None:
        super().__init__(tasks)
        self.input_shape = padded_shape(self.tasks)
        self.extractor = make_encoder(self.tasks[0], extractor_hidden, obs_shape=self.input_shape)
        self.shared = mlp(self.extractor.out_features, head_hidden, union_size(self.tasks))

    def forward(self, obs: torch.Tensor, task_index: int) -> torch.Tensor:
        q_union = self.shared(self.extractor(pad_obs(obs, self.input_shape)))
        return q_union[:, self.action_map(task_index)]

    def forward_tasks(self, obs: Sequence[torch.Tensor], tasks: Sequence[int] | None = None) -> list[torch.Tensor]:
        union = self.shared(self.extractor(torch.cat([pad_obs(o, self.input_shape) for o in obs])))
        return self._split_heads(union, obs, task_indices(obs, tasks))


def make_student(
    architecture: str,
    tasks: Sequence[Task],
    head_hidden: Sequence[int] | None = None,
    extractor_hidden: Sequence[int] = EXTRACTOR_HIDDEN,
    extractor_specs: Sequence[dict[str, Any]] | None = None,
) -> Student:
    """A student by name. ``head_hidden`` ``None`` means the paper's widths (``PAPER_HIDDEN``);
    ``extractor_specs`` (proposed only) gives each task's extractor its own layout, else every
    extractor is ``make_encoder(task, extractor_hidden)``."""
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {architecture!r}; valid: {list(ARCHITECTURES)}")
    widths = PAPER_HIDDEN[architecture] if head_hidden is None else tuple(head_hidden)
    if architecture == "proposed":
        extractors = (
            [make_encoder(t, tuple(extractor_hidden)) for t in tasks]
            if extractor_specs is None
            else [encoder_from_spec(t, spec) for t, spec in zip(tasks, extractor_specs, strict=True)]
        )
        return ProposedStudent(tasks, widths, extractors)
    shared = {"dist": DistStudent, "amn": AMNStudent}[architecture]
    return shared(tasks, widths, tuple(extractor_hidden))
