"""Agent steps per second of the project's Atari env layer against raw ``ale_py.AtariVectorEnv``.

Same game, same number of envs, same settings, same random actions, measured in one run,
interleaved in rounds so machine noise hits both alike. Target: ratio >= 0.9.

    python benchmarks/env_throughput.py --game Breakout --num-envs 8 --steps 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import platform
import time

import ale_py
import numpy as np

from lightning_distill.envs import AtariVecEnv
from lightning_distill.tasks import Task


def raw_env(task: Task, num_envs: int):
    """The same configuration AtariVecEnv uses, called directly."""
    return ale_py.AtariVectorEnv(
        task.rom,
        num_envs,
        repeat_action_probability=0.0,
        noop_max=30,
        frameskip=4,
        stack_num=4,
        img_height=84,
        img_width=84,
        grayscale=True,
        reward_clipping=False,
        episodic_life=False,
        use_fire_reset=False,
        autoreset_mode="SameStep",
    )


def steps_per_second(reset, step, actions: np.ndarray) -> float:
    reset()
    start = time.perf_counter()
    for a in actions:
        step(a)
    return actions.size / (time.perf_counter() - start)


def main() -> None:
    from lightning_distill.cli import quiet_third_party_output

    quiet_third_party_output()  # Lightning's tips and torch's deprecations are no benchmark's output
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2000, help="vector steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    task = Task(f"ALE/{args.game}", noop_max=30, sticky_action_prob=0.0)
    actions = np.random.default_rng(0).integers(0, task.num_actions, (args.steps, args.num_envs))
    ours, raw = AtariVecEnv(task, args.num_envs, seed=0), raw_env(task, args.num_envs)
    ours_sps, raw_sps = [], []
    for _ in range(args.rounds):
        raw_sps.append(steps_per_second(lambda: raw.reset(seed=0), raw.step, actions))
        ours_sps.append(steps_per_second(ours.reset, ours.step, actions))
    ours.close()
    raw.close()
    o, r = float(np.median(ours_sps)), float(np.median(raw_sps))
    print(
        f"machine: {platform.processor() or platform.machine()}, {args.num_envs} envs, ALE/{args.game}, "
        f"{args.steps} vector steps x {args.rounds} rounds (median)"
    )
    print(f"raw ale_py AtariVectorEnv : {r:10.0f} agent steps/s")
    print(f"lightning_distill AtariVecEnv: {o:10.0f} agent steps/s")
    print(f"ratio ours/raw: {o / r:.3f}  (target >= 0.9)")
    print(f"result: ours_vs_raw={o / r:.3f} ours_steps_s={o:.0f} raw_steps_s={r:.0f}")


if __name__ == "__main__":
    main()
