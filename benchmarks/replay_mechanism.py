"""What H-PR's memory did during an experiment's runs, read from their ``replay/<task>/...``
columns (issue 32, part 4): each partition's share of stored experiences, of the recent
insertions (the window) and of the sampled ones, the effective batch size and the mean
normalised importance weight, per group of runs and task.

From the shares it derives how long an experience of each partition lives once its partition is
full: ``C_j / (E * window_j)`` updates, ``C_j`` the partition's capacity, ``E`` the experiences a
task adds per update (its envs) and ``window_j`` the partition's share of the insertions. With
equal capacities a partition is full when its stored share is the largest one; one that is not
full at the run's end has evicted nothing, so its experiences stay to the end of the run. A uniform memory of capacity
``C`` keeps every experience ``C / E`` updates, whatever its value.

    python benchmarks/replay_mechanism.py figure4_regime
    # -> benchmarks/results/figure4_regime_mechanism.{md,png} and _mechanism_time.png (over updates)

Ends with one ``result:`` line.
"""

from __future__ import annotations

import argparse
import csv
import functools
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
COLUMN = re.compile(r"replay/(?P<task>.+)/(?P<name>stored|window|sampled)_(?P<j>\d+)$")
SCALAR = re.compile(r"replay/(?P<task>.+)/(?P<name>effective_batch|mean_weight)$")


def group_of(run: Path) -> str:
    """``hpr_p5_s3`` -> ``hpr_p5``: a run folder's group, its seed suffix dropped."""
    return re.sub(r"_s\d+$", "", run.name)


@functools.cache
def read_metrics(metrics: Path) -> dict[str, dict[int, float]]:
    """``{column: {update: value}}`` of a run's metrics.csv, read once however many columns are plotted."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    with open(metrics) as f:
        for row in csv.DictReader(f):
            step = int(float(row["step"])) + 1
            for key, value in row.items():
                if value:
                    out[key][step] = float(value)
    return out


def read_replay_columns(metrics: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``{task: {"stored_3": [(update, share), ...], "effective_batch": [...], ...}}``."""
    out: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(dict)
    for key, values in read_metrics(metrics).items():
        match = COLUMN.match(key) or SCALAR.match(key)
        if match:
            j = match.groupdict().get("j")
            out[match["task"]][match["name"] + (f"_{j}" if j is not None else "")] = sorted(values.items())
    return out


def replay_settings(config: Path) -> tuple[int, int, int]:
    """Partitions, experiences per partition, and experiences a task adds per update."""
    data = yaml.safe_load(config.read_text())["data"]["init_args"]
    init = data["replay"].get("init_args", {})
    partitions = int(init.get("partitions", 1))
    capacity = int(init.get("partition_capacity", init.get("capacity", 0)))
    return partitions, capacity, int(data.get("num_envs", 1)) * int(data.get("train_freq", 1))


def series(columns: dict[str, list[tuple[int, float]]], name: str) -> np.ndarray:
    return np.array([v for _, v in sorted(columns.get(name, []))])


def is_full(stored: np.ndarray) -> np.ndarray:
    """With equal partition capacities, the full partitions are those holding the most (a stored
    share within 2% of the largest); the others have never evicted."""
    return stored >= 0.98 * stored.max()


def uniform_lifetimes(runs: list[Path]) -> dict[str, float]:
    """``C / E`` updates for each group whose replay has one partition (uniform and PR)."""
    out: dict[str, float] = {}
    for run in runs:
        partitions, capacity, per_update = replay_settings(run / "config.yaml")
        if partitions == 1:
            out[group_of(run)] = capacity / per_update
    return out


