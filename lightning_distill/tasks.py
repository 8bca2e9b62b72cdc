"""One notion of a task: what to make, what it observes, and how its actions map into a union space.

A task id names the backend:

- ``ALE/<Game>`` (``-v5`` suffix accepted): Atari through ``ale_py``'s vectorised env.
  The union action space is the 18 ALE actions; with the minimal action set each local
  action maps to its ALE index, so FIRE is union index 1 in every game.
- ``MinAtar/<Game>`` (``-v0`` accepted): MinAtar, all 6 actions, which are the union.
- anything else: a registered gymnasium id (``CartPole-v1``, ``Reacher-v5``, ...).

Imports of ``ale_py``, ``minatar`` and ``gymnasium`` happen on first use so that
``--help`` stays fast.
"""

from __future__ import annotations

import difflib
import functools
import re
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lightning_distill.errors import ConfigError

ATARI_UNION_SIZE = 18
MINATAR_UNION_SIZE = 6
ATARI_OBS_SHAPE = (4, 84, 84)
ATARI_FRAME_SKIP = 4
#: Atari observation pipelines (``Task.preprocessing``): ALE's own, and those SB3 and CleanRL agents saw.
ATARI_PREPROCESSING = ("ale", "sb3", "cleanrl")
#: a default chosen per task, by a rule its docstring states (``--print_config=comments`` shows it)
AUTO = "auto"

#: The 10 games of Yin & Pan (2017), as ALE task ids.
PAPER_ATARI_GAMES = (
    "BeamRider",
    "Breakout",
    "Enduro",
    "Freeway",
    "MsPacman",
    "Pong",
    "Qbert",
    "Seaquest",
    "SpaceInvaders",
    "Riverraid",
)
MINATAR_GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")


class TaskError(ConfigError):
    """A task id or option that cannot be made; the message is one line for the user."""


@functools.cache
def atari_games() -> dict[str, str]:
    """ALE game names (CamelCase, as in ``ALE/<Game>``) to ROM ids, for every ROM ``ale_py`` ships."""
    from ale_py import roms

    rom_ids = roms.get_all_rom_ids()
    return {"".join(part.title() for part in rom.split("_")): rom for rom in rom_ids}


@functools.cache
def atari_minimal_action_set(rom: str) -> tuple[int, ...]:
    """The game's minimal action set as ALE action indices (0..17), read from the ROM."""
    from ale_py import ALEInterface, LoggerMode, roms

    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    path = roms.get_rom_path(rom)
    if path is None:
        raise TaskError(f"ale-py has no ROM {rom!r}")
    ale.loadROM(path)
    return tuple(int(a.value) for a in ale.getMinimalActionSet())


def _strip_version(name: str) -> str:
    return re.sub(r"-v\d+$", "", name)


def _unknown(task_id: str, valid: list[str], hint: str) -> TaskError:
    close = difflib.get_close_matches(task_id, valid, n=3, cutoff=0.6)
    did_you_mean = f" Did you mean {', '.join(close)}?" if close else ""
    return TaskError(f"unknown task {task_id!r}.{did_you_mean} Valid: {hint}")


def _gym_ids() -> list[str]:
    import gymnasium

    return sorted(i for i in gymnasium.registry if not i.startswith(("ALE/", "MinAtar/")))


