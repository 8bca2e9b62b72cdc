"""PPO, and REPAINT on top of it (Tao et al. 2021; spec ``repaint.md``), in one module.

One ``training_step`` is one REPAINT iteration ``k`` (spec section 4) on the rollouts of
``data.RolloutDataModule``:

1. advantages of the student's samples ``S`` (GAE, the current critic);
2. with instance transfer: advantages of the teacher's samples ``S~`` from the same critic,
   and the kept subset (``A~ >= zeta``, or the top X%);
3. ``epochs`` passes of ``minibatches`` Adam steps, each on
   ``-(alpha_1 L_rep + alpha_2 L_ins) + c_V L_V`` where
   ``L_rep = L_clip + c_H H(pi_theta) - beta_k H(pi_T || pi_theta)`` on ``S``,
   ``L_ins`` is the clipped surrogate with ``rho = pi_theta / pi_T`` on the kept ``S~``, and
   the critic loss ``L_V`` sees ``S`` only.

``method`` switches the transfer terms: ``baseline`` (plain PPO: how actor-critic teachers are
trained), ``ks`` (kickstarting), ``it`` (instance transfer), ``repaint`` (both).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.core.optimizer import LightningOptimizer
from tensordict import TensorDict

from lightning_distill.checks import AT_LEAST_1, FINITE, FRACTION, NON_NEGATIVE, POSITIVE, UNIT, Range, check_ranges
from lightning_distill.contracts import RolloutSource
from lightning_distill.errors import ConfigError
from lightning_distill.evaluation import Policy
from lightning_distill.modules.base import RLModule
from lightning_distill.networks import EXTRACTOR_HIDDEN
from lightning_distill.normalization import RewardScaler
from lightning_distill.policies import ActionDist, ActorCritic
from lightning_distill.ppo_losses import (
    BETA_SCHEDULES,
    clipped_surrogate,
    gae,
    kickstarting_loss,
    kickstarting_weight,
    select_by_advantage,
)
from lightning_distill.tasks import Task
from lightning_distill.upstream import datamodule_of

if TYPE_CHECKING:
    from lightning_distill.teachers import PolicyTeacher

METHODS = {"baseline": (False, False), "ks": (True, False), "it": (False, True), "repaint": (True, True)}
KICKSTART_TARGETS = ("executed", "raw")


class PPO(RLModule):
    """PPO actor-critic with REPAINT's kickstarting and advantage-filtered instance transfer.

    Args:
        tasks: exactly one task (linked from ``data.task`` by the CLI).
        method: ``baseline``, ``ks``, ``it`` or ``repaint`` (spec section 5).
        lr: Adam learning rate.
        anneal_lr: decay the learning rate linearly from ``lr`` to 0 over ``trainer.max_epochs``
            iterations (CleanRL's ``anneal_lr``; what most published PPO Atari/MinAtar scores use).
        gamma: discount.
        gae_lambda: GAE's lambda.
        clip: PPO's epsilon, for both the on-policy and the off-policy ratio.
        epochs: passes over each rollout.
        minibatches: Adam steps per pass (the rollout is split into this many minibatches).
        ent_coef: weight ``c_H`` of the entropy bonus.
        vf_coef: weight ``c_V`` of the value loss.
        max_grad_norm: gradients are clipped to this norm (Lightning's ``clip_gradients``).
        normalize_advantage: standardise the student's advantages per minibatch; the teacher's
            kept advantages are divided by the same rollout's standard deviation (not
            centred: centring would turn kept samples into negative ones).
        extractor_hidden: actor and critic MLP widths (vector observations).
        head_hidden: FC widths over the shared conv features (image observations).
        log_std_init: initial log std of a Gaussian policy.
        normalize_obs: normalise observations by their running mean and variance (SB3's
            ``VecNormalize``; vector observations). The statistics are a layer of the actor-critic,
            so they are in checkpoints and a teacher made from this agent applies them; they are
            updated with each rollout after its update (the first rollout acts on raw inputs).
        normalize_reward: divide rewards by the running std of the discounted return (SB3's
            ``VecNormalize``; not centred), the teacher's instance-transfer samples by the same.
            ``train/return`` and the evaluation stay in the env's own rewards.
        clip_obs: clip of the normalised observations.
        clip_reward: clip of the scaled rewards.
        beta_0: kickstarting weight at iteration 0.
        beta_schedule: ``exponential`` (``beta_0 * beta_decay^k``) or ``linear`` (to 0 at
            ``beta_iterations``).
        beta_decay: per-iteration factor of the exponential schedule.
        beta_iterations: iterations to 0 of the linear schedule.
        kickstart_target: what the student's Gaussian is kickstarted towards: ``executed`` (the
            teacher's distribution recentred on the mean of the action the env receives once it
            is clipped to the bounds: a teacher whose mean saturates far outside them is copied
            at the bound, not outside it; ``policies.Gaussian.executed``) or ``raw`` (the
            teacher's Gaussian as it is, the paper's formula). The same for a teacher whose mean is
            a few stds inside the bounds, and for discrete actions.
        zeta: keep teacher samples with advantage ``>= zeta``.
        top_fraction: instead of ``zeta``, keep this share of teacher samples with the largest
            advantages (e.g. 0.2 keeps the top 20%).
        alpha_1: weight of ``L_rep`` (the on-policy objective).
        alpha_2: weight of ``L_ins`` (the instance-transfer objective).
        target_score: the target score of REPAINT's metric (spec section 6): the run reports
            ``K``, the first iteration whose ``train/return`` reaches it (``None``: no target).
    """

    RANGES: ClassVar[dict[str, Range]] = {
        "lr": POSITIVE,
        "gamma": UNIT,
        "gae_lambda": UNIT,
        "clip": POSITIVE,
        "epochs": AT_LEAST_1,
        "minibatches": AT_LEAST_1,
        "ent_coef": NON_NEGATIVE,
        "vf_coef": NON_NEGATIVE,
        "max_grad_norm": POSITIVE,
        "extractor_hidden": AT_LEAST_1,
        "head_hidden": AT_LEAST_1,
        "log_std_init": FINITE,
        "clip_obs": POSITIVE,
        "clip_reward": POSITIVE,
        "beta_0": NON_NEGATIVE,
        "beta_decay": FRACTION,
        "beta_iterations": AT_LEAST_1,
        "zeta": FINITE,
        "top_fraction": FRACTION,
        "alpha_1": NON_NEGATIVE,
        "alpha_2": NON_NEGATIVE,
        "target_score": FINITE,
    }

    def __init__(
        self,
        tasks: Sequence[Task | Mapping[str, Any]] | None = None,
        method: str = "baseline",
        lr: float = 3e-4,
        anneal_lr: bool = False,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip: float = 0.2,
        epochs: int = 10,
        minibatches: int = 32,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        normalize_advantage: bool = True,
        extractor_hidden: Sequence[int] = EXTRACTOR_HIDDEN,
        head_hidden: Sequence[int] = (512,),
        log_std_init: float = 0.0,
        normalize_obs: bool = False,
        normalize_reward: bool = False,
        clip_obs: float = 10.0,
        clip_reward: float = 10.0,
        beta_0: float = 1.0,
        beta_schedule: str = "exponential",
        beta_decay: float = 0.95,
        beta_iterations: int = 100,
        kickstart_target: str = "executed",
        zeta: float = 0.0,
        top_fraction: float | None = None,
        alpha_1: float = 1.0,
        alpha_2: float = 1.0,
        target_score: float | None = None,
    ) -> None:
        check_ranges("model.init_args", self.RANGES, locals())
        super().__init__(tasks)
        task = self.require_one_task()
        if method not in METHODS:
            raise ConfigError(f"unknown method {method!r}; valid: {list(METHODS)}")
        if beta_schedule not in BETA_SCHEDULES:
            raise ConfigError(f"unknown beta_schedule {beta_schedule!r}; valid: {list(BETA_SCHEDULES)}")
        if kickstart_target not in KICKSTART_TARGETS:
            raise ConfigError(f"unknown kickstart_target {kickstart_target!r}; valid: {list(KICKSTART_TARGETS)}")
        self.save_hyperparameters(ignore=["tasks"])
        self._save_task_hparams()
        self.automatic_optimization = False
        self.kickstarts, self.transfers_instances = METHODS[method]
        self.actor_critic = ActorCritic(
            task,
            extractor_hidden=tuple(extractor_hidden),
            head_hidden=tuple(head_hidden),
            log_std_init=log_std_init,
            normalize_obs=normalize_obs,
            clip_obs=clip_obs,
        )
        self.reward_scaler = RewardScaler(gamma, clip_reward) if normalize_reward else None
        self.record = TransferRecord()

    # -- acting --------------------------------------------------------------------------

    def policy(self, task_index: int = 0) -> Policy:
        """The most likely action: greedy for categorical, the clipped mean for Gaussian."""
        return self.actor_critic.act

    def as_teacher(self) -> PolicyTeacher:
        """This agent's actor-critic, frozen, as a REPAINT teacher."""
        from lightning_distill.teachers import PolicyTeacher

        return PolicyTeacher(copy.deepcopy(self.actor_critic), self.tasks[0])

    # -- one iteration -------------------------------------------------------------------

    @property
    def method(self) -> str:
        """``baseline``, ``ks``, ``it`` or ``repaint``."""
        return str(self.hparams.method)

    @property
    def iteration(self) -> int:
        """``k``: one Lightning epoch per rollout (``data.RolloutDataModule``)."""
        return self.current_epoch

    def beta_k(self) -> float:
        if not self.kickstarts:
            return 0.0
        hp = self.hparams
        return kickstarting_weight(self.iteration, hp.beta_0, hp.beta_schedule, hp.beta_decay, hp.beta_iterations)

    @torch.no_grad()
    def advantages(self, rollout: TensorDict) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE of a [T, N] rollout under the student's current critic, and the critic's V(s)."""
        obs, next_obs = rollout["obs"], rollout["next_obs"]
        values = self.actor_critic.value(torch.cat([obs, next_obs]).flatten(0, 1)).view(2, *obs.shape[:2])
        return gae(
            rollout["reward"],
            values[0],
            values[1],
            rollout["terminated"],
            rollout["truncated"],
            self.hparams.gamma,
            self.hparams.gae_lambda,
        ), values[0]

    def training_step(self, batch: TensorDict, batch_idx: int) -> None:
        hp = self.hparams
        student = batch["student"].to(self.device)
        if self.reward_scaler is not None:  # statistics over every rank's envs, so ranks stay identical
            returns = self.reward_scaler.returns_through(
                student["reward"], student["terminated"] | student["truncated"]
            )
            self.reward_scaler.stats.update(self.gather(returns))
            student["reward"] = self.reward_scaler(student["reward"])
        advantage, value = self.advantages(student)
        samples = student.flatten(0, 1)
        samples["advantage"], samples["return"] = advantage.flatten(), (advantage + value).flatten()
        adv_std = samples["advantage"].std().clamp_min(1e-8) if hp.normalize_advantage else torch.tensor(1.0)
        kept = self.select_teacher_samples(batch, adv_std)
        beta = self.beta_k()
        stats: dict[str, list[torch.Tensor]] = {}
        optimizer = cast(LightningOptimizer, self.optimizers())  # configure_optimizers returns one
        for group in optimizer.param_groups:
            group["lr"] = self.learning_rate()
        n = samples.shape[0]
        n_kept = 0 if kept is None else kept.shape[0]
        for _ in range(hp.epochs):
            # tensor_split, not chunk: exactly ``minibatches`` parts whatever the sizes (chunk
            # returns fewer parts when a size is small, and zip would then drop student minibatches)
            student_parts = torch.randperm(n, device=self.device).tensor_split(hp.minibatches)
            teacher_parts = torch.randperm(n_kept, device=self.device).tensor_split(hp.minibatches)
            for part, teacher_part in zip(student_parts, teacher_parts, strict=True):
                teacher_mb = kept[teacher_part] if kept is not None and len(teacher_part) else None
                loss, parts = self.loss(samples[part], teacher_mb, beta)
                self.check_finite(loss, parts)
                optimizer.zero_grad()
                self.manual_backward(loss)
                self.clip_gradients(
                    optimizer.optimizer, gradient_clip_val=hp.max_grad_norm, gradient_clip_algorithm="norm"
                )
                optimizer.step()
                for key, value_ in parts.items():
                    stats.setdefault(key, []).append(value_)
        if self.actor_critic.obs_normalizer is not None:  # after the update: its log-probs used the old statistics
            self.actor_critic.obs_normalizer.update(self.gather(student["obs"]))  # every rank's: one network
        self.log_iteration(stats, beta, kept, batch)

    def learning_rate(self) -> float:
        """``lr``, or with ``anneal_lr`` ``lr * (1 - k / max_epochs)``: a function of the iteration
        alone, so a resumed run continues the same schedule."""
        hp = self.hparams
        if not hp.anneal_lr:
            return float(hp.lr)
        max_epochs = self.trainer.max_epochs
        if max_epochs is None or max_epochs < 1:
            raise ConfigError(
                f"anneal_lr needs trainer.max_epochs >= 1 (the iterations to anneal over), got {max_epochs}"
            )
        return float(hp.lr) * max(0.0, 1.0 - self.iteration / max_epochs)

    def select_teacher_samples(self, batch: TensorDict, adv_std: torch.Tensor) -> TensorDict | None:
        """Instance transfer's experience selection (spec section 3, steps 3-4) on ``S~``."""
        if not self.transfers_instances:
            return None
        teacher = batch["teacher"].to(self.device)
        if self.reward_scaler is not None:
            teacher["reward"] = self.reward_scaler(teacher["reward"])
        advantage, _ = self.advantages(teacher)
        samples = teacher.flatten(0, 1)
        keep = select_by_advantage(advantage, self.hparams.zeta, self.hparams.top_fraction)
        kept = samples[keep]
        kept["advantage"] = advantage.flatten()[keep] / adv_std
        return kept

    def loss(self, mb: TensorDict, teacher_mb: TensorDict | None, beta: float) -> tuple[torch.Tensor, dict]:
        """``-(alpha_1 L_rep + alpha_2 L_ins) + c_V L_V`` of one minibatch, and its parts (detached)."""
        hp = self.hparams
        dist = self.actor_critic.distribution(mb["obs"])
        log_prob = dist.log_prob(mb["action"])
        advantage = mb["advantage"]
        if hp.normalize_advantage:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        l_clip = clipped_surrogate(log_prob, mb["log_prob"], advantage, hp.clip)
        entropy = dist.entropy().mean()
        l_rep = l_clip + hp.ent_coef * entropy
        # logged as losses (minimised, as CleanRL and TorchRL log them): the negated objectives
        parts = {"loss/policy": -l_clip.detach(), "policy/entropy": entropy.detach()}
        if self.kickstarts:
            teacher = ActionDist.from_columns(mb)
            if hp.kickstart_target == "executed":
                teacher = self.actor_critic.as_executed(teacher)
            l_aux = kickstarting_loss(dist, teacher)
            l_rep = l_rep - beta * l_aux
            parts["loss/kickstart_ce"] = l_aux.detach()
        value_loss = 0.5 * (self.actor_critic.value(mb["obs"]) - mb["return"]).pow(2).mean()
        loss = -hp.alpha_1 * l_rep + hp.vf_coef * value_loss
        if teacher_mb is not None:
            teacher_log_prob = self.actor_critic.distribution(teacher_mb["obs"]).log_prob(teacher_mb["action"])
            l_ins = clipped_surrogate(teacher_log_prob, teacher_mb["log_prob"], teacher_mb["advantage"], hp.clip)
            loss = loss - hp.alpha_2 * l_ins
            parts["loss/instance"] = -l_ins.detach()
        with torch.no_grad():
            log_ratio = log_prob - mb["log_prob"]
            parts["policy/approx_kl"] = ((log_ratio.exp() - 1) - log_ratio).mean()
            parts["policy/clip_fraction"] = ((log_ratio.exp() - 1).abs() > hp.clip).float().mean()
        parts["loss/value"] = value_loss.detach()
        return loss, parts

    def log_iteration(
        self, stats: dict[str, list[torch.Tensor]], beta: float, kept: TensorDict | None, batch: TensorDict
    ) -> None:
        """Per-iteration metrics (logged at the epoch's end: one row per iteration ``k``),
        averaged over DDP ranks (env steps and kept samples summed)."""
        metrics: dict[str, float | torch.Tensor] = {key: torch.stack(values).mean() for key, values in stats.items()}
        metrics["transfer/beta_k"] = beta
        metrics["train/lr"] = self.learning_rate()
        nan = float("nan")
        if kept is not None:
            metrics.setdefault("loss/instance", nan)  # no minibatch had a kept sample
            metrics["transfer/kept"] = float(kept.shape[0])
            metrics["transfer/kept_fraction"] = kept.shape[0] / batch["teacher"].numel()
        datamodule = datamodule_of(self.trainer)
        if isinstance(datamodule, RolloutSource):  # a documented skip: a data module of the user's own
            metrics["train/env_steps"] = float(datamodule.env_steps)
            metrics["train/return"] = _mean(datamodule.recent_returns)
            if kept is not None:
                metrics["transfer/teacher_return"] = _mean(datamodule.teacher_returns)
        if self.actor_critic.log_std is not None:  # a Gaussian policy
            metrics["policy/std"] = self.actor_critic.log_std.exp().mean().detach()
        reduced = self.reduce_across_ranks(metrics, sums=("train/env_steps", "transfer/kept"))
        self.log_dict(reduced, on_step=False, on_epoch=True, batch_size=1, prog_bar=False)
        self.record.update(self.iteration + 1, reduced, self.hparams.target_score)

    def on_fit_end(self) -> None:
        """The run's result in a few lines: final return, ``K`` for the target, transfer figures."""
        from lightning.pytorch.utilities import rank_zero_info

        datamodule = datamodule_of(self.trainer)
        uses_teacher = self.kickstarts or self.transfers_instances
        teacher = datamodule.teacher_ref if uses_teacher and isinstance(datamodule, RolloutSource) else None
        best = max(
            (
                cb.best_model_score
                for cb in self.trainer.checkpoint_callbacks
                if isinstance(cb, ModelCheckpoint) and cb.monitor == "eval/return" and cb.best_model_score is not None
            ),
            default=None,
        )
        rank_zero_info(
            self.record.summary(
                self.tasks[0].label,
                self.method,
                teacher,
                self.hparams.target_score,
                None if best is None else float(best),
            )
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["transfer_record"] = self.record.state_dict()
        if self.reward_scaler is not None and self.reward_scaler.returns is not None:
            checkpoint["reward_scaler_returns"] = self.reward_scaler.returns

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.record.load_state_dict(checkpoint.get("transfer_record", {}))
        if self.reward_scaler is not None:
            self.reward_scaler.returns = checkpoint.get("reward_scaler_returns")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.actor_critic.parameters(), lr=self.hparams.lr, eps=1e-5)


