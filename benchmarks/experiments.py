"""The papers' experiments at MinAtar scale, as data: run them over seeds, restartably, and keep
what the report needs.

    python benchmarks/experiments.py run table1_ppo            # 3 architectures x 5 seeds, 2 at a time
    python benchmarks/experiments.py run figure4 --groups uniform pr hpr_p5
    python benchmarks/experiments.py report table1_ppo  # -> benchmarks/results/table1_ppo.md (+ PNGs)
    python benchmarks/experiments.py list

An experiment is a shipped config plus the overrides every run shares (a shorter budget, fixed
teacher scores, no checkpoints) and one set of overrides per group. ``run`` writes each run's
full config to ``<out>/<experiment>/<group>_s<seed>.yaml``, runs ``--jobs`` of them at a time with
one torch thread each, skips finished runs, and starts unfinished ones again from scratch (they
are minutes long), so it can be stopped and started again. Each finished run's ``metrics.csv``
and ``config.yaml`` (kilobytes) are copied to ``benchmarks/results/runs/<experiment>/<run>/``;
``report`` is ``python -m lightning_distill report`` over those, so the tables and plots can be
rebuilt from the repository alone, on another machine.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BUNDLED = json.loads((ROOT / "lightning_distill" / "teachers" / "bundled.json").read_text())

#: Table 1's budget: 8k updates (a minibatch of 32 from each game each), evaluations every 1k,
#: epsilon 1 -> 0.1 over the first quarter (the paper: 1M of 4M steps), in agent steps per game.
UPDATES = 8000


def budget(updates: int, evaluations: int = 8) -> dict[str, Any]:
    """``updates`` minibatch updates, ``evaluations`` evenly spaced, and epsilon decayed over the
    first quarter (counted in agent steps per game: 4 envs per game)."""
    return {
        "trainer.max_steps": updates,
        "trainer.val_check_interval": updates // evaluations,
        "trainer.log_every_n_steps": 500,
        "epsilon.decay_steps": updates // 4 * 4,
    }


#: DIST and AMN as the paper sizes them against the proposed student: one FC layer as wide as the
#: proposed student's last (the paper: 512 beside 1028-512; here 128 beside 256-128), from scratch.
BASELINE = {"model.init_args.init_from_teachers": False, "model.init_args.head_hidden": [128]}
ARCHITECTURES = {
    "proposed": {},
    "dist": {"model.init_args.architecture": "dist", **BASELINE},
    "amn": {"model.init_args.architecture": "amn", **BASELINE},
}
#: Figure 4: three PPO-taught games, two slow to distil (Asterix, SpaceInvaders) and one easy
#: (Freeway); every memory holds 5,000 experiences of the 33,000 a game produces (1,000 before
#: learning starts, then 4 an update): 6.6 turnovers.
FIGURE4_GAMES = ("asterix", "freeway", "space_invaders")
CAPACITY = 5000
SAMPLING = {"alpha": 0.7, "beta": 0.5, "beta_final": 1.0, "beta_updates": UPDATES}


def hpr(partitions: int) -> dict[str, Any]:
    init = {"partitions": partitions, "partition_capacity": CAPACITY // partitions, **SAMPLING}
    init |= {"window": 2 * CAPACITY, "value_steps": 4000}
    return {"data.init_args.replay": {"class_path": "lightning_distill.replay.HierarchicalReplay", "init_args": init}}


REPLAYS = {
    "uniform": {
        "data.init_args.replay": {
            "class_path": "lightning_distill.replay.UniformReplay",
            "init_args": {"capacity": CAPACITY},
        }
    },
    "pr": {
        "data.init_args.replay": {
            "class_path": "lightning_distill.replay.PrioritizedReplay",
            "init_args": {"capacity": CAPACITY, **SAMPLING},
        }
    },
    **{f"hpr_p{p}": hpr(p) for p in (5, 10, 15)},
}


#: Issue 32: Figure 4 in the paper's memory regime. The paper keeps 200,000 experiences per
#: partition against uniform's 500,000 (0.4 C each: H-PR at p = 5 holds 2 C), and keeps that per
#: partition as p grows. Games: the two slow-to-distil ones whose visited states move most between
#: value partitions in the premise screen (value_shift_screen.md: TV 0.33 and 0.40; Asterix, the
#: slowest, moves 0.09 and is left out). 20k updates; each game's memory sees 81k experiences (1k
#: before learning, 4 an update), so C = 16k turns over 5.1 times. The window (2,000 insertions,
#: 500 updates) is a quarter of the shortest partition lifetime: a partition taking 76% of the
#: insertions (Seaquest's largest share at epsilon 1) turns its 6,400 experiences over in 2,100
#: updates, 8,400 insertions.
REGIME_GAMES = ("seaquest", "space_invaders")
REGIME_UPDATES = 20_000
REGIME_C = 16_000
REGIME_SAMPLING = {"alpha": 0.7, "beta": 0.5, "beta_final": 1.0, "beta_updates": REGIME_UPDATES}


def regime_hpr(partitions: int, **extra: Any) -> dict[str, Any]:
    init = {"partitions": partitions, "partition_capacity": REGIME_C * 2 // 5, **REGIME_SAMPLING}
    init |= {"window": 2000, "value_steps": 4000, **extra}
    return {"data.init_args.replay": {"class_path": "lightning_distill.replay.HierarchicalReplay", "init_args": init}}


def regime_flat(kind: str, capacity: int, **sampling: Any) -> dict[str, Any]:
    return {
        "data.init_args.replay": {
            "class_path": f"lightning_distill.replay.{kind}",
            "init_args": {"capacity": capacity, **sampling},
        }
    }


REGIME = {
    "uniform": regime_flat("UniformReplay", REGIME_C),
    "uniform_2c": regime_flat("UniformReplay", 2 * REGIME_C),  # memory size alone
    "pr": regime_flat("PrioritizedReplay", REGIME_C, **REGIME_SAMPLING),
    "hpr_p5": regime_hpr(5),
    "hpr_p5_random": regime_hpr(5, partition_by="random"),  # partitioned, not by value
    "hpr_p10": regime_hpr(10),  # Figure 5: 0.4 C a partition, 4 C in all
    "hpr_p15": regime_hpr(15),  # 6 C in all
    "hpr_p5_beta05": regime_hpr(5, beta_final=0.5),  # beta held at its start
}
#: Issue 32's instrument: an evaluation every 500 updates of 64 episodes a game
REGIME_SHARED = {"data.init_args.evaluation": {"episodes": 64, "epsilon": 0.05, "num_envs": 16}}


def game_name(task_id: str) -> str:
    return task_id.split("/")[1]


def teacher_key(kind: str, game: str) -> str:
    """The bundled teacher of a MinAtar game: ``ppo/minatar_<game>`` or (DQN) ``minatar/<game>``."""
    return f"ppo/minatar_{game}" if kind == "ppo" else f"minatar/{game}"


def games_overrides(kind: str, games: tuple[str, ...]) -> dict[str, Any]:
    """Tasks, their bundled teachers and the teachers' bundled scores (100 episodes, epsilon
    0.05: the evaluation protocol), so every run divides by the same teacher score."""
    keys = [teacher_key(kind, g) for g in games]
    return {
        "data.init_args.tasks": [{"id": BUNDLED[k]["task"]} for k in keys],
        "data.init_args.teachers": [f"bundled:{k}" for k in keys],
        "teacher_scores": [BUNDLED[k]["score"] for k in keys],
    }


@dataclass(frozen=True)
class Experiment:
    config: str
    groups: dict[str, dict[str, Any]]
    shared: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    baseline: str = ""  # the group others are compared with (probability of improvement)
    updates: int = UPDATES
    evaluations: int = 8
    thresholds: tuple[float, ...] = (90.0, 100.0)  # % of teacher: updates to first reach each
    also_against: tuple[str, ...] = ()  # more baselines, a report against each
    title: str = ""
    subsets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # extra reports on some tasks


MINATAR5 = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")
EXPERIMENTS = {
    "table1_ppo": Experiment(
        "configs/distill/minatar5_ppo.yaml",
        ARCHITECTURES,
        games_overrides("ppo", MINATAR5),
        baseline="dist",
        title="Table 1 at MinAtar, PPO teachers: proposed vs DIST vs AMN",
    ),
    "table1_dqn": Experiment(
        "configs/distill/minatar5_dqn.yaml",
        ARCHITECTURES,
        games_overrides("dqn", MINATAR5),
        baseline="dist",
        title="Table 1 at MinAtar, DQN teachers: proposed vs DIST vs AMN",
    ),
    "figure4": Experiment(
        "configs/distill/minatar5_ppo.yaml",
        REPLAYS,
        games_overrides("ppo", FIGURE4_GAMES),
        baseline="uniform",
        title="Figure 4 at MinAtar: uniform vs PR vs H-PR (p = 5, 10, 15), memories turning over 6.6 times",
        subsets={"slow": ("MinAtar/Asterix", "MinAtar/SpaceInvaders"), "easy": ("MinAtar/Freeway",)},
    ),
    "figure4_regime": Experiment(
        "configs/distill/minatar5_ppo.yaml",
        REGIME,
        games_overrides("ppo", REGIME_GAMES) | REGIME_SHARED,
        seeds=tuple(range(10)),
        baseline="uniform",
        updates=REGIME_UPDATES,
        evaluations=REGIME_UPDATES // 500,
        thresholds=(90.0, 95.0),
        also_against=("uniform_2c", "hpr_p5_random"),  # memory size alone; value vs random partitions
        title="Figure 4 and 5 in the paper's memory regime (H-PR 0.4 C a partition), with controls",
    ),
}


def set_key(config: dict[str, Any], dotted: str, value: Any) -> None:
    """``a.b.c = value`` in nested dicts; ``epsilon.*`` and ``teacher_scores`` address callbacks."""
    callbacks = config["trainer"]["callbacks"]
    if dotted.startswith("epsilon."):
        target = next(c for c in callbacks if c["class_path"].endswith("EpsilonSchedule"))["init_args"]
        target[dotted.removeprefix("epsilon.")] = value
        return
    if dotted == "teacher_scores":
        comparison = next(c for c in callbacks if c["class_path"].endswith("TeacherComparison"))
        comparison.setdefault("init_args", {})["teacher_scores"] = value
        return
    *path, last = dotted.split(".")
    for key in path:
        config = config.setdefault(key, {})
    config[last] = value


def run_config(experiment: Experiment, group: str, seed: int, out: Path) -> dict[str, Any]:
    """The full config of one run: the experiment's config, its budget, its group, its seed,
    a CSV logger into ``out`` and no checkpoints (the report reads metrics.csv)."""
    config = yaml.safe_load((ROOT / experiment.config).read_text())
    callbacks = config["trainer"]["callbacks"]
    config["trainer"]["callbacks"] = [c for c in callbacks if not c["class_path"].endswith("ModelCheckpoint")]
    config["trainer"]["enable_checkpointing"] = False
    config["trainer"]["logger"] = [
        {
            "class_path": "lightning_distill.loggers.CSVLogger",
            "init_args": {"save_dir": str(out), "name": f"{group}_s{seed}", "version": 0},
        }
    ]
    for dotted, value in {
        **budget(experiment.updates, experiment.evaluations),
        **experiment.shared,
        **experiment.groups[group],
    }.items():
        set_key(config, dotted, copy.deepcopy(value))
    config["seed_everything"] = seed
    config["data"]["init_args"]["seed"] = seed
    return config


def last_update(metrics: Path) -> int:
    """The last update an evaluation was logged at (0 if none)."""
    if not metrics.exists():
        return 0
    with open(metrics) as f:
        steps = [int(r["step"]) + 1 for r in csv.DictReader(f) if r.get("eval/geomean_pct_teacher")]
    return max(steps, default=0)


def run(name: str, groups: list[str], seeds: list[int], jobs: int, out_root: Path) -> None:
    """Every (group, seed) not finished yet, ``jobs`` at a time, one torch thread each."""
    experiment, out = EXPERIMENTS[name], out_root / name
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    todo = []
    for seed in seeds:  # seed by seed: a run stopped early leaves every group with as many seeds
        for group in groups:
            run_name = f"{group}_s{seed}"
            if last_update(RESULTS / "runs" / name / run_name / "metrics.csv") >= experiment.updates:
                print(f"{run_name}: done already", flush=True)
                continue
            shutil.rmtree(out / run_name, ignore_errors=True)
            config = out / f"{run_name}.yaml"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(yaml.safe_dump(run_config(experiment, group, seed, out), sort_keys=False))
            todo.append(run_name)
    running: list[tuple[str, subprocess.Popen, float]] = []
    while todo or running:
        while todo and len(running) < jobs:
            run_name = todo.pop(0)
            with open(out / f"{run_name}.log", "w") as log:
                command = [sys.executable, "-m", "lightning_distill", "fit", "--config", str(out / f"{run_name}.yaml")]
                process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
            running.append((run_name, process, time.time()))
        time.sleep(2)
        for entry in [r for r in running if r[1].poll() is not None]:
            run_name, process, start = entry
            running.remove(entry)
            print(f"{run_name}: exit {process.returncode} in {time.time() - start:.0f} s", flush=True)
            keep(out / run_name / "version_0", RESULTS / "runs" / name / run_name, experiment.updates)
    kept_in = RESULTS / "runs" / name
    finished = sum(
        last_update(kept_in / f"{g}_s{s}" / "metrics.csv") >= experiment.updates for g in groups for s in seeds
    )
    print(
        f"result: experiment={name} runs={len(groups) * len(seeds)} finished={finished} "
        f"kept_in={kept_in.relative_to(ROOT)}"
    )


def keep(run_dir: Path, target: Path, updates: int) -> None:
    """Copy a finished run's metrics.csv and config.yaml into the repository's results."""
    if last_update(run_dir / "metrics.csv") < updates:
        return
    target.mkdir(parents=True, exist_ok=True)
    for file in ("metrics.csv", "config.yaml"):
        shutil.copy(run_dir / file, target / file)


def report(name: str) -> None:
    """The experiment's report over its kept runs, and one more for each subset of its tasks."""
    experiment = EXPERIMENTS[name]
    base = [sys.executable, "-m", "lightning_distill", "report", str(RESULTS / "runs" / name)]
    base += ["--thresholds", *map(str, experiment.thresholds)]
    title = experiment.title or name
    reports = {name: (["--baseline", experiment.baseline], title)}
    for subset, tasks in experiment.subsets.items():
        reports[f"{name}_{subset}"] = (
            ["--baseline", experiment.baseline, "--tasks", *tasks],
            f"{title}: {subset} games only",
        )
    for other in experiment.also_against:
        reports[f"{name}_vs_{other}"] = (["--baseline", other], f"{title}: against {other}")
    for out, (extra, title) in reports.items():
        code = subprocess.call([*base, *extra, "--out", str(RESULTS / out), "--title", title], cwd=ROOT)
        if code:
            raise SystemExit(code)
    raise SystemExit(0)


