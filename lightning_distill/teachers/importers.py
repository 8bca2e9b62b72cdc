"""Teachers from the checkpoint formats people already have.

- Stable-Baselines3 / RL Zoo ``.zip``: the archive's ``policy.pth`` holds the policy's state
  dict.
  - DQN: the online Q-network is under ``q_net.`` (``q_net_target.`` is ignored). CnnPolicy =
    NatureCNN (3 convs + FC 512 in ``features_extractor``) + ``q_net.q_net.0``; MlpPolicy =
    the layers of ``q_net.q_net``.
  - PPO / A2C ``MlpPolicy``: ``mlp_extractor.policy_net`` / ``value_net`` (the two MLPs),
    ``action_net``, ``value_net`` and, for continuous actions, the state-independent
    ``log_std``; the activation (tanh unless changed) is read from the archive's ``data``.
  - PPO / A2C ``CnnPolicy``: NatureCNN (``features_extractor.cnn`` + ``.linear``, shared by
    both heads), ``action_net`` and ``value_net``.
    A VecNormalize wrapper's observation statistics are not in the zip but in
    ``vec_normalize.pkl`` beside it (RL Zoo's logs: ``<stem>/vecnormalize.pkl``): when there is
    one, it is read without being run (``teachers.vec_normalize``) and becomes the teacher's
    ``ObsNormalizer``, so it sees the inputs it learned on.
- CleanRL ``.cleanrl_model``: ``torch.save(q_network.state_dict())`` of ``dqn_atari.py``
  (``network.0 .. network.9``: 3 convs, FC 512, head) or ``dqn.py`` (an MLP);
  ``torch.save(agent.state_dict())`` of ``ppo_atari.py`` (``network.*``: 3 convs + FC 512,
  ``actor``, ``critic``) or ``ppo.py`` (``actor.*`` and ``critic.*``: tanh MLPs).

Both are read with ``weights_only=True``, without SB3 or CleanRL installed: the layers are
read in order and loaded into this project's ``QNetwork`` or ``ActorCritic`` of the same shape, so a teacher
from anywhere has the same ``features`` / ``head`` split that the proposed student reuses.
Both formats normalise images by 1/255, as ``NatureConv`` does.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import zipfile
from pathlib import Path
from typing import TypeGuard

import torch
from torch import nn

from lightning_distill.errors import CheckpointError, refused_pickle_reason
from lightning_distill.networks import MLPEncoder, QNetwork, make_encoder
from lightning_distill.normalization import ObsNormalizer
from lightning_distill.tasks import Task
from lightning_distill.teachers import mismatch_error
from lightning_distill.teachers.vec_normalize import find_stats_file, read_obs_stats

Layer = tuple[torch.Tensor, torch.Tensor]  # (weight, bias)


def read_sb3_zip(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """An SB3 archive's policy state dict and its ``data`` (constructor arguments) as JSON."""
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read("policy.pth")
            data = json.loads(archive.read("data")) if "data" in archive.namelist() else {}
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{str(path)!r} is not a Stable-Baselines3 model archive: {exc}") from None
    return load_plain_weights(io.BytesIO(raw), f"{str(path)!r} (its policy.pth)"), data