@dataclass
class TransferRecord:
    """What a PPO / REPAINT run reports when it ends (kept in checkpoints: a resumed run reports
    the whole run): iterations, the last ``train/return``, ``K`` (the first iteration whose
    ``train/return`` reached the target), and the transfer figures averaged over iterations."""

    iterations: int = 0
    env_steps: float = 0.0
    final_return: float = math.nan
    k_target: int | None = None
    beta_k: float = math.nan
    kept_fraction_sum: float = 0.0
    transfer_iterations: int = 0
    teacher_return_sum: float = 0.0
    teacher_return_iterations: int = 0  # iterations in which a teacher episode ended

    def update(self, iteration: int, metrics: Mapping[str, float], target: float | None) -> None:
        self.iterations = iteration
        self.env_steps = metrics.get("train/env_steps", self.env_steps)
        self.final_return = metrics.get("train/return", math.nan)
        self.beta_k = metrics.get("transfer/beta_k", math.nan)
        if target is not None and self.k_target is None and self.final_return >= target:
            self.k_target = iteration
        if "transfer/kept_fraction" in metrics:
            self.transfer_iterations += 1
            self.kept_fraction_sum += metrics["transfer/kept_fraction"]
        if math.isfinite(metrics.get("transfer/teacher_return", math.nan)):
            self.teacher_return_iterations += 1
            self.teacher_return_sum += metrics["transfer/teacher_return"]

    def summary(
        self, task: str, method: str, teacher: str | None, target: float | None, best_evaluation: float | None
    ) -> str:
        lines = [
            f"{method} on {task}"
            + (f" from teacher {teacher}" if teacher else "")
            + f": {self.iterations} iteration{'s' * (self.iterations != 1)}, "
            f"{self.env_steps:,.0f} env steps of the student",
            f"  final train/return {self.final_return:.4g}"
            + ("" if best_evaluation is None else f"; best evaluation {best_evaluation:.4g}"),
        ]
        if target is not None:
            reached = f"first reached at iteration K = {self.k_target}" if self.k_target else "not reached"
            lines.append(f"  target {target:g}: {reached}")
        if teacher:
            transfer = f"  transfer: beta_k {self.beta_k:.3g} at the end"
            if self.transfer_iterations:
                transfer += (
                    f"; kept {100 * self.kept_fraction_sum / self.transfer_iterations:.1f}% of the "
                    "teacher's samples (mean over iterations)"
                )
            if self.teacher_return_iterations:
                transfer += (
                    f"; the teacher's return in the target task "
                    f"{self.teacher_return_sum / self.teacher_return_iterations:.4g}"
                )
            lines.append(transfer)
        return "\n".join(lines)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def _mean(values) -> float:
    return sum(values) / len(values) if values else float("nan")
