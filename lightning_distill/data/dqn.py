"""Online experience for a DQN: act in the task's envs, store transitions, sample minibatches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader

from lightning_distill.checks import AT_LEAST_1, NON_NEGATIVE, Range, check_ranges
from lightning_distill.data.base import RLDataModule, Stream, _as_is, learning_started, ready
from lightning_distill.envs import VecEnv, make_vec_env
from lightning_distill.evaluation import EvalBudget, epsilon_greedy
from lightning_distill.replay.memory import TransitionMemory
from lightning_distill.tasks import Task


class DQNDataModule(RLDataModule):
    """One task's envs and a uniform replay memory, served as an endless stream of minibatches.

    Every ``train_freq`` env steps (per env) one minibatch is yielded, once the memory holds
    ``learning_starts`` transitions. The policy is the module being trained
    (``trainer.lightning_module``, in the main process: ``num_workers=0``); Lightning fetches the
    next batch before the current update, so acting lags learning by one update.

    Args:
        task: the task to learn.
        num_envs: parallel environments.
        buffer_size: replay capacity in transitions (FIFO).
        batch_size: minibatch size.
        learning_starts: transitions to collect before the first update.
        train_freq: env steps per env between two updates.
        checkpoint_replay: store the replay memory in each checkpoint (a resumed run then
            samples from the same transitions): the transitions held, not the capacity.
    """

    RANGES: ClassVar[dict[str, Range]] = RLDataModule.RANGES | {
        "num_envs": AT_LEAST_1,
        "buffer_size": AT_LEAST_1,
        "batch_size": AT_LEAST_1,
        "learning_starts": NON_NEGATIVE,
        "train_freq": AT_LEAST_1,
    }

    def __init__(
        self,
        task: Task,
        num_envs: int = 1,
        buffer_size: int = 100_000,
        batch_size: int = 32,
        learning_starts: int = 1_000,
        train_freq: int = 1,
        checkpoint_replay: bool = False,
        evaluation: EvalBudget = EvalBudget(),
        seed: int = 0,
    ) -> None:
        check_ranges("data.init_args", self.RANGES, locals())
        super().__init__(evaluation=evaluation, seed=seed)
        self.task = Task.coerce(task)
        self.num_envs = num_envs
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.learning_starts = learning_starts
        self.train_freq = train_freq
        self.checkpoint_replay = checkpoint_replay
        self.env: VecEnv | None = None
        self.memory: TransitionMemory | None = None  # made in setup
        self._obs: np.ndarray | None = None
        self._new_episode = np.ones(num_envs, dtype=bool)

    @property
    def tasks(self) -> list[Task]:
        return [self.task]

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.env is None:
            self._rng = np.random.default_rng(self.rank_seed)
            self.env = make_vec_env(self.task, self.num_envs, seed=self.rank_seed)
            self.memory = TransitionMemory(self.task, self.buffer_size, self.batch_size, self.num_envs, self.rank_seed)
            self._obs = self.env.reset()
            self._new_episode = np.ones(self.num_envs, dtype=bool)  # fresh envs: every stack starts an episode

    def teardown(self, stage: str) -> None:
        if stage == "fit" and self.env is not None:
            self.env.close()
            self.env = None

    def collect(self, steps: int) -> None:
        """Step every env ``steps`` times with the current module, epsilon-greedy, and store."""
        module = self.acting_module
        policy = module.policy(0)
        env, memory = ready(self.env, "the envs"), ready(self.memory, "the replay memory")
        for _ in range(steps):
            obs = ready(self._obs, "the observations")
            with torch.inference_mode():
                greedy = policy(torch.as_tensor(obs).to(module.device)).cpu().numpy()
            actions = epsilon_greedy(greedy, self.epsilon, self.task.num_actions, self._rng)
            step = env.step(actions)
            memory.add_transitions(obs, actions, step.reward, step.next_obs, step.terminated, self._new_episode)
            self._obs, self._new_episode = step.obs, step.terminated | step.truncated
            self.env_steps += self.num_envs
            finished = env.episodes.pop_finished()
            if finished:
                self.record_episodes(self.task, finished)

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.checkpoint_replay:
            state["replay"] = ready(self.memory, "the replay memory").state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "replay" in state:
            ready(self.memory, "the replay memory").load_state_dict(state["replay"])

    def stream(self) -> Iterator:
        while True:
            self.collect(self.train_freq)
            memory = ready(self.memory, "the replay memory")
            if learning_started(len(memory), self.learning_starts, self.batch_size):
                yield memory.sample()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(Stream(self.stream), batch_size=None, num_workers=0, collate_fn=_as_is)