def load_plain_weights(file: io.BytesIO | Path, name: str) -> dict[str, torch.Tensor]:
    """A state dict of tensors, read with ``weights_only=True``: a pickle that would build any
    other object (run code) is refused unread, with one line."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = refused_pickle_reason(exc)
        raise CheckpointError(f"{name} holds objects that are not plain weights; refused unread ({reason})") from None
    except Exception as exc:
        raise CheckpointError(f"{name} is not a readable torch file: {exc}".splitlines()[0]) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{name} is not a state dict of tensors")
    return state


def load_sb3(path: Path, task: Task):
    """A ``Teacher`` from an SB3 DQN archive, a ``PolicyTeacher`` from a PPO / A2C one."""
    from lightning_distill.teachers import PolicyTeacher, Teacher

    state, data = read_sb3_zip(path)
    if len(task.obs_shape) > 1 and (data.get("policy_kwargs") or {}).get("normalize_images") is False:
        raise CheckpointError(
            f"{str(path)!r} was trained with normalize_images=False (raw 0-255 pixels); image teachers here "
            "see pixels / 255 (SB3's default, normalize_images=True), so this one is not supported"
        )
    if any(k.startswith("q_net.") for k in state):
        if find_stats_file(path) is not None:
            raise CheckpointError(
                f"{str(find_stats_file(path))!r} lies beside {str(path)!r}: VecNormalize statistics are supported "
                "for PPO / A2C MlpPolicy teachers only"
            )
        online = {k[len("q_net.") :]: v for k, v in state.items() if k.startswith("q_net.")}
        return Teacher(q_network_from_layers(layers_in_order(online), task, str(path)), task)
    if "action_net.weight" in state:
        network = actor_critic_from_sb3(state, data, task, str(path))
        network.obs_normalizer = sb3_obs_normalizer(path, task)
        return PolicyTeacher(network, task)
    raise CheckpointError(
        f"{str(path)!r} has neither 'q_net.' (DQN) nor 'action_net.' (PPO / A2C) parameters; "
        "only those SB3 policies can be teachers"
    )


def sb3_obs_normalizer(path: Path, task: Task) -> ObsNormalizer | None:
    """The teacher's ``ObsNormalizer`` from the ``VecNormalize`` pickle beside its zip, if any."""
    stats_file = find_stats_file(path)
    stats = None if stats_file is None else read_obs_stats(stats_file)
    if stats is None:
        return None
    if len(task.obs_shape) != 1 or tuple(stats.mean.shape) != tuple(task.obs_shape):
        raise CheckpointError(
            f"{str(stats_file)!r} normalises observations of shape {tuple(stats.mean.shape)}; "
            f"task {task.id!r} has {tuple(task.obs_shape)} (vector observations only)"
        )
    from lightning.pytorch.utilities import rank_zero_info

    rank_zero_info(f"teacher {path.name}: observations normalised by {stats_file} ({stats.count:,.0f} samples)")
    return ObsNormalizer.from_stats(stats.mean, stats.var, stats.count, stats.clip_obs, stats.epsilon)


def _sb3_activation(data: dict) -> str:
    """``tanh`` or ``relu`` from the archive's policy_kwargs (SB3's default is tanh)."""
    name = str((data.get("policy_kwargs") or {}).get("activation_fn", "Tanh"))
    for known in ("tanh", "relu"):
        if known in name.lower():
            return known
    raise CheckpointError(f"SB3 activation {name!r} is not supported; supported: Tanh, ReLU")


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def actor_critic_from_sb3(state: dict[str, torch.Tensor], data: dict, task: Task, source: str):
    """This project's ``ActorCritic`` for ``task`` with an SB3 ``MlpPolicy``'s or ``CnnPolicy``'s
    weights in it."""
    head = (state["action_net.weight"], state["action_net.bias"])
    value_head = (state["value_net.weight"], state["value_net.bias"])
    policy = layers_in_order(_prefixed(state, "mlp_extractor.policy_net."))
    value = layers_in_order(_prefixed(state, "mlp_extractor.value_net."))
    if any(".cnn." in k for k in state):  # CnnPolicy: NatureCNN (+ its FC 512) shared by both heads
        pi_cnn = _prefixed(state, "pi_features_extractor.") or _prefixed(state, "features_extractor.")
        vf_cnn = _prefixed(state, "vf_features_extractor.") or pi_cnn
        separate = pi_cnn.keys() != vf_cnn.keys() or any(not torch.equal(pi_cnn[k], vf_cnn[k]) for k in pi_cnn)
        if policy or value or separate:
            raise CheckpointError(
                f"{source!r}: an SB3 CnnPolicy teacher needs one feature extractor shared by actor and critic "
                "and no mlp_extractor layers (SB3's defaults: share_features_extractor=True, net_arch=[])"
            )
        convs = layers_in_order(_prefixed(pi_cnn, "cnn."))
        trunk = layers_in_order(_prefixed(pi_cnn, "linear."))
        return conv_actor_critic(task, source, convs, trunk, head, value_head)
    log_std = state.get("log_std")
    return mlp_actor_critic(task, source, policy, value, head, value_head, _sb3_activation(data), log_std)


