"""``python -m lightning_distill report``: grouping by config, the measures, the intervals."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from lightning_distill.report import report
from lightning_distill.report.stats import AGGREGATES, interval, probability_of_improvement

from conftest import run_cli

TASKS = ("MinAtar/Breakout", "MinAtar/Freeway")


def write_run(folder: Path, architecture: str, seed: int, curves: dict[str, list[float]], every: int = 1000) -> Path:
    """A run folder as ``fit`` writes it: config.yaml and metrics.csv with training rows between
    evaluation rows (``step`` counts from 0, so the evaluation after 1000 updates is step 999)."""
    folder.mkdir(parents=True)
    config = {
        "seed_everything": seed,
        "trainer": {
            "max_steps": every * len(next(iter(curves.values()))),
            "logger": [{"init_args": {"save_dir": str(folder)}}],
        },
        "model": {"class_path": "lightning_distill.modules.Distillation", "init_args": {"architecture": architecture}},
        "data": {"init_args": {"seed": seed, "tasks": [{"id": t} for t in TASKS]}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    fields = ["epoch", "step", "train/loss", *(f"eval/{t}/pct_teacher" for t in TASKS), "eval/geomean_pct_teacher"]
    with open(folder / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        for i in range(len(curves[TASKS[0]])):
            step = (i + 1) * every - 1
            writer.writerow({"epoch": 0, "step": step - every // 2, "train/loss": 0.5})
            row = {f"eval/{t}/pct_teacher": curves[t][i] for t in TASKS}
            geomean = float(np.exp(np.mean(np.log([curves[t][i] for t in TASKS]))))
            writer.writerow({"epoch": 0, "step": step, **row, "eval/geomean_pct_teacher": geomean})
    return folder


def fast_and_slow(root: Path, seeds: int = 3) -> None:
    """``proposed`` reaches 90% of both teachers after 2000 updates, ``dist`` after 4000."""
    for seed in range(seeds):
        jitter = seed * 0.5
        write_run(
            root / f"proposed_s{seed}" / "version_0",
            "proposed",
            seed,
            {t: [50 + jitter, 95 + jitter, 101, 102] for t in TASKS},
        )
        write_run(
            root / f"dist_s{seed}" / "version_0", "dist", seed, {t: [40 + jitter, 60 + jitter, 80, 92] for t in TASKS}
        )


def section(markdown: str, heading: str) -> str:
    """The lines of a markdown section, up to the next heading."""
    text = markdown.split(heading, 1)[1]
    return text.split("\n## ", 1)[0]


def row(table: str, label: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_groups_runs_by_folder_name_and_names_what_differs(tmp_path):
    fast_and_slow(tmp_path / "runs")
    markdown = report([str(tmp_path / "runs")], tmp_path / "out" / "table1", baseline="dist")
    assert "6 runs in 2 groups (seeds: dist 3, proposed 3)" in markdown
    assert row(markdown, "`model.init_args.architecture`")[1:] == ["dist", "proposed"]
    assert "seed" not in markdown.split("## ", 1)[0].split("| config key")[1]  # seeds and paths are not differences


def test_report_measures_updates_to_reach_and_improvement(tmp_path):
    fast_and_slow(tmp_path / "runs")
    markdown = report([str(tmp_path / "runs")], tmp_path / "table1", baseline="dist", thresholds=[90.0])
    reach = section(markdown, "## updates to first reach 90")
    assert row(reach, "proposed")[1:] == ["2,000 [2,000, 2,000] (3/3)"] * 3
    assert row(reach, "dist")[1:] == ["4,000 [4,000, 4,000] (3/3)"] * 3
    ratio = section(markdown, "Updates to reach 90 over tasks x seeds")
    assert row(ratio, "proposed")[-1] == "0.50 [0.50, 0.50]"
    improvement = section(markdown, "## Probability of improvement over dist")
    assert row(improvement, "proposed")[1:] == ["1.00 [1.00, 1.00]"] * 4  # best, final, area, updates to 90
    best = section(markdown, "## % of teacher: best")
    assert row(best, "proposed")[1].startswith("102.0 [102.0, 102.0]")


def test_report_says_when_runs_never_reached_a_threshold(tmp_path):
    fast_and_slow(tmp_path / "runs")
    markdown = report([str(tmp_path / "runs")], tmp_path / "t", thresholds=[100.0])
    reach = section(markdown, "## updates to first reach 100")
    assert row(reach, "dist")[1] == "not reached (0/3)"
    # in the aggregate a run that never reached it counts as its budget: a lower bound
    assert row(section(markdown, "Updates to reach 100 over tasks x seeds"), "dist")[1] == "0/6"


def test_report_labels_groups_by_config_when_folder_names_do_not_group(tmp_path):
    for seed, name in enumerate(["a", "b", "c", "d"]):
        architecture = "amn" if seed % 2 else "proposed"
        write_run(tmp_path / name, architecture, seed, {t: [50.0, 90.0 + seed] for t in TASKS})
    markdown = report([str(tmp_path / "*")], tmp_path / "out" / "r")
    assert "seeds: architecture=proposed 2, architecture=amn 2" in markdown


def test_report_writes_learning_curves_and_intervals_as_png(tmp_path):
    fast_and_slow(tmp_path / "runs", seeds=2)
    report([str(tmp_path / "runs")], tmp_path / "out" / "fig")
    for name in ("fig_curves.png", "fig_intervals.png"):
        assert (tmp_path / "out" / name).read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "out" / "fig.md").read_text().count("](fig_") == 2


def test_report_reads_any_column_by_iteration_without_a_geometric_mean_of_negative_scores(tmp_path):
    """REPAINT's K: iterations until train/return (negative on Reacher) first reaches a target."""
    for method, start in (("baseline", 60), ("repaint", 20)):
        for seed in range(2):
            folder = tmp_path / f"{method}_s{seed}"
            folder.mkdir()
            (folder / "config.yaml").write_text(
                yaml.safe_dump({"seed_everything": seed, "model": {"init_args": {"method": method}}})
            )
            with open(folder / "metrics.csv", "w") as f:
                f.write(
                    "epoch,step,train/return\n"
                    + "".join(f"{k},{k * 10 + 9},{-100 + k * 100 / start:.3f}\n" for k in range(100))
                )
    markdown = report(
        [str(tmp_path)], tmp_path / "k", baseline="baseline", metric="train/return", x="epoch", thresholds=[-7.4]
    )
    reach = section(markdown, "## iterations to first reach -7.4")
    assert row(reach, "baseline")[1] == "57 [57, 57] (2/2)" and row(reach, "repaint")[1] == "20 [20, 20] (2/2)"
    assert "geometric mean" not in section(markdown, "## Aggregates")


