"""REPAINT's comparison (spec sections 5-6): baseline, KS, IT and REPAINT over seeds, on a
target task with one or more teachers. ``report`` is ``python -m lightning_distill report`` per
teacher over the kept runs: iterations ``K`` to the target score with 95% intervals, the mean K
over the baseline's ("pct. reduced" = 1 - that), the probability of improvement, the curves.

    python benchmarks/repaint_comparison.py run --jobs 2          # Reacher, three teachers, 5 seeds
    python benchmarks/repaint_comparison.py report                # -> benchmarks/results/
    python benchmarks/repaint_comparison.py run --pair ant --teachers similar --jobs 2
    python benchmarks/repaint_comparison.py run --pair cartpole --teachers cartpole --target 300

The target and the iterations default to the first teacher's config (``target_score``,
``trainer.max_epochs``): Reacher -7.4 in 200, Ant 700 in 250.

Each teacher ``T`` is the config ``configs/repaint/<pair>_<T>.yaml`` (or ``<pair>.yaml`` when
``T`` equals ``pair``); the baseline ignores the teacher, so it runs once per seed. ``run``
skips finished runs and restarts unfinished ones, so it can be stopped and started again; each
finished run's ``metrics.csv`` and ``config.yaml`` are kept in
``benchmarks/results/runs/repaint_<pair>/<run>/``, from which ``report`` rebuilds the tables
(``repaint_<pair>_<teacher>.md`` with its ``_curves.png`` and ``_intervals.png``), with the
paper's row for that kind of teacher under each. ``--methods`` runs some of the four only.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lightning_distill.cli import csv_logger_args  # noqa: E402

METHODS = ("baseline", "ks", "it", "repaint")
#: the paper's rows (spec section 7): target, K per method and the final scores of KS / IT / REPAINT;
#: it has no Reacher or Ant sub-task teacher, so a sub-task table cites its own sub-task rows
PAPER = {
    ("reacher", "similar"): ("Reacher, target -7.4", "173", "51 (71%)", "97 (44%)", "42 (76%)", "-5.3 / -5.9 / -5.4"),
    ("reacher", "different"): (
        "Reacher, target -7.4",
        "173",
        "73 (58%)",
        "127 (27%)",
        "51 (71%)",
        "-6.9 / -6.4 / -5.2",
    ),
    ("reacher", "subtask"): (
        "DeepRacer multi-car, target 1481",
        "100",
        "34 (66%)",
        "75 (25%)",
        "29 (71%)",
        "1542 / 1610 / 1623",
    ),
    ("ant", "similar"): ("Ant, target 3685", "997", "363 (64%)", "623 (38%)", "334 (66%)", "5464 / 5172 / 5540"),
}


def config_path(pair: str, teacher: str) -> Path:
    name = pair if teacher == pair else f"{pair}_{teacher}"
    return ROOT / "configs" / "repaint" / f"{name}.yaml"


def runs(args) -> list[tuple[str, str, int]]:
    """(run name, config teacher, seed) of every run: the baseline once, each transfer method per
    teacher; seed by seed, so that a run stopped early leaves whole seeds to compare."""
    out = []
    for s in args.seeds:
        out += [(f"baseline_s{s}", args.teachers[0], s)] if "baseline" in args.methods else []
        for teacher in args.teachers:
            out += [(f"{m}_{teacher}_s{s}", teacher, s) for m in args.methods if m != "baseline"]
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
    keep_finished(args)
    print(f"next: python {sys.argv[0]} report --pair {args.pair} --teachers {' '.join(args.teachers)}", flush=True)


def kept(args, name: str) -> Path:
    """Where a finished run's metrics.csv and config.yaml are kept in the repository."""
    return args.results / "runs" / f"repaint_{args.pair}" / name


def keep_finished(args) -> None:
    """Copy each finished run into ``--results``; a kept run that is longer than the new one (a
    quick test of the script, say) is left as it is, with a line saying so."""
    count = 0
    for name, _, _ in runs(args):
        source = metrics_path(args.out, name)
        if not source.exists() or len(read_returns(source)) < args.iterations:
            continue
        target = kept(args, name)
        if (target / "metrics.csv").exists() and len(read_returns(target / "metrics.csv")) > len(read_returns(source)):
            print(f"{name}: not kept: {target} holds a longer run (use --results for a scratch folder)", flush=True)
            continue
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target / "metrics.csv")
        shutil.copy(source.parent / "config.yaml", target / "config.yaml")
        count += 1
    if count:
        print(f"kept {count} finished runs in {kept(args, '')}", flush=True)


def report(args) -> None:
    """``python -m lightning_distill report`` per teacher over the kept runs: K (iterations to the
    target) with intervals, the mean K over the baseline's (pct. reduced = 1 - that), then the
    paper's row."""
    from lightning_distill.report import report as write_report

    keep_finished(args)
    for teacher in args.teachers:
        names = [
            n for n, t, _ in runs(args) if n.startswith("baseline") or t == teacher and not n.startswith("baseline")
        ]
        paths = [str(kept(args, n)) for n in names if (kept(args, n) / "metrics.csv").exists()]
        if not paths:
            print(f"error: no finished runs for teacher {teacher!r}: run `{sys.argv[0]} run` first", file=sys.stderr)
            raise SystemExit(2)
        out = args.results / f"{args.name}_{teacher}"
        title = f"REPAINT on {args.pair}, {teacher} teacher: iterations K to train/return {args.target:g}"
        write_report(paths, out, "baseline", "train/return", "epoch", [args.target], title)
        if (args.pair, teacher) in PAPER:
            target, k_base, *methods, finals = PAPER[args.pair, teacher]
            paper = f"The paper ({target}): K baseline {k_base}; KS / IT / REPAINT {' / '.join(methods)}; "
            with open(out.with_name(out.name + ".md"), "a") as f:
                f.write(f"\n{paper}final scores {finals}.\n")


def main() -> None:
    from lightning_distill.cli import quiet_third_party_output

    quiet_third_party_output()  # Lightning's tips and torch's deprecations are no benchmark's output
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["run", "report"])
    parser.add_argument("--pair", default="reacher", help="configs/repaint/<pair>_<teacher>.yaml")
    parser.add_argument("--teachers", nargs="+", default=["similar", "different", "subtask"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="default: all four")
    parser.add_argument("--iterations", type=int, default=None, help="default: the config's trainer.max_epochs")
    parser.add_argument("--target", type=float, default=None, help="default: the config's model target_score")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side (one thread each)")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/repaint_<pair>")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--name", default=None, help="file name of the table and plot (default: repaint_<pair>)")
    args = parser.parse_args()
    config = yaml.safe_load(config_path(args.pair, args.teachers[0]).read_text())
    args.iterations = args.iterations or int(config["trainer"]["max_epochs"])
    args.target = float(config["model"]["init_args"]["target_score"]) if args.target is None else args.target
    args.out = args.out or ROOT / "runs" / f"repaint_{args.pair}"
    args.name = args.name or f"repaint_{args.pair}"
    run(args) if args.action == "run" else report(args)


if __name__ == "__main__":
    main()
