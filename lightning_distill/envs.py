"""Vectorised environment streams behind one small interface, one class per backend.

``make_vec_env(task, num_envs, seed)`` returns an object with ``reset() -> obs`` and
``step(actions) -> Step``, or the same step in two halves, ``step_async(actions)`` then
``step_wait() -> Step``, so that the caller works while the envs step (ALE's C++ threads, or
gymnasium's worker processes with ``asynchronous=True``). Actions are the task's own (local) action indices. Episodes
reset automatically; ``Step.next_obs`` is the true successor of each transition (the
final observation where an episode ended), ``Step.obs`` is what to act on next.
Observations keep their compact dtype (uint8 frames and channels): the networks scale them.
Rewards are the game's raw rewards; clipping is the learner's choice.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass

import gymnasium
import numpy as np

from lightning_distill.errors import ConfigError
from lightning_distill.tasks import ATARI_FRAME_SKIP, Task, make_gym_env


@dataclass
class Step:
    obs: np.ndarray  # observation to act on next (already reset where an episode ended)
    reward: np.ndarray  # float32 [num_envs]
    terminated: np.ndarray  # bool [num_envs]
    truncated: np.ndarray  # bool [num_envs]
    final_obs: np.ndarray | None = None  # [num_done, ...] last observations of ended episodes

    @property
    def next_obs(self) -> np.ndarray:
        """Successor state of each transition: ``obs``, with the final observation where an
        episode ended. Built on demand, so acting-only loops (evaluation) never copy frames."""
        if self.final_obs is None:
            return self.obs
        next_obs = self.obs.copy()
        next_obs[self.terminated | self.truncated] = self.final_obs
        return next_obs


class EpisodeTracker:
    """Sums rewards per env and keeps the returns and lengths of finished episodes."""

    def __init__(self, num_envs: int) -> None:
        self._return = np.zeros(num_envs, dtype=np.float64)
        self._length = np.zeros(num_envs, dtype=np.int64)
        self.finished: list[tuple[int, float, int]] = []  # (env index, return, length)

    def update(self, reward: np.ndarray, done: np.ndarray) -> None:
        self._return += reward
        self._length += 1
        if done.any():
            for i in np.flatnonzero(done):
                self.finished.append((int(i), float(self._return[i]), int(self._length[i])))
            self._return[done] = 0.0
            self._length[done] = 0

    def pop_finished(self) -> list[tuple[int, float, int]]:
        finished, self.finished = self.finished, []
        return finished


class VecEnv(ABC):
    """Common bookkeeping: episode statistics and the step count."""

    task: Task
    num_envs: int

    def __init__(self, task: Task, num_envs: int, seed: int) -> None:
        if num_envs < 1:
            raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
        self.task, self.num_envs, self.seed = task, num_envs, seed
        self._pending: np.ndarray | None = None  # actions step_async left for step_wait
        self.episodes = EpisodeTracker(num_envs)

    def _record(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
        """Track episodes; returns which envs finished an episode (data modules count steps)."""
        done = terminated | truncated
        self.episodes.update(reward, done)
        return done

    @abstractmethod
    def reset(self) -> np.ndarray:
        """Reset every env with the stream's seed; the first observations."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> Step:
        """Step every env with the task's own action indices."""

    def step_async(self, actions: np.ndarray) -> None:
        """Start ``step(actions)``; ``step_wait`` returns it. Backends that cannot step in the
        background step in ``step_wait``."""
        self._pending = np.array(actions)

    def step_wait(self) -> Step:
        """The step ``step_async`` started."""
        actions, self._pending = self._pending, None
        if actions is None:
            raise RuntimeError("step_wait() without step_async()")
        return self.step(actions)

    @abstractmethod
    def render(self) -> np.ndarray:
        """An RGB frame (H, W, 3) of env 0, for videos."""

    @abstractmethod
    def close(self) -> None:
        """Release the backend's resources."""