def test_report_from_the_command_line_on_a_real_run(cartpole_run, tmp_path, capsys):
    run_cli(
        "report",
        str(cartpole_run),
        "--out",
        str(tmp_path / "cartpole"),
        "--metric",
        "eval/return",
        "--thresholds",
        "100",
    )
    out = capsys.readouterr().out
    assert "1 runs in 1 groups" in out and out.rstrip().splitlines()[-1].startswith("result: groups=1 runs=1")
    assert (tmp_path / "cartpole.md").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing_folder"], "no run directory matches 'missing_folder'"),
        (["{empty}"], "no runs under"),
        (["{runs}", "--baseline", "ppo"], "--baseline 'ppo' is not a group; groups: dist, proposed"),
        (["{runs}", "--metric", "eval/nothing"], "logged 'eval/nothing'"),
        (["{runs}", "--metric", "train/loss", "--x", "iteration"], "--x 'iteration' is not a column of"),
        (["{runs}", "--x", "epoch"], "--x 'epoch' with --metric pct_teacher"),
        (["{runs}", "--tasks", "geomean"], "has no task 'geomean'; it has MinAtar/Breakout, MinAtar/Freeway"),
    ],
)
def test_report_refuses_bad_input_in_one_line(tmp_path, capsys, monkeypatch, arguments, message):
    fast_and_slow(tmp_path / "runs", seeds=1)
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    arguments = [a.format(runs=tmp_path / "runs", empty=tmp_path / "empty") for a in arguments]
    with pytest.raises(SystemExit) as info:
        run_cli("report", *arguments, "--out", str(tmp_path / "r"))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and [line for line in err.splitlines() if line.startswith("error:")] == [
        next(line for line in err.splitlines() if message in line)
    ]


