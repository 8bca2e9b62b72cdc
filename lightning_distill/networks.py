"""Networks: a feature extractor per observation kind, and a Q-network head on top.

- ``NatureConv``: Mnih et al. (2015) conv layers for 4x84x84 Atari stacks, 3136 features.
- ``MinAtarConv``: Young & Tian (2019) conv layer for 10x10 MinAtar grids, 1024 features.
- ``MLPEncoder``: hidden layers for vector observations.

A ``QNetwork`` is ``features`` followed by ``head``; distillation reuses a teacher's
``features`` as a student's task-specific extractor, so the split is part of the contract.

One vocabulary across the modules: ``extractor_hidden`` are the MLP extractor's widths (vector
observations only; conv extractors are fixed by the task), ``head_hidden`` the widths of the
fully connected layers between the features and the outputs.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
from torch import nn

from lightning_distill.errors import ConfigError
from lightning_distill.tasks import Task
from lightning_distill.upstream import native_conv2d


def linear_layers(
    in_features: int, widths: Sequence[int], activation: type[nn.Module] = nn.ReLU
) -> tuple[list[nn.Module], int]:
    """``[Linear, activation]`` for each width (the hidden layers every MLP here is made of), and
    the width that comes out. Module order fixes state-dict keys: checkpoints depend on it."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(in_features, width), activation()]
        in_features = width
    return layers, in_features


#: the MLP extractor's default widths (vector observations), for every network that has one
EXTRACTOR_HIDDEN: tuple[int, ...] = (64, 64)
#: rows of a call up to which MinAtar's convolutions run faster on PyTorch's own CPU kernels
SMALL_CONV_ROWS = 8
#: set by ``acting_kernels`` for the calls inside it (this thread and context only)
_NATIVE_MINATAR_CONV: contextvars.ContextVar[bool] = contextvars.ContextVar("native_minatar_conv", default=False)


@contextlib.contextmanager
def acting_kernels(tasks: Sequence[Task], rows: int) -> Iterator[None]:
    """The CPU convolution kernel of MinAtar's conv layer in acting calls of ``rows`` rows a task.

    oneDNN (PyTorch's default) prepares every call, which on 10x10 grids at a few rows costs
    more than the convolution; PyTorch's own kernel does not. So when every task is MinAtar and
    a call has up to ``SMALL_CONV_ROWS`` rows a task, ``MinAtarConv`` calls that kernel directly;
    anything else keeps oneDNN. The choice depends on the config alone (reproducible, not
    bit-identical to oneDNN's). It is a context variable, not torch's process-wide
    ``mkldnn.enabled`` flag: no other code, thread or module sees a change."""
    native = rows <= SMALL_CONV_ROWS and bool(tasks) and all(task.backend == "minatar" for task in tasks)
    token = _NATIVE_MINATAR_CONV.set(native)
    try:
        yield
    finally:
        _NATIVE_MINATAR_CONV.reset(token)


class FeatureExtractor(nn.Module):
    """A network from observations to a flat feature vector of ``out_features`` values."""

    out_features: int


class NatureConv(FeatureExtractor):
    """conv 32x8x8/4, conv 64x4x4/2, conv 64x3x3/1, ReLU each; uint8 frames scaled by 1/255."""

    def __init__(self, in_channels: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.out_features = 3136

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.float() / 255.0)


class MinAtarConv(FeatureExtractor):
    """conv 16x3x3/1 with ReLU over the C x 10 x 10 grid of 0/1 channels."""

    def __init__(self, in_channels: int, grid: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, 16, 3, stride=1), nn.ReLU(), nn.Flatten())
        self.out_features = 16 * (grid - 2) ** 2

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float()
        conv = cast(nn.Conv2d, self.net[0])
        if _NATIVE_MINATAR_CONV.get() and x.device.type == "cpu" and conv.weight.dtype == torch.float32:
            return self.net[1:](native_conv2d(x, conv))
        return self.net(x)


class MLPEncoder(FeatureExtractor):
    """MLP for vector observations: ReLU for value networks, tanh for policies (PPO's usual)."""

    def __init__(self, in_features: int, hidden: Sequence[int] = EXTRACTOR_HIDDEN, activation: str = "relu") -> None:
        super().__init__()
        self.hidden, self.activation = tuple(hidden), activation
        layers, width = linear_layers(in_features, hidden, {"relu": nn.ReLU, "tanh": nn.Tanh}[activation])
        self.net = nn.Sequential(nn.Flatten(), *layers)
        self.out_features = width

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.float())


def make_encoder(
    task: Task,
    extractor_hidden: Sequence[int] = EXTRACTOR_HIDDEN,
    activation: str = "relu",
    obs_shape: Sequence[int] | None = None,
) -> FeatureExtractor:
    """The feature extractor that fits the task's observations (or ``obs_shape`` of the same
    kind: a shared extractor over inputs zero-padded to the widest task)."""
    shape = tuple(task.obs_shape if obs_shape is None else obs_shape)
    if task.backend == "atari":
        return NatureConv(shape[0])
    if task.backend == "minatar":
        return MinAtarConv(shape[0], shape[1])
    if len(shape) == 1:
        return MLPEncoder(shape[0], extractor_hidden, activation)
    raise ConfigError(
        f"no feature extractor for observations of shape {shape} (task {task.id!r}); "
        "supported: Atari 4x84x84, MinAtar Cx10x10, flat vectors"
    )


def encoder_spec(encoder: nn.Module) -> dict[str, Any]:
    """What rebuilds ``encoder`` for its task with ``encoder_from_spec`` (saved in checkpoints:
    a student whose extractors came from its teachers has their shapes, not the config's)."""
    if isinstance(encoder, MLPEncoder):
        return {"hidden": list(encoder.hidden), "activation": encoder.activation}
    if isinstance(encoder, (NatureConv, MinAtarConv)):
        return {}
    raise ConfigError(
        f"no known layout for a feature extractor of type {type(encoder).__name__}; "
        "known: NatureConv, MinAtarConv, MLPEncoder"
    )


def encoder_from_spec(task: Task, spec: dict[str, Any]) -> FeatureExtractor:
    """The extractor ``encoder_spec`` described, freshly initialised, for ``task``."""
    return make_encoder(task, spec.get("hidden", EXTRACTOR_HIDDEN), spec.get("activation", "relu"))


def default_head_hidden(task: Task) -> tuple[int, ...]:
    """The Q-head's hidden FC widths: [512] for Atari (Nature DQN), [128] for MinAtar, none else."""
    return {"atari": (512,), "minatar": (128,)}.get(task.backend, ())


class QNetwork(nn.Module):
    """``features`` -> [FC, ReLU] per ``head_hidden`` width -> FC num_actions: Q-values over the
    task's own actions."""

    def __init__(self, features: FeatureExtractor, num_actions: int, head_hidden: Sequence[int] = (512,)) -> None:
        super().__init__()
        self.features = features
        layers, width = linear_layers(features.out_features, head_hidden)
        self.head = nn.Sequential(*layers, nn.Linear(width, num_actions))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(obs))


def make_q_network(
    task: Task, head_hidden: Sequence[int] | None = None, extractor_hidden: Sequence[int] = EXTRACTOR_HIDDEN
) -> QNetwork:
    """Nature DQN for Atari, the MinAtar DQN, or an MLP Q-network, by the task's backend."""
    if not task.discrete:
        raise ConfigError(f"a Q-network needs discrete actions; task {task.id!r} is continuous")
    widths = default_head_hidden(task) if head_hidden is None else tuple(head_hidden)
    return QNetwork(make_encoder(task, extractor_hidden), task.num_actions, widths)
