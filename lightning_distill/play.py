"""``play``: load any checkpoint this project writes, play episodes, print returns, write a video."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lightning_distill.checks import check_output_folder
from lightning_distill.errors import ConfigError
from lightning_distill.evaluation import EVAL_EPSILON, EvalResult, evaluate

VIDEO_SUFFIXES = (".gif", ".mp4")
#: Keys of a saved ``fit`` config that ``play`` accepts and ignores, so that
#: ``play --config runs/.../config.yaml --ckpt_path ...`` works: the checkpoint carries the model.
FIT_CONFIG_KEYS = ("model", "data", "trainer", "optimizer", "lr_scheduler", "seed_everything", "weights_only")


def add_play_arguments(parser) -> None:
    """The ``play`` subcommand's arguments (a jsonargparse parser)."""
    from jsonargparse import ActionConfigFile

    parser.add_argument("-c", "--config", action=ActionConfigFile, help="A YAML file with these keys.")
    parser.add_argument("--ckpt_path", type=str, required=True, help="Checkpoint written by fit.")
    parser.add_argument(
        "--task", type=str | None, default=None, help="Task id to play, required when the checkpoint serves several."
    )
    parser.add_argument("--episodes", type=int, default=3, help="Episodes to play.")
    parser.add_argument("--epsilon", type=float, default=EVAL_EPSILON, help="Epsilon-greedy exploration.")
    parser.add_argument("--video", type=str | None, default=None, help="Write a video: out.gif or out.mp4.")
    parser.add_argument("--fps", type=int, default=30, help="Video frames per second.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the environment and of exploration.")
    for key in FIT_CONFIG_KEYS:
        parser.add_argument(f"--{key}", type=Any | None, default=None, help="Ignored (from a fit config).")


def play_from_config(cfg) -> EvalResult:
    return play(
        cfg.ckpt_path,
        task=cfg.task,
        episodes=cfg.episodes,
        epsilon=cfg.epsilon,
        video=cfg.video,
        fps=cfg.fps,
        seed=cfg.seed,
    )


def play(
    ckpt_path: str,
    task: str | None = None,
    episodes: int = 3,
    epsilon: float = EVAL_EPSILON,
    video: str | None = None,
    fps: int = 30,
    seed: int = 0,
    print_fn=print,
) -> EvalResult:
    """Play ``episodes`` episodes of the checkpoint's agent; print each return and the mean."""
    from lightning_distill.modules.base import load_agent

    if video is not None:
        check_video_path(video)
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"--epsilon must be in [0, 1] (the chance of a random action), got {epsilon:g}")
    agent = load_agent(ckpt_path)
    index = agent.task_index(task)
    the_task = agent.tasks[index]
    frames: list[np.ndarray] = []
    result = evaluate(
        agent.policy(index),
        the_task,
        episodes=episodes,
        epsilon=epsilon,
        num_envs=1,
        seed=seed,
        on_frame=frames.append if video else None,
    )
    for n, ret in enumerate(result.returns, start=1):
        print_fn(f"{the_task.id} episode {n}: return {ret:g}")
    print_fn(f"{the_task.id} mean return over {result.count} episodes: {result.mean:g} (std {result.std:g})")
    if video:
        write_video(video, frames, fps)
        print_fn(f"video: {video} ({video_frames(video)} frames at {fps} fps)")
    return result


def check_video_path(video: str) -> None:
    """Before any episode is played: a video file name this run can write."""
    path = Path(video)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError(f"--video {video!r}: the file must end in {' or '.join(VIDEO_SUFFIXES)}")
    check_output_folder("--video", video)


def video_frames(path: str) -> int:
    """Frames in the written file (a GIF merges identical consecutive frames into one)."""
    import imageio

    return sum(1 for _ in imageio.v3.imiter(path))


def write_video(path: str, frames: list[np.ndarray], fps: int) -> None:
    """GIF through Pillow, MP4 (H.264) through imageio-ffmpeg's bundled ffmpeg."""
    import imageio

    if not frames:
        raise ConfigError(f"no frames to write to {path!r}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    stacked = np.stack(frames)
    if path.lower().endswith(".gif"):
        imageio.v3.imwrite(path, stacked, duration=1000 / fps, loop=0)
    else:
        h, w = stacked.shape[1:3]  # H.264 wants even sides
        stacked = np.pad(stacked, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
        imageio.v2.mimwrite(path, list(stacked), fps=fps, macro_block_size=1)
