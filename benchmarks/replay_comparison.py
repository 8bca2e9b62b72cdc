"""Uniform vs PR vs H-PR replay at MinAtar scale (the paper's Figure 4), and H-PR's partition
count p: runs the configs over seeds, then writes learning curves and a table of the updates
each needs to reach 90% of each teacher.

    python benchmarks/replay_comparison.py run                    # 3 kinds x 3 seeds, 2 at a time
    python benchmarks/replay_comparison.py run --kinds hpr_p10 hpr_p15   # partition sensitivity
    python benchmarks/replay_comparison.py report                 # -> docs/results/

``run`` runs ``--jobs`` runs at a time (2), each with one torch thread; it skips runs that
already finished and starts interrupted ones again from scratch, so it can be stopped and
started again. Each finished run's ``metrics.csv`` and ``config.yaml`` (kilobytes) are copied to
``docs/results/runs/<name>/<kind>_s<seed>/``, which ``report`` reads: the tables can be rebuilt
from the repository alone, on another machine. Kinds:
``uniform``, ``pr``, ``hpr`` (configs/distill/minatar_<kind>.yaml) and ``hpr_p<N>`` (the H-PR
config with N partitions).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lightning_distill.cli import csv_logger_args  # noqa: E402

THRESHOLD = 90.0  # % of teacher


def command(kind: str, seed: int, out: Path) -> list[str]:
    config = "hpr" if kind.startswith("hpr") else kind
    cmd = [
        sys.executable,
        "-m",
        "lightning_distill",
        "fit",
        "--config",
        f"configs/distill/minatar_{config}.yaml",
        "--seed_everything",
        str(seed),
        "--data.init_args.seed",
        str(seed),
        *csv_logger_args(out, f"{kind}_s{seed}", version=0),
        "--trainer.enable_checkpointing",
        "false",
    ]
    if kind.startswith("hpr_p"):
        cmd += ["--data.init_args.replay.init_args.partitions", kind.removeprefix("hpr_p")]
    return cmd


def metrics_path(out: Path, kind: str, seed: int) -> Path:
    return out / f"{kind}_s{seed}" / "version_0" / "metrics.csv"


def kept_path(args, kind: str, seed: int) -> Path:
    """Where a finished run's metrics.csv is kept in the repository (its config.yaml beside it)."""
    return args.results / "runs" / args.name / f"{kind}_s{seed}" / "metrics.csv"


def finished(args, path: Path) -> bool:
    return path.exists() and max(read_curves(path).get("geomean", {0: 0}), default=0) >= args.updates


