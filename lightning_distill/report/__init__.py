"""``python -m lightning_distill report RUNS...``: tables and plots over runs, grouped by config.

Given run folders (or globs, or folders above them), the report groups the runs by what differs
in their saved configs and writes ``<out>.md`` with, per task and aggregated over tasks x seeds:
best and final score, area under the learning curve, and the updates to first reach each
threshold (90% and 100% of the teacher by default); stratified bootstrap 95% intervals of the
IQM, mean and geometric mean; and the probability that each group improves on a baseline group.
``<out>_curves.png`` has the learning curves (mean and 95% band over seeds) and
``<out>_intervals.png`` the aggregate intervals. Distillation runs are read by their
``eval/<task>/pct_teacher``; any other run by one ``--metric`` column (e.g. REPAINT's
``train/return`` by ``--x epoch``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lightning_distill.checks import check_output_folder
from lightning_distill.errors import ConfigError
from lightning_distill.report.collect import (
    GEOMEAN,
    Run,
    differing_keys,
    find_run_dirs,
    group_runs,
    load_run,
    restrict,
)
from lightning_distill.report.measures import MEASURES, first_reach
from lightning_distill.report.plots import plot_curves, plot_intervals
from lightning_distill.report.stats import (
    AGGREGATES,
    PerGame,
    improvement_interval,
    interval,
    iqm,
    ratio_interval,
)

__all__ = ["add_report_arguments", "report", "report_from_config"]


def add_report_arguments(parser: Any) -> None:
    """The ``report`` subcommand's arguments (a jsonargparse parser)."""
    parser.add_argument("runs", nargs="+", type=str, help="Run folders, folders above them, or globs.")
    parser.add_argument(
        "--out", type=str, default="report", help="Writes <out>.md, <out>_curves.png, <out>_intervals.png."
    )
    parser.add_argument(
        "--baseline", type=str | None, default=None, help="Group the others are compared with (default: the first)."
    )
    parser.add_argument(
        "--metric", type=str, default="pct_teacher", help="pct_teacher (every task's), or one metrics.csv column."
    )
    parser.add_argument(
        "--x", type=str, default="step", help="What the curves are indexed by: step (updates) or epoch (iterations)."
    )
    parser.add_argument(
        "--thresholds", nargs="+", type=float, default=[90.0, 100.0], help="Report the first x reaching each."
    )
    parser.add_argument(
        "--tasks", nargs="+", type=str, default=None, help="Only these tasks (e.g. MinAtar/Asterix); default: all."
    )
    parser.add_argument("--title", type=str | None, default=None, help="Heading of the markdown file.")


def report_from_config(cfg: Any) -> str:
    check_output_folder("--out", cfg.out)
    tasks = list(cfg.tasks) if cfg.tasks else None
    return report(cfg.runs, Path(cfg.out), cfg.baseline, cfg.metric, cfg.x, list(cfg.thresholds), cfg.title, tasks)


def _cell(estimate: tuple[float, float, float], digits: int = 1) -> str:
    point, low, high = estimate
    if math.isnan(low):
        return f"{point:,.{digits}f} [one value: no interval]"
    return f"{point:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}]"


def _per_game(runs: list[Run], tasks: list[str], measure: Any) -> PerGame:
    return [[measure(r.curves[t]) for r in runs if t in r.curves] for t in tasks]


def _reach_or_budget(run: Run, task: str, threshold: float) -> float:
    """Where a run first reached ``threshold`` on ``task``; a run that never did counts as its
    last evaluation (a lower bound: it needed more)."""
    curve = run.curves[task]
    reached = first_reach(curve, threshold)
    return float(reached if reached is not None else max(curve))