def summarise(runs: list[Path]) -> dict[str, dict[str, dict[str, float | list[float]]]]:
    """Per group and task, over seeds and the run's second half (memories full): the shares of
    each partition, the lifetimes, the effective batch and the mean weight."""
    per: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in runs:
        group = group_of(run)
        partitions, capacity, per_update = replay_settings(run / "config.yaml")
        for task, columns in read_replay_columns(run / "metrics.csv").items():
            entry: dict = {"partitions": partitions}
            for name in ("effective_batch", "mean_weight"):
                values = series(columns, name)
                if len(values):
                    entry[name] = float(values[len(values) // 2 :].mean())
            if partitions > 1:
                shares = {
                    kind: np.stack([series(columns, f"{kind}_{j}") for j in range(partitions)])
                    for kind in ("stored", "window", "sampled")
                }
                for kind, over_time in shares.items():
                    entry[kind] = over_time[:, over_time.shape[1] // 2 :].mean(axis=1)
                life = capacity / (per_update * np.maximum(entry["window"], 1e-9))
                # full at the run's end: one that fills during the second half has begun to evict
                entry["lifetime"] = np.where(is_full(shares["stored"][:, -1]), life, np.inf)
            per[(group, task)].append(entry)
    out: dict = defaultdict(dict)
    for (group, task), entries in per.items():
        merged: dict = {"seeds": len(entries)}
        for key in ("effective_batch", "mean_weight", "stored", "window", "sampled", "lifetime"):
            values = [e[key] for e in entries if key in e]
            if values:
                # a median over seeds, so one seed whose partition never filled does not make it inf
                mean = np.median(values, axis=0) if key == "lifetime" else np.mean(values, axis=0)
                merged[key] = mean.tolist() if np.ndim(mean) else float(mean)
        out[group][task] = merged
    return out


def markdown(name: str, summary: dict, fifo: dict[str, float]) -> str:
    lines = [
        f"# What the replay did: {name}",
        "",
        "Read from each run's `replay/<task>/...` columns, averaged over the second half of each run "
        "(memories full) and over seeds. Lifetime: updates an experience of that partition stays, "
        "`C_j / (E window_j)`, for a partition full at the run's end (its stored share the largest); a "
        "partition that is not has evicted nothing, so its experiences stay to the end of the run "
        '("never evicted"). One-partition memories keep every experience `C / E` updates: '
        + ", ".join(f"{g} {v:,.0f}" for g, v in sorted(fifo.items()))
        + ".",
        "",
        f"![partition shares over updates, next to the learning curves]({name}_mechanism_time.png)",
        "",
        f"![partition shares, second half]({name}_mechanism.png)",
        "",
        "## Effective batch size and mean normalised importance weight (batch 32)",
        "",
        "| group | task | seeds | effective batch | mean weight |",
        "|---|---|---|---|---|",
    ]
    for group, tasks in summary.items():
        for task, s in tasks.items():
            if "effective_batch" in s:
                lines.append(
                    f"| {group} | {task} | {s['seeds']} | {s['effective_batch']:.1f} | {s['mean_weight']:.3f} |"
                )
    lines += ["", "## Partitions: share of stored, window and sampled experiences, and lifetime", ""]
    for group, tasks in summary.items():
        for task, s in tasks.items():
            if "stored" not in s:
                continue
            lines += [
                f"**{group}, {task}** ({s['seeds']} seeds)",
                "",
                "| partition | stored | window | sampled | lifetime (updates) |",
                "|---|---|---|---|---|",
            ]
            for j, (a, b, c, d) in enumerate(zip(s["stored"], s["window"], s["sampled"], s["lifetime"], strict=True)):
                life = "never evicted" if not np.isfinite(d) else f"{d:,.0f}"
                lines.append(f"| {j} | {a:.3f} | {b:.3f} | {c:.3f} | {life} |")
            lines.append("")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g, tasks in summary.items() if any("stored" in s for s in tasks.values())]
    tasks = sorted({t for g in groups for t in summary[g]})
    if not groups:
        return
    fig, axes = plt.subplots(len(tasks), len(groups), figsize=(3.2 * len(groups), 2.6 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        for col, group in enumerate(groups):
            s, ax = summary[group].get(task, {}), axes[row][col]
            if "stored" not in s:
                ax.axis("off")
                continue
            x = np.arange(len(s["stored"]))
            for offset, kind in zip((-0.27, 0, 0.27), ("stored", "window", "sampled"), strict=True):
                ax.bar(x + offset, s[kind], width=0.27, label=kind)
            ax.set_title(f"{group}\n{task}", fontsize=8)
            ax.set_xlabel("partition (low -> high V)", fontsize=7)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def mean_curve(runs: list[Path], column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(updates, mean over runs)`` of one metrics column, on the updates every run logged."""
    per_run = [read_metrics(run / "metrics.csv").get(column, {}) for run in runs]
    steps = sorted(set.intersection(*(set(v) for v in per_run))) if per_run else []
    return np.array(steps), np.array([np.mean([v[t] for v in per_run]) for t in steps])


def plot_over_time(runs: list[Path], summary: dict, path: Path) -> None:
    """Per task (rows): every group's learning curve and effective batch, then, for each H-PR
    group, its partitions' stored shares over updates (stacked, low V at the bottom) with the
    window shares (the recent insertions: where the visited states' values are) as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_group: dict[str, list[Path]] = defaultdict(list)
    for run in runs:
        by_group[group_of(run)].append(run)
    partitioned = [g for g, tasks in summary.items() if any("stored" in s for s in tasks.values())]
    tasks = sorted({t for g in summary for t in summary[g]})
    if not tasks:
        return
    cols = 2 + len(partitioned)
    fig, axes = plt.subplots(len(tasks), cols, figsize=(3.3 * cols, 2.8 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        curve_ax, ess_ax = axes[row][0], axes[row][1]
        for group, members in sorted(by_group.items()):
            x, y = mean_curve(members, f"eval/{task}/pct_teacher")
            curve_ax.plot(x, y, label=group, lw=1)
            x, y = mean_curve(members, f"replay/{task}/effective_batch")
            if len(x):
                ess_ax.plot(x, y, label=group, lw=1)
        curve_ax.set_title(f"{task}: % of teacher", fontsize=8)
        ess_ax.set_title(f"{task}: effective batch (of 32)", fontsize=8)
        for col, group in enumerate(partitioned, start=2):
            ax, members = axes[row][col], by_group[group]
            parts = len(summary[group][task]["stored"])
            stored = [mean_curve(members, f"replay/{task}/stored_{j}") for j in range(parts)]
            window = [mean_curve(members, f"replay/{task}/window_{j}") for j in range(parts)]
            x = stored[0][0]
            ax.stackplot(x, *[y for _, y in stored], colors=plt.cm.viridis(np.linspace(0, 1, parts)), alpha=0.6)
            bottom = np.zeros(len(window[0][0]))
            for _, y in window:
                bottom = bottom + y
                ax.plot(window[0][0], bottom, color="k", lw=0.5)
            ax.set_title(f"{group}, {task}\nstored (fill) and window (lines) shares", fontsize=8)
            ax.set_ylim(0, 1)
        for ax in axes[row]:
            ax.tick_params(labelsize=7)
            ax.set_xlabel("updates", fontsize=7)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", help="a folder name under benchmarks/results/runs")
    parser.add_argument("--runs", type=Path, default=None, help="default: benchmarks/results/runs/<experiment>")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/<experiment>_mechanism")
    args = parser.parse_args()
    folder = args.runs or RESULTS / "runs" / args.experiment
    runs = sorted(p.parent for p in folder.glob("*/metrics.csv") if (p.parent / "config.yaml").exists())
    if not runs:
        raise SystemExit(f"no runs under {folder}: a run is a folder with metrics.csv and config.yaml")
    summary = summarise(runs)
    out = args.out or RESULTS / f"{args.experiment}_mechanism"
    out.with_suffix(".md").write_text(markdown(args.experiment, summary, uniform_lifetimes(runs)))
    plot(summary, out.with_suffix(".png"))
    plot_over_time(runs, summary, out.with_name(out.name + "_time.png"))
    ess = {g: np.mean([s["effective_batch"] for s in t.values() if "effective_batch" in s]) for g, t in summary.items()}
    shown = " ".join(f"ess_{g}={v:.1f}" for g, v in ess.items() if np.isfinite(v))
    print(f"wrote {out.with_suffix('.md')}")
    print(f"result: runs={len(runs)} {shown}")


if __name__ == "__main__":
    main()
