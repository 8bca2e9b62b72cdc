"""Experience for multi-task distillation (spec section 5): the student acts, the teacher labels.

Every task has its own envs and replay memory. The student acts epsilon-greedy over the
task's actions; each experience is stored with the teacher's targets ``teacher_logits`` (a
Q-teacher's Q-values, a policy teacher's logits) and its state value ``V(s)`` (``max_a Q_T(s, a)``
for a Q-teacher, the critic's ``V_T(s)`` for a policy), computed once, at insertion. Every ``train_freq`` steps of every
task, one minibatch per task is sampled and the list of them is one training batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from jsonargparse import lazy_instance
from torch.utils.data import DataLoader

from lightning_distill.checks import AT_LEAST_1, NON_NEGATIVE, Range, check_ranges
from lightning_distill.contracts import FrozenTeacher, MultiTaskActor, require
from lightning_distill.data.base import RLDataModule, Stream, _as_is, learning_started, ready
from lightning_distill.errors import ConfigError
from lightning_distill.evaluation import EvalBudget, epsilon_greedy, to_host
from lightning_distill.networks import acting_kernels
from lightning_distill.replay import Replay, UniformReplay
from lightning_distill.replay.memory import TaskMemory
from lightning_distill.tasks import Task

if TYPE_CHECKING:
    from lightning_distill.envs import VecEnv


class DistillDataModule(RLDataModule):
    """Tasks, their teachers, their envs and replay memories, as an endless stream of batches.

    Args:
        tasks: the tasks to distil, in the order the student indexes them.
        teachers: one teacher per task, in the same order: a checkpoint of this project (DQN or
            PPO), ``bundled:<name>`` (see ``lightning_distill.teachers.bundled_teachers``), a
            Stable-Baselines3 ``.zip`` (DQN, PPO, A2C), a CleanRL ``.cleanrl_model`` (DQN, PPO),
            or ``hf:<org>/<repo>[/<file>]`` for one of those on the Hugging Face Hub. Q-value and
            policy teachers can be mixed, one kind per task.
        replay: the replay kind (``class_path``), one memory per task (the paper's baseline:
            uniform, 500,000 experiences).
        num_envs: envs per task.
        batch_size: minibatch size per task (the paper: 32).
        learning_starts: experiences per task before the first update.
        train_freq: env steps per task (per env) between two updates (the paper: 4).
        checkpoint_replay: store every task's replay memory (experiences, H-PR partitions,
            ranks and priorities) in each checkpoint, so that a resumed run samples from the
            same memory. Checkpoints hold the stored experiences only.
        async_envs: step gymnasium tasks' envs (MinAtar, classic control) in worker processes,
            one per env, overlapped with the replay writes and the next update, as Atari's envs
            are in ALE's threads either way. In-line gymnasium envs step when waited for. A
            script (not the CLI) that sets it needs an ``if __name__ == "__main__":`` guard:
            the workers start by ``spawn``, which TorchRL selects.
    """

    RANGES: ClassVar[dict[str, Range]] = RLDataModule.RANGES | {
        "num_envs": AT_LEAST_1,
        "batch_size": AT_LEAST_1,
        "learning_starts": NON_NEGATIVE,
        "train_freq": AT_LEAST_1,
    }

    def __init__(
        self,
        tasks: Sequence[Task],
        teachers: Sequence[str],
        replay: Replay = lazy_instance(UniformReplay, capacity=500_000),
        num_envs: int = 1,
        batch_size: int = 32,
        learning_starts: int = 10_000,
        train_freq: int = 4,
        checkpoint_replay: bool = False,
        async_envs: bool = False,
        evaluation: EvalBudget = EvalBudget(),
        seed: int = 0,
    ) -> None:
        check_ranges("data.init_args", self.RANGES, locals())
        super().__init__(evaluation=evaluation, seed=seed)
        self._tasks = [Task.coerce(t) for t in tasks]
        if not self._tasks:
            raise ConfigError("data.init_args.tasks is empty: give at least one task to distil")
        if len(teachers) != len(self._tasks):
            raise ConfigError(
                f"data.init_args.teachers has {len(teachers)} entries for {len(self._tasks)} tasks "
                f"{[t.id for t in self._tasks]}: give one teacher per task, in the same order"
            )
        self.teacher_refs = [str(t) for t in teachers]
        self.replay = replay or UniformReplay()
        self.num_envs = num_envs
        self.batch_size = batch_size
        self.learning_starts = learning_starts
        self.train_freq = train_freq
        self.checkpoint_replay = checkpoint_replay
        self.async_envs = async_envs
        self._stepping = False  # the envs are stepping the last actions sent
        self.teachers: list[FrozenTeacher] | None = None
        self.envs: list[VecEnv] | None = None
        self.memories: list[TaskMemory] = []
        self._obs: list[np.ndarray] = []
        self._new_episode: list[np.ndarray] = []

    @property
    def tasks(self) -> list[Task]:
        return self._tasks

    def load_teachers(self) -> list[FrozenTeacher]:
        """The frozen teachers, loaded once (also used by the module and the callbacks)."""
        if self.teachers is None:
            from lightning_distill.teachers import load_teacher

            teachers: list[FrozenTeacher] = []
            for ref, task in zip(self.teacher_refs, self._tasks, strict=True):
                teacher = load_teacher(ref, task)
                if not task.discrete:
                    raise ConfigError(
                        f"task {task.id!r} (teacher {ref!r}) has continuous actions: distillation's "
                        "students choose among discrete actions"
                    )
                teachers.append(teacher)
            self.teachers = teachers
        return self.teachers

    def setup(self, stage: str) -> None:
        self.load_teachers()
        if stage == "fit" and self.envs is None:
            from lightning_distill.envs import make_vec_env

            seed = self.rank_seed
            self._rng = np.random.default_rng(seed)
            self.envs = [
                make_vec_env(t, self.num_envs, seed=seed + 1000 * i, asynchronous=self.async_envs)
                for i, t in enumerate(self._tasks)
            ]
            self.memories = [
                TaskMemory(
                    self.replay.make_buffer(task, teacher, self.batch_size, seed=seed + 1000 * i),
                    task,
                    self.batch_size,
                    self.num_envs,
                )
                for i, (task, teacher) in enumerate(zip(self._tasks, self.load_teachers(), strict=True))
            ]
            self._obs = [env.reset() for env in self.envs]
            self._new_episode = [np.ones(self.num_envs, dtype=bool) for _ in self.envs]
            self._stepping = False

    def teardown(self, stage: str) -> None:
        if stage == "fit" and self.envs is not None:
            self.finish_env_steps()  # worker processes close cleanly with no step in flight
            for env in self.envs:
                env.close()
            self.envs, self._stepping = None, False

    @torch.inference_mode()
    def collect(self, steps: int) -> None:
        """Step every task's envs ``steps`` times with the student, storing each experience
        with the teacher's targets and ``V``.

        Each step is one student call over all tasks' observations (the layers tasks share run
        once), the teachers' calls, and one copy to the host. Envs that step in the background
        (ALE's; gymnasium's with ``async_envs``) do so while the step's experiences are written,
        and the last step goes on through the update that follows; the next call waits for it
        first. Lightning fetches the next batch before the current update, so the student that
        acts is one update old, overlap or not (tested)."""
        actor = require(
            self.acting_module, MultiTaskActor, "DistillDataModule", "use lightning_distill.modules.Distillation"
        )
        device = actor.device
        teachers, envs = self.load_teachers(), ready(self.envs, "the envs")
        teachers = self.teachers = [teacher.on_device(device) for teacher in teachers]
        for _ in range(steps):
            self.finish_env_steps()
            obs = [torch.as_tensor(o, device=device) for o in self._obs]
            with acting_kernels(self._tasks, self.num_envs):
                greedy, labels = act(actor, teachers, obs)
            greedy_host, *labels_host = to_host([greedy, *(t for pair in labels for t in pair)])
            actions = greedy_host.numpy().reshape(len(self._tasks), self.num_envs)
            for i, (task, env) in enumerate(zip(self._tasks, envs, strict=True)):
                env.step_async(epsilon_greedy(actions[i], self.epsilon, task.num_actions, self._rng))
            self._stepping = True
            for i, memory in enumerate(self.memories):
                memory.add(self._obs[i], labels_host[2 * i], labels_host[2 * i + 1], self._new_episode[i])
            self.env_steps += self.num_envs * len(self._tasks)

    def finish_env_steps(self) -> None:
        """Wait for the envs' step in progress, if any: the next observations, episode ends
        and finished episodes' returns."""
        if not self._stepping:
            return
        self._stepping = False  # an env that fails here is not waited for again at teardown
        for i, (task, env) in enumerate(zip(self._tasks, ready(self.envs, "the envs"), strict=True)):
            step = env.step_wait()
            self._obs[i] = step.obs
            self._new_episode[i] = step.terminated | step.truncated
            finished = env.episodes.pop_finished()
            if finished:
                self.record_episodes(task, finished)

    def learning_started(self) -> bool:
        """Every task's memory holds what the first update needs (``data.base.learning_started``)."""
        return all(learning_started(len(m), self.learning_starts, self.batch_size) for m in self.memories)

    def sample(self) -> list:
        """One minibatch per task (TensorDicts with obs, teacher_logits, value, index,
        index_generation, weight)."""
        return [memory.sample() for memory in self.memories]

    def update_priority(
        self, task_index: int, index: torch.Tensor, generation: torch.Tensor, priority: torch.Tensor
    ) -> None:
        self.memories[task_index].update_priority(index, generation, priority)

    def state_dict(self) -> dict:
        """The base's counters, each sampler's update count (H-PR's beta anneals with it) and,
        with ``checkpoint_replay``, the memories themselves."""
        state = super().state_dict()
        state["samples"] = [memory.hpr.samples for memory in self.memories]
        if self.checkpoint_replay:
            state["memories"] = [memory.state_dict() for memory in self.memories]
        return state

    def load_state_dict(self, state: dict) -> None:
        """Called by Lightning after ``setup`` when a fit resumes: the memories exist and are
        refilled (or, without a stored replay, start empty with the beta clock restored)."""
        super().load_state_dict(state)
        memories = state.get("memories")
        if memories is not None and len(memories) != len(self.memories):
            raise ConfigError(f"the checkpoint holds {len(memories)} replay memories for {len(self.memories)} tasks")
        for i, memory in enumerate(self.memories):
            if memories is not None:
                memory.load_state_dict(memories[i])
            else:
                memory.hpr.samples = int(state["samples"][i])
            # every rank resumes from rank 0's memory: each samples it with its own stream
            memory.hpr.rng = np.random.default_rng([self.rank_seed + 1000 * i, self.env_steps])
        if memories is None and self.checkpoint_replay and self.memories:
            from lightning.pytorch.utilities import rank_zero_warn

            rank_zero_warn(
                "the checkpoint holds no replay (it was written with checkpoint_replay: false): "
                "the memories fill again from empty"
            )

    def stream(self) -> Iterator:
        while True:
            self.collect(self.train_freq)
            if self.learning_started():
                yield self.sample()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(Stream(self.stream), batch_size=None, num_workers=0, collate_fn=_as_is)


def act(
    actor: MultiTaskActor, teachers: Sequence[FrozenTeacher], obs: list[torch.Tensor]
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The student's greedy actions in every task (one call) and each teacher's targets and V."""
    labels = [teacher.targets_and_value(o) for teacher, o in zip(teachers, obs, strict=True)]
    return torch.cat(actor.act_tasks(range(len(obs)), obs)), labels
