"""REPAINT's comparison (spec sections 5-6): baseline, KS, IT and REPAINT over seeds, on a
target task with one or more teachers; writes the table of iterations ``K`` to the target
score, "pct. reduced" and final scores, and the learning curves.

    python benchmarks/repaint_comparison.py run --jobs 2          # Reacher, both teachers, 3 seeds
    python benchmarks/repaint_comparison.py report                # -> docs/results/
    python benchmarks/repaint_comparison.py run --pair cartpole --teachers cartpole --target 300

Each teacher ``T`` is the config ``configs/repaint/<pair>_<T>.yaml`` (or ``<pair>.yaml`` when
``T`` equals ``pair``); the baseline ignores the teacher, so it runs once per seed. ``run``
skips finished runs and restarts unfinished ones, so it can be stopped and started again.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lightning_distill.cli import csv_logger_args  # noqa: E402
from lightning_distill.transfer_metric import iterations_to_target, pct_reduced  # noqa: E402

METHODS = ("baseline", "ks", "it", "repaint")
#: the paper's Reacher rows (spec section 7): K per method and the final scores of KS / IT / REPAINT
PAPER = {
    "similar": ("-7.4", "173", "51 (71%)", "97 (44%)", "42 (76%)", "-5.3 / -5.9 / -5.4"),
    "different": ("-7.4", "173", "73 (58%)", "127 (27%)", "51 (71%)", "-6.9 / -6.4 / -5.2"),
}


def config_path(pair: str, teacher: str) -> Path:
    name = pair if teacher == pair else f"{pair}_{teacher}"
    return ROOT / "configs" / "repaint" / f"{name}.yaml"


def runs(args) -> list[tuple[str, str, int]]:
    """(run name, config teacher, seed) of every run: the baseline once, each transfer method per teacher."""
    out = [(f"baseline_s{s}", args.teachers[0], s) for s in args.seeds]
    for teacher in args.teachers:
        out += [(f"{m}_{teacher}_s{s}", teacher, s) for m in METHODS[1:] for s in args.seeds]
    return out


def metrics_path(out: Path, name: str) -> Path:
    return out / name / "version_0" / "metrics.csv"


def read_returns(path: Path) -> list[float]:
    """Per-iteration ``train/return`` (NaN before the first episode ends)."""
    by_epoch: dict[int, float] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            if row.get("train/return"):
                by_epoch[int(row["epoch"])] = float(row["train/return"])
    if not by_epoch:
        return []
    return [by_epoch.get(k, math.nan) for k in range(max(by_epoch) + 1)]


def run_one(args, name: str, teacher: str, seed: int) -> None:
    path = metrics_path(args.out, name)
    if path.exists() and len(read_returns(path)) >= args.iterations:
        print(f"{name}: done already", flush=True)
        return
    if (args.out / name).exists():
        shutil.rmtree(args.out / name)
    method = name.split("_")[0]
    cmd = [
        sys.executable,
        "-m",
        "lightning_distill",
        "fit",
        "--config",
        str(config_path(args.pair, teacher)),
        "--model.init_args.method",
        method,
        "--seed_everything",
        str(seed),
        "--data.init_args.seed",
        str(seed),
        "--trainer.max_epochs",
        str(args.iterations),
        *csv_logger_args(args.out, name, version=0),
        "--trainer.enable_progress_bar",
        "false",
    ]
    start = time.time()
    log = args.out / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:  # one thread per run: runs side by side do not fight over cores
        code = subprocess.call(
            cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=os.environ | {"OMP_NUM_THREADS": "1"}
        )
    print(f"{name}: exit {code} in {time.time() - start:.0f} s (log {log})", flush=True)


def run(args) -> None:
    with ThreadPoolExecutor(args.jobs) as pool:
        for future in [pool.submit(run_one, args, *r) for r in runs(args)]:
            future.result()


def cell(ks: list[int | None], k_base: float | None) -> str:
    """Mean K over the finished seeds that reached the target, its pct. reduced, and how many reached."""
    if not ks:
        return "not run"
    reached = [k for k in ks if k is not None]
    if not reached:
        return f"not reached ({len(ks)} seeds)"
    mean = statistics.mean(reached)
    text = f"{mean:.0f}"
    if k_base is not None:
        text += f" ({pct_reduced(mean, k_base):.0%})"
    return f"{text}, {len(reached)}/{len(ks)} seeds"


def mean_or_dash(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f}" if values else "-"


def report(args) -> None:
    curves = {
        name: read_returns(metrics_path(args.out, name))
        for name, _, _ in runs(args)
        if metrics_path(args.out, name).exists()
    }
    curves = {name: c for name, c in curves.items() if len(c) >= args.iterations}  # finished runs only
    finals = {
        name: statistics.mean([v for v in c[-args.final_window :] if not math.isnan(v)]) for name, c in curves.items()
    }
    k = {name: iterations_to_target(c, args.target) for name, c in curves.items()}
    base = [k[f"baseline_s{s}"] for s in args.seeds if f"baseline_s{s}" in k]
    base_reached = [x for x in base if x is not None]
    k_base = statistics.mean(base_reached) if base_reached else None
    lines = [
        f"Iterations K until `train/return` (the moving average of the last training episodes) first reaches "
        f"{args.target:g}; mean over the seeds that reached it, of the finished runs ({args.iterations} "
        f"iterations each), pct. reduced = 1 - K / K_baseline in brackets. Final: mean `train/return` over the "
        f"last {args.final_window} iterations, mean over seeds.",
        "",
        "| teacher | target | K baseline | KS | IT | REPAINT | final baseline | final KS / IT / REPAINT |",
        "|---|---|---|---|---|---|---|---|",
    ]
    final_base = mean_or_dash([finals[f"baseline_s{s}"] for s in args.seeds if f"baseline_s{s}" in finals])
    for teacher in args.teachers:
        names = {m: [f"{m}_{teacher}_s{s}" for s in args.seeds if f"{m}_{teacher}_s{s}" in k] for m in METHODS[1:]}
        cells = [cell([k[n] for n in names[m]], k_base) for m in METHODS[1:]]
        final = " / ".join(mean_or_dash([finals[n] for n in names[m]]) for m in METHODS[1:])
        lines.append(
            f"| {teacher} (ours) | {args.target:g} | {cell(base, None)} | "
            + " | ".join(cells)
            + f" | {final_base} | {final} |"
        )
        if args.pair == "reacher" and teacher in PAPER:
            target, *paper_cells, paper_final = PAPER[teacher]
            lines.append(f"| {teacher} (paper) | {target} | " + " | ".join(paper_cells) + f" | - | {paper_final} |")
    table = "\n".join(lines)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.name}.md").write_text(table + "\n")
    print(table)
    plot(args, curves)
    k_text = "none" if k_base is None else f"{k_base:.1f}"
    print(f"result: finished_runs={len(curves)} k_baseline={k_text} table={args.results / args.name}.md")


def plot(args, curves: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.teachers), figsize=(5.5 * len(args.teachers), 3.8), squeeze=False)
    for ax, teacher in zip(axes[0], args.teachers, strict=True):
        for method in METHODS:
            names = [f"baseline_s{s}" if method == "baseline" else f"{method}_{teacher}_s{s}" for s in args.seeds]
            series = [curves[n] for n in names if n in curves]
            if not series:
                continue
            length = min(len(c) for c in series)
            rows = [[c[i] for c in series if not math.isnan(c[i])] for i in range(length)]
            xs = [i + 1 for i, r in enumerate(rows) if r]
            ax.plot(xs, [statistics.mean(r) for r in rows if r], label=method)
            ax.fill_between(xs, [min(r) for r in rows if r], [max(r) for r in rows if r], alpha=0.15)
        ax.axhline(args.target, color="gray", lw=0.8, ls="--")
        ax.set_title(f"{args.pair}: {teacher} teacher")
        ax.set_xlabel("iteration k")
        if args.ylim:
            ax.set_ylim(*args.ylim)
    axes[0][0].set_ylabel("train/return (mean, min-max over seeds)")
    axes[0][0].legend()
    fig.tight_layout()
    path = args.results / f"{args.name}.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["run", "report"])
    parser.add_argument("--pair", default="reacher", help="configs/repaint/<pair>_<teacher>.yaml")
    parser.add_argument("--teachers", nargs="+", default=["similar", "different"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--target", type=float, default=-7.4, help="the target score (the paper's for Reacher)")
    parser.add_argument("--final_window", type=int, default=10, help="iterations averaged for the final score")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side (one thread each)")
    parser.add_argument("--ylim", type=float, nargs=2, default=None)
    parser.add_argument("--out", type=Path, default=None, help="default: runs/repaint_<pair>")
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--name", default=None, help="file name of the table and plot (default: repaint_<pair>)")
    args = parser.parse_args()
    args.out = args.out or ROOT / "runs" / f"repaint_{args.pair}"
    args.name = args.name or f"repaint_{args.pair}"
    run(args) if args.action == "run" else report(args)


if __name__ == "__main__":
    main()
