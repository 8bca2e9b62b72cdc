"""Finding runs, reading their curves, and grouping them by what differs in their configs.

A run is a folder with ``metrics.csv`` and ``config.yaml`` beside it (what ``fit`` writes in
``<save_dir>/<name>/version_<n>/``, or what the benchmarks keep of it). Two runs belong to the
same group when their saved configs agree on every key but the seed and where they were
written; a group's label names the keys that set it apart from the others.
"""

from __future__ import annotations

import csv
import glob
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lightning_distill.errors import ConfigError

#: Config keys that say where or with which seed a run ran, or what its own summary measured
#: (REPAINT's ``target_score``: ``report`` measures K at its own thresholds), not what it ran.
IGNORED_PREFIXES = (
    "seed_everything",
    "data.init_args.seed",
    "trainer.logger",
    "ckpt_path",
    "trainer.default_root_dir",
    "model.init_args.target_score",
)
#: The series name of the geometric mean over tasks (distillation runs).
GEOMEAN = "geomean"

Curve = dict[int, float]


@dataclass
class Run:
    path: Path
    seed: int
    config: dict[str, Any]  # flattened: dotted key -> value
    curves: dict[str, Curve]  # series (a task, or GEOMEAN) -> {x: value}

    @property
    def name(self) -> str:
        """The run's folder name without its ``version_<n>`` and ``_s<seed>`` parts."""
        folder = self.path.parent if self.path.name.startswith("version_") else self.path
        return folder.name.removesuffix(f"_s{self.seed}")


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys; lists of dicts by index (``trainer.callbacks.0.init_args``)."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(config, dict):
        items = config.items()
    elif isinstance(config, list) and any(isinstance(v, dict) for v in config):
        items = ((str(i), v) for i, v in enumerate(config))
    else:
        return {prefix: config}
    out: dict[str, Any] = {}
    for key, value in items:
        out |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def find_run_dirs(patterns: list[str]) -> list[Path]:
    """Every folder at or under the given paths (globs allowed) holding metrics.csv and config.yaml."""
    dirs: set[Path] = set()
    for pattern in patterns:
        matches = [Path(p) for p in glob.glob(pattern)] or [Path(pattern)]
        for match in matches:
            if not match.exists():
                raise ConfigError(f"no run directory matches {pattern!r}: give folders that hold metrics.csv")
            found = [match / "metrics.csv"] if (match / "metrics.csv").exists() else match.rglob("metrics.csv")
            dirs.update(m.parent for m in found if (m.parent / "config.yaml").exists())
    if not dirs:
        raise ConfigError(f"no runs under {' '.join(patterns)}: a run is a folder with metrics.csv and config.yaml")
    return sorted(dirs)


def read_curves(metrics: Path, metric: str, x: str) -> dict[str, Curve]:
    """Series of a run: with ``metric`` ``pct_teacher``, every ``eval/<task>/pct_teacher`` and
    the geometric mean, by update (``step`` + 1); otherwise the one column ``metric`` by ``x``
    (``step`` counts from 0, ``epoch`` too: both are shifted to count from 1)."""
    curves: dict[str, Curve] = {}
    with open(metrics) as f:
        reader = csv.DictReader(f)
        if x not in (reader.fieldnames or []):
            raise ConfigError(f"--x {x!r} is not a column of {metrics}; use step (updates) or epoch (iterations)")
        for row in reader:
            position = int(float(row[x])) + 1
            for key, value in row.items():
                if not value:
                    continue
                if metric == "pct_teacher" and key.startswith("eval/") and key.endswith("pct_teacher"):
                    series = GEOMEAN if key == "eval/geomean_pct_teacher" else key.split("/", 1)[1].rsplit("/", 1)[0]
                elif key == metric:
                    series = metric
                else:
                    continue
                if not math.isnan(float(value)):
                    curves.setdefault(series, {})[position] = float(value)
    return curves