def mlp_actor_critic(
    task: Task,
    source: str,
    policy: list[Layer],
    value: list[Layer],
    head: Layer,
    value_head: Layer,
    activation: str,
    log_std: torch.Tensor | None = None,
):
    """An ``ActorCritic`` with separate actor and critic MLPs (SB3 MlpPolicy, CleanRL ppo.py)."""
    from lightning_distill.policies import ActorCritic

    actions = head[0].shape[0]
    in_features = (policy or value or [head])[0][0].shape[1]
    continuous = log_std is not None
    if (
        len(task.obs_shape) != 1
        or in_features != math.prod(task.obs_shape)
        or actions != task.num_actions
        or continuous == task.discrete
    ):
        kind = "continuous" if continuous else "discrete"
        raise mismatch_error(source, task, actions, f"of {in_features} features ({kind} actions)")
    network = ActorCritic(
        task,
        extractor_hidden=[w.shape[0] for w, _ in policy],
        critic_hidden=[w.shape[0] for w, _ in value],
        activation=activation,
    )
    with torch.no_grad():
        for encoder, layers in ((network.actor_features, policy), (network.critic_features, value)):
            linears = [m for m in encoder.modules() if isinstance(m, nn.Linear)]
            for module, (weight, bias) in zip(linears, layers, strict=True):
                copy_layer(module, weight, bias)
        copy_layer(network.action_head, *head)
        copy_layer(network.value_head, *value_head)
        if network.log_std is not None and log_std is not None:
            network.log_std.copy_(log_std.reshape(network.log_std.shape))
    return network


def conv_actor_critic(task: Task, source: str, convs: list[Layer], trunk: list[Layer], head: Layer, value_head: Layer):
    """An image ``ActorCritic``: one conv extractor and FC trunk shared by the policy and value
    heads (SB3 CnnPolicy, CleanRL ppo_atari.py), loaded layer by layer after a shape check."""
    from lightning_distill.policies import ActorCritic

    actions = head[0].shape[0]
    channels = convs[0][0].shape[1] if convs else 0
    if task.backend not in ("atari", "minatar") or channels != task.obs_shape[0] or actions != task.num_actions:
        raise mismatch_error(source, task, actions, f"with {channels} channels")
    network = ActorCritic(task, head_hidden=[w.shape[0] for w, _ in trunk])
    targets = [m for m in (*network.actor_features.modules(), *network.trunk.modules()) if _is_layer(m)]
    targets += [network.action_head, network.value_head]
    sources = [*convs, *trunk, head, value_head]
    if len(targets) != len(sources) or any(
        t.weight.shape != w.shape for t, (w, _) in zip(targets, sources, strict=True)
    ):
        shapes = [tuple(w.shape) for w, _ in sources]
        raise mismatch_error(source, task, actions, f"with {channels} channels and layers {shapes}")
    with torch.no_grad():
        for module, (weight, bias) in zip(targets, sources, strict=True):
            copy_layer(module, weight, bias)
    return network


def _is_layer(module: nn.Module) -> TypeGuard[nn.Conv2d | nn.Linear]:
    return isinstance(module, (nn.Conv2d, nn.Linear))


def load_cleanrl(path: Path, task: Task):
    """A ``Teacher`` from CleanRL's dqn / dqn_atari model file (``network.*``), a
    ``PolicyTeacher`` from ppo_atari's (``network.*`` convs + FC 512, ``actor``, ``critic``) or
    ppo.py's (``actor.*`` and ``critic.*`` tanh MLPs)."""
    from lightning_distill.teachers import PolicyTeacher, Teacher

    state = read_cleanrl_model(path)
    source = str(path)
    if "actor.weight" in state and "critic.weight" in state:  # ppo_atari.py: Agent.network/actor/critic
        layers = layers_in_order(_prefixed(state, "network."))
        convs = [layer for layer in layers if layer[0].ndim == 4]
        trunk = [layer for layer in layers if layer[0].ndim == 2]
        head = (state["actor.weight"], state["actor.bias"])
        value_head = (state["critic.weight"], state["critic.bias"])
        return PolicyTeacher(conv_actor_critic(task, source, convs, trunk, head, value_head), task)
    if any(k.startswith("actor.") for k in state) and any(k.startswith("critic.") for k in state):  # ppo.py
        actor = layers_in_order(_prefixed(state, "actor."))
        critic = layers_in_order(_prefixed(state, "critic."))
        network = mlp_actor_critic(task, source, actor[:-1], critic[:-1], actor[-1], critic[-1], "tanh")
        return PolicyTeacher(network, task)
    return Teacher(q_network_from_layers(layers_in_order(state), task, source), task)


def read_cleanrl_model(path: Path) -> dict[str, torch.Tensor]:
    return load_plain_weights(path, f"CleanRL model {str(path)!r}")


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
    targets = [m for m in network.modules() if _is_layer(m)]
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
