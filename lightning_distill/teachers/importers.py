"""Teachers from the checkpoint formats people already have.

- Stable-Baselines3 / RL Zoo ``.zip``: the archive's ``policy.pth`` holds the policy's state
  dict.
  - DQN: the online Q-network is under ``q_net.`` (``q_net_target.`` is ignored). CnnPolicy =
    NatureCNN (3 convs + FC 512 in ``features_extractor``) + ``q_net.q_net.0``; MlpPolicy =
    the layers of ``q_net.q_net``.
  - PPO / A2C ``MlpPolicy``: ``mlp_extractor.policy_net`` / ``value_net`` (the two MLPs),
    ``action_net``, ``value_net`` and, for continuous actions, the state-independent
    ``log_std``; the activation (tanh unless changed) is read from the archive's ``data``.
    A VecNormalize wrapper's statistics are not in the zip: such a teacher would see raw
    observations here.
- CleanRL ``.cleanrl_model``: ``torch.save(q_network.state_dict())`` of ``dqn_atari.py``
  (``network.0 .. network.9``: 3 convs, FC 512, head) or ``dqn.py`` (an MLP).

Both are read with ``weights_only=True``, without SB3 or CleanRL installed: the layers are
read in order and loaded into this project's ``QNetwork`` of the same shape, so a teacher
from anywhere has the same ``features`` / ``head`` split that the proposed student reuses.
Both formats normalise images by 1/255, as ``NatureConv`` does.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import torch
from torch import nn

from lightning_distill.errors import CheckpointError
from lightning_distill.networks import MLPEncoder, QNetwork, make_encoder
from lightning_distill.tasks import Task
from lightning_distill.teachers import mismatch_error

Layer = tuple[torch.Tensor, torch.Tensor]  # (weight, bias)


def read_sb3_zip(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """An SB3 archive's policy state dict and its ``data`` (constructor arguments) as JSON."""
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read("policy.pth")
            data = json.loads(archive.read("data")) if "data" in archive.namelist() else {}
    except (zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(f"{str(path)!r} is not a Stable-Baselines3 model archive: {exc}") from None
    return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True), data


def load_sb3(path: Path, task: Task):
    """A ``Teacher`` from an SB3 DQN archive, a ``PolicyTeacher`` from a PPO / A2C one."""
    from lightning_distill.teachers import PolicyTeacher, Teacher

    state, data = read_sb3_zip(path)
    if any(k.startswith("q_net.") for k in state):
        online = {k[len("q_net.") :]: v for k, v in state.items() if k.startswith("q_net.")}
        return Teacher(q_network_from_layers(layers_in_order(online), task, str(path)), task)
    if "action_net.weight" in state:
        return PolicyTeacher(actor_critic_from_sb3(state, data, task, str(path)), task)
    raise CheckpointError(
        f"{str(path)!r} has neither 'q_net.' (DQN) nor 'action_net.' (PPO / A2C) parameters; "
        "only those SB3 policies can be teachers"
    )


def _sb3_activation(data: dict) -> str:
    """``tanh`` or ``relu`` from the archive's policy_kwargs (SB3's default is tanh)."""
    name = str((data.get("policy_kwargs") or {}).get("activation_fn", "Tanh"))
    for known in ("tanh", "relu"):
        if known in name.lower():
            return known
    raise CheckpointError(f"SB3 activation {name!r} is not supported; supported: Tanh, ReLU")