def load_run(path: Path, metric: str, x: str) -> Run:
    """A run folder's config and curves, or one line naming the folder and the file it cannot read."""
    try:
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(
            f"run {path}: config.yaml is not valid YAML{where}; fix it, or leave that run out of the paths given"
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"run {path}: config.yaml is not a config (a {type(config).__name__}); fix or leave it out")
    flat = flatten(config)
    seed = flat.get("seed_everything", flat.get("data.init_args.seed", 0))
    try:
        curves = read_curves(path / "metrics.csv", metric, x)
    except (csv.Error, ValueError, UnicodeDecodeError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(
            f"run {path}: metrics.csv is not a metrics file fit wrote ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}); fix it, or leave that run out"
        ) from None
    return Run(path, int(seed or 0), flat, curves)


def key_value_label(key: str, value: Any) -> str:
    """``architecture=dist``; a class path by its class: ``replay=UniformReplay``."""
    parts = key.split(".")
    if parts[-1] == "class_path" and isinstance(value, str):
        return f"{parts[-2] if parts[-2] != 'init_args' else parts[-3]}={value.rsplit('.', 1)[-1]}"
    return f"{parts[-1]}={value}"


def differing_keys(runs: list[Run]) -> list[str]:
    """Config keys whose values are not the same in every run (seeds and paths left out).

    A key that only some runs have, with one value in all of them, is an option a later release
    added (with its default): runs from before it do not differ by it."""
    keys = sorted({k for run in runs for k in run.config if not k.startswith(IGNORED_PREFIXES)})
    return [
        k
        for k in keys
        if len({repr(run.config[k]) for run in runs if k in run.config}) > 1 or _absent_by_class(k, runs)
    ]


def _absent_by_class(key: str, runs: list[Run]) -> bool:
    """A key that some runs lack because their component is another class (``alpha`` of a
    prioritized replay, absent from a uniform one): that differs, unlike a newer release's option."""
    if ".init_args." not in key or all(key in run.config for run in runs):
        return False
    class_key = key.rsplit(".init_args.", 1)[0] + ".class_path"
    having = {repr(run.config.get(class_key)) for run in runs if key in run.config}
    lacking = {repr(run.config.get(class_key)) for run in runs if key not in run.config}
    return bool(lacking - having)


def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs grouped by their configs (seed and paths aside), in order of first appearance.

    Label: the runs' common folder name (``hpr_p5`` of ``hpr_p5_s0``, ``hpr_p5_s1``) when it is
    one per group, otherwise ``key=value`` of the keys that differ (the last part of each key)."""
    keys = differing_keys(runs)
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(repr(run.config.get(k)) for k in keys), []).append(run)
    names = [{r.name for r in members} for members in groups.values()]
    if all(len(n) == 1 for n in names) and len({next(iter(n)) for n in names}) == len(names):
        labels = [next(iter(n)) for n in names]
    else:
        labels = [
            ", ".join(key_value_label(k, members[0].config.get(k)) for k in keys) or "all"
            for members in groups.values()
        ]
    return {
        label: sorted(members, key=lambda r: r.seed) for label, members in zip(labels, groups.values(), strict=True)
    }


def restrict(run: Run, tasks: list[str]) -> Run:
    """The run with only ``tasks``' curves; the geometric mean recomputed over them (at the
    evaluations all of them have), as the teacher comparison computes it."""
    from lightning_distill.callbacks.teacher_score import geometric_mean

    missing = [t for t in tasks if t not in run.curves or t == GEOMEAN]
    if missing:
        raise ConfigError(
            f"run {run.path} has no task {missing[0]!r}; it has {', '.join(sorted(set(run.curves) - {GEOMEAN}))}"
        )
    curves = {t: run.curves[t] for t in tasks}
    if GEOMEAN in run.curves and len(tasks) > 1:
        shared = set.intersection(*(set(c) for c in curves.values()))
        curves[GEOMEAN] = {x: geometric_mean([curves[t][x] for t in tasks]) for x in sorted(shared)}
    return Run(run.path, run.seed, run.config, curves)