class AtariVecEnv(VecEnv):
    """``ale_py.AtariVectorEnv``: 84x84 grayscale, frame skip 4 with max-pooling, 4-frame
    stack, random no-op starts, sticky actions, all in ALE's C++ threads."""

    def __init__(self, task: Task, num_envs: int, seed: int, num_threads: int = 0) -> None:
        super().__init__(task, num_envs, seed)
        import ale_py

        max_steps = task.resolved_max_episode_steps
        self._env = ale_py.AtariVectorEnv(
            task.rom,
            num_envs,
            num_threads=num_threads,
            repeat_action_probability=task.resolved_sticky_action_prob,
            full_action_space=task.full_action_space,
            noop_max=task.resolved_noop_max,
            frameskip=ATARI_FRAME_SKIP,
            stack_num=4,
            img_height=84,
            img_width=84,
            grayscale=True,
            max_num_frames_per_episode=max_steps * ATARI_FRAME_SKIP if max_steps else 108_000,
            reward_clipping=False,
            episodic_life=False,
            use_fire_reset=False,
            autoreset_mode="SameStep",
        )
        self._last_obs: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        obs, _ = self._env.reset(seed=self.seed)
        self._last_obs = obs
        return obs

    def step(self, actions: np.ndarray) -> Step:
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: np.ndarray) -> None:
        """ALE's threads step the envs while the caller goes on."""
        self._env.send(np.asarray(actions, dtype=np.int64))

    def step_wait(self) -> Step:
        obs, reward, terminated, truncated, info = self._env.recv()
        reward = reward.astype(np.float32)
        done = self._record(reward, terminated, truncated)
        self._last_obs = obs
        return Step(obs, reward, terminated, truncated, info["final_obs"][done] if done.any() else None)

    def render(self) -> np.ndarray:
        """The agent's view: the newest 84x84 frame of env 0, upscaled 4x, as RGB."""
        if self._last_obs is None:
            raise RuntimeError("render() before reset()")
        frame = self._last_obs[0, -1]
        return np.repeat(np.repeat(frame, 4, axis=0), 4, axis=1)[..., None].repeat(3, axis=2)

    def close(self) -> None:
        self._env.close()


class GymVecEnv(VecEnv):
    """MinAtar and gymnasium tasks through ``gymnasium.vector.SyncVectorEnv`` (same-step reset),
    or ``AsyncVectorEnv`` (``asynchronous``: one worker process per env)."""

    def __init__(self, task: Task, num_envs: int, seed: int, render: bool = False, asynchronous: bool = False) -> None:
        super().__init__(task, num_envs, seed)

        render_mode = "rgb_array" if render else None
        if render and "DISPLAY" not in os.environ:
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame (classic control) off-screen
            os.environ.setdefault("MUJOCO_GL", "egl")  # MuJoCo: headless OpenGL (glfw needs a display)

        def make(rank: int):
            def thunk():
                if task.backend == "atari":  # SB3 / CleanRL preprocessing (AtariVecEnv does ALE's)
                    return make_atari_frames_env(task, render_mode)
                env = make_gym_env(task, render_mode=render_mode)
                if task.resolved_noop_max and task.noop_action is not None:  # Task checks it has one
                    env = NoopStart(env, task.resolved_noop_max, task.noop_action)
                return env

            return thunk

        vector = gymnasium.vector.AsyncVectorEnv if asynchronous else gymnasium.vector.SyncVectorEnv
        self._env = vector(
            [make(i) for i in range(num_envs)],
            autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP,
        )
        self._minatar = task.backend == "minatar"

    def _convert(self, obs: np.ndarray) -> np.ndarray:
        if self._minatar:  # (N, 10, 10, C) bool -> (N, C, 10, 10) uint8
            return np.ascontiguousarray(obs.transpose(0, 3, 1, 2), dtype=np.uint8)
        if obs.dtype == np.float64:  # MuJoCo: the networks compute in float32
            return obs.astype(np.float32)
        return obs

    def reset(self) -> np.ndarray:
        obs, _ = self._env.reset(seed=self.seed)
        return self._convert(obs)

    def step(self, actions: np.ndarray) -> Step:
        if self.task.discrete:
            actions = np.asarray(actions, dtype=np.int64)
        return self._finish(*self._env.step(actions))

    def step_async(self, actions: np.ndarray) -> None:
        if not isinstance(self._env, gymnasium.vector.AsyncVectorEnv):
            return super().step_async(actions)
        self._env.step_async(np.asarray(actions, dtype=np.int64) if self.task.discrete else actions)

    def step_wait(self) -> Step:
        if not isinstance(self._env, gymnasium.vector.AsyncVectorEnv):
            return super().step_wait()
        return self._finish(*self._env.step_wait())

    def _finish(self, obs, reward, terminated, truncated, info) -> Step:
        reward = np.asarray(reward, dtype=np.float32)
        done = self._record(reward, terminated, truncated)
        final = None
        if done.any():
            final = self._convert(np.stack([info["final_obs"][i] for i in np.flatnonzero(done)]))
        return Step(self._convert(obs), reward, terminated, truncated, final)

    def render(self) -> np.ndarray:
        if not isinstance(self._env, gymnasium.vector.SyncVectorEnv):
            raise ConfigError("rendering needs the envs in this process: make the vec env with asynchronous=False")
        frame = np.asarray(self._env.envs[0].render())
        if frame.dtype != np.uint8:  # MinAtar renders floats in [0, 1] on a 10x10 grid
            frame = (frame * 255).astype(np.uint8)
        if frame.shape[0] < 100:
            scale = 160 // frame.shape[0] + 1
            frame = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
        return frame

    def close(self) -> None:
        self._env.close()


