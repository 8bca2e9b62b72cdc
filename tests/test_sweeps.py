"""Every W&B sweep file renders, the way ``wandb agent`` renders it, to a command the CLI accepts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_cli

SWEEPS = sorted((REPO / "configs" / "sweeps").glob("*.yaml"))


def one_parameter_set(parameters: dict) -> dict:
    """The first value of each parameter (a list's first, a range's max)."""
    return {name: spec["values"][0] if "values" in spec else spec["max"] for name, spec in parameters.items()}


def agent_command(sweep: dict, values: dict) -> list[str]:
    """``wandb agent``'s rendering of ``command`` (wandb_agent.py: macros replaced by these lists)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    sweep_vars = create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})
    sweep_vars |= {"interpreter": ["python"], "program": [sweep["program"]], "env": ["/usr/bin/env"]}
    command = []
    for item in map(str, sweep["command"]):
        command += sweep_vars.get(item[2:-1], []) if item.startswith("${") and item.endswith("}") else [item]
    return command


def test_there_are_sweeps_over_hpr_and_repaint_hyperparameters():
    names = {p.stem: set(yaml.safe_load(p.read_text())["parameters"]) for p in SWEEPS}
    assert names["hpr"] == {f"data.init_args.replay.init_args.{k}" for k in ("alpha", "beta", "partitions")}
    assert names["repaint"] == {"model.init_args.beta_0", "model.init_args.zeta"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_a_sweep_command_rendered_by_the_agent_is_accepted_by_the_cli(path, capsys, monkeypatch):
    sweep = yaml.safe_load(path.read_text())
    assert "${args}" in sweep["command"]  # not ${args_no_hyphens}: LightningCLI wants --key=value
    values = one_parameter_set(sweep["parameters"])
    command = agent_command(sweep, values)
    assert command[:5] == ["/usr/bin/env", "WANDB_MODE=online", "python", "-m", "lightning_distill"]
    monkeypatch.chdir(REPO)  # the agent runs from the repository root: config paths are relative
    with pytest.raises(SystemExit) as info:
        run_cli(*command[5:], "--print_config")
    assert info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    for name, value in values.items():
        node = config
        for key in name.split("."):
            node = node[key]
        assert node == value, name
    assert Path(REPO / command[command.index("--config") + 1]).is_file()
    assert os.path.basename(sweep["program"]) == "__main__.py"
