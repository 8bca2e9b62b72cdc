"""On-policy rollouts for PPO and REPAINT: one iteration = one rollout = one Lightning epoch.

Each iteration ``k`` the data module yields one TensorDict:

- ``student`` [n_steps, num_envs]: the student's own samples ``S`` (``obs``, ``action``,
  ``log_prob`` under the policy that acted, ``reward``, ``next_obs``, ``terminated``,
  ``truncated``), plus the teacher's distribution on those states (``teacher_logits`` or
  ``teacher_mean`` / ``teacher_log_std``) when the module kickstarts;
- ``teacher`` [teacher_steps, num_envs], when the module uses instance transfer: ``S~``,
  trajectories of the *teacher's* policy in the *target* environment, with the target's
  rewards and the teacher's ``log_prob`` of its own actions (the denominator of REPAINT's
  off-policy ratio).

Advantages are not computed here: they need the student's *current* critic, which is the
module's (``modules/ppo.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from lightning_distill.checks import AT_LEAST_1, Range, check_ranges
from lightning_distill.contracts import TransferLearner, require
from lightning_distill.data.base import RLDataModule, _as_is, ready
from lightning_distill.envs import VecEnv, make_vec_env
from lightning_distill.errors import ConfigError
from lightning_distill.evaluation import EvalBudget
from lightning_distill.policies import ActionDist
from lightning_distill.seeding import TEACHER_SEED_OFFSET
from lightning_distill.tasks import Task

if TYPE_CHECKING:
    from lightning_distill.teachers import PolicyTeacher


class EnvRunner:
    """One env stream, stepped by whatever policy a rollout is given: samples its actions, clips
    continuous ones to the env's bounds (not the actor network: that is ``policies.ActorCritic``)."""

    def __init__(self, task: Task, num_envs: int, seed: int) -> None:
        self.task = task
        self.env: VecEnv = make_vec_env(task, num_envs, seed=seed)
        self.obs = self.env.reset()
        self.generator = torch.Generator().manual_seed(seed)
        self.bounds = None if task.discrete else tuple(np.asarray(b, dtype=np.float32) for b in task.action_bounds)

    def rollout(self, distribution, steps: int, device: torch.device) -> dict[str, torch.Tensor]:
        """``steps`` steps of every env, actions sampled from ``distribution(obs) -> ActionDist``."""
        keys = ("obs", "action", "log_prob", "reward", "next_obs", "terminated", "truncated")
        out: dict[str, list] = {k: [] for k in keys}
        for _ in range(steps):
            obs = torch.as_tensor(self.obs)
            with torch.inference_mode():
                dist: ActionDist = distribution(obs.to(device))
                action = dist.sample(self.generator if device.type == "cpu" else None)
                log_prob = dist.log_prob(action)
            env_action = action.cpu().numpy()
            if self.bounds is not None:
                env_action = np.clip(env_action, *self.bounds)
            step = self.env.step(env_action)
            for key, value in (
                ("obs", obs),
                ("action", action.cpu()),
                ("log_prob", log_prob.cpu()),
                ("reward", step.reward),
                ("next_obs", step.next_obs),
                ("terminated", step.terminated),
                ("truncated", step.truncated),
            ):
                out[key].append(torch.as_tensor(value))
            self.obs = step.obs
        return {k: torch.stack(v) for k, v in out.items()}

    def close(self) -> None:
        self.env.close()


