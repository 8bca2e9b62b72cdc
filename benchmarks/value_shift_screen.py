"""Issue 32's premise screen: does the distribution of visited states over H-PR's value
partitions move while a student learns?

H-PR samples a partition with the share of *recent* insertions that went to it (``P_j``), so it
can only help where that share moves during training: where the states a learning student visits
move between the teacher's value ranges (the paper's example: Breakout's tunnel). This measures,
for each MinAtar game and its bundled PPO teacher:

- the partition edges as H-PR forms them: ``[V_min, V_max]`` of the teacher's ``V(s)`` over
  ``--value-steps`` agent steps of its own play at epsilon 0.05 (``HierarchicalReplay``'s
  ``value_range``), split into ``p`` equal bins;
- for each epsilon of ``--epsilons``, the share of visited states in each bin, where the student
  acts epsilon-greedy around the teacher's greedy action: epsilon 1 is the untrained student,
  epsilon 0.05 the one that has learned the teacher, the schedules in between what it visits on
  the way (a student that copies the teacher well stands in for one that is learning it);
- the total variation ``TV = 1/2 sum_j |share_j(eps) - share_j(eps=1)|`` against epsilon 1, and
  the largest between any two epsilons; and, as the floor under which a TV is noise, the TV
  between two seeds of the last epsilon.

    python benchmarks/value_shift_screen.py                    # 5 games, 4 epsilons, 20k steps each
    python benchmarks/value_shift_screen.py --games breakout --steps 2000   # quick look

Writes ``benchmarks/results/value_shift_screen.md`` (``--out``) and ends with one ``result:`` line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = json.loads((ROOT / "lightning_distill" / "teachers" / "bundled.json").read_text())
GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")


def visited_values(teacher, task, epsilon: float, steps: int, seed: int) -> np.ndarray:
    """The teacher's ``V(s)`` of every state an epsilon-greedy player around it visits."""
    from lightning_distill.evaluation import evaluate

    values: list[torch.Tensor] = []

    def act(obs: torch.Tensor) -> torch.Tensor:
        targets, value = teacher.targets_and_value(obs)
        values.append(value.reshape(-1))
        return targets.argmax(dim=-1)

    evaluate(act, task, steps=steps, epsilon=epsilon, num_envs=8, seed=seed)
    return torch.cat(values).numpy()


def shares(values: np.ndarray, value_range: tuple[float, float], partitions: int) -> np.ndarray:
    """Each partition's share of ``values``, partitioned as H-PR partitions them."""
    from lightning_distill.replay.hierarchical import HierarchicalMemory

    memory = HierarchicalMemory(partitions, 1, value_range)
    return np.bincount(memory.partition_of(values), minlength=partitions) / len(values)


def total_variation(a: np.ndarray, b: np.ndarray) -> float:
    return float(0.5 * np.abs(a - b).sum())


def screen_game(game: str, epsilons: list[float], steps: int, value_steps: int, partitions: int, seed: int) -> dict:
    from lightning_distill.replay import estimate_value_range
    from lightning_distill.tasks import Task
    from lightning_distill.teachers import load_teacher

    key = f"ppo/minatar_{game}"
    task = Task(BUNDLED[key]["task"])
    teacher = load_teacher(f"bundled:{key}", task)
    value_range = estimate_value_range(task, teacher, value_steps, seed)
    mix = {eps: shares(visited_values(teacher, task, eps, steps, seed), value_range, partitions) for eps in epsilons}
    tv = {eps: total_variation(mix[eps], mix[epsilons[0]]) for eps in epsilons}
    largest = max(total_variation(mix[a], mix[b]) for a, b in itertools.combinations(epsilons, 2))
    again = shares(visited_values(teacher, task, epsilons[-1], steps, seed + 1), value_range, partitions)
    noise = total_variation(again, mix[epsilons[-1]])  # the same epsilon, another seed: the floor
    return {"task": task.id, "range": value_range, "shares": mix, "tv": tv, "largest_tv": largest, "noise": noise}


def markdown(results: list[dict], epsilons: list[float], args: argparse.Namespace) -> str:
    lines = [
        "# Premise screen: do visited states move between H-PR's value partitions?",
        "",
        f"`python benchmarks/value_shift_screen.py --steps {args.steps} --value-steps {args.value_steps} "
        f"--partitions {args.partitions} --seed {args.seed}`: bundled PPO teachers; edges over the teacher's own "
        f"play (epsilon 0.05, {args.value_steps} agent steps), {args.partitions} equal bins; {args.steps} agent "
        "steps (8 envs) per epsilon of an epsilon-greedy player around the teacher's greedy action.",
        "",
        "| game | V range | epsilon | " + " | ".join(f"bin {j}" for j in range(args.partitions)) + " | TV vs eps 1 |",
        "|---|---|---|" + "---|" * args.partitions + "---|",
    ]
    for r in results:
        for i, eps in enumerate(epsilons):
            value_range = f"[{r['range'][0]:.3g}, {r['range'][1]:.3g}]" if i == 0 else ""
            cells = " | ".join(f"{s:.3f}" for s in r["shares"][eps])
            lines.append(f"| {r['task'] if i == 0 else ''} | {value_range} | {eps} | {cells} | {r['tv'][eps]:.3f} |")
    lines += [
        "",
        f"| game | TV, eps {epsilons[0]} -> {epsilons[-1]} | largest TV between two epsilons | "
        f"noise floor (two seeds at eps {epsilons[-1]}) |",
        "|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: -r["largest_tv"]):
        lines.append(f"| {r['task']} | {r['tv'][epsilons[-1]]:.3f} | {r['largest_tv']:.3f} | {r['noise']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    from lightning_distill.cli import quiet_third_party_output

    quiet_third_party_output()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", nargs="+", default=list(GAMES), choices=GAMES)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 0.5, 0.2, 0.05])
    parser.add_argument("--steps", type=int, default=20_000, help="agent steps per game and epsilon")
    parser.add_argument("--value-steps", type=int, default=4000, help="teacher play that sets the edges")
    parser.add_argument("--partitions", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "value_shift_screen.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    results = []
    for game in args.games:
        r = screen_game(game, args.epsilons, args.steps, args.value_steps, args.partitions, args.seed)
        print(f"{r['task']}: TV eps 1 -> {args.epsilons[-1]}: {r['tv'][args.epsilons[-1]]:.3f}", flush=True)
        results.append(r)
    args.out.write_text(markdown(results, args.epsilons, args))
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")
    summary = " ".join(f"tv_{r['task'].split('/')[1].lower()}={r['tv'][args.epsilons[-1]]:.3f}" for r in results)
    print(f"result: {summary}")


if __name__ == "__main__":
    main()