def read_curves(path: Path) -> dict[str, dict[int, float]]:
    """{game: {update: % of teacher}} (updates counted from 1), plus 'geomean'."""
    curves: dict[str, dict[int, float]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if value and key.startswith("eval/") and key.endswith("pct_teacher"):
                    game = "geomean" if key == "eval/geomean_pct_teacher" else key.split("/")[2]
                    curves.setdefault(game, {})[int(row["step"]) + 1] = float(value)
    return curves


def updates_to_reach(curve: dict[int, float], threshold: float = THRESHOLD) -> int | None:
    return next((update for update, pct in sorted(curve.items()) if pct >= threshold), None)


def run(args) -> None:
    """Every (kind, seed) not finished yet, ``args.jobs`` at a time, one torch thread each."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    todo = []
    for kind in args.kinds:
        for seed in args.seeds:
            path = metrics_path(args.out, kind, seed)
            if finished(args, kept_path(args, kind, seed)) or finished(args, path):
                print(f"{kind} seed {seed}: done already")
                keep(args, kind, seed)
                continue
            if path.parent.exists():  # an interrupted run: start it again from scratch
                shutil.rmtree(path.parent.parent)
                print(f"{kind} seed {seed}: unfinished, starting it again")
            todo.append((kind, seed))
    running: list[tuple[str, int, subprocess.Popen, float]] = []
    while todo or running:
        while todo and len(running) < args.jobs:
            kind, seed = todo.pop(0)
            log = args.out / f"{kind}_s{seed}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w") as f:
                process = subprocess.Popen(
                    command(kind, seed, args.out), cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env
                )
            running.append((kind, seed, process, time.time()))
        time.sleep(2)
        for entry in [r for r in running if r[2].poll() is not None]:
            kind, seed, process, start = entry
            running.remove(entry)
            print(f"{kind} seed {seed}: exit {process.returncode} in {time.time() - start:.0f} s", flush=True)
            if process.returncode == 0:
                keep(args, kind, seed)


def keep(args, kind: str, seed: int) -> None:
    """Copy a finished run's metrics.csv and config.yaml into the repository's results."""
    source = metrics_path(args.out, kind, seed)
    if not finished(args, source):
        return
    target = kept_path(args, kind, seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    shutil.copy(source.parent / "config.yaml", target.parent / "config.yaml")


def summarise(values: list[int | None]) -> str:
    """Mean updates over the seeds that reached the threshold, and how many did."""
    reached = [v for v in values if v is not None]
    if not reached:
        return "not reached"
    text = f"{statistics.mean(reached):,.0f}"
    return text if len(reached) == len(values) else f"{text} ({len(reached)}/{len(values)} seeds)"


def report(args) -> None:
    runs = {
        kind: [read_curves(kept_path(args, kind, s)) for s in args.seeds if kept_path(args, kind, s).exists()]
        for kind in args.kinds
    }
    runs = {kind: curves for kind, curves in runs.items() if curves}
    if not runs:
        raise SystemExit(
            f"error: no finished runs of {args.kinds} under {args.results / 'runs' / args.name}: "
            f"run `python benchmarks/replay_comparison.py run` first"
        )
    games = [g for g in next(iter(runs.values()))[0] if g != "geomean"] + ["geomean"]
    args.results.mkdir(parents=True, exist_ok=True)
    lines = [
        f"Updates to reach {THRESHOLD:.0f}% of the teacher: the first evaluation at or above it (mean over "
        f"the seeds that reached it; evaluations every 500 updates, 32 episodes each). Then the mean "
        f"% of teacher over all evaluations, and at the last one (means over seeds).",
        "",
        "| replay | seeds | " + " | ".join(games) + " |",
        "|---|---|" + "---|" * len(games),
    ]
    for kind, curves in runs.items():
        cells = [summarise([updates_to_reach(c.get(g, {})) for c in curves]) for g in games]
        lines.append(f"| {kind} | {len(curves)} | " + " | ".join(cells) + " |")
    for title, summary in (
        ("mean % of teacher over all evaluations (area under the curve)", statistics.mean),
        ("% of teacher at the last evaluation", lambda values: values[-1]),
    ):
        lines += ["", f"| replay: {title} | " + " | ".join(games) + " |", "|---|" + "---|" * len(games)]
        for kind, curves in runs.items():
            cells = []
            for game in games:
                per_seed = [summary([c[game][u] for u in sorted(c[game])]) for c in curves if c.get(game)]
                cells.append(f"{statistics.mean(per_seed):.1f}" if per_seed else "-")
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (args.results / f"{args.name}.md").write_text(table + "\n")
    print(table)
    plot(runs, games, args.results / f"{args.name}.png")
    seeds = " ".join(f"{kind}_seeds={len(curves)}" for kind, curves in runs.items())
    print(f"result: {seeds} table={args.results / args.name}.md plot={args.results / args.name}.png")


def plot(runs: dict, games: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(games), figsize=(4 * len(games), 3.4), sharex=True)
    for ax, game in zip(axes, games, strict=True):
        for kind, curves in runs.items():
            updates = sorted(set.intersection(*(set(c.get(game, {})) for c in curves)))
            values = [[c[game][u] for c in curves] for u in updates]
            ax.plot(updates, [statistics.mean(v) for v in values], label=kind)
            ax.fill_between(updates, [min(v) for v in values], [max(v) for v in values], alpha=0.15)
        ax.axhline(THRESHOLD, color="gray", lw=0.8, ls="--")
        ax.set_title(game if game != "geomean" else "geometric mean")
        ax.set_xlabel("updates")
    axes[0].set_ylabel("% of teacher (mean, min-max over seeds)")
    axes[-1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["run", "report"])
    parser.add_argument("--kinds", nargs="+", default=["uniform", "pr", "hpr"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--updates", type=int, default=6000, help="a run is finished when it evaluated here")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "replay_comparison")
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--name", default="replay_comparison", help="file name of the report's table and plot")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one torch thread each")
    args = parser.parse_args()
    run(args) if args.action == "run" else report(args)


if __name__ == "__main__":
    main()