class RolloutDataModule(RLDataModule):
    """The target task's envs, and the teacher's acting side, for ``modules.PPO``.

    Args:
        task: the target task (add ``reward: <variant>`` to train on a source task).
        num_envs: parallel environments of the student (and of the teacher's rollouts).
        n_steps: steps per env in each iteration's student rollout.
        teacher: the teacher, as for ``load_teacher``: a checkpoint path, ``bundled:<name>``,
            an SB3 PPO ``.zip``, a CleanRL ppo ``.cleanrl_model`` or ``hf:<org>/<repo>[/<file>]``.
            Needed when ``model.method`` is ``ks``, ``it`` or ``repaint``.
        teacher_steps: steps per env of the teacher's rollout each iteration (instance
            transfer); ``None``: ``n_steps``.
        return_window: ``train/return`` is the mean return of the student's last this many
            training episodes (the moving average REPAINT's ``K`` is measured on).
    """

    RANGES: ClassVar[dict[str, Range]] = RLDataModule.RANGES | {
        "num_envs": AT_LEAST_1,
        "n_steps": AT_LEAST_1,
        "teacher_steps": AT_LEAST_1,
        "return_window": AT_LEAST_1,
    }

    def __init__(
        self,
        task: Task,
        num_envs: int = 1,
        n_steps: int = 2048,
        teacher: str | None = None,
        teacher_steps: int | None = None,
        return_window: int = 10,
        evaluation: EvalBudget = EvalBudget(),
        seed: int = 0,
    ) -> None:
        check_ranges("data.init_args", self.RANGES, locals())
        super().__init__(evaluation=evaluation, seed=seed)
        self.task = Task.coerce(task)
        self.num_envs = num_envs
        self.n_steps = n_steps
        self.teacher_ref = teacher
        self.teacher_steps = n_steps if teacher_steps is None else teacher_steps
        self.teacher: PolicyTeacher | None = None
        self.student_runner: EnvRunner | None = None
        self.teacher_runner: EnvRunner | None = None
        self.teacher_returns: list[float] = []  # the teacher's target-task episodes of the last iteration
        self.recent_returns: deque[float] = deque(maxlen=return_window)  # the student's last episodes

    @property
    def tasks(self) -> list[Task]:
        return [self.task]

    @property
    def learner(self) -> TransferLearner:
        """The module being trained, as the PPO module it must be."""
        return require(self.acting_module, TransferLearner, "RolloutDataModule", "use lightning_distill.modules.PPO")

    def setup(self, stage: str) -> None:
        if stage != "fit" or self.student_runner is not None:
            return
        module = self.learner
        needs_teacher = module.kickstarts or module.transfers_instances
        if needs_teacher and self.teacher_ref is None:
            raise ConfigError(
                f"model.method {module.method!r} needs a teacher: set data.teacher "
                "(a checkpoint path, bundled:<name>, an SB3 PPO .zip or hf:<org>/<repo>)"
            )
        if self.teacher_ref is not None and needs_teacher:
            self.teacher = self._load_policy_teacher(self.teacher_ref).to(self.acting_module.device)
        self.student_runner = EnvRunner(self.task, self.num_envs, self.rank_seed)
        if module.transfers_instances:
            self.teacher_runner = EnvRunner(self.task, self.num_envs, self.rank_seed + TEACHER_SEED_OFFSET)

    def _load_policy_teacher(self, ref: str) -> PolicyTeacher:
        from lightning_distill.teachers import PolicyTeacher, load_teacher

        teacher = load_teacher(ref, self.task)
        if not isinstance(teacher, PolicyTeacher):
            raise ConfigError(
                f"data.teacher {ref!r} is a Q-network teacher; REPAINT needs a policy "
                "(actor-critic) teacher: a PPO checkpoint of this project or an SB3 PPO .zip"
            )
        return teacher

    def teardown(self, stage: str) -> None:
        if stage == "fit":
            for actor in (self.student_runner, self.teacher_runner):
                if actor is not None:
                    actor.close()
            self.student_runner = self.teacher_runner = None

    def next_iteration(self) -> Any:
        """Collect this iteration's rollouts with the module's current policy (and the teacher's)."""
        from tensordict import TensorDict

        module, device = self.learner, self.acting_module.device
        runner = ready(self.student_runner, "the student's envs")
        student = runner.rollout(module.actor_critic.distribution, self.n_steps, device)
        self.env_steps += self.n_steps * self.num_envs
        finished = runner.env.episodes.pop_finished()
        self.recent_returns.extend(ret for _, ret, _ in finished)
        self.record_episodes(self.task, finished)
        if module.kickstarts:
            student.update(self._teacher_outputs(student["obs"], device))
        out: dict[str, Any] = {"student": TensorDict(student, batch_size=[self.n_steps, self.num_envs])}
        if self.teacher_runner is not None:
            policy = ready(self.teacher, "the teacher").distribution
            teacher = self.teacher_runner.rollout(policy, self.teacher_steps, device)
            self.teacher_returns = [ret for _, ret, _ in self.teacher_runner.env.episodes.pop_finished()]
            out["teacher"] = TensorDict(teacher, batch_size=[self.teacher_steps, self.num_envs])
        return TensorDict(out, batch_size=[])

    @torch.no_grad()
    def _teacher_outputs(self, obs: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """``pi_T(.|s)`` on the student's states, in one batch: what kickstarting distils."""
        flat = obs.reshape(-1, *obs.shape[2:]).to(device)
        columns = ready(self.teacher, "the teacher").distribution(flat).columns(obs.shape[:2])
        return {key: column.cpu() for key, column in columns.items()}

    def state_dict(self) -> dict:
        return super().state_dict() | {"recent_returns": list(self.recent_returns)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.recent_returns.extend(state.get("recent_returns", []))
        # resumed actors sample from a stream of their own (rank and step count), not the start's again
        for offset, actor in ((0, self.student_runner), (TEACHER_SEED_OFFSET, self.teacher_runner)):
            if actor is not None:
                actor.generator.manual_seed(self.rank_seed + offset + self.env_steps)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(OneIteration(self), batch_size=None, num_workers=0, collate_fn=_as_is)


class OneIteration(IterableDataset):
    """One rollout per pass, so that a Lightning epoch is a PPO iteration and
    ``trainer.max_epochs`` is the number of iterations ``K``."""

    def __init__(self, datamodule: RolloutDataModule) -> None:
        self.datamodule = datamodule

    def __iter__(self) -> Iterator:
        yield self.datamodule.next_iteration()