class NoopStart(gymnasium.Wrapper):
    """A random number (0..noop_max) of no-op actions after each reset, as on Atari."""

    def __init__(self, env: gymnasium.Env, noop_max: int, noop_action: int) -> None:
        super().__init__(env)
        self.noop_max, self.noop_action = noop_max, noop_action

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for _ in range(int(self.np_random.integers(0, self.noop_max + 1))):
            obs, _, terminated, truncated, info = self.env.step(self.noop_action)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info


class AtariFrames(gymnasium.Wrapper):
    """Atari observations as SB3's or CleanRL's wrappers make them (``Task.preprocessing``), for
    teachers trained behind those, over an ALE env with frame skip 1 and no sticky actions.

    Per agent step: the action repeated 4 times, the last two RGB frames max-pooled, then
    ``sb3`` (``WarpFrame``): grey, then the 84x84 area resize; ``cleanrl`` (gymnasium 0.29's
    ``ResizeObservation`` then ``GrayScaleObservation``): resize, then grey. Four frames are
    stacked, the older ones zeros after a reset (``VecFrameStack``) or copies of the first
    (gymnasium's ``FrameStack``). After a reset, FIRE then action 2, and after a lost life a
    no-op, FIRE and 2, where the game has FIRE: what ``EpisodicLifeEnv`` + ``FireResetEnv``
    gave those agents at each life's start. An episode is the whole game (scores are game scores).
    """

    def __init__(self, env: gymnasium.Env, pipeline: str, max_steps: int) -> None:
        super().__init__(env)
        try:
            import cv2
        except ImportError:
            raise ConfigError(
                f"preprocessing {pipeline!r} needs OpenCV, as SB3 and CleanRL do: "
                "pip install 'lightning_distill[atari-compat]'"
            ) from None
        self.cv2, self.pipeline, self.max_steps = cv2, pipeline, max_steps
        self.fires = "FIRE" in env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
        self.observation_space = gymnasium.spaces.Box(0, 255, (4, 84, 84), np.uint8)
        self.frames = np.zeros((4, 84, 84), np.uint8)
        self.steps, self.lives = 0, 0

    def _lives(self) -> int:
        return int(self.env.unwrapped.ale.lives())  # type: ignore[attr-defined]  # ALE's AtariEnv

    def _frame(self, rgb: np.ndarray) -> np.ndarray:
        cv2 = self.cv2
        if self.pipeline == "sb3":
            return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (84, 84), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(cv2.resize(rgb, (84, 84), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)

    def _repeat(self, action: int) -> tuple[np.ndarray, float, bool, bool]:
        """One agent step: ``action`` for 4 frames, the max of the last two RGB frames."""
        last_two = []
        total, terminated, truncated = 0.0, False, False
        for i in range(ATARI_FRAME_SKIP):
            rgb, reward, terminated, truncated, _ = self.env.step(action)
            total += float(reward)
            if i >= ATARI_FRAME_SKIP - 2:
                last_two.append(rgb)
            if terminated or truncated:
                break
        return np.max(np.stack(last_two or [rgb]), axis=0), total, terminated, truncated

    def _push(self, rgb: np.ndarray) -> np.ndarray:
        self.frames = np.concatenate([self.frames[1:], self._frame(rgb)[None]])
        return self.frames.copy()

    def _start_life(self, actions: tuple[int, ...]) -> tuple[np.ndarray, float, bool]:
        """The presses that start a life (FIRE, 2; after a lost life a no-op first): the last
        frame, their reward, whether the game ended meanwhile."""
        total = 0.0
        for action in actions:
            rgb, reward, terminated, truncated = self._repeat(action)
            total += reward
            if terminated or truncated:
                return rgb, total, True
        return rgb, total, False

    def reset(self, **kwargs):
        rgb, info = self.env.reset(**kwargs)  # no-op starts: NoopStart below, on single frames
        if self.fires:
            started, _, over = self._start_life((1, 2))
            rgb, info = self.env.reset() if over else (started, info)
        frame = self._frame(rgb)
        self.frames = (
            np.stack([np.zeros_like(frame)] * 3 + [frame]) if self.pipeline == "sb3" else np.stack([frame] * 4)
        )
        self.steps, self.lives = 0, self._lives()
        return self.frames.copy(), info

    def step(self, action):
        rgb, reward, terminated, truncated = self._repeat(int(action))
        lives = self._lives()
        if self.fires and 0 < lives < self.lives and not (terminated or truncated):
            rgb, extra, terminated = self._start_life((0, 1, 2))
            reward += extra
        self.lives, self.steps = lives, self.steps + 1
        truncated = truncated or self.steps >= self.max_steps
        return self._push(rgb), reward, terminated, truncated, {}


def make_atari_frames_env(task: Task, render_mode: str | None = None) -> gymnasium.Env:
    """An ALE env behind ``AtariFrames`` (``Task.preprocessing`` ``sb3`` or ``cleanrl``)."""
    import ale_py

    gymnasium.register_envs(ale_py)
    env = gymnasium.make(
        f"ALE/{task.game}-v5",
        frameskip=1,
        repeat_action_probability=task.resolved_sticky_action_prob,
        full_action_space=task.full_action_space,
        render_mode=render_mode,
        disable_env_checker=True,
    )
    if task.resolved_noop_max:  # as SB3's NoopResetEnv: single frames, before the frame skip
        env = NoopStart(env, task.resolved_noop_max, 0)
    max_steps = task.resolved_max_episode_steps or 108_000 // ATARI_FRAME_SKIP
    return AtariFrames(env, task.preprocessing, max_steps)


def make_vec_env(
    task: Task, num_envs: int = 1, seed: int = 0, render: bool = False, asynchronous: bool = False
) -> VecEnv:
    """The task's vectorised env; ``render=True`` makes env 0 able to give RGB frames.
    ``asynchronous`` puts gymnasium envs in worker processes (ALE's steps in its threads anyway)."""
    if task.backend == "atari" and task.preprocessing == "ale":
        return AtariVecEnv(task, num_envs, seed)
    return GymVecEnv(task, num_envs, seed, render=render, asynchronous=asynchronous)