def test_bootstrap_is_stratified_by_game():
    """Seeds are resampled within each game: games that differ only between each other (every
    seed of a game equal) leave nothing to resample, where a pooled bootstrap would vary."""
    per_game = [[10.0] * 5, [100.0] * 5, [1000.0] * 5]
    for statistic in AGGREGATES.values():
        point, low, high = interval(per_game, statistic)
        assert low == pytest.approx(point) and high == pytest.approx(point)


def test_probability_of_improvement_averages_pairwise_wins_over_games():
    assert probability_of_improvement([[1, 2], [5, 6]], [[1, 2], [5, 6]]) == 0.5
    assert probability_of_improvement([[3, 4], [5, 6]], [[1, 2], [7, 8]]) == 0.5  # wins one game, loses one
    assert probability_of_improvement([[3, 4]], [[1, 2]], lower_is_better=True) == 0.0


def test_report_on_some_tasks_recomputes_their_geometric_mean(tmp_path):
    for seed in range(2):
        write_run(tmp_path / f"proposed_s{seed}", "proposed", seed, {TASKS[0]: [25.0, 100.0], TASKS[1]: [100.0, 100.0]})
    markdown = report([str(tmp_path)], tmp_path / "r", tasks=[TASKS[0]])
    best = section(markdown, "## % of teacher: best")
    assert best.splitlines()[2] == f"| group | {TASKS[0]} |"  # one task, so no geometric mean column
    markdown = report([str(tmp_path)], tmp_path / "r", tasks=list(TASKS), thresholds=[49.0])  # sqrt(25 * 100) = 50
    assert row(section(markdown, "## updates to first reach 49"), "proposed")[-1] == "1,000 [1,000, 1,000] (2/2)"


def test_report_gives_no_interval_for_a_group_of_one_seed(tmp_path):
    fast_and_slow(tmp_path / "runs")
    for seed in (1, 2):  # dist is left with one finished seed, as while runs are still going
        for path in (tmp_path / "runs" / f"dist_s{seed}" / "version_0").iterdir():
            path.unlink()
    markdown = report([str(tmp_path / "runs")], tmp_path / "r", baseline="dist", thresholds=[90.0])
    assert row(section(markdown, "## % of teacher: best"), "dist")[1] == "92.0 [one value: no interval]"
    assert row(section(markdown, "## Probability of improvement"), "proposed")[1] == "1.00 [one value: no interval]"


def test_report_names_runs_that_stop_before_the_rest_of_their_group(tmp_path):
    fast_and_slow(tmp_path / "runs")
    metrics = tmp_path / "runs" / "dist_s1" / "version_0" / "metrics.csv"
    metrics.write_text("".join(metrics.read_text().splitlines(keepends=True)[:5]))  # two evaluations of four
    markdown = report([str(tmp_path / "runs")], tmp_path / "r")
    assert f"stop before their group's last updates** (unfinished?): {metrics.parent} (2,000)." in markdown


def test_runs_from_before_an_option_existed_group_with_runs_that_have_its_default(tmp_path):
    fast_and_slow(tmp_path / "runs")
    for seed in range(3):  # a later release added "lr" (one value in every run that has it)
        config_file = tmp_path / "runs" / f"proposed_s{seed}" / "version_0" / "config.yaml"
        config = yaml.safe_load(config_file.read_text())
        config["model"]["init_args"]["lr"] = 1e-3
        if seed == 0:
            config["model"]["init_args"]["anneal"] = seed  # one run alone: not a difference either
        config_file.write_text(yaml.safe_dump(config))
    markdown = report([str(tmp_path / "runs")], tmp_path / "out" / "r", baseline="dist")
    assert "6 runs in 2 groups (seeds: dist 3, proposed 3)" in markdown
    assert "`model.init_args.lr`" not in markdown


def test_runs_that_differ_only_in_the_target_their_summary_printed_group_together(tmp_path):
    """REPAINT's ``target_score`` names the K a run prints; report measures its own thresholds."""
    fast_and_slow(tmp_path / "runs")
    for seed in range(3):
        config_file = tmp_path / "runs" / f"proposed_s{seed}" / "version_0" / "config.yaml"
        config = yaml.safe_load(config_file.read_text())
        config["model"]["init_args"]["target_score"] = 200.0 if seed < 2 else 700.0
        config_file.write_text(yaml.safe_dump(config))
    markdown = report([str(tmp_path / "runs")], tmp_path / "out" / "r", baseline="dist")
    assert "6 runs in 2 groups (seeds: dist 3, proposed 3)" in markdown