def main() -> None:
    from lightning_distill.cli import quiet_third_party_output

    quiet_third_party_output()  # Lightning's tips and torch's deprecations are no benchmark's output
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["run", "report", "list"])
    parser.add_argument("experiment", nargs="?", choices=list(EXPERIMENTS))
    parser.add_argument("--groups", nargs="+", help="groups to run (default: all of the experiment's)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds to run (default: the experiment's 5)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one torch thread each")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "experiments", help="where runs are written")
    args = parser.parse_args()
    if args.action == "list":
        for name, experiment in EXPERIMENTS.items():
            print(f"{name}: {experiment.config}, groups {', '.join(experiment.groups)}, seeds {experiment.seeds}")
        return
    if args.experiment is None:
        parser.error("name an experiment: " + ", ".join(EXPERIMENTS))
    experiment = EXPERIMENTS[args.experiment]
    unknown = sorted(set(args.groups or []) - set(experiment.groups))
    if unknown:
        parser.error(f"unknown groups {unknown} for {args.experiment}; valid: {', '.join(experiment.groups)}")
    if args.action == "report":
        report(args.experiment)
    groups, seeds = args.groups or list(experiment.groups), args.seeds or list(experiment.seeds)
    run(args.experiment, groups, seeds, args.jobs, args.out)


if __name__ == "__main__":
    main()
