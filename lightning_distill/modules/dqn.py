"""DQN (Mnih et al. 2015), the kind of teacher the distillation paper uses."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from tensordict import TensorDict

from lightning_distill.checks import AT_LEAST_1, POSITIVE, UNIT, Range, check_ranges
from lightning_distill.evaluation import Policy
from lightning_distill.modules.base import RLModule
from lightning_distill.networks import EXTRACTOR_HIDDEN, make_q_network
from lightning_distill.tasks import Task

if TYPE_CHECKING:
    from lightning_distill.teachers import Teacher


class DQN(RLModule):
    """Q-learning with a target network, optional Double DQN, Huber loss.

    The network follows the task: Nature DQN for Atari, the MinAtar DQN, an MLP for vectors.
    Gradient clipping is the Trainer's (``trainer.gradient_clip_val``); exploration is
    ``lightning_distill.callbacks.EpsilonSchedule``; the replay is the data module's.

    Args:
        tasks: exactly one task (linked from ``data.task`` by the CLI).
        lr: Adam learning rate (replace the optimiser with ``--optimizer`` if you like).
        gamma: discount.
        target_update_interval: updates between two copies of the online net into the target.
        double_dqn: select the bootstrap action with the online net (van Hasselt et al. 2016).
        huber_delta: the Huber loss's transition point ``delta`` (quadratic within it, linear beyond).
        clip_rewards: train on sign(reward), as Nature DQN on Atari (evaluation stays raw).
        head_hidden: widths of the Q-head's hidden FC layers; ``auto``: [512] on Atari, [128]
            on MinAtar, none for MLPs.
        extractor_hidden: widths of the MLP extractor (vector observations).
    """

    RANGES: ClassVar[dict[str, Range]] = {
        "lr": POSITIVE,
        "gamma": UNIT,
        "target_update_interval": AT_LEAST_1,
        "huber_delta": POSITIVE,
        "head_hidden": AT_LEAST_1,
        "extractor_hidden": AT_LEAST_1,
    }

    def __init__(
        self,
        tasks: Sequence[Task | Mapping[str, Any]] | None = None,
        lr: float = 1e-4,
        gamma: float = 0.99,
        target_update_interval: int = 1_000,
        double_dqn: bool = True,
        huber_delta: float = 1.0,
        clip_rewards: bool = False,
        head_hidden: Sequence[int] | Literal["auto"] = "auto",
        extractor_hidden: Sequence[int] = EXTRACTOR_HIDDEN,
    ) -> None:
        check_ranges("model.init_args", self.RANGES, locals())
        super().__init__(tasks)
        task = self.require_one_task()
        self.save_hyperparameters(ignore=["tasks"])
        self._save_task_hparams()
        self.q_net = make_q_network(task, None if head_hidden == "auto" else head_hidden, tuple(extractor_hidden))
        self.target_net = copy.deepcopy(self.q_net).requires_grad_(False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values over the task's own actions."""
        return self.q_net(obs)

    def policy(self, task_index: int = 0) -> Policy:
        return lambda obs: self.q_net(obs).argmax(dim=-1)

    def as_teacher(self) -> Teacher:
        """This agent's Q-network, frozen, as a distillation teacher."""
        from lightning_distill.teachers import Teacher

        return Teacher(copy.deepcopy(self.q_net), self.tasks[0])

    def td_target(self, batch: TensorDict) -> torch.Tensor:
        """r + gamma * (1 - terminal) * Q_target(s', a*), a* by the online net for Double DQN."""
        with torch.no_grad():
            next_obs = batch["next_obs"]
            next_q = self.target_net(next_obs)
            if self.hparams.double_dqn:
                best = self.q_net(next_obs).argmax(dim=-1, keepdim=True)
                next_v = next_q.gather(1, best).squeeze(1)
            else:
                next_v = next_q.max(dim=-1).values
            reward = batch["reward"].float()
            if self.hparams.clip_rewards:
                reward = reward.sign()
            not_done = 1.0 - batch["terminated"].float()
            return reward + self.hparams.gamma * not_done * next_v

    def training_step(self, batch: TensorDict, batch_idx: int) -> torch.Tensor:
        q = self.q_net(batch["obs"]).gather(1, batch["action"].long().unsqueeze(1)).squeeze(1)
        loss = F.huber_loss(q, self.td_target(batch), delta=self.hparams.huber_delta)
        self.check_finite(loss)
        if self.global_step % self.hparams.target_update_interval == 0:
            self.target_net.load_state_dict(self.q_net.state_dict())
        if self.should_log():
            self.log_dict(
                {"train/loss": loss, "train/q_mean": q.mean()}, batch_size=len(q), prog_bar=True, sync_dist=True
            )
            self.log_episode_stats()
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.q_net.parameters(), lr=self.hparams.lr)