def report(
    paths: list[str],
    out: Path,
    baseline: str | None = None,
    metric: str = "pct_teacher",
    x: str = "step",
    thresholds: list[float] | None = None,
    title: str | None = None,
    tasks: list[str] | None = None,
) -> str:
    """Write the report for the runs under ``paths`` (only ``tasks``, if given: then the
    geometric mean is recomputed over them); returns the markdown."""
    thresholds = [90.0, 100.0] if thresholds is None else thresholds
    if metric == "pct_teacher" and x != "step":
        raise ConfigError(f"--x {x!r} with --metric pct_teacher: distillation runs evaluate by update; use --x step")
    runs = [load_run(d, metric, x) for d in find_run_dirs(paths)]
    if tasks:
        runs = [restrict(r, tasks) for r in runs]
    runs = [r for r in runs if r.curves]
    if not runs:
        raise ConfigError(f"no run under {' '.join(paths)} logged {metric!r}: name a metrics.csv column with --metric")
    groups = group_runs(runs)
    baseline = baseline or next(iter(groups))
    if baseline not in groups:
        raise ConfigError(f"--baseline {baseline!r} is not a group; groups: {', '.join(groups)}")
    groups = {baseline: groups[baseline]} | groups  # the baseline's rows first
    series = list(dict.fromkeys(s for r in runs for s in r.curves if s != GEOMEAN))
    shown = series + ([GEOMEAN] if any(GEOMEAN in r.curves for r in runs) else [])
    unit = "% of teacher" if metric == "pct_teacher" else metric
    xname = "updates" if x == "step" else "iterations" if x == "epoch" else x
    aggregates = dict(AGGREGATES)
    if any(v <= 0 for r in runs for s in series for v in r.curves.get(s, {}).values()):
        aggregates.pop("geometric mean")  # only for positive scores

    lines = [f"# {title or 'Report'}", "", _summary(runs, groups, unit, xname), ""]
    lines += _what_differs(groups)
    for name, measure in MEASURES.items():
        lines += [f"## {unit}: {name} (mean over seeds [95% bootstrap interval])", ""]
        lines += _series_table(groups, shown, lambda curve, m=measure: m(curve))
    for threshold in thresholds:
        lines += [f"## {xname} to first reach {threshold:g} ({unit}): mean over the seeds that reached it", ""]
        lines += _reach_table(groups, shown, threshold)

    intervals: dict[str, dict[str, tuple[float, float, float]]] = {}
    lines += [
        f"## Aggregates over {len(series)} task(s) x seeds (stratified bootstrap 95% intervals)",
        "",
        "| group | measure | " + " | ".join(aggregates) + " |",
        "|---|---|" + "---|" * len(aggregates),
    ]
    for label, members in groups.items():
        for measure_name, measure in MEASURES.items():
            per_game = _per_game(members, series, measure)
            estimates = {name: interval(per_game, aggregate) for name, aggregate in aggregates.items()}
            lines.append(f"| {label} | {measure_name} | " + " | ".join(_cell(e) for e in estimates.values()) + " |")
            if measure_name == "final":
                intervals[label] = {f"{name} of final": e for name, e in estimates.items()}
    lines.append("")
    for threshold in thresholds:
        lines += _reach_aggregates(groups, series, threshold, baseline, xname)
    lines += _improvements(groups, series, thresholds, baseline, xname)

    out.parent.mkdir(parents=True, exist_ok=True)
    curves_png, intervals_png = out.with_name(out.name + "_curves.png"), out.with_name(out.name + "_intervals.png")
    plot_curves(groups, shown, thresholds, unit, xname, curves_png)
    plot_intervals(intervals, unit, intervals_png)
    lines += [f"![learning curves]({curves_png.name})", "", f"![aggregate intervals]({intervals_png.name})", ""]
    text = "\n".join(lines)
    out.with_name(out.name + ".md").write_text(text)
    print(text)
    print(
        f"result: groups={len(groups)} runs={len(runs)} report={out}.md curves={curves_png} intervals={intervals_png}"
    )
    return text


def _last_x(run: Run) -> int:
    return max(max(c) for c in run.curves.values())


def _summary(runs: list[Run], groups: dict[str, list[Run]], unit: str, xname: str) -> str:
    """Runs, groups, seeds and budget; which runs stop short of their group's longest (unfinished,
    or a shorter budget: their "final" is earlier and a threshold they never reached counts at
    their own end); what the geometric-mean column is."""
    seeds = ", ".join(f"{label} {len(members)}" for label, members in groups.items())
    text = (
        f"{len(runs)} runs in {len(groups)} groups (seeds: {seeds}); curves of {unit} up to "
        f"{max(_last_x(r) for r in runs):,} {xname}. Intervals: 95% percentile bootstrap over seeds, "
        f"stratified by task for aggregates (scipy.stats.bootstrap)."
    )
    if any(GEOMEAN in r.curves for r in runs):
        text += (
            f" The `{GEOMEAN}` column is each run's own curve of the geometric mean over tasks (what the run"
            f" logged as `eval/geomean_pct_teacher`); the aggregates pool the tasks' values instead."
        )
    short = [
        f"{r.path} ({_last_x(r):,})"
        for members in groups.values()
        for r in members
        if _last_x(r) < max(_last_x(m) for m in members)
    ]
    if short:
        text += f"\n\n**Runs that stop before their group's last {xname}** (unfinished?): " + ", ".join(short) + "."
    return text