@dataclass(frozen=True)
class Task:
    """A task the project can train, distil or evaluate on.

    Args:
        id: ``ALE/<Game>``, ``MinAtar/<Game>`` or a gymnasium id.
        noop_max: random number (0..noop_max) of no-op actions at the start of each episode.
            ``auto``: 30 on Atari (the evaluation protocol of the paper), 0 elsewhere. Only
            backends with a no-op action accept a positive value.
        sticky_action_prob: probability that the previous action repeats. ``auto``: 0.0 on
            Atari (the paper's deterministic ALE with no-op starts), 0.1 on MinAtar (its own
            default); gymnasium tasks have none.
        full_action_space: Atari only: act over all 18 ALE actions instead of the minimal set.
        max_episode_steps: truncate episodes after this many agent steps. ``auto``: 27,000 on
            Atari (108k frames), the gymnasium registry's value elsewhere.
        env_kwargs: extra keyword arguments for ``gymnasium.make`` (gymnasium tasks only).
        reward: a reward variant of ``lightning_distill.rewards`` (gymnasium tasks only), e.g.
            ``reacher_similar``: the same env with a changed reward, a REPAINT source task.
        preprocessing: Atari only: how frames become observations, to match what the teacher
            was trained behind. ``ale`` (ALE's vector env: max-pool of grey frames, then the
            84x84 resize), ``sb3`` (RL Zoo / SB3 ``AtariWrapper`` + ``VecFrameStack``: max-pool
            of RGB frames, grey, resize) or ``cleanrl`` (CleanRL's stack: max-pool of RGB
            frames, resize, grey); ``sb3`` and ``cleanrl`` also press FIRE after each reset and
            lost life, as those agents' ``FireResetEnv`` did. They need ``opencv-python``.
    """

    id: str
    noop_max: int | Literal["auto"] = "auto"
    sticky_action_prob: float | Literal["auto"] = "auto"
    full_action_space: bool = False
    max_episode_steps: int | Literal["auto"] = "auto"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    reward: str | None = None
    preprocessing: str = "ale"

    def __post_init__(self) -> None:
        self.backend  # noqa: B018 - validates the id now, with a one-line error
        for key in ("noop_max", "sticky_action_prob", "max_episode_steps"):
            if getattr(self, key) is None:  # checkpoints written before "auto" hold None
                object.__setattr__(self, key, AUTO)  # frozen
            elif isinstance(getattr(self, key), str) and getattr(self, key) != AUTO:
                raise TaskError(f"{key} must be a number or 'auto', got {getattr(self, key)!r} for task {self.id!r}")
        noop_max, sticky = self.noop_max, self.sticky_action_prob  # a number, or AUTO
        if not isinstance(noop_max, str) and noop_max < 0:
            raise TaskError(f"noop_max must be >= 0, got {noop_max} for task {self.id!r}")
        if not isinstance(noop_max, str) and noop_max > 0 and self.noop_action is None:
            raise TaskError(f"task {self.id!r} has no no-op action; set noop_max: 0 (got {noop_max})")
        if not isinstance(sticky, str) and not 0.0 <= sticky < 1.0:
            raise TaskError(f"sticky_action_prob must be in [0, 1), got {sticky}")
        if not isinstance(sticky, str) and sticky > 0 and self.backend == "gym":
            raise TaskError(f"task {self.id!r} is a gymnasium task: sticky_action_prob is for ALE/ and MinAtar/ tasks")
        if self.full_action_space and self.backend != "atari":
            raise TaskError(f"full_action_space is for ALE/ tasks only, not {self.id!r}")
        if self.preprocessing not in ATARI_PREPROCESSING:
            raise TaskError(f"unknown preprocessing {self.preprocessing!r}; valid: {list(ATARI_PREPROCESSING)}")
        if self.preprocessing != "ale" and self.backend != "atari":
            raise TaskError(f"preprocessing {self.preprocessing!r} is for ALE/ tasks only, not {self.id!r}")
        if self.reward is not None:
            from lightning_distill.rewards import check_reward_variant

            check_reward_variant(self.reward, self.id)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def coerce(cls, task: Task | Mapping[str, Any] | str) -> Task:
        """A Task from a Task, a config dict (as stored in checkpoints) or a bare id."""
        if isinstance(task, Task):
            return task
        if isinstance(task, str):
            return cls(task)
        if isinstance(task, Mapping):
            unknown = set(task) - set(cls.__dataclass_fields__)
            if unknown:
                raise TaskError(f"unknown task option(s) {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
            return cls(**task)
        raise TaskError(f"cannot make a task from {task!r}; give an id string or a mapping with 'id'")

    def to_dict(self) -> dict[str, Any]:
        """Plain data, safe for ``torch.load(weights_only=True)`` and YAML."""
        return asdict(self)

    # -- what the backend is --------------------------------------------------------------

    @functools.cached_property
    def backend(self) -> str:
        if self.id.startswith("ALE/"):
            if self.game not in atari_games():
                raise _unknown(
                    self.id,
                    [f"ALE/{g}" for g in atari_games()],
                    f"ALE/<Game> for the ROMs ale-py ships, e.g. {', '.join('ALE/' + g for g in PAPER_ATARI_GAMES)}",
                )
            return "atari"
        if self.id.startswith("MinAtar/"):
            if self.game not in MINATAR_GAMES or self.id.endswith("-v1"):
                raise _unknown(
                    self.id,
                    [f"MinAtar/{g}" for g in MINATAR_GAMES],
                    ", ".join(f"MinAtar/{g}" for g in MINATAR_GAMES) + " (all 6 actions)",
                )
            return "minatar"
        import gymnasium

        if self.id not in gymnasium.registry:
            ids = _gym_ids()
            raise _unknown(
                self.id,
                ids,
                "ALE/<Game>, MinAtar/<Game>, or a gymnasium id such as CartPole-v1, Acrobot-v1, Reacher-v5",
            )
        return "gym"

    @property
    def game(self) -> str:
        """The game name without backend prefix and version, e.g. ``Breakout``."""
        return _strip_version(self.id.split("/", 1)[-1])

    @property
    def rom(self) -> str:
        return atari_games()[self.game]

    # -- observation ----------------------------------------------------------------------

    @functools.cached_property
    def _gym_probe(self) -> tuple[tuple[int, ...], Any]:
        """(obs shape, action space) of a gymnasium env, made once and closed."""
        env = make_gym_env(self)
        try:
            shape = tuple(env.observation_space.shape)
            if self.backend == "minatar":  # channels first
                shape = (shape[2], shape[0], shape[1])
            return shape, env.action_space
        finally:
            env.close()

    @property
    def obs_shape(self) -> tuple[int, ...]:
        if self.backend == "atari":
            return ATARI_OBS_SHAPE
        return self._gym_probe[0]

    # -- actions --------------------------------------------------------------------------

    @property
    def discrete(self) -> bool:
        if self.backend != "gym":
            return True
        import gymnasium

        return isinstance(self._gym_probe[1], gymnasium.spaces.Discrete)

    @functools.cached_property
    def action_map(self) -> tuple[int, ...]:
        """Union index of each of the task's own actions (``A_i -> {0..union_size-1}``)."""
        if self.backend == "atari":
            if self.full_action_space:
                return tuple(range(ATARI_UNION_SIZE))
            return atari_minimal_action_set(self.rom)
        if self.backend == "minatar":
            return tuple(range(MINATAR_UNION_SIZE))
        if not self.discrete:
            raise TaskError(f"task {self.id!r} has continuous actions: it has no action map")
        return tuple(range(int(self._gym_probe[1].n)))

    @property
    def num_actions(self) -> int:
        """Discrete: the number of the task's own actions. Continuous: the action dimension."""
        if self.discrete:
            return len(self.action_map)
        return int(self._gym_probe[1].shape[0])

    @property
    def action_bounds(self) -> tuple[list[float], list[float]]:
        """Continuous tasks: (low, high) per action dimension; a Gaussian policy's samples are
        clipped to them before the env sees them."""
        if self.discrete:
            raise TaskError(f"task {self.id!r} has discrete actions: it has no action bounds")
        space = self._gym_probe[1]
        return [float(x) for x in space.low], [float(x) for x in space.high]

    @property
    def union_size(self) -> int:
        """Size of the union action space this task's actions map into."""
        return {"atari": ATARI_UNION_SIZE, "minatar": MINATAR_UNION_SIZE}.get(self.backend, self.num_actions)

    @property
    def noop_action(self) -> int | None:
        """Local index of the no-op action, or ``None`` when the task has none."""
        if self.backend in ("atari", "minatar"):
            return 0  # NOOP is the first action of every ALE action set and of MinAtar
        return None

    # -- resolved options -----------------------------------------------------------------

    @property
    def resolved_noop_max(self) -> int:
        if self.noop_max != AUTO:
            return int(self.noop_max)
        return 30 if self.backend == "atari" else 0

    @property
    def resolved_sticky_action_prob(self) -> float:
        if self.sticky_action_prob != AUTO:
            return float(self.sticky_action_prob)
        return {"atari": 0.0, "minatar": 0.1}.get(self.backend, 0.0)

    @property
    def resolved_max_episode_steps(self) -> int | None:
        if self.max_episode_steps != AUTO:
            return int(self.max_episode_steps)
        if self.backend == "atari":
            return 108_000 // ATARI_FRAME_SKIP
        return None

    @property
    def label(self) -> str:
        """The id, with the reward variant where there is one: ``Reacher-v5[reacher_similar]``."""
        return self.id if self.reward is None else f"{self.id}[{self.reward}]"

    def __str__(self) -> str:
        return self.label


def make_gym_env(task: Task, render_mode: str | None = None):
    """One gymnasium env for a MinAtar or gymnasium task, with the task's options applied."""
    import gymnasium

    kwargs: dict[str, Any] = dict(task.env_kwargs)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if task.backend == "minatar":
        import minatar.gym

        if "MinAtar/Breakout-v0" not in gymnasium.registry:
            minatar.gym.register_envs()
        kwargs["sticky_action_prob"] = task.resolved_sticky_action_prob
        env_id = f"MinAtar/{task.game}-v0"
    else:
        env_id = task.id
    if task.max_episode_steps != AUTO:
        kwargs["max_episode_steps"] = task.max_episode_steps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MinAtar v0 "out of date" notice: v0 is the 6-action set we want
        env = gymnasium.make(env_id, disable_env_checker=True, **kwargs)
    if task.reward is not None:
        from lightning_distill.rewards import VariantReward

        env = VariantReward(env, task.reward)
    return env
