"""``python -m lightning_distill {fit,validate,play,report}``: a LightningCLI plus ``play`` and ``report``.

``fit`` and ``validate`` are Lightning's, driven by a YAML config (``class_path`` /
``init_args``, omegaconf interpolation). The data module's tasks are linked into the model, so
a config names its tasks once. ``play`` needs only a checkpoint: checkpoints carry their class
and tasks. ``report`` needs only run folders (lightning_distill.report). Errors from bad input
are printed as one line, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonargparse import ArgumentParser
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from lightning_distill.checkpointing import find_last_checkpoint
from lightning_distill.data.base import RLDataModule
from lightning_distill.errors import ConfigError
from lightning_distill.modules.base import RLModule
from lightning_distill.runs import Checkpoint, keep_metrics_rows, plan_continuation, read_checkpoint
from lightning_distill.upstream import add_subcommand, callbacks_of, fast_dev_run

if TYPE_CHECKING:
    from lightning_distill.checkpointing import Interruption

DEFAULT_RUN_DIR = "runs"
DESCRIPTION = "Knowledge transfer in deep RL on Lightning: multi-task policy distillation (H-PR) and REPAINT."
#: Subcommands that build no Trainer, model or data module.
STANDALONE = ("play", "report")
#: omegaconf+: ${...} interpolation in configs, resolved after the command line's overrides (so a
#: run's name can follow ``--model.init_args.method``); errors raised (not printed) so main() can
#: make them one line; no abbreviated keys (``--trainer.max_step`` is a typo, not ``max_steps``)
PARSER_KWARGS: dict[str, Any] = {"parser_mode": "omegaconf+", "exit_on_error": False, "allow_abbrev": False}
#: Lightning classes the CLI runs as this project's subclasses (same arguments): a ``last.ckpt``
#: that is the latest state, metrics that continue on resume, ``WANDB_MODE`` that wins
UPGRADED_CLASSES = {
    "lightning.pytorch.callbacks.ModelCheckpoint": "lightning_distill.checkpointing.ModelCheckpoint",
    "lightning.pytorch.loggers.CSVLogger": "lightning_distill.loggers.CSVLogger",
    "lightning.pytorch.loggers.WandbLogger": "lightning_distill.loggers.WandbLogger",
}


def _task_dicts(datamodule: RLDataModule) -> list[dict[str, Any]]:
    return [task.to_dict() for task in datamodule.tasks]


class SaveConfigEverywhere(SaveConfigCallback):
    """``config.yaml`` in the run folder (Lightning's), and the same resolved config in the W&B
    run (rank 0), so a run on wandb.ai says exactly how it was made.

    A resumed run (``resumed_from``: the update it continues from) writes its own config as
    ``config.yaml`` and keeps the one before as ``config.until-<update>.yaml``."""

    def __init__(self, *args: Any, resumed_from: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resumed_from = resumed_from

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit" or not trainer.loggers:  # ``validate``, or ``--trainer.logger false``: no run folder
            return
        if self.resumed_from is not None and trainer.is_global_zero and trainer.log_dir is not None:
            previous = Path(trainer.log_dir, self.config_filename)
            if previous.is_file():
                previous.replace(previous.with_name(f"config.until-{self.resumed_from}.yaml"))
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Any, pl_module: Any, stage: str) -> None:
        import yaml

        from lightning_distill.callbacks.wandb_media import wandb_logger

        logger = wandb_logger(trainer)
        if logger is not None:
            config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
            logger.experiment.config.update(config, allow_val_change=True)


class DistillCLI(LightningCLI):
    """LightningCLI with task linking, run-directory defaults and the ``play`` subcommand."""

    def __init__(self, args: Any = None, run: bool = True) -> None:
        from jsonargparse import set_parsing_settings

        self.command_line: list[str] = [str(a) for a in (sys.argv[1:] if args is None else args)]

        # ``${model.init_args.method}`` means the subcommand's model, as in omegaconf mode
        set_parsing_settings(omegaconf_absolute_to_relative_paths=True)
        super().__init__(
            RLModule,
            RLDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_kwargs={name: dict(PARSER_KWARGS) for name in self.subcommands()}
            | PARSER_KWARGS
            | {"prog": "python -m lightning_distill", "description": DESCRIPTION},
            trainer_defaults=TRAINER_DEFAULTS,
            save_config_callback=SaveConfigEverywhere,
            save_config_kwargs={"overwrite": False},
            seed_everything_default=0,
            args=args,
            run=run,
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {
            "fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"},
            "validate": {"model", "dataloaders", "datamodule"},
        }

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data", "model.init_args.tasks", compute_fn=_task_dicts, apply_on="instantiate")

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        super()._add_subcommands(parser, **kwargs)
        from lightning_distill.play import add_play_arguments

        play_parser = ArgumentParser(
            description="Watch a checkpoint play: returns per episode, and a video.",
            **PARSER_KWARGS,
        )
        add_play_arguments(play_parser)
        add_subcommand(self, parser, "play", play_parser)
        from lightning_distill.report import add_report_arguments

        report_parser = ArgumentParser(
            description="Tables and plots over runs, grouped by what differs in their configs.",
            **PARSER_KWARGS,
        )
        add_report_arguments(report_parser)
        add_subcommand(self, parser, "report", report_parser)

    # ``play`` and ``report`` bypass the Trainer/model/data machinery: a checkpoint, or run
    # folders, carry what they need.
    def _parse_ckpt_path(self) -> None:
        self.checkpoint: Checkpoint | None = None
        subcommand = self.config.get("subcommand")
        if subcommand in STANDALONE:
            return
        config = self.config[subcommand]
        if config.get("ckpt_path") == "last":
            config.ckpt_path = str(find_last_checkpoint(*_run_folder(config.trainer.logger)))
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path:
            return
        self.checkpoint = read_checkpoint(ckpt_path)
        self._apply_checkpoint_hparams(self.checkpoint, subcommand)

    def _apply_checkpoint_hparams(self, checkpoint: Checkpoint, subcommand: str) -> None:
        """The model's saved hyperparameters override the config's, as in LightningCLI (read
        through a memory map: a checkpoint holding the replay can be gigabytes)."""
        hparams = dict(checkpoint.hyper_parameters)
        hparams.pop("_instantiator", None)
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        if hparams:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    def _continue_run(self, config: Any, checkpoint: Checkpoint) -> None:
        """``fit --ckpt_path``: write into the checkpoint's own run when it is that run's latest
        state (same folder, metrics, best score and W&B run); see ``lightning_distill.runs``."""
        from lightning.pytorch.utilities import rank_zero_info

        loggers = config.trainer.logger
        continuation = plan_continuation(checkpoint, *_run_folder(loggers))
        rank_zero_info(f"resume: {continuation.note}")
        if continuation.version is None:
            return
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            init_args = getattr(logger, "init_args", None)
            class_path = str(getattr(logger, "class_path", ""))
            if init_args is None:
                continue
            if class_path.endswith("CSVLogger"):
                init_args.version = continuation.version
            elif class_path.endswith("WandbLogger") and continuation.wandb_id:
                init_args.id = continuation.wandb_id
        run_dir = Path(*_run_folder(loggers), _version_folder(continuation.version))
        if continuation.metrics_rows is not None:
            keep_metrics_rows(run_dir / "metrics.csv", continuation.metrics_rows, continuation.metrics_step)
        self.save_config_kwargs = {**self.save_config_kwargs, "resumed_from": checkpoint.global_step}

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> Any:
        """Lightning's epoch bar means nothing for an endless stream: ``RLProgress`` replaces it
        unless the config names a progress bar or turns it off. A config that names no checkpoint
        callback gets the project's ``ModelCheckpoint(save_last=True)``, so every run has a
        ``last.ckpt`` to resume (Lightning's default keeps none); every run gets
        ``SaveOnInterrupt``, so Ctrl-C and SIGTERM write it at the update reached."""
        from lightning.pytorch.callbacks import Checkpoint
        from lightning.pytorch.callbacks.progress import ProgressBar

        from lightning_distill.callbacks.progress import RLProgress
        from lightning_distill.checkpointing import ModelCheckpoint, SaveOnInterrupt

        configured = [*(config.get("callbacks") or []), *callbacks]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in configured):
            callbacks = [*callbacks, RLProgress()]
        if config.get("enable_checkpointing") is not False and not any(isinstance(c, Checkpoint) for c in configured):
            callbacks = [*callbacks, ModelCheckpoint(save_last=True)]
        return super()._instantiate_trainer(config, [*callbacks, SaveOnInterrupt()])

    def before_instantiate_classes(self) -> None:
        """Settings that cannot work here fail now, with one line, not after teachers load; the
        run to write to is chosen (a resumed ``fit`` continues its own)."""
        subcommand = self.config.get("subcommand")
        if subcommand in self.subcommands():
            config = self.config[subcommand]
            check_accelerator(config.trainer.accelerator, config.trainer.devices)
            for entry in _entries(config.trainer.logger) + _entries(config.trainer.callbacks):
                class_path = getattr(entry, "class_path", None)
                if class_path in UPGRADED_CLASSES:
                    entry.class_path = UPGRADED_CLASSES[class_path]
            if subcommand == "fit" and self.checkpoint is not None:
                self._continue_run(config, self.checkpoint)
            if subcommand == "validate":  # a read-only check: no run folder, no W&B run
                config.trainer.logger = False

    def fit(self, model: Any, datamodule: Any = None, **kwargs: Any) -> None:
        """``trainer.fit``, ending with one line that names the best and latest checkpoints; a run
        that fails before its first update leaves no run folder behind, an interrupted one says in
        one line where it stopped and how to resume it."""
        from lightning.pytorch.utilities import rank_zero_info

        from lightning_distill.checkpointing import kept_checkpoints_line
        from lightning_distill.runs import discard_unstarted_run

        try:
            self.trainer.fit(model, datamodule=datamodule, **kwargs)
            kept = kept_checkpoints_line(callbacks_of(self.trainer))
            if kept and not fast_dev_run(self.trainer):
                rank_zero_info(kept)
        except BaseException:
            if self.trainer.global_step == 0 and self.checkpoint is None:
                discard_unstarted_run(self.trainer)
            interruption = self._interruption()
            if interruption is None:
                raise
            print(interruption_line(interruption, self.command_line), file=sys.stderr, flush=True)
            raise SystemExit(interruption.exit_code) from None

    def validate(self, model: Any, datamodule: Any = None, **kwargs: Any) -> None:
        """``trainer.validate``, its results printed one metric a line, as logged (``319.6``, not
        Lightning's table of float32 noise; counts as counts). It writes no run folder and no W&B
        run: the evaluation a run logs is ``fit``'s."""
        from lightning_distill.loggers import as_logged

        kwargs["verbose"] = False
        for results in self.trainer.validate(model, datamodule=datamodule, **kwargs):
            for key, value in sorted(results.items()):
                if self.trainer.is_global_zero:
                    shown = as_logged(float(value))
                    print(f"{key}: {int(shown) if float(shown).is_integer() else shown}")

    def _interruption(self) -> Interruption | None:
        from lightning_distill.checkpointing import SaveOnInterrupt

        for callback in callbacks_of(self.trainer):
            if isinstance(callback, SaveOnInterrupt) and callback.interruption is not None:
                return callback.interruption
        return None

    def _set_seed(self) -> None:
        """Lightning's seeding, without its ``Seed set to 0`` line (the seed is in ``config.yaml``,
        and the line came before any one-line error about the config)."""
        from lightning.fabric.utilities.seed import seed_everything

        subcommand = self.config.get("subcommand")
        if subcommand in STANDALONE:
            return
        config = self.config[subcommand]
        seed = config.get("seed_everything")
        if seed is False:
            return
        config["seed_everything"] = seed_everything(None if seed is True else seed, workers=True, verbose=False)

    def instantiate_classes(self) -> None:
        if self.config.get("subcommand") not in STANDALONE:
            super().instantiate_classes()

    def _run_subcommand(self, subcommand: str) -> None:
        if subcommand == "play":
            from lightning_distill.play import play_from_config

            play_from_config(self.config["play"])
            return
        if subcommand == "report":
            from lightning_distill.report import report_from_config

            report_from_config(self.config["report"])
            return
        super()._run_subcommand(subcommand)


def resume_command(command_line: list[str]) -> str:
    """The command that resumes a run: the one that started it, with ``--ckpt_path last``."""
    import shlex

    args, skip = [], False
    for arg in command_line:
        if skip:
            skip = False
        elif arg == "--ckpt_path":
            skip = True
        elif not arg.startswith("--ckpt_path="):
            args.append(arg)
    return shlex.join(["python", "-m", "lightning_distill", *args, "--ckpt_path", "last"])


def interruption_line(interruption: Interruption, command_line: list[str]) -> str:
    """``interrupted (SIGINT) at update 5500: saved ...last.ckpt; resume with: ...``."""
    head = f"interrupted ({interruption.signal_name}) at update {interruption.step}"
    if not interruption.saved:
        reason = "no update was made" if interruption.step == 0 else "no ModelCheckpoint with save_last: true"
        return f"{head}: nothing saved ({reason})"
    return f"{head}: saved {interruption.saved[0]}; resume with: {resume_command(command_line)}"


def _entries(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _version_folder(version: int | str) -> str:
    return f"version_{version}" if isinstance(version, int) else version


def _run_folder(logger: Any) -> tuple[str, str]:
    """``(save_dir, name)`` of the run's first logger: where its versions and checkpoints are."""
    first = logger[0] if isinstance(logger, list) and logger else logger
    init_args = getattr(first, "init_args", None) or {}
    save_dir = init_args.get("save_dir") or DEFAULT_RUN_DIR
    name = init_args.get("name")
    return str(save_dir), str(name if name is not None else "default")


def csv_logger_args(save_dir: str | Path, name: str, version: int | None = None) -> list[str]:
    """Arguments that replace a config's loggers (CSV and W&B) by one ``CSVLogger`` writing
    ``save_dir/name/version_N``: what scripts that read ``metrics.csv`` (benchmarks, tests) pass."""
    init_args = f"save_dir: '{save_dir}', name: '{name}'" + ("" if version is None else f", version: {version}")
    return ["--trainer.logger", f"{{class_path: lightning_distill.loggers.CSVLogger, init_args: {{{init_args}}}}}"]


def check_accelerator(accelerator: Any, devices: Any) -> None:
    """One line for an accelerator or device count this machine does not have."""
    import torch

    if not isinstance(accelerator, str):
        return
    name = accelerator.lower()
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise ConfigError(
            f"trainer.accelerator {accelerator!r} needs a GPU, but torch ({torch.__version__}, {build}) "
            "sees none here; use --trainer.accelerator cpu (or auto)"
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"trainer.accelerator {accelerator!r} is not available here; use --trainer.accelerator cpu")
    if name in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        available = torch.cuda.device_count()
        wanted = devices if isinstance(devices, int) else len(devices) if isinstance(devices, (list, tuple)) else None
        if isinstance(wanted, int) and wanted > available:
            raise ConfigError(
                f"trainer.devices {devices!r} asks for {wanted} GPUs, this machine has {available}; "
                f"use --trainer.devices {available} (or fewer)"
            )


#: A run keeps its config, metrics and checkpoints together in runs/<name>/version_<n>/.
TRAINER_DEFAULTS: dict[str, Any] = {
    "logger": {
        "class_path": "lightning_distill.loggers.CSVLogger",
        "init_args": {"save_dir": DEFAULT_RUN_DIR, "name": "default"},
    },
    "max_epochs": -1,  # the data is an endless stream: trainer.max_steps (updates) ends a run
    "check_val_every_n_epoch": None,  # evaluate every trainer.val_check_interval updates
    "num_sanity_val_steps": 0,
    "enable_model_summary": False,  # Lightning's table of parameter counts (and 0 FLOPs): not what a run needs
    # checkpoints are renamed into place, never left half-written by a killed run
    "plugins": [{"class_path": "lightning_distill.checkpointing.AtomicCheckpointIO"}],
}


#: Warnings of libraries about their own internals or about what this CLI does on purpose
#: (resuming into an existing run folder, validating a checkpoint from another run).
QUIET_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",
    r"The dirpath has changed from",
    r"Checkpoint directory .* exists and is not empty",
)


#: Lightning's lines about hardware this project never uses, and its advertisements (litlogger, litmodels).
#: Lightning's lines that say nothing a user acts on; its interrupt notice is replaced by the
#: one line ``SaveOnInterrupt`` prints (the update reached, the checkpoint, the resume command)
QUIET_LINES = ("TPU available", "HPU available", "💡 Tip: For seamless cloud", "\nDetected KeyboardInterrupt")


def quiet_third_party_output() -> None:
    """A run prints its progress, evaluations and results; not what is no user's to act on
    (deprecations inside Lightning and torch, Lightning's advertisement for litlogger, TorchRL's
    INFO lines when TorchRL was imported before this package set ``RL_LOGGING_LEVEL``)."""
    import logging
    import warnings

    logging.getLogger("torchrl").setLevel(logging.WARNING)
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not record.getMessage().startswith(QUIET_LINES)
    )


def check_config_files(args: list[str]) -> None:
    """A config file that is missing or not valid YAML: one line naming the file, the line and
    the problem (jsonargparse's message names neither the file nor the line)."""
    import yaml

    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            path = args[i + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        else:
            continue
        if not Path(path).is_file():
            raise ConfigError(f"--config {path!r}: no such file")
        try:
            content = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"--config {path!r} is not valid YAML:{where}: {problem}") from None
        if content is None:
            raise ConfigError(
                f"--config {path!r} is empty; a config sets at least model and data "
                "(see configs/, or --print_config for every key)"
            )
        if not isinstance(content, dict):
            raise ConfigError(
                f"--config {path!r} holds a {type(content).__name__}, not a mapping of keys "
                "(trainer:, model:, data:); see configs/"
            )


def main(args: list[str] | None = None) -> int:
    """Entry point; bad input exits with status 2 and one line on stderr."""
    from lightning_distill.errors import one_line_errors

    quiet_third_party_output()
    with one_line_errors():
        check_config_files(sys.argv[1:] if args is None else args)
        DistillCLI(args=args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