def _what_differs(groups: dict[str, list[Run]]) -> list[str]:
    firsts = [members[0] for members in groups.values()]
    keys = differing_keys(firsts)
    if not keys:
        return []
    lines = ["| config key | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for key in keys:
        lines.append(f"| `{key}` | " + " | ".join(str(first.config.get(key, "-")) for first in firsts) + " |")
    return [*lines, ""]


def _mean_over_seeds(values: list[float]) -> tuple[float, float, float]:
    return interval([values], lambda v, axis=-1: v.mean(axis=axis))


def _per_series_table(groups: dict[str, list[Run]], shown: list[str], cell: Any) -> list[str]:
    """A group x series table; ``cell(runs of the group that have the series, series)``."""
    lines = ["| group | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
    for label, members in groups.items():
        cells = [cell([r for r in members if name in r.curves], name) for name in shown]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _series_table(groups: dict[str, list[Run]], shown: list[str], measure: Any) -> list[str]:
    def cell(runs: list[Run], name: str) -> str:
        return _cell(_mean_over_seeds([measure(r.curves[name]) for r in runs])) if runs else "-"

    return _per_series_table(groups, shown, cell)


def _reach_table(groups: dict[str, list[Run]], shown: list[str], threshold: float) -> list[str]:
    def cell(runs: list[Run], name: str) -> str:
        hits = [float(x) for r in runs if (x := first_reach(r.curves[name], threshold)) is not None]
        if not runs:
            return "-"
        if not hits:
            return f"not reached (0/{len(runs)})"
        return f"{_cell(_mean_over_seeds(hits), 0)} ({len(hits)}/{len(runs)})"

    return _per_series_table(groups, shown, cell)


def _reach_aggregates(
    groups: dict[str, list[Run]], series: list[str], threshold: float, baseline: str, xname: str
) -> list[str]:
    """IQM and mean of the x to reach ``threshold`` over tasks x seeds (never reached: the run's
    budget), and each group's mean over the baseline's."""

    def values(members: list[Run]) -> PerGame:
        return [[_reach_or_budget(r, t, threshold) for r in members if t in r.curves] for t in series]

    lines = [
        f"{xname.capitalize()} to reach {threshold:g} over tasks x seeds (a run that never reached it counts as "
        f"its budget, so these are lower bounds where runs fell short); ratio: the group's mean over {baseline}'s.",
        "",
        f"| group | reached | IQM | mean | mean / {baseline} | reduction (1 - ratio) |",
        "|---|---|---|---|---|---|",
    ]
    base = values(groups[baseline])
    for label, members in groups.items():
        per_game = values(members)
        reached = sum(first_reach(r.curves[t], threshold) is not None for r in members for t in series if t in r.curves)
        total = sum(len(g) for g in per_game)
        ratio = ratio_interval(per_game, base)
        reduction = (1 - ratio[0], 1 - ratio[2], 1 - ratio[1])
        compared = f"{_cell(ratio, 2)} | {_cell(reduction, 2)}" if label != baseline else "1 | 0"
        lines.append(
            f"| {label} | {reached}/{total} | {_cell(interval(per_game, iqm), 0)} | "
            f"{_cell(interval(per_game, AGGREGATES['mean']), 0)} | {compared} |"
        )
    return [*lines, ""]


def _improvements(
    groups: dict[str, list[Run]], series: list[str], thresholds: list[float], baseline: str, xname: str
) -> list[str]:
    others = [label for label in groups if label != baseline]
    if not others:
        return []
    columns = ["best", "final", "area under the curve", *(f"{xname} to {t:g}" for t in thresholds)]
    lines = [
        f"## Probability of improvement over {baseline} (Agarwal et al. 2021; 95% stratified bootstrap interval)",
        "",
        f"P(a run of the group does better than a run of {baseline} on the same task), averaged over tasks; "
        f"0.5 is no difference. For {xname} to a threshold, fewer is better.",
        "",
        "| group | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    base = groups[baseline]
    for label in others:
        members = groups[label]
        cells = [
            _cell(
                improvement_interval(_per_game(members, series, MEASURES[m]), _per_game(base, series, MEASURES[m])), 2
            )
            for m in ("best", "final", "area under the curve")
        ]
        for threshold in thresholds:

            def reach(runs: list[Run], t: float = threshold) -> PerGame:
                return [[_reach_or_budget(r, g, t) for r in runs if g in r.curves] for g in series]

            cells.append(_cell(improvement_interval(reach(members), reach(base), lower_is_better=True), 2))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]