def actor_critic_from_sb3(state: dict[str, torch.Tensor], data: dict, task: Task, source: str):
    """This project's ``ActorCritic`` for ``task`` with an SB3 ``MlpPolicy``'s weights in it."""
    from lightning_distill.policies import ActorCritic

    if any(".cnn." in k for k in state) or len(task.obs_shape) != 1:
        raise CheckpointError(f"{source!r}: only SB3 MlpPolicy actor-critics (vector observations) can be read")
    policy = layers_in_order({k: v for k, v in state.items() if k.startswith("mlp_extractor.policy_net.")})
    value = layers_in_order({k: v for k, v in state.items() if k.startswith("mlp_extractor.value_net.")})
    actions = state["action_net.weight"].shape[0]
    first = policy or value
    in_features = (first[0][0] if first else state["action_net.weight"]).shape[1]
    continuous = "log_std" in state
    if in_features != math.prod(task.obs_shape) or actions != task.num_actions or continuous == task.discrete:
        kind = "continuous" if continuous else "discrete"
        raise mismatch_error(source, task, actions, f"of {in_features} features ({kind} actions)")
    network = ActorCritic(
        task,
        extractor_hidden=[w.shape[0] for w, _ in policy],
        critic_hidden=[w.shape[0] for w, _ in value],
        activation=_sb3_activation(data),
    )
    pairs = [(network.actor_features, policy), (network.critic_features, value)]
    with torch.no_grad():
        for encoder, layers in pairs:
            linears = [m for m in encoder.modules() if isinstance(m, nn.Linear)]
            for module, (weight, bias) in zip(linears, layers, strict=True):
                copy_layer(module, weight, bias)
        network.action_head.weight.copy_(state["action_net.weight"])
        network.action_head.bias.copy_(state["action_net.bias"])
        network.value_head.weight.copy_(state["value_net.weight"])
        network.value_head.bias.copy_(state["value_net.bias"])
        if network.log_std is not None:  # continuous actions
            network.log_std.copy_(state["log_std"])
    return network


def read_cleanrl_model(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read CleanRL model {str(path)!r}: {exc}".splitlines()[0]) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{str(path)!r} is not a CleanRL model file (a state dict of tensors)")
    return state


def copy_layer(module: nn.Linear | nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Load one layer's weight and bias (every layer here is built with a bias)."""
    module.weight.copy_(weight)
    if module.bias is not None:
        module.bias.copy_(bias)


def layers_in_order(state: dict[str, torch.Tensor]) -> list[Layer]:
    """(weight, bias) of each conv / linear layer, in the order the state dict lists them."""
    layers = []
    for key, weight in state.items():
        if key.endswith(".weight") and weight.ndim in (2, 4):
            bias = state.get(key[: -len("weight")] + "bias")
            if bias is None:
                raise CheckpointError(f"layer {key!r} has no bias; not a DQN Q-network")
            layers.append((weight, bias))
    return layers


def q_network_from_layers(layers: list[Layer], task: Task, source: str) -> QNetwork:
    """This project's QNetwork for ``task`` with the given conv + linear layers loaded into it."""
    convs = [layer for layer in layers if layer[0].ndim == 4]
    linears = [layer for layer in layers if layer[0].ndim == 2]
    if not linears:
        raise CheckpointError(f"{source!r} has no linear output layer; not a Q-network")
    actions = linears[-1][0].shape[0]
    if convs:
        teacher_input = f"with {convs[0][0].shape[1]} channels"
        fits = task.backend in ("atari", "minatar") and convs[0][0].shape[1] == task.obs_shape[0]
    else:
        teacher_input = f"of {linears[0][0].shape[1]} features"
        fits = linears[0][0].shape[1] == math.prod(task.obs_shape)
    if not fits or actions != task.num_actions or (convs and len(linears) > 2):
        raise mismatch_error(source, task, actions, teacher_input)
    if convs:  # Nature / MinAtar conv layers, then [FC hidden] and the head
        features = make_encoder(task)
        head_hidden = [linears[0][0].shape[0]] if len(linears) == 2 else []
        feature_layers, head_layers = convs, linears
    else:  # an MLP: all linear layers but the last are the encoder
        features = MLPEncoder(math.prod(task.obs_shape), [w.shape[0] for w, _ in linears[:-1]])
        head_hidden = []
        feature_layers, head_layers = linears[:-1], linears[-1:]
    network = QNetwork(features, actions, head_hidden)
    targets = [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    sources = feature_layers + head_layers
    if len(targets) != len(sources) or any(
        t.weight.shape != w.shape for t, (w, _) in zip(targets, sources, strict=True)
    ):
        raise mismatch_error(
            source, task, actions, teacher_input + f" and layers {[tuple(w.shape) for w, _ in sources]}"
        )
    with torch.no_grad():
        for module, (weight, bias) in zip(targets, sources, strict=True):
            copy_layer(module, weight, bias)
    return network


def load_cleanrl_dqn(path: Path, task: Task) -> QNetwork:
    return q_network_from_layers(layers_in_order(read_cleanrl_model(path)), task, str(path))
